"""File-level entry points: one sequence file in, corrected file and report out; the demo."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.core.errors import InputFileError
from echotemporal.measure.inputs import prepare_input
from echotemporal.outputs.files import sequence_stem
from echotemporal.correct.smoothing import SmoothingResult, smooth_sequence

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.io import LabelSequence
    from echotemporal.model.interface import TrainedShapeModel
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["default_output_path", "smooth_file", "run_demo"]


def default_output_path(input_path: str | Path) -> Path:
    """``<stem>_smoothed.nii.gz`` beside the input."""
    input_path = Path(input_path)
    return input_path.with_name(f"{sequence_stem(input_path)}_smoothed.nii.gz")


def _resolve_model(model: Any, method: str) -> Any:
    if method != "arvae":
        return None
    if model is None or isinstance(model, (str, Path)):
        from echotemporal.model.registry import load_model

        return load_model(model)
    return model


def _detected_ed_es_warnings(input_path: Path, summary: dict[str, Any]) -> list[str]:
    """Warnings for ED/ES detected (not given) on the input's or the corrected volume curve that cannot
    give an EF (:func:`echotemporal.measure.inputs.detected_ed_es_warning`); the corrected pair only
    when it differs from the input's."""
    from echotemporal.measure.inputs import detected_ed_es_warning

    if summary.get("ed_es_source") != "detected":
        return []
    messages: list[str] = []
    seen: set[tuple[Any, Any]] = set()
    # The summary's keys: ED/ES "ed_frame_before"/"ed_frame", volumes "edv_ml_before"/"edv_ml_after".
    for curve, frames, volumes in (("input's", "_before", "_before"), ("corrected", "", "_after")):
        pair = (summary.get(f"ed_frame{frames}"), summary.get(f"es_frame{frames}"))
        if pair in seen:
            continue
        seen.add(pair)
        message = detected_ed_es_warning(input_path, *pair, summary["n_frames"], summary.get(f"edv_ml{volumes}"),
                                         summary.get(f"esv_ml{volumes}"), curve)
        messages += [message] if message else []
    return messages


def smooth_file(
    input_path: str | Path,
    output_path: str | Path | None = None,
    *,
    method: str | None = None,
    model: TrainedShapeModel | str | Path | None = None,
    config: SmoothingConfig | None = None,
    info_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    plot: bool = False,
    overwrite: bool = False,
    thresholds: AttributeThresholds | None = None,
    sequence: LabelSequence | None = None,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    spacing_mm: tuple[float, float] | None = None,
    fps: float | None = None,
    allow_implausible: bool = False,
) -> SmoothingResult:
    """Read a sequence file, smooth it and write the corrected NIfTI, CSV, JSON (and figures).

    Args:
        input_path: segmented sequence (.nii.gz, .nii or .mhd).
        output_path: corrected sequence; default ``<stem>_smoothed.nii.gz`` beside the input.
        method: overrides ``config.method`` when given.
        model: a loaded TrainedShapeModel, a weights path/name, or ``None`` for the shipped default
            (only loaded for ``arvae``).
        config: smoothing settings (default: the shipped defaults).
        info_path: CAMUS Info cfg giving ED/ES (1-based in the file); a sequence stored ES→ED is
            reversed, processed and reversed back.
        report_dir: folder for ``<out-stem>_frames.csv``, ``_summary.json``, ``_config.yaml`` and
            figures; default the output's folder.
        plot: also write the volume-curve and attribute figures (PNG).
        overwrite: replace existing outputs; otherwise OutputExistsError before any work is done.
        thresholds: consistency thresholds; ``None`` loads the packaged ones.
        sequence: ``input_path`` already read (``io.read_sequence``): it is not read again.
        ed_frame, es_frame: 0-based ED/ES overriding the Info cfg's (both or neither).
        spacing_mm: (row_mm, col_mm) replacing the header's spacing (also written to the output).
        fps: frames per second replacing the header's frame time (rates in mL/s).
        allow_implausible: the plausibility gates (:mod:`echotemporal.measure.plausibility`) on ED/ES
            and orientation warn instead of raising.

    Returns:
        The SmoothingResult; ``summary["outputs"]`` lists the files written and
        ``summary["input_warnings"]`` the warnings about its inputs (implausible values accepted with
        ``allow_implausible``; ED/ES detected on the input's or corrected curve that cannot give an EF),
        each also issued as a RuntimeWarning.
    """
    from echotemporal.outputs import files as export
    from echotemporal.io import read_sequence

    start = time.perf_counter()
    input_path = Path(input_path)
    output_path = default_output_path(input_path) if output_path is None else Path(output_path)
    config = SmoothingConfig() if config is None else config
    if method is not None:
        config = dataclasses.replace(config, method=method)
    seq = read_sequence(input_path) if sequence is None else sequence
    if output_path.resolve() == input_path.resolve():
        raise InputFileError(f"{output_path}: the output would replace the input; choose another -o path")
    paths = export.output_paths(output_path, report_dir, plot=plot)
    if not overwrite:  # before any work: a refused run costs nothing
        export.check_no_overwrite(paths)
    prepared = prepare_input(input_path, info_path=info_path, ed_frame=ed_frame, es_frame=es_frame,
                             spacing_mm=spacing_mm, fps=fps, allow_implausible=allow_implausible, sequence=seq)
    for message in prepared.warnings:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    seq, ed, es = prepared.sequence, prepared.ed_frame, prepared.es_frame
    loaded = _resolve_model(model, config.method)
    result = smooth_sequence(
        seq.labels, seq.spacing_mm, model=loaded, config=config, thresholds=thresholds, ed_frame=ed, es_frame=es,
        frame_time_ms=prepared.frame_time_ms,
    )
    if prepared.ed_es_source is not None:
        result.summary["ed_es_source"] = prepared.ed_es_source
    detected = _detected_ed_es_warnings(input_path, result.summary)
    for message in detected:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    result.summary["input_warnings"] = list(prepared.warnings) + detected
    result.summary["input"] = str(input_path)
    result.summary["info_cfg"] = None if info_path is None else str(info_path)
    result.summary["outputs"] = {k: str(v) for k, v in paths.items()}
    result.summary["seconds_total"] = time.perf_counter() - start
    export.write_outputs(result, paths, seq.geometry, overwrite=overwrite, thresholds=thresholds,
                         input_labels=seq.labels)
    return result


def run_demo(
    out_dir: str | Path = "echotemporal-demo",
    *,
    seed: int = 0,
    overwrite: bool = False,
    model: TrainedShapeModel | str | Path | None = None,
    view: str = "4CH",
) -> tuple[SmoothingResult, dict[str, Path]]:
    """Generate a corrupted phantom, smooth it with the shipped model, write outputs and figures.

    Args:
        out_dir: folder to write into (created).
        seed: phantom and corruption seed.
        overwrite: replace existing demo files.
        model: TrainedShapeModel or weights path; ``None`` = shipped default.
        view: "2CH" or "4CH".

    Returns:
        The SmoothingResult and the written files by role (truth, corrupted, info, corruptions,
        smoothed, frames, summary, config, figures).
    """
    import json

    from echotemporal.outputs import files as export
    from echotemporal.io import InfoCfg, geometry_from_spacing, write_info_cfg, write_sequence
    from echotemporal.phantoms import corrupt_sequence, generate_sequence

    out_dir = Path(out_dir)
    stem = f"phantom_{view}_half_sequence"
    files = {
        "truth": out_dir / f"{stem}_truth.nii.gz",
        "corrupted": out_dir / f"{stem}.nii.gz",
        "info": out_dir / f"Info_{view}.cfg",
        "corruptions": out_dir / "corruptions.json",
    }
    smoothed = out_dir / f"{stem}_smoothed.nii.gz"
    if not overwrite:
        export.check_no_overwrite({**files, **export.output_paths(smoothed, None, plot=True)})
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    phantom = generate_sequence(rng, view=view)
    corrupted, corruptions = corrupt_sequence(
        phantom.labels, phantom.spacing_mm, rng, kinds=("contraction", "dilation", "shift_vertical", "blob"),
        n_corruptions=3,
    )
    geometry = geometry_from_spacing(phantom.spacing_mm, 3)
    write_sequence(files["truth"], phantom.labels, geometry, overwrite=overwrite)
    write_sequence(files["corrupted"], corrupted, geometry, overwrite=overwrite)
    info = InfoCfg(
        ed_frame=int(phantom.ed_frame), es_frame=int(phantom.es_frame), n_frames=len(phantom.labels),
        ef_percent=float(phantom.ef_percent), edv_ml=None, esv_ml=None, frame_rate_hz=None, sex=None,
        age=None, image_quality=None, extra={},
    )
    write_info_cfg(files["info"], info, overwrite=overwrite)
    files["corruptions"].write_text(
        json.dumps(
            {
                "seed": seed,
                "view": view,
                "true_ef_percent": float(phantom.ef_percent),
                "corruptions": [dataclasses.asdict(c) for c in corruptions],
            },
            indent=2,
        )
    )
    result = smooth_file(
        files["corrupted"], smoothed, model=model, info_path=files["info"], plot=True, overwrite=overwrite
    )
    written = {**files, **{k: Path(v) for k, v in result.summary["outputs"].items()}}
    return result, written
