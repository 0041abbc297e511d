"""Simpson's biplane LV volume curve of a patient from its 2CH and 4CH views, on a common ED→ES time grid."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from echotemporal.core.labels import as_label_sequence, check_frame_index, check_spacing
from echotemporal.measure.clinical.frames import FrameMeasures
from echotemporal.measure.clinical.geometry import _geometries
from echotemporal.measure.clinical.indices import detect_ed_es
from echotemporal.measure.clinical.volume import _MM3_PER_ML, N_DISKS, _diameters_and_lengths, _monoplane_ml

__all__ = ["biplane_volumes_ml", "biplane_volumes_from_measures"]


def _normalized_time(n_frames: int, ed: int, es: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames between ED and ES (either storage order) and their normalized time 0 (ED) .. 1 (ES)."""
    frames = np.arange(n_frames)
    t = (frames - ed) / (es - ed)
    inside = (t >= 0) & (t <= 1)
    order = np.argsort(t[inside])
    return frames[inside][order], t[inside][order]


def biplane_volumes_ml(
    labels_2ch: np.ndarray,
    spacing_2ch: Sequence[float],
    labels_4ch: np.ndarray,
    spacing_4ch: Sequence[float],
    *,
    ed_es_2ch: tuple[int, int] | None = None,
    ed_es_4ch: tuple[int, int] | None = None,
    n_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """LV volume curve by Simpson's biplane method of disks: ``V = π/4·Σ a_i·b_i·h``.

    ``a_i`` are the 2CH disk diameters, ``b_i`` the 4CH ones, ``h = max(L_2CH, L_4CH)/n_disks``. The
    two views usually have different frame counts, so each view's per-disk diameters and length are
    linearly interpolated on a common normalized time grid, 0 at ED and 1 at ES, before pairing.
    A view stored ES→ED is handled (its ED index is then the larger one).

    Args:
        labels_2ch: (T2, H, W) uint8 apical two-chamber label sequence.
        spacing_2ch: (row_mm, col_mm) of the 2CH sequence.
        labels_4ch: (T4, H', W') uint8 apical four-chamber label sequence.
        spacing_4ch: (row_mm, col_mm) of the 4CH sequence.
        ed_es_2ch: 0-based (ED, ES) frames of the 2CH view; detected from its monoplane volume
            curve when None.
        ed_es_4ch: same for the 4CH view.
        n_samples: number of points of the common grid; default the larger number of frames
            between ED and ES of the two views.

    Returns:
        t: (N,) normalized time, 0 (ED) .. 1 (ES).
        volumes: (N,) biplane LV volume in mL; NaN where either view is unmeasurable.

    Warns:
        RuntimeWarning: unmeasurable frames, undetectable or coinciding ED/ES.
    """
    views = []
    for name, labels, spacing_mm in (("2CH", labels_2ch, spacing_2ch), ("4CH", labels_4ch, spacing_4ch)):
        seq = as_label_sequence(labels)
        spacing = np.asarray(check_spacing(spacing_mm))
        views.append(_diameters_and_lengths(_geometries(seq, spacing, f"biplane {name}"), N_DISKS))
    return _biplane(views, ed_es_2ch, ed_es_4ch, n_samples)


def biplane_volumes_from_measures(
    measures_2ch: FrameMeasures,
    measures_4ch: FrameMeasures,
    *,
    ed_es_2ch: tuple[int, int] | None = None,
    ed_es_4ch: tuple[int, int] | None = None,
    n_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`biplane_volumes_ml` from the views' per-frame measures (:func:`measure_frames`): the same
    result, without measuring frames again (e.g. the unchanged frames of a corrected sequence).

    Warns:
        RuntimeWarning: undetectable or coinciding ED/ES (unmeasurable frames are in ``unmeasurable``).
    """
    views = [(m.diameters_mm, m.lengths_mm) for m in (measures_2ch, measures_4ch)]
    return _biplane(views, ed_es_2ch, ed_es_4ch, n_samples)


def _biplane(
    views: list[tuple[np.ndarray, np.ndarray]],
    ed_es_2ch: tuple[int, int] | None,
    ed_es_4ch: tuple[int, int] | None,
    n_samples: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Biplane curve from ((T, N_DISKS) diameters, (T,) lengths) of the 2CH and 4CH views."""
    per_view = []
    for name, (diameters, lengths), ed_es in zip(("2CH", "4CH"), views, (ed_es_2ch, ed_es_4ch)):
        if ed_es is None:
            ed, es = detect_ed_es(_monoplane_ml(diameters, lengths))
        else:
            ed = check_frame_index(ed_es[0], len(lengths), f"ed_es_{name.lower()}[0]")
            es = check_frame_index(ed_es[1], len(lengths), f"ed_es_{name.lower()}[1]")
        per_view.append((name, diameters, lengths, ed, es))

    n_default = max(abs(v[4] - v[3]) + 1 for v in per_view)
    n = int(n_samples) if n_samples is not None else n_default
    grid = np.linspace(0.0, 1.0, max(n, 1))
    if any(v[3] == v[4] for v in per_view):
        names = ", ".join(v[0] for v in per_view if v[3] == v[4])
        warnings.warn(
            f"biplane_volumes_ml: ED and ES are the same frame in {names}; normalized time is undefined, "
            "volumes set to NaN (pass ed_es_2ch/ed_es_4ch from the Info cfg)",
            RuntimeWarning,
            stacklevel=3,
        )
        return grid, np.full(grid.shape, np.nan)

    resampled = []
    for _, diameters, lengths, ed, es in per_view:
        frames, t = _normalized_time(len(lengths), ed, es)
        # np.interp carries NaN into every interval that touches an unmeasurable frame: honest gaps.
        d = np.stack([np.interp(grid, t, diameters[frames, i]) for i in range(diameters.shape[1])], axis=1)
        resampled.append((d, np.interp(grid, t, lengths[frames])))
    (a, length_a), (b, length_b) = resampled
    h = np.maximum(length_a, length_b) / N_DISKS
    volumes = np.pi / 4 * np.sum(a * b, axis=1) * h / _MM3_PER_ML
    return grid, volumes
