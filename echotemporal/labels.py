"""CAMUS label values and the checks that tie a label map to them."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from echotemporal.errors import InvalidLabelsError

__all__ = ["Label", "VALID_LABELS", "MODELLED_LABELS", "validate_labels"]


class Label(IntEnum):
    """CAMUS label values (Leclerc et al., IEEE TMI 2019)."""

    BACKGROUND = 0
    LV = 1
    MYO = 2
    LA = 3


VALID_LABELS: frozenset[int] = frozenset(int(v) for v in Label)
#: Labels the shape model reconstructs; others (LA) are carried over from the input.
MODELLED_LABELS: tuple[Label, ...] = (Label.BACKGROUND, Label.LV, Label.MYO)


def validate_labels(array: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Check that ``array`` is a CAMUS label map and return it as uint8.

    Args:
        array: (T, H, W) or (H, W) array of any numeric dtype.
        source: file name (or description) used in the error message.

    Returns:
        The same array as uint8.

    Raises:
        InvalidLabelsError: non-integer values or values outside {0, 1, 2, 3}.
    """
    arr = np.asarray(array)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            sample = np.unique(arr[np.isfinite(arr)])[:6]
            raise InvalidLabelsError(
                f"{source}: holds non-integer values (e.g. {', '.join(f'{v:g}' for v in sample)}); "
                "expected a label map with values in {0,1,2,3} - is this the B-mode image "
                "rather than its segmentation?"
            )
    elif arr.dtype.kind not in "iub":
        raise InvalidLabelsError(f"{source}: dtype {arr.dtype} is not a label map; expected integers in {{0,1,2,3}}")
    values = np.unique(arr)
    bad = [v for v in values.tolist() if int(v) not in VALID_LABELS]
    if bad:
        shown = ", ".join(str(int(v)) for v in values[:12])
        raise InvalidLabelsError(
            f"{source}: label values {{{shown}{', ...' if values.size > 12 else ''}}} found, "
            "expected only 0 background, 1 LV, 2 MYO, 3 LA - is this the B-mode image, or a "
            "segmentation with another label convention? Remap it to CAMUS labels first."
        )
    return arr.astype(np.uint8, copy=False)
