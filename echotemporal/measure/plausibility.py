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
]

#: Pixel sizes echocardiography scanners produce (row and column), mm.
SPACING_RANGE_MM: tuple[float, float] = (0.05, 2.0)
#: LV cavity volumes outside this range (mL) are no adult or child heart's; a warning names them.
LV_VOLUME_RANGE_ML: tuple[float, float] = (2.0, 800.0)
#: Largest angle (degrees) between the LV long axis and the image's row axis before "rotated".
MAX_AXIS_TILT_DEG = 50.0


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


def _frame_orientation(frame: np.ndarray) -> tuple[float, float] | None:
    """(tilt of the LV long axis from the row axis in degrees, apex sign) of one (H, W) frame.

    The apex sign is the row offset of the myocardium's centroid from the LV's: the myocardium caps
    the apex and leaves the base open, so it is negative when the apex is towards row 0.
    """
    lv = frame == Label.LV
    lv_c, myo_c = _centroid(lv), _centroid(frame == Label.MYO)
    if lv_c is None or lv.sum() < 10:
        return None
    coords = np.argwhere(lv) - lv_c
    eigvals, eigvecs = np.linalg.eigh(np.cov(coords, rowvar=False))
    axis = eigvecs[:, int(np.argmax(eigvals))]  # (row, col) unit vector of the long axis
    tilt = float(np.degrees(np.arccos(min(1.0, abs(axis[0])))))
    la_c = _centroid(frame == Label.LA)
    if myo_c is not None:
        sign = float(myo_c[0] - lv_c[0])
    elif la_c is not None:
        sign = float(lv_c[0] - la_c[0])
    else:
        sign = 0.0
    return tilt, sign


def orientation_problem(labels: np.ndarray, n_samples: int = 5) -> str | None:
    """"The sequence looks transposed/rotated" when the apex-base axis is not along the rows with the
    apex towards row 0, judged on up to ``n_samples`` frames spread over the (T, H, W) ``labels``."""
    labels = np.asarray(labels)
    picks = np.unique(np.linspace(0, len(labels) - 1, min(n_samples, len(labels))).round().astype(int))
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
    if signs and float(np.median(signs)) > 0:
        return "the sequence looks rotated or flipped upside down: the apex is towards the last row, not row 0"
    return None
