"""Writing one smoothed sequence's outputs: corrected NIfTI, per-frame CSV, JSON summary, config.

Every output sits beside the resolved config, the package version and the weights sha256 (STYLE.md),
so a result can be traced to the exact code, settings and model that produced it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from echotemporal.core.jsonable import to_jsonable
from echotemporal.io.atomic import check_overwrite, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.io import ImageGeometry
    from echotemporal.correct.smoothing import SmoothingResult
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = [
    "ROLES",
    "sequence_stem",
    "output_paths",
    "check_no_overwrite",
    "write_outputs",
    "write_frames_csv",
    "write_summary",
    "write_config",
    "summary_line",
]

#: Roles of the files written for one sequence, in writing order.
ROLES: tuple[str, ...] = (
    "labels", "frames", "summary", "config", "volume_figure", "attributes_figure", "contours_figure",
)


def sequence_stem(path: str | Path) -> str:
    """File name without its image suffix (``.nii.gz``, ``.nii``, ``.mhd``, ``.mha``)."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mhd", ".mha"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_paths(output_path: str | Path, report_dir: str | Path | None = None, *, plot: bool = False) -> dict[str, Path]:
    """The files one smoothed sequence produces.

    Args:
        output_path: corrected sequence file (``.nii.gz``, ``.nii`` or ``.mhd``).
        report_dir: folder of the CSV/JSON/YAML/figures; default the output's folder.
        plot: include the two PNG figures.

    Returns:
        role -> path for "labels", "frames" (CSV), "summary" (JSON), "config" (YAML) and, with
        ``plot``, "volume_figure", "attributes_figure" and "contours_figure" (before/after masks of
        the changed and flagged frames).
    """
    output_path = Path(output_path)
    folder = output_path.parent if report_dir is None else Path(report_dir)
    stem = sequence_stem(output_path)
    paths = {
        "labels": output_path,
        "frames": folder / f"{stem}_frames.csv",
        "summary": folder / f"{stem}_summary.json",
        "config": folder / f"{stem}_config.yaml",
    }
    if plot:
        paths["volume_figure"] = folder / f"{stem}_volume.png"
        paths["attributes_figure"] = folder / f"{stem}_attributes.png"
        paths["contours_figure"] = folder / f"{stem}_contours.png"
    return paths


def check_no_overwrite(paths: Mapping[str, Path]) -> None:
    """Raise OutputExistsError naming the first output that already exists."""
    check_overwrite(paths.values(), False)


def write_frames_csv(result: SmoothingResult, path: str | Path, *, overwrite: bool = False) -> Path:
    """Per-frame table (one row per frame, attributes/flags/validity/volume/strain before and after)."""
    columns = result.columns

    def write(tmp: Path) -> None:
        rows = zip(*(columns[name] for name in columns))
        with open(tmp, "w", newline="") as fh:  # as pandas' to_csv(index=False, float_format="%.6g")
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(list(columns))
            writer.writerows([_csv_cell(v) for v in row] for row in rows)

    return write_atomic(path, write, overwrite=overwrite)


def _csv_cell(value: Any) -> str:
    """One CSV cell: floats as %.6g and NaN as empty, booleans as True/False, the rest as str."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else "%.6g" % value
    return str(value)


def write_summary(result: SmoothingResult, path: str | Path, *, overwrite: bool = False) -> Path:
    """JSON summary (strict JSON: NaN written as null)."""
    text = json.dumps(to_jsonable(result.summary), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)


def write_config(result: SmoothingResult, path: str | Path, *, overwrite: bool = False) -> Path:
    """Resolved smoothing config as a YAML preset (reloadable with ``--config``), provenance as comments."""
    import yaml

    summary = result.summary
    header = (
        f"# resolved echotemporal smoothing config\n"
        f"# package_version: {summary.get('package_version')}\n"
        f"# weights_sha256: {summary.get('weights_sha256')}\n"
    )
    text = header + yaml.safe_dump(to_jsonable(summary.get("config", {})), sort_keys=False)
    return write_atomic(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)


def write_outputs(
    result: SmoothingResult,
    paths: Mapping[str, Path],
    geometry: ImageGeometry | None,
    *,
    overwrite: bool = False,
    thresholds: AttributeThresholds | None = None,
    spacing_mm: tuple[float, float] | None = None,
    input_labels: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write every file of :func:`output_paths` for one result.

    Args:
        result: the smoothing result.
        paths: role -> path, from :func:`output_paths`.
        geometry: the input's geometry, copied exactly into the corrected NIfTI.
        overwrite: replace existing files.
        thresholds: for the attribute figure's threshold lines (``None``: packaged thresholds).
        spacing_mm: used only when ``geometry`` is None.
        input_labels: (T, H, W) input of the correction, for the "contours_figure" (skipped without).

    Returns:
        role -> path of the files written. All or nothing: when one write fails, the files this call
        wrote are removed before the error propagates.
    """
    if not overwrite:
        check_no_overwrite(paths)
    written: dict[str, Path] = {}
    try:
        _write_all(result, paths, geometry, overwrite, thresholds, spacing_mm, written, input_labels)
    except BaseException:
        # All or nothing: a run that failed half-way leaves no partial set to block or mislead a rerun.
        for path in written.values():
            Path(path).unlink(missing_ok=True)
        raise
    return written


def _write_contours(result: SmoothingResult, path: Path, input_labels: np.ndarray, overwrite: bool) -> Path:
    """Before/after masks of the frames the correction changed or that were flagged (ED/ES if none)."""
    from echotemporal.plotting.contours import save_contour_figure

    columns = result.columns
    flagged = np.asarray(columns["inconsistent_before"], bool) | ~np.asarray(columns["valid_before"], bool)
    ed_es = [result.summary.get(k) for k in ("ed_frame", "es_frame") if result.summary.get(k) is not None]
    title = f"{sequence_stem(path).removesuffix('_contours')}: {result.summary.get('method')}"
    return save_contour_figure(path, np.asarray(input_labels).reshape(np.shape(result.labels)), result.labels,
                               np.asarray(columns["changed"], bool), flagged, title=title, fallback=ed_es,
                               overwrite=overwrite)


def _write_all(
    result: SmoothingResult, paths: Mapping[str, Path], geometry: ImageGeometry | None, overwrite: bool,
    thresholds: AttributeThresholds | None, spacing_mm: tuple[float, float] | None, written: dict[str, Path],
    input_labels: np.ndarray | None,
) -> None:
    """The writes of :func:`write_outputs`, recording each file in ``written`` as soon as it exists."""
    from echotemporal.io import write_sequence

    labels_path = Path(paths["labels"])
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    if geometry is None:
        written["labels"] = Path(write_sequence(labels_path, result.labels, spacing_mm=spacing_mm, overwrite=overwrite))
    else:
        written["labels"] = Path(write_sequence(labels_path, result.labels, geometry, overwrite=overwrite))
    written["frames"] = write_frames_csv(result, paths["frames"], overwrite=overwrite)
    written["config"] = write_config(result, paths["config"], overwrite=overwrite)
    if "volume_figure" in paths or "attributes_figure" in paths:
        from echotemporal.plotting import save_sequence_figures

        figures = save_sequence_figures(
            result,
            volume_path=paths.get("volume_figure"),
            attributes_path=paths.get("attributes_figure"),
            thresholds=thresholds,
            overwrite=overwrite,
        )
        written.update(figures)
    if "contours_figure" in paths and input_labels is not None:
        written["contours_figure"] = _write_contours(result, paths["contours_figure"], input_labels, overwrite)
    written["summary"] = write_summary(result, paths["summary"], overwrite=overwrite)


def _residue_frames(summary: Mapping[str, Any]) -> str:
    """The frames still flagged or invalid after the correction, numbered from 1 as in the Info cfg."""
    residue = summary.get("residue") or {}
    flagged = sorted({f for frames in (residue.get("inconsistent_attributes") or {}).values() for f in frames})
    invalid = list(residue.get("invalid_frames") or [])
    parts = []
    if flagged:
        parts.append("inconsistent frame(s) " + ", ".join(str(f + 1) for f in flagged))
    if invalid:
        parts.append("invalid frame(s) " + ", ".join(str(f + 1) for f in invalid))
    return "; ".join(parts) or "see the summary"


def _beats(summary: Mapping[str, Any]) -> str:
    """" (mean of N beats)" where either volume curve holds several beats (the EF is then their mean), else ""."""
    n = max(int(summary.get("n_beats_before") or 0), int(summary.get("n_beats_after") or 0))
    return f" (mean of {n} beats)" if n > 1 else ""


def summary_line(result: SmoothingResult) -> str:
    """One line for the terminal: outcome, output, method, flagged/invalid frames and EF before -> after
    (the mean over the beats where there are several; residue frames numbered from 1, as in the Info cfg)."""
    s = result.summary

    def ef(key: str) -> str:
        v = s.get(key)
        return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.1f}%"

    where = s.get("outputs", {}).get("labels", "")
    head = f"{where}: " if where else ""
    outcome = s.get("outcome", "clean")
    reason = f": {s['worse_reason']}" if s.get("worse_reason") else ""
    residue = {"clean": "", "residue": f" (residue: {_residue_frames(s)})",
               "worse": f" (correction scored worse than the input{reason}; input kept; --force keeps it)"
               if s.get("kept_input_because_worse") else f" (correction scored worse than the input{reason})"}[outcome]
    return (
        f"{outcome.upper()} "
        f"{head}{s['method']}, {s['n_frames']} frames, inconsistent {s['n_inconsistent_before']}->"
        f"{s['n_inconsistent_after']}, invalid {s['n_invalid_before']}->{s['n_invalid_after']}, "
        f"EF {ef('ef_percent_before')}->{ef('ef_percent_after')}{_beats(s)}, {s['seconds']:.2f} s{residue}"
    )
