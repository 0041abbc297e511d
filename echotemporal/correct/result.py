"""What a correction returns: the corrected labels, the per-frame table and the summary."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from echotemporal import __version__
from echotemporal.core.config import SmoothingConfig, config_to_dict
from echotemporal.core.labels import frame_indices
from echotemporal.correct.trust import FrameTrust
from echotemporal.measure.sequence import ClinicalMeasures, ShapeMeasures

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps pandas off the import path
    import pandas as pd

    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["SmoothingResult", "beat_table", "build_summary", "frame_columns"]


@dataclass
class SmoothingResult:
    """Output of :func:`smooth_sequence`.

    Attributes:
        labels: (T, H, W) uint8 corrected label map, same shape as the input.
        method: one of ``core.config.METHODS``.
        columns: the per-frame table as {column: (T,) values}, in column order (see ``frames``).
        summary: JSON-able dict: clinical indices before/after, inconsistent/invalid frames
            before/after, rounds, residue, config, package version, weights sha256, seconds.
        clinical: {"before", "after"}: the clinical measures of the input and of the output, in the
            input's frame order (volumes, strain, ED/ES, indices and the per-frame measures they came
            from): what batch and reports read, instead of parsing the summary back.
    """

    labels: np.ndarray
    method: str
    columns: dict[str, Any]
    summary: dict[str, Any]
    clinical: dict[str, ClinicalMeasures] | None = None

    @property
    def frame_measures(self) -> dict[str, Any] | None:
        """{"before", "after"}: the per-frame clinical measures (``clinical[...].frames``)."""
        return None if self.clinical is None else {when: c.frames for when, c in self.clinical.items()}

    @functools.cached_property
    def frames(self) -> pd.DataFrame:
        """One row per frame: attributes, flags, validity, LV volume and strain, before and after.

        Built from ``columns`` on first use: writing the outputs needs no pandas, whose import takes
        a quarter of a second.
        """
        import pandas as pd

        return pd.DataFrame(self.columns)


def frame_columns(
    before_labels: np.ndarray,
    after_labels: np.ndarray,
    names: tuple[str, ...],
    before: ShapeMeasures,
    after: ShapeMeasures,
    clin_before: ClinicalMeasures,
    clin_after: ClinicalMeasures,
    kept: np.ndarray,
    trust: FrameTrust | None = None,
    reestimated: np.ndarray | None = None,
) -> dict[str, Any]:
    """The per-frame table's columns: {name: (T,) array or list}, in column order.

    ``confidence``, ``reconstruction_dice`` and ``trusted`` describe the input frame (NaN / True
    where the method does not judge frames); ``reestimated`` marks frames rebuilt from the trusted ones.
    """
    from echotemporal.measure.anatomy import CRITERIA

    def failed(shape: ShapeMeasures) -> list[str]:
        crit = tuple(CRITERIA) if len(CRITERIA) == shape.criteria.shape[1] else tuple(
            f"criterion_{i}" for i in range(shape.criteria.shape[1])
        )
        return [";".join(c for c, ok in zip(crit, row) if not ok) for row in shape.criteria]

    n = len(before_labels)
    cols: dict[str, Any] = {"frame": np.arange(n)}
    for k, name in enumerate(names):
        cols[f"{name}_before"] = before.attributes[:, k]
        cols[f"{name}_after"] = after.attributes[:, k]
    for k, name in enumerate(names):
        cols[f"flag_{name}_before"] = before.flags[:, k]
        cols[f"flag_{name}_after"] = after.flags[:, k]
    cols["inconsistent_before"] = before.inconsistent
    cols["inconsistent_after"] = after.inconsistent
    cols["valid_before"] = before.valid
    cols["valid_after"] = after.valid
    cols["failed_criteria_before"] = failed(before)
    cols["failed_criteria_after"] = failed(after)
    cols["lv_volume_ml_before"] = clin_before.volumes_ml
    cols["lv_volume_ml_after"] = clin_after.volumes_ml
    cols["strain_percent_before"] = clin_before.strain_percent
    cols["strain_percent_after"] = clin_after.strain_percent
    cols["changed"] = (before_labels != after_labels).any(axis=(1, 2))
    cols["kept_input"] = kept
    cols["confidence"] = np.full(n, np.nan) if trust is None else trust.confidence
    cols["reconstruction_dice"] = np.full(n, np.nan) if trust is None else trust.reconstruction_dice
    cols["trusted"] = np.ones(n, dtype=bool) if trust is None else trust.trusted
    cols["reestimated"] = np.zeros(n, dtype=bool) if reestimated is None else reestimated
    return cols


def beat_table(
    clin: ClinicalMeasures, frame_time_ms: float | None, ed_frame: int | None, es_frame: int | None
) -> tuple[Any, list[dict[str, Any]]]:
    """The beats of one volume curve and their indices and rates (``measure.clinical.cycles``).

    Args:
        clin: clinical measures of the sequence, in its stored frame order.
        frame_time_ms: time between frames (None: rates per frame).
        ed_frame, es_frame: 0-based ED/ES given by the user (Info cfg, options); None detects every beat.

    Returns:
        (CardiacCycles, one dict per beat: frames, EDV/ESV/SV/EF/GLS, rates with their units).
    """
    import dataclasses

    from echotemporal.measure.clinical.beats import beat_indices, volume_rates
    from echotemporal.measure.clinical.cycles import detect_beats

    contour = None if clin.frames is None else clin.frames.contour_mm
    cycles = detect_beats(clin.volumes_ml, ed_frames=ed_frame, es_frames=es_frame)
    rows = []
    for index, rates in zip(beat_indices(clin.volumes_ml, contour, cycles), volume_rates(clin.volumes_ml, frame_time_ms, cycles)):
        row = dataclasses.asdict(index)
        row.update({k: v for k, v in dataclasses.asdict(rates).items() if k != "beat"})
        rows.append(row)
    return cycles, rows


def _beat_phases(cycles: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """(T,) beat number (-1 outside every beat) and phase ("systole", "diastole", "") per frame."""
    beat = np.full(n, -1)
    phase = [""] * n
    for k, (ed, es) in enumerate(cycles.beats):
        end = cycles.end_frames[k]
        first, last = (ed, end) if ed <= es else (es, ed)
        beat[first : last + 1] = k
        for t in range(first, last + 1):
            ejecting = (ed <= t <= es) if ed <= es else False
            phase[t] = "systole" if ejecting else "diastole"
    return beat, phase


def beat_columns(cycles: Any, volumes_before: np.ndarray, volumes_after: np.ndarray,
                 frame_time_ms: float | None) -> dict[str, Any]:
    """Per-frame cycle columns: time (ms, NaN without a frame time), beat, phase, dV/dt before/after."""
    from echotemporal.measure.clinical.beats import volume_derivative

    n = len(volumes_after)
    beat, phase = _beat_phases(cycles, n)
    time_ms = np.arange(n) * frame_time_ms if frame_time_ms is not None else np.full(n, np.nan)
    return {
        "time_ms": time_ms,
        "beat": beat,
        "phase": phase,
        "lv_dvdt_ml_per_frame_before": volume_derivative(volumes_before),
        "lv_dvdt_ml_per_frame_after": volume_derivative(volumes_after),
    }


def _beat_keys(when: str, cycles: Any, beats: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary keys of one curve's beats: the list, their count and kind, mean and SD of each index."""
    out: dict[str, Any] = {
        f"n_beats_{when}": len(beats),
        f"cycle_kind_{when}": cycles.kind,
        f"cycle_note_{when}": cycles.reason,
        f"beats_{when}": beats,
    }
    for key in ("edv_ml", "esv_ml", "sv_ml", "ef_percent", "gls_percent", "peak_ejection_rate",
                "peak_filling_rate", "peak_ejection_rate_edv", "peak_filling_rate_edv", "time_to_peak_filling"):
        values = np.array([b[key] for b in beats], dtype=float)
        values = values[np.isfinite(values)]
        out[f"{key}_mean_{when}"] = float(values.mean()) if values.size else None
        out[f"{key}_sd_{when}"] = float(values.std(ddof=1)) if values.size > 1 else None
    return out


def _num(x: Any) -> float | None:
    """Python float for JSON; NaN stays NaN (the JSON writer turns it into null)."""
    return None if x is None else float(x)


def build_summary(
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    labels: np.ndarray,
    spacing: tuple[float, float],
    before: ShapeMeasures,
    after: ShapeMeasures,
    clin_before: ClinicalMeasures,
    clin_after: ClinicalMeasures,
    columns: dict[str, Any],
    kept: np.ndarray,
    *,
    given_ed_es: bool,
    reverse: bool,
    notes: list[str],
    rounds: int,
    tolerances: np.ndarray | None,
    n_denoised: int,
    model: Any,
    trust: FrameTrust | None = None,
    beats: dict[str, tuple[Any, list[dict[str, Any]]]] | None = None,
    frame_time_ms: float | None = None,
) -> dict[str, Any]:
    """The JSON-able summary of one correction (indices, flags and validity before/after, provenance).

    Args:
        labels: (T, H, W) input labels; before/after: shape measures in the input's frame order;
        clin_before/clin_after: clinical measures; columns: :func:`frame_columns`' table;
        kept: (T,) input frames kept unchanged; model: the shape model used (None for other methods).
        beats: {"before", "after"}: :func:`beat_table` of each curve. EDV, ESV, EF and GLS in the
            summary are their means over the beats (the one beat's values for a half-sequence).
        frame_time_ms: time between frames (None: unknown, rates per frame).
    """
    names = tuple(thresholds.names)
    residue_attrs = {n: frame_indices(after.flags[:, k]) for k, n in enumerate(names) if after.flags[:, k].any()}
    summary = _summary_core(config, thresholds, labels, spacing, before, after, clin_before, clin_after, columns, kept,
                            given_ed_es, reverse, notes, rounds, tolerances, n_denoised, model, trust, residue_attrs)
    summary["frame_time_ms"] = frame_time_ms
    for when, (cycles, rows) in (beats or {}).items():
        summary.update(_beat_keys(when, cycles, rows))
        for key in ("edv_ml", "esv_ml", "ef_percent", "gls_percent"):
            mean = summary[f"{key}_mean_{when}"]
            if rows and mean is not None:
                summary[f"{key}_{when}"] = mean
    return summary


def _summary_core(config, thresholds, labels, spacing, before, after, clin_before, clin_after, columns, kept,
                  given_ed_es, reverse, notes, rounds, tolerances, n_denoised, model, trust, residue_attrs) -> dict[str, Any]:
    """The keys of :func:`build_summary` that do not depend on the beats (same arguments)."""
    names = tuple(thresholds.names)
    return {
        "method": config.method,
        "n_frames": len(labels),
        "image_shape": [int(s) for s in labels.shape[1:]],
        "spacing_mm": list(spacing),
        "ed_frame": clin_after.ed_frame,
        "es_frame": clin_after.es_frame,
        "ed_frame_before": clin_before.ed_frame,
        "es_frame_before": clin_before.es_frame,
        "ed_es_source": "given" if given_ed_es else "detected",
        "stored_es_to_ed": bool(reverse),
        "edv_ml_before": _num(clin_before.edv_ml),
        "edv_ml_after": _num(clin_after.edv_ml),
        "esv_ml_before": _num(clin_before.esv_ml),
        "esv_ml_after": _num(clin_after.esv_ml),
        "ef_percent_before": _num(clin_before.ef_percent),
        "ef_percent_after": _num(clin_after.ef_percent),
        "gls_percent_before": _num(clin_before.gls_percent),
        "gls_percent_after": _num(clin_after.gls_percent),
        "n_inconsistent_before": int(before.inconsistent.sum()),
        "n_inconsistent_after": int(after.inconsistent.sum()),
        "inconsistent_frames_before": frame_indices(before.inconsistent),
        "inconsistent_frames_after": frame_indices(after.inconsistent),
        "n_invalid_before": int((~before.valid).sum()),
        "n_invalid_after": int((~after.valid).sum()),
        "invalid_frames_before": frame_indices(~before.valid),
        "invalid_frames_after": frame_indices(~after.valid),
        "n_changed_frames": int(columns["changed"].sum()),
        "n_kept_input_frames": int(kept.sum()),
        "n_denoised_frames": n_denoised,
        "rounds": int(rounds),
        "untrusted_frames": None if trust is None else frame_indices(~trust.trusted),
        "reestimated_frames": frame_indices(columns["reestimated"]),
        "mean_confidence": None if trust is None else float(np.mean(trust.confidence)),
        "latent_tolerances": None if tolerances is None else dict(zip(names, map(float, tolerances))),
        "residue": {
            "clean": not after.flags.any() and bool(after.valid.all()),
            "inconsistent_attributes": residue_attrs,
            "invalid_frames": frame_indices(~after.valid),
        },
        "notes": notes,
        "config": config_to_dict(config),
        "thresholds": {
            n: {"lo": float(lo), "hi": float(hi), "tau": float(tau)}
            for n, lo, hi, tau in zip(names, thresholds.lo, thresholds.hi, thresholds.tau)
        },
        "package_version": __version__,
        "weights_sha256": getattr(model, "sha256", None),
        "inference_backend": getattr(model, "backend", None),
        "seconds": None,
    }
