"""CAMUS ``Info_{2CH,4CH}.cfg`` files: ``Key: value`` lines, both releases, ED/ES 1-based on disk.

The 2023 release writes ``EF``; the 2019 release writes ``LVedv``, ``LVesv``, ``LVef`` instead. Unknown
keys are kept as text, never rejected. In memory ED/ES are 0-based.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from echotemporal.core.errors import InputFileError
from echotemporal.io.atomic import write_atomic

__all__ = ["InfoCfg", "read_info_cfg", "write_info_cfg"]


@dataclass(frozen=True)
class InfoCfg:
    """Contents of a CAMUS ``Info_{2CH,4CH}.cfg`` file.

    Attributes:
        ed_frame: end-diastolic frame, 0-based (the file is 1-based).
        es_frame: end-systolic frame, 0-based (the file is 1-based).
        n_frames: ``NbFrame``.
        ef_percent: ``EF`` (2023 release) or ``LVef`` (2019 release), in %.
        edv_ml: ``LVedv`` (2019 release), in mL.
        esv_ml: ``LVesv`` (2019 release), in mL.
        frame_rate_hz: ``FrameRate``, in Hz.
        sex: ``Sex`` (``"F"``/``"M"``).
        age: ``Age`` in years.
        image_quality: ``ImageQuality`` (``"Good"``, ``"Medium"``, ``"Poor"``).
        extra: every other key, value kept as text.
    """

    ed_frame: int | None = None
    es_frame: int | None = None
    n_frames: int | None = None
    ef_percent: float | None = None
    edv_ml: float | None = None
    esv_ml: float | None = None
    frame_rate_hz: float | None = None
    sex: str | None = None
    age: float | None = None
    image_quality: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def stored_es_to_ed(self) -> bool:
        """True when the sequence is stored ES first (ES frame before ED frame)."""
        return self.ed_frame is not None and self.es_frame is not None and self.es_frame < self.ed_frame


# cfg key -> (InfoCfg field, kind). "frame" values are 1-based in the file.
_CFG_KEYS: dict[str, tuple[str, str]] = {
    "ED": ("ed_frame", "frame"),
    "ES": ("es_frame", "frame"),
    "NbFrame": ("n_frames", "int"),
    "Sex": ("sex", "str"),
    "Age": ("age", "float"),
    "ImageQuality": ("image_quality", "str"),
    "EF": ("ef_percent", "float"),
    "LVedv": ("edv_ml", "float"),
    "LVesv": ("esv_ml", "float"),
    "LVef": ("ef_percent", "float"),
    "FrameRate": ("frame_rate_hz", "float"),
}


def _parse_cfg_value(path: Path, key: str, text: str, kind: str) -> int | float | str:
    if kind == "str":
        return text
    try:
        number = float(text)
    except ValueError:
        raise InputFileError(f"{path}: {key}: {text!r} is not a number; fix the value in the cfg file") from None
    if kind == "float":
        return number
    if not number.is_integer():
        raise InputFileError(f"{path}: {key}: {text!r} is not a whole number; fix the value in the cfg file")
    if kind == "frame":
        if number < 1:
            raise InputFileError(f"{path}: {key}: {text!r}; CAMUS frame numbers start at 1, fix the value")
        return int(number) - 1
    return int(number)


def read_info_cfg(path: str | os.PathLike[str]) -> InfoCfg:
    """Parse a CAMUS ``Info_{2CH,4CH}.cfg`` file (``Key: value`` lines, both releases).

    Args:
        path: the cfg file.

    Returns:
        Its contents; ED/ES converted to 0-based; unknown keys kept in ``extra``. When both ``EF`` and
        ``LVef`` are present, ``EF`` fills ``ef_percent`` and ``LVef`` stays in ``extra``.

    Raises:
        InputFileError: missing file, a line that is not ``Key: value``, or a bad known value.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: Info cfg not found; check the path (e.g. patient0001/Info_4CH.cfg)")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the Info cfg ({exc.strerror}); check its permissions") from None
    pairs: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise InputFileError(
                f"{path}:{lineno}: {line!r} is not a 'Key: value' line; is this a CAMUS Info_*.cfg file?"
            )
        pairs[key.strip()] = value.strip()
    if "EF" in pairs:  # both releases' EF keys present: EF fills ef_percent, LVef is kept as text
        known = {k: v for k, v in _CFG_KEYS.items() if k != "LVef"}
    else:
        known = _CFG_KEYS
    values = {known[k][0]: _parse_cfg_value(path, k, v, known[k][1]) for k, v in pairs.items() if k in known}
    extra = {k: v for k, v in pairs.items() if k not in known}
    return InfoCfg(**values, extra=extra)  # type: ignore[arg-type]


def _format_cfg_number(value: float) -> str:
    # repr() round-trips floats exactly; whole numbers keep CAMUS's "94.0" look.
    return repr(float(value))


def write_info_cfg(path: str | os.PathLike[str], info: InfoCfg, *, overwrite: bool = False) -> Path:
    """Write a CAMUS ``Info_*.cfg`` file (1-based ED/ES), atomically.

    Known fields are written in CAMUS order, then ``extra``. The ejection fraction is written as
    ``LVef`` next to ``LVedv``/``LVesv`` when volumes are set (2019 release), else as ``EF``.

    Args:
        path: output file.
        info: contents.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    old_release = info.edv_ml is not None or info.esv_ml is not None
    lines: list[tuple[str, str]] = []

    def add(key: str, value: object, fmt=str) -> None:
        if value is not None:
            lines.append((key, fmt(value)))

    add("ED", None if info.ed_frame is None else int(info.ed_frame) + 1)
    add("ES", None if info.es_frame is None else int(info.es_frame) + 1)
    add("NbFrame", info.n_frames, lambda v: str(int(v)))
    add("Sex", info.sex)
    add("Age", info.age, lambda v: str(int(v)) if float(v).is_integer() else repr(float(v)))
    add("ImageQuality", info.image_quality)
    if old_release:
        add("LVedv", info.edv_ml, _format_cfg_number)
        add("LVesv", info.esv_ml, _format_cfg_number)
        add("LVef", info.ef_percent, _format_cfg_number)
    else:
        add("EF", info.ef_percent, _format_cfg_number)
    add("FrameRate", info.frame_rate_hz, _format_cfg_number)
    written = {key for key, _ in lines}
    lines.extend((k, str(v)) for k, v in info.extra.items() if k not in written)

    text = "".join(f"{k}: {v}\n" for k, v in lines)
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)
