"""Plausibility gates: inputs that would give numbers no echocardiogram can have.

Each gate returns a one-line problem description (``None`` when plausible); the file-level entry
points turn them into errors (spacing, ED/ES, orientation) or warnings (LV volumes) and offer the
override the message names. Frame numbers in the messages are 1-based, as in CAMUS Info cfg files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from echotemporal.core.labels import Label

__all__ = [
    "SPACING_RANGE_MM",
    "LV_VOLUME_RANGE_ML",
    "spacing_problem",
    "ed_es_problem",
    "ejection_problem",
    "volume_warning",
    "orientation_problem",
    "label_swap_problem",
    "sampled_frames",
]

#: Pixel sizes echocardiography scanners produce (row and column), mm.
SPACING_RANGE_MM: tuple[float, float] = (0.05, 2.0)
#: LV cavity volumes outside this range (mL) are no adult or child heart's; a warning names them.
LV_VOLUME_RANGE_ML: tuple[float, float] = (2.0, 800.0)
#: Largest angle (degrees) between the LV long axis and the image's row axis before "rotated".
MAX_AXIS_TILT_DEG = 50.0

#: How far above the LV's centroid (towards row 0) its base must lie, median over the sampled frames
#: in units of the LV's size (the apex sign of :func:`_frame_orientation`), for the sequence to be
#: called upside down. On the seven U-Net sets (1120 sequences: predicted and true,
#: with and without the LA label) every upright sequence lies below 0.054 and 1116 of them below
#: −0.1; their flips mirror that: the apex's side is called only when it is clear.
MIN_APEX_OFFSET = 0.1


def spacing_problem(spacing_mm: Sequence[float], in_header: bool = True) -> str | None:
    """Why ``(row_mm, col_mm)`` is not an echo pixel size, or None.

    Args:
        spacing_mm: (2,) pixel size read from the file, mm.
        in_header: False when the header holds no spacing (NIfTI pixdim 0), so the reader's
            1 mm default is not a measurement.
    """
    if not in_header:
        return "no pixel spacing in the file's header (the 1 x 1 mm a reader assumes would be a guess)"
    low, high = SPACING_RANGE_MM
    bad = [s for s in spacing_mm if not (math.isfinite(float(s)) and low <= float(s) <= high)]
    if bad:
        shown = " x ".join(f"{float(s):g}" for s in spacing_mm)
        return f"pixel spacing {shown} mm (row x col) is outside the {low:g}-{high:g} mm echo produces"
    return None


def ed_es_problem(ed_frame: int | None, es_frame: int | None, n_frames: int) -> str | None:
    """Why a given (0-based) ED/ES pair cannot give an EF, or None (also when one is missing)."""
    if ed_frame is None or es_frame is None:
        return None
    ed, es = int(ed_frame) + 1, int(es_frame) + 1
    if ed == es:
        return f"ED = ES = frame {ed} (1-based): the EF would be 0 %"
    if abs(ed - es) == 1 and n_frames > 2:
        return f"ED frame {ed} and ES frame {es} (1-based) are adjacent frames: not a contraction"
    return None


def ejection_problem(edv_ml: float, esv_ml: float, ed_frame: int, es_frame: int) -> str | None:
    """Why the given ED/ES give a negative EF (ES volume above ED volume), or None."""
    if not (math.isfinite(edv_ml) and math.isfinite(esv_ml)) or esv_ml <= edv_ml:
        return None
    return (
        f"the LV volume at ES (frame {int(es_frame) + 1}, {esv_ml:.1f} mL) exceeds that at ED (frame "
        f"{int(ed_frame) + 1}, {edv_ml:.1f} mL): ED/ES swapped? (EF would be "
        f"{100.0 * (edv_ml - esv_ml) / edv_ml:.1f} %)"
    )


def volume_warning(volumes_ml: Sequence[float]) -> str | None:
    """Why the LV volume curve is outside any physiological range, or None."""
    values = np.asarray(volumes_ml, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = LV_VOLUME_RANGE_ML
    vmin, vmax = float(values.min()), float(values.max())
    if vmax > high or vmin < low:
        return (
            f"LV volumes {vmin:.3g}-{vmax:.3g} mL are outside the physiological {low:g}-{high:g} mL: "
            "check the pixel spacing (--spacing ROW_MM COL_MM)"
        )
    return None


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    rows, cols = np.nonzero(mask)
    return None if rows.size == 0 else np.array([rows.mean(), cols.mean()])


def sampled_frames(n_frames: int, n_samples: int) -> np.ndarray:
    """Up to ``n_samples`` frame indices spread evenly over ``n_frames`` frames, first and last included."""
    return np.unique(np.linspace(0, n_frames - 1, min(n_samples, n_frames)).round().astype(int))


def _open_base(frame: np.ndarray, lv: np.ndarray) -> np.ndarray | None:
    """(row, col) centroid of the LV pixels of the (H, W) ``frame`` that touch neither the LV nor the
    myocardium on one of their four sides (the base, open to the atrium or the background), or None."""
    walled = np.isin(frame, (Label.LV, Label.MYO))
    # Off the image counts as walled: an apex cut by the image's edge is not an opening.
    padded = np.pad(walled, 1, constant_values=True)
    opening = ~(padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return _centroid(lv & opening)


def _frame_orientation(frame: np.ndarray) -> tuple[float, float] | None:
    """(tilt of the LV long axis from the row axis in degrees, apex sign) of one (H, W) frame.

    The apex sign is negative when the apex is towards row 0. It is the row offset, in units of the
    LV's size (the square root of its area), of the LV's centroid from the atrium's where the LA is
    drawn, else from the LV's opening (:func:`_open_base`: the myocardium caps the apex and leaves
    the base open), else (the LV drawn closed) the myocardium's centroid's offset from the LV's. Per
    sequence of seven U-Net sets (280 predicted, 280 true; the LA label taken out for the last two
    cues), the atrium never gave the wrong side, the opening once (an LV open on every side), the
    myocardium 11 times (an LV drawn short, or a thick basal wall).
    """
    lv = frame == Label.LV
    lv_c = _centroid(lv)
    if lv_c is None or lv.sum() < 10:
        return None
    coords = np.argwhere(lv) - lv_c
    eigvals, eigvecs = np.linalg.eigh(np.cov(coords, rowvar=False))
    axis = eigvecs[:, int(np.argmax(eigvals))]  # (row, col) unit vector of the long axis
    tilt = float(np.degrees(np.arccos(min(1.0, abs(axis[0])))))
    la = frame == Label.LA
    base_c = _centroid(la) if la.sum() >= 10 else _open_base(frame, lv)
    size = math.sqrt(float(lv.sum()))
    if base_c is not None:
        return tilt, float(lv_c[0] - base_c[0]) / size
    myo_c = _centroid(frame == Label.MYO)
    return tilt, 0.0 if myo_c is None else float(myo_c[0] - lv_c[0]) / size


def orientation_problem(labels: np.ndarray, n_samples: int = 5) -> str | None:
    """"The sequence looks transposed/rotated" when the apex-base axis is not along the rows with the
    apex towards row 0, judged on up to ``n_samples`` frames spread over the (T, H, W) ``labels``."""
    labels = np.asarray(labels)
    picks = sampled_frames(len(labels), n_samples)
    found = [o for o in (_frame_orientation(labels[i]) for i in picks) if o is not None]
    if not found:
        return None
    tilt = float(np.median([t for t, _ in found]))
    if tilt > MAX_AXIS_TILT_DEG:
        return (
            f"the sequence looks transposed or rotated: the LV long axis is {tilt:.0f} degrees from the "
            "image's vertical (apex-base must run along the rows, apex towards row 0)"
        )
    signs = [s for _, s in found if s != 0.0]
    if signs and float(np.median(signs)) > MIN_APEX_OFFSET:
        return "the sequence looks rotated or flipped upside down: the apex is towards the last row, not row 0"
    return None


def label_swap_problem(labels: np.ndarray, n_samples: int = 5) -> str | None:
    """"The LV and myocardium labels look swapped" when, in at least 2 of up to ``n_samples`` frames
    spread over the (T, H, W) ``labels`` (all when fewer), the LV's centroid falls on the myocardium.

    A cavity is compact: its centroid lies inside it. The myocardium is a band round the cavity,
    open at the base: its centroid falls in the cavity it surrounds. Labelled the other way round
    (another dataset's convention), the "LV" is the band and its centroid the "myocardium". In none
    of the 560 sequences of seven U-Net sets (predicted and true) did the LV's centroid fall on the
    myocardium; swapped, it did in 2 to 5 of the 5 frames sampled.
    """
    labels = np.asarray(labels)
    picks = sampled_frames(len(labels), n_samples)
    hits = 0
    for i in picks:
        centre = _centroid(labels[i] == Label.LV)
        hits += centre is not None and labels[i][int(round(centre[0])), int(round(centre[1]))] == Label.MYO
    if hits < min(2, len(picks)):
        return None
    return (
        f"the LV and myocardium labels look swapped: the LV's centroid falls on the myocardium in {hits} "
        f"of {len(picks)} frames sampled (the myocardium surrounds the cavity, not the other way round)"
    )
