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

    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["SmoothingResult", "build_summary", "frame_columns"]


@dataclass
class SmoothingResult:
    """Output of :func:`smooth_sequence`.

    Attributes:
        labels: (T, H, W) uint8 corrected label map, same shape as the input.
        method: "arvae", "gaussian" or "none".
        columns: the per-frame table as {column: (T,) values}, in column order (see ``frames``).
        summary: JSON-able dict: clinical indices before/after, inconsistent/invalid frames
            before/after, rounds, residue, config, package version, weights sha256, seconds.
        frame_measures: {"before", "after"}: the per-frame clinical measures
            (``clinical.FrameMeasures``: volumes, disk diameters, contour lengths) the indices came
            from, e.g. for biplane volumes with another view.
    """

    labels: np.ndarray
    method: str
    columns: dict[str, Any]
    summary: dict[str, Any]
    frame_measures: dict[str, Any] | None = None

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
    cols["inconsistent_before"] = before.flags.any(axis=1)
    cols["inconsistent_after"] = after.flags.any(axis=1)
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
) -> dict[str, Any]:
    """The JSON-able summary of one correction (indices, flags and validity before/after, provenance).

    Args:
        labels: (T, H, W) input labels; before/after: shape measures in the input's frame order;
        clin_before/clin_after: clinical measures; columns: :func:`frame_columns`' table;
        kept: (T,) input frames kept unchanged; model: the shape model used (None for other methods).
    """
    names = tuple(thresholds.names)
    residue_attrs = {n: frame_indices(after.flags[:, k]) for k, n in enumerate(names) if after.flags[:, k].any()}
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
        "n_inconsistent_before": int(before.flags.any(axis=1).sum()),
        "n_inconsistent_after": int(after.flags.any(axis=1).sum()),
        "inconsistent_frames_before": frame_indices(before.flags.any(axis=1)),
        "inconsistent_frames_after": frame_indices(after.flags.any(axis=1)),
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
