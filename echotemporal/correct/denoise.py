"""The border-flicker denoise of a corrected sequence: a short temporal Gaussian kept only where harmless."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from echotemporal.core.config import SmoothingConfig
from echotemporal.core.labels import LV, MYO
from echotemporal.correct.baselines import gaussian_smooth_labels
from echotemporal.correct.cleanup import cleanup_decoded
from echotemporal.correct.repair import accept_replacements
from echotemporal.measure.sequence import ShapeMeasures, heart_box

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = ["DENOISE_MIN_CHANGE", "denoise"]


#: Denoising replaces only frames where it changes more than this fraction of the LV∪MYO pixels.
DENOISE_MIN_CHANGE = 0.002


def denoise(
    out: np.ndarray,
    shape: ShapeMeasures,
    spacing_mm: tuple[float, float],
    config: SmoothingConfig,
    thresholds: AttributeThresholds,
    anchors: tuple[int, ...],
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, ShapeMeasures]:
    """Temporal Gaussian of the corrected sequence's one-hot maps, kept only where it does no harm.

    Segmenters and annotators draw every frame's borders anew: a ~1 px flicker that the shape
    correction, which leaves consistent frames alone, keeps. Once the sequence is consistent, a
    short temporal Gaussian (sigma = ``config.denoise_sigma_frames``) averages that
    flicker away. Each smoothed frame is cleaned up like a decoded one and kept only if it is
    anatomically valid and makes no frame inconsistent (and changes more than
    :data:`DENOISE_MIN_CHANGE` of its LV∪MYO pixels); the ``anchors`` (ED, ES) keep their
    corrected borders, as averaging the volume curve's extremes with their neighbours biases EDV
    and ESV.

    Args:
        out: (T, H, W) corrected labels; shape: their measures (with validity).
        anchors: frames never smoothed.
        allowed: (T,) bool, the only frames that may be smoothed (None: all but the anchors).

    Returns:
        (labels, measures).
    """
    n = len(out)
    rows, cols = heart_box(out, margin=2)
    original = out[:, rows, cols]
    crop = gaussian_smooth_labels(original, float(config.denoise_sigma_frames))
    # Frames the filter barely touches are left alone: measuring them again would cost more than
    # the few border pixels they would lose.
    changed = (crop != original).reshape(n, -1).sum(axis=1)
    heart = ((original == LV) | (original == MYO)).reshape(n, -1).sum(axis=1)
    candidate = changed > DENOISE_MIN_CHANGE * np.maximum(heart, 1)
    candidate[[a for a in anchors if 0 <= a < n]] = False
    if allowed is not None:
        candidate &= allowed
    if not candidate.any():
        return out, shape
    smoothed = out.copy()
    # Only the frames the filter changed are cleaned up (and later measured).
    window = smoothed[:, rows, cols]  # a view: writes go to ``smoothed``
    window[candidate] = cleanup_decoded(np.ascontiguousarray(crop[candidate]), spacing_mm, shape.present)
    candidate &= (smoothed != out).reshape(n, -1).any(axis=1)
    return accept_replacements(out, shape, smoothed, candidate, spacing_mm, thresholds)
