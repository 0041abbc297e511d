"""One sequence file made ready for measuring or correcting: spacing, ED/ES, frame time, gates.

What ``check`` and ``smooth`` (and each sequence of a batch) do between reading a file and measuring
it, in one place: the spacing given by the user or the header, the ED/ES given by the user (0-based
here, 1-based in every message) or the Info cfg, the frame time, and the plausibility gates of
:mod:`echotemporal.measure.plausibility` (errors, or warnings with ``allow_implausible``). ED/ES that
were detected from the volume curve, not given, pass the same gates after measuring
(:func:`detected_ed_es_warning`), as warnings: the user gave nothing to fix, only something to add.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echotemporal.core.errors import InputFileError
from echotemporal.core.labels import Label
from echotemporal.io.header_spacing import spacing_in_header
from echotemporal.io.sequence import ImageGeometry, LabelSequence, read_sequence
from echotemporal.measure import plausibility

__all__ = ["PreparedInput", "prepare_input", "given_spacing", "detected_ed_es_warning"]

#: Plausible echo frame rates (frames per second) for ``--fps``.
FPS_RANGE: tuple[float, float] = (5.0, 500.0)


@dataclass
class PreparedInput:
    """A sequence file with everything measuring it needs.

    Attributes:
        sequence: the file's labels (T, H, W) uint8 and geometry (spacing replaced when given).
        ed_frame, es_frame: 0-based ED/ES, or None (detected from the volume curve).
        ed_es_source: "options", "cfg" or None.
        frame_time_ms: ms between frames (``fps``, else the header), or None.
        warnings: one-line messages for the user (implausible but accepted values).
    """

    sequence: LabelSequence
    ed_frame: int | None
    es_frame: int | None
    ed_es_source: str | None
    frame_time_ms: float | None
    warnings: list[str] = field(default_factory=list)


def given_spacing(spacing_mm: Sequence[float]) -> tuple[float, float]:
    """A user's ``--spacing`` as (row_mm, col_mm), once checked against what echo produces.

    Raises:
        InputFileError: not two numbers within :data:`plausibility.SPACING_RANGE_MM` (the message
            names ``--spacing``).
    """
    values = tuple(float(s) for s in spacing_mm)
    problem = f"{len(values)} values given, 2 needed" if len(values) != 2 else plausibility.spacing_problem(values)
    if problem is not None:
        raise InputFileError(f"--spacing: {problem}; give the pixel size in mm (row, then column)")
    return values[0], values[1]


def _with_spacing(seq: LabelSequence, spacing_mm: tuple[float, float]) -> LabelSequence:
    """``seq`` with its in-plane spacing replaced (the geometry's (x, y) = (col, row) too)."""
    row_mm, col_mm = spacing_mm
    geometry = seq.geometry
    if geometry is not None:
        spacing = (col_mm, row_mm, *geometry.spacing[2:])
        geometry = ImageGeometry(spacing=spacing, origin=geometry.origin, direction=geometry.direction)
    return dataclasses.replace(seq, spacing_mm=(row_mm, col_mm), geometry=geometry)


def _ed_es(
    path: Path, n_frames: int, info_path: str | os.PathLike[str] | None, ed: int | None, es: int | None,
    warn: list[str],
) -> tuple[int | None, int | None, str | None]:
    """ED/ES from the options, else the Info cfg (out-of-range frames: an error naming the file)."""
    if ed is not None or es is not None:
        if ed is None or es is None:
            raise InputFileError("--ed and --es go together: give both (1-based, as in the Info cfg), or neither")
        for name, frame in (("--ed", ed), ("--es", es)):
            if not 0 <= frame < n_frames:
                raise InputFileError(f"{name} {frame + 1} is outside frames 1..{n_frames} of {path} (frames are 1-based)")
        return ed, es, "options"
    if info_path is None:
        return None, None, None
    from echotemporal.io import read_info_cfg

    info = read_info_cfg(info_path)
    for name, frame in (("ED", info.ed_frame), ("ES", info.es_frame)):
        if frame is not None and not 0 <= frame < n_frames:
            raise InputFileError(
                f"{info_path}: {name}: {frame + 1} is outside frames 1..{n_frames} of {path}; pass the Info cfg "
                "of this sequence's view, or --ed/--es"
            )
    if info.n_frames is not None and info.n_frames != n_frames:
        warn.append(f"{info_path}: NbFrame {info.n_frames} but {path} has {n_frames} frames; using its ED/ES anyway")
    if info.ed_frame is None or info.es_frame is None:
        if (info.ed_frame is None) != (info.es_frame is None):
            given, missing = ("ED", "ES") if info.es_frame is None else ("ES", "ED")
            warn.append(f"{info_path}: gives {given} but no {missing}: both are detected from the volume curve; "
                        f"add the '{missing}:' line (1-based), or pass --ed/--es")
        return None, None, None
    return info.ed_frame, info.es_frame, "cfg"


def _gate(problem: str | None, fix: str, allow: bool, warn: list[str], where: Path) -> None:
    if problem is None:
        return
    if allow:
        warn.append(f"{where}: {problem} (accepted: --allow-implausible)")
    else:
        raise InputFileError(f"{where}: {problem}; {fix}")


def prepare_input(
    path: str | os.PathLike[str],
    *,
    info_path: str | os.PathLike[str] | None = None,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    spacing_mm: Sequence[float] | None = None,
    fps: float | None = None,
    allow_implausible: bool = False,
    sequence: LabelSequence | None = None,
) -> PreparedInput:
    """Read ``path`` (unless ``sequence`` is given) and resolve spacing, ED/ES and frame time, gated.

    Args:
        path: label sequence file.
        info_path: CAMUS Info cfg giving ED/ES (1-based in the file).
        ed_frame, es_frame: 0-based ED/ES; override the cfg's. Both or neither.
        spacing_mm: (row_mm, col_mm) replacing the header's (also when it has none).
        fps: frames per second, replacing the header's frame time.
        allow_implausible: implausible ED/ES and orientation become warnings instead of errors.
        sequence: ``path`` already read.

    Raises:
        InputFileError: no LV or myocardium in any frame, a gate failed (the message names the
            override), or ED/ES/cfg out of range.
    """
    path = Path(path)
    seq = read_sequence(path) if sequence is None else sequence
    if not np.isin(seq.labels, (Label.LV, Label.MYO)).any():
        raise InputFileError(
            f"{path}: no LV (1) or myocardium (2) in any frame: there is nothing to correct or measure; "
            "pass the segmentation of an apical view (the segmenter found no heart here)"
        )
    warn: list[str] = []
    if spacing_mm is not None:
        seq = _with_spacing(seq, given_spacing(spacing_mm))
    else:
        problem = plausibility.spacing_problem(seq.spacing_mm, spacing_in_header(path))
        if problem is not None:
            raise InputFileError(f"{path}: {problem}; pass --spacing ROW_MM COL_MM (the scanner's pixel size)")
    frame_time = seq.frame_time_ms
    if fps is not None:
        low, high = FPS_RANGE
        if not low <= float(fps) <= high:
            raise InputFileError(f"--fps {fps:g} is outside the {low:g}-{high:g} frames/s echo produces")
        frame_time = 1000.0 / float(fps)
    n = seq.n_frames
    # Before the ED/ES gates: swapped labels make the LV volume curve the wall's, and ED/ES look swapped.
    _gate(plausibility.label_swap_problem(seq.labels),
          "remap it to CAMUS labels: 0 background, 1 LV cavity, 2 myocardium, 3 LA (or --allow-implausible)",
          allow_implausible, warn, path)
    ed, es, source = _ed_es(path, n, info_path, ed_frame, es_frame, warn)
    fix = "check the Info cfg or --ed/--es (1-based; without either, ED/ES are detected), or --allow-implausible"
    _gate(plausibility.ed_es_problem(ed, es, n), fix, allow_implausible, warn, path)
    if ed is not None and es is not None and ed != es:
        from echotemporal.measure.clinical import lv_volumes_ml

        edv, esv = lv_volumes_ml(seq.labels[[ed, es]], seq.spacing_mm)
        _gate(plausibility.ejection_problem(float(edv), float(esv), ed, es), fix, allow_implausible, warn, path)
    _gate(plausibility.orientation_problem(seq.labels),
          "transpose or flip it so the apex is towards row 0 (or --allow-implausible)", allow_implausible, warn, path)
    picks = plausibility.sampled_frames(n, 5)
    from echotemporal.measure.clinical import lv_volumes_ml

    volume = plausibility.volume_warning(lv_volumes_ml(seq.labels[picks], seq.spacing_mm))
    if volume is not None:
        warn.append(f"{path}: {volume}")
    return PreparedInput(seq, ed, es, source, frame_time, warn)


def detected_ed_es_warning(
    path: str | os.PathLike[str], ed_frame: int | None, es_frame: int | None, n_frames: int,
    edv_ml: float | None, esv_ml: float | None, curve: str = "input's",
) -> str | None:
    """A one-line warning when ED/ES *detected* from a volume curve fail the ED/ES gates, else None.

    The gates of given ED/ES (:func:`plausibility.ed_es_problem`, :func:`plausibility.ejection_problem`)
    applied to a detected pair: equal or adjacent frames, or an ES volume above the ED volume, give
    an EF that means nothing.

    Args:
        path: the sequence file (named in the message).
        ed_frame, es_frame: 0-based detected ED/ES (None: not detected, no warning).
        n_frames: frames T of the sequence.
        edv_ml, esv_ml: volumes at the detected ED/ES, mL (None or NaN: not measurable).
        curve: which volume curve they were detected on ("input's", "corrected"), for the message.
    """
    if n_frames < 2:  # one frame holds no ED/ES to detect; the indices' own warning says so
        return None
    problem = plausibility.ed_es_problem(ed_frame, es_frame, n_frames)
    if problem is None and ed_frame is not None and es_frame is not None:
        as_ml = [float("nan") if v is None else float(v) for v in (edv_ml, esv_ml)]
        problem = plausibility.ejection_problem(as_ml[0], as_ml[1], ed_frame, es_frame)
    if problem is None:
        return None
    return (f"{path}: ED/ES detected from the {curve} volume curve: {problem}; its EF is not to be trusted: "
            "give ED/ES (an Info cfg, or --ed/--es numbered from 1)")
