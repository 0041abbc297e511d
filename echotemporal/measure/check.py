"""The model-free report of one segmented sequence: what ``echotemporal check`` prints.

Per frame and attribute, the temporal inconsistencies (DESIGN.md §4.1); per frame and criterion, the
anatomical validity (§6); the LV volume curve, EDV, ESV, EF and segmentation-derived GLS (§5), measured by
the same functions as the input of ``smooth`` (:mod:`echotemporal.measure.sequence`). No shape
model is involved, so the report is cheap and says what ``smooth`` would have to correct.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from echotemporal import __version__
from echotemporal.core.jsonable import to_jsonable
from echotemporal.core.labels import check_frame_index, frame_indices, validate_labels
from echotemporal.measure.sequence import ClinicalMeasures, ShapeMeasures, measure_clinical, measure_shape

__all__ = ["check_sequence", "check_file", "format_report"]


def check_sequence(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    ed_frame: int | None = None,
    es_frame: int | None = None,
) -> dict[str, Any]:
    """Model-free report of one sequence: inconsistent frames, validity and clinical indices.

    Args:
        labels: (T, H, W) uint8 CAMUS labels, frame 0 first, apex towards row 0; (H, W) is T = 1.
        spacing_mm: (row_mm, col_mm) pixel size in mm.
        ed_frame: 0-based ED frame (e.g. ``InfoCfg.ed_frame``); None = detected from the volume curve.
        es_frame: 0-based ES frame; None = detected. ``es_frame < ed_frame`` means the sequence is
            stored ES->ED: the clinical indices are computed on the reversed sequence and reported
            in the input's frame order.

    Returns:
        A JSON-able dict (NaN written as None); frame numbers are 0-based in the input's order:

        - ``n_frames``, ``image_shape`` [H, W], ``spacing_mm`` [row_mm, col_mm];
        - ``flagged_frames``: attribute name -> frames flagged as temporally inconsistent;
          ``inconsistent_frames``: their union; ``n_inconsistent_frames``;
        - ``failed_criteria``: validity criterion -> frames violating it; ``invalid_frames``: their
          union; ``n_invalid_frames``;
        - ``lv_volumes_ml`` (T,), ``strain_percent`` (T,), ``ed_frame``, ``es_frame``,
          ``ed_es_source`` ("given"/"detected"), ``stored_es_to_ed``, ``edv_ml``, ``esv_ml``,
          ``ef_percent``, ``gls_percent``;
        - ``attributes``: attribute name -> (T,) values in physical units;
        - ``warnings``: the degenerate-input warnings raised while measuring (e.g. no LV in a frame);
        - ``package_version``.

    Raises:
        InvalidLabelsError: values outside {0, 1, 2, 3}.
        ValueError: ED/ES outside the sequence, or a bad shape/spacing.
    """
    from echotemporal.measure.temporal import load_thresholds

    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"labels of shape {np.shape(labels)}: expected a non-empty (T, H, W) sequence")
    arr = validate_labels(arr, "labels")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    n_frames = len(arr)
    ed = check_frame_index(ed_frame, n_frames, "ed_frame")
    es = check_frame_index(es_frame, n_frames, "es_frame")
    reverse = ed is not None and es is not None and es < ed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thresholds = load_thresholds()
        shape, clinical = _measure(arr, spacing, thresholds, ed, es, reverse)
    return _report(arr, spacing, thresholds.names, shape, clinical, given=ed is not None and es is not None,
                   reverse=reverse, messages=_data_warnings(caught))


def _report(
    arr: np.ndarray, spacing: tuple[float, float], names: tuple[str, ...], shape: ShapeMeasures,
    clinical: ClinicalMeasures, *, given: bool, reverse: bool, messages: list[str],
) -> dict[str, Any]:
    """The JSON-able report of :func:`check_sequence` from the measures (NaN written as None)."""
    from echotemporal.measure.anatomy import CRITERIA

    flags, satisfied, invalid = shape.flags, shape.criteria, ~shape.valid
    return to_jsonable({
        "n_frames": len(arr),
        "image_shape": [int(s) for s in arr.shape[1:]],
        "spacing_mm": list(spacing),
        "flagged_frames": {name: frame_indices(flags[:, k]) for k, name in enumerate(names)},
        "inconsistent_frames": frame_indices(flags.any(axis=1)),
        "n_inconsistent_frames": int(flags.any(axis=1).sum()),
        "failed_criteria": {name: frame_indices(~satisfied[:, k]) for k, name in enumerate(CRITERIA)},
        "invalid_frames": frame_indices(invalid),
        "n_invalid_frames": int(invalid.sum()),
        "lv_volumes_ml": clinical.volumes_ml,
        "strain_percent": clinical.strain_percent,
        "ed_frame": clinical.ed_frame,
        "es_frame": clinical.es_frame,
        "ed_es_source": "given" if given else "detected",
        "stored_es_to_ed": bool(reverse),
        "edv_ml": clinical.edv_ml,
        "esv_ml": clinical.esv_ml,
        "ef_percent": clinical.ef_percent,
        "gls_percent": clinical.gls_percent,
        "attributes": {name: shape.attributes[:, k] for k, name in enumerate(names)},
        "warnings": messages,
        "package_version": __version__,
    })


def _measure(
    arr: np.ndarray, spacing: tuple[float, float], thresholds: Any, ed: int | None, es: int | None, reverse: bool
) -> tuple[ShapeMeasures, ClinicalMeasures]:
    """The measures ``smooth`` takes of its input: shape and validity per frame, clinical indices.

    Clinical indices assume ED before ES: a sequence stored ES->ED is measured reversed, and its
    per-frame curves and ED/ES are put back in the file's order.
    """
    # Whole frames, not the heart's box: the report's centroids stay exact to the last bit.
    shape = measure_shape(arr, spacing, thresholds, crop_to_heart=False)
    if reverse:
        last = len(arr) - 1
        clinical = measure_clinical(np.ascontiguousarray(arr[::-1]), spacing, last - ed, last - es).reversed()  # type: ignore[operator]
    else:
        clinical = measure_clinical(arr, spacing, ed, es)
    return shape, clinical


def _data_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Degenerate-input warnings (RuntimeWarning/UserWarning) belong in the report, once each; anything
    else (deprecations, FutureWarning) is about the code, not the data, and is passed on untouched."""
    messages: list[str] = []
    for w in caught:
        if issubclass(w.category, (RuntimeWarning, UserWarning)):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return list(dict.fromkeys(messages))


def check_file(
    path: str | os.PathLike[str],
    info_path: str | os.PathLike[str] | None = None,
    *,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    spacing_mm: tuple[float, float] | None = None,
    fps: float | None = None,
    allow_implausible: bool = False,
) -> dict[str, Any]:
    """:func:`check_sequence` on a label-sequence file, with ED/ES from its CAMUS Info cfg if given.

    Args:
        path: ``.nii.gz``, ``.nii`` or ``.mhd`` label sequence.
        info_path: its ``Info_{2CH,4CH}.cfg``; None = ED/ES detected from the volume curve.
        ed_frame, es_frame, spacing_mm, fps, allow_implausible: as for
            :func:`echotemporal.measure.inputs.prepare_input` (0-based ED/ES overriding the cfg's).

    Returns:
        The report of :func:`check_sequence`, plus ``file``, ``info_file`` and ``frame_time_ms``; its
        ``warnings`` start with those about the input (accepted implausible values, detected ED/ES
        that cannot give an EF).

    Raises:
        InputFileError: unreadable sequence or cfg, cfg ED/ES outside the sequence, or a failed
            plausibility gate.
        InvalidLabelsError: the file is not a CAMUS label map.
    """
    from echotemporal.measure.inputs import detected_ed_es_warning, prepare_input

    prepared = prepare_input(path, info_path=info_path, ed_frame=ed_frame, es_frame=es_frame, spacing_mm=spacing_mm,
                             fps=fps, allow_implausible=allow_implausible)
    seq, ed, es, extra_warnings = prepared.sequence, prepared.ed_frame, prepared.es_frame, list(prepared.warnings)
    report = check_sequence(seq.labels, seq.spacing_mm, ed_frame=ed, es_frame=es)
    if report["ed_es_source"] == "detected":
        detected = detected_ed_es_warning(path, report["ed_frame"], report["es_frame"], report["n_frames"],
                                          report["edv_ml"], report["esv_ml"])
        extra_warnings += [detected] if detected else []
    report["warnings"] = extra_warnings + report["warnings"]
    report["frame_time_ms"] = prepared.frame_time_ms
    return {"file": str(path), "info_file": None if info_path is None else str(info_path), **report}


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def _frame_text(frames: list[int]) -> str:
    """0-based frame indices as the 1-based numbers of the Info cfg."""
    return ", ".join("n/a" if f is None else str(f + 1) for f in frames)


def format_report(report: dict[str, Any]) -> str:
    """A short human summary of a :func:`check_sequence` / :func:`check_file` report.

    Frames are numbered from 1, as in CAMUS Info cfg files and ``--ed/--es`` (the JSON report keeps
    0-based indices, as arrays do); the first line says so.
    """
    name = report.get("file") or "sequence"
    h, w = report["image_shape"]
    row_mm, col_mm = report["spacing_mm"]
    lines = [f"{name}: {report['n_frames']} frame(s) of {h}x{w} px, {row_mm:.4g} x {col_mm:.4g} mm (row x col); "
             "frames numbered from 1, as in the Info cfg"]
    flagged = {k: v for k, v in report["flagged_frames"].items() if v}
    lines.append(
        f"temporal: {report['n_inconsistent_frames']} inconsistent frame(s)"
        + (f" [{_frame_text(report['inconsistent_frames'])}]" if flagged else "")
    )
    lines += [f"  {attr}: frames {_frame_text(frames)}" for attr, frames in flagged.items()]
    failed = {k: v for k, v in report["failed_criteria"].items() if v}
    n_valid = report["n_frames"] - report["n_invalid_frames"]
    lines.append(f"anatomy: {n_valid}/{report['n_frames']} frames valid")
    lines += [f"  {crit}: frames {_frame_text(frames)}" for crit, frames in failed.items()]
    order = ", stored ES->ED" if report["stored_es_to_ed"] else ""
    volumes = [v for v in report["lv_volumes_ml"] if v is not None]
    if volumes:
        lines.append(f"LV volume: {min(volumes):.1f}-{max(volumes):.1f} mL over {len(volumes)} measurable frame(s)")
    lines.append(
        f"clinical: ED frame {_frame_text([report['ed_frame']])}, ES frame {_frame_text([report['es_frame']])} "
        f"({report['ed_es_source']}{order}); "
        f"EDV {_fmt(report['edv_ml'], 'mL')}, ESV {_fmt(report['esv_ml'], 'mL')}, "
        f"EF {_fmt(report['ef_percent'], '%')}, GLS {_fmt(report['gls_percent'], '%')}"
    )
    return "\n".join(lines)
