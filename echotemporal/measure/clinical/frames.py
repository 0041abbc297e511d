"""Per-frame LV measures of a sequence: Simpson volume, disk diameters, axis length and hinge-to-hinge
contour length, what every clinical index needs of each frame alone.

A frame's measures depend on its own heart window and the spacing only, so a frame is measured once
and its measures are passed on: ``measure_frames(..., reference=...)`` measures only the frames that
differ from another version of the sequence (a correction and its input share most frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echotemporal.core.errors import ConfigError
from echotemporal.core.labels import as_label_sequence, check_spacing
from echotemporal.core.parallel import map_threads
from echotemporal.measure.clinical.geometry import _crop_geometry, _heart_crop
from echotemporal.measure.clinical.strain import STRAIN_POINTS, _contour_length_mm
from echotemporal.measure.clinical.volume import N_DISKS, _diameters_and_lengths, _monoplane_ml

__all__ = ["FrameMeasures", "measure_frames"]


@dataclass(frozen=True)
class FrameMeasures:
    """Per-frame LV measures of a sequence: what the clinical indices need of each frame alone.

    Attributes:
        volumes_ml: (T,) LV volume, Simpson monoplane, mL; NaN where unmeasurable.
        contour_mm: (T,) length of the hinge → apex → hinge endocardial contour (strain's numerator),
            mm; NaN where unmeasurable.
        unmeasurable: (T,) why each frame is unmeasurable ("no LV", "no mitral hinges", ...), None
            where it was measured.
        diameters_mm: (T, N_DISKS) Simpson disk diameters, base first (biplane volumes need them).
        lengths_mm: (T,) LV long-axis length, mm.
    """

    volumes_ml: np.ndarray
    contour_mm: np.ndarray
    unmeasurable: tuple[str | None, ...]
    diameters_mm: np.ndarray  # (T, N_DISKS) Simpson disk diameters, base first; NaN rows where unmeasurable
    lengths_mm: np.ndarray  # (T,) long-axis length; NaN where unmeasurable

    def reversed(self) -> FrameMeasures:
        return FrameMeasures(
            self.volumes_ml[::-1].copy(),
            self.contour_mm[::-1].copy(),
            self.unmeasurable[::-1],
            self.diameters_mm[::-1].copy(),
            self.lengths_mm[::-1].copy(),
        )


def measure_frames(
    labels: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    reference: tuple[np.ndarray, FrameMeasures] | None = None,
    threads: int = 1,
) -> FrameMeasures:
    """Per-frame LV volume and endocardial contour length of every frame (no warning: see ``unmeasurable``).

    A frame's measures depend on its own pixels only (not on the other frames, nor on where the array
    was cropped), so frames identical to those of another version of the sequence can take that
    version's measures: a corrected sequence re-measures only the frames the correction changed.

    Args:
        labels: (T, H, W) uint8 CAMUS label sequence (or one (H, W) frame), apex towards row 0.
        spacing_mm: (row_mm, col_mm) pixel spacing.
        reference: (labels (T, H, W) of the same shape, their measures at the same spacing): frames
            equal to the reference's take its measures instead of being measured again.
        threads: frames measured in parallel by this many threads (same result).

    Returns:
        FrameMeasures.
    """
    seq = as_label_sequence(labels)
    spacing = np.asarray(check_spacing(spacing_mm))
    n = len(seq)
    volumes = np.full(n, np.nan)
    contour = np.full(n, np.nan)
    diameters = np.full((n, N_DISKS), np.nan)
    lengths = np.full(n, np.nan)
    reasons: list[str | None] = [None] * n
    todo = np.ones(n, dtype=bool)
    if reference is not None:
        ref_labels, ref = reference
        ref_labels = np.asarray(ref_labels)
        if ref_labels.shape != seq.shape or len(ref.volumes_ml) != n:
            raise ConfigError(
                f"reference labels of shape {ref_labels.shape} with {len(ref.volumes_ml)} measured frames "
                f"do not match labels of shape {seq.shape}; pass the reference version of the same sequence"
            )
        todo = (seq != ref_labels).reshape(n, -1).any(axis=1)
        volumes[~todo] = ref.volumes_ml[~todo]
        contour[~todo] = ref.contour_mm[~todo]
        diameters[~todo] = ref.diameters_mm[~todo]
        lengths[~todo] = ref.lengths_mm[~todo]
        reasons = [None if todo[t] else ref.unmeasurable[t] for t in range(n)]
    rows = [int(t) for t in np.flatnonzero(todo)]
    frame = lambda t: _frame_measures(seq[t], spacing)
    results = map_threads(frame, rows, threads)
    for t, (volume, length, reason, diameter, axis) in zip(rows, results):
        volumes[t], contour[t], reasons[t], diameters[t], lengths[t] = volume, length, reason, diameter, axis
    return FrameMeasures(volumes, contour, tuple(reasons), diameters, lengths)


def _frame_measures(frame: np.ndarray, spacing: np.ndarray) -> tuple[float, float, str | None, np.ndarray, float]:
    """(volume mL, contour mm, None, diameters, axis length) of one (H, W) frame; NaN and why if unmeasurable.

    The geometry depends only on the frame's heart window (:func:`geometry._heart_crop`) and the spacing.
    """
    crop = _heart_crop(frame)
    if crop is None:
        return np.nan, np.nan, "no LV", np.full(N_DISKS, np.nan), np.nan
    geom = _crop_geometry(np.ascontiguousarray(crop), spacing)
    if isinstance(geom, str):
        result: tuple[float, float, str | None, np.ndarray, float] = (
            np.nan, np.nan, geom, np.full(N_DISKS, np.nan), np.nan
        )
    else:
        diameters, lengths = _diameters_and_lengths([geom], N_DISKS)
        volume = float(_monoplane_ml(diameters, lengths)[0])
        result = (volume, _contour_length_mm(geom, STRAIN_POINTS), None, diameters[0], float(lengths[0]))
    return result
