"""components: the same components as scipy.ndimage.label, whatever their numbering."""

import numpy as np
import pytest
from scipy import ndimage

from echotemporal.core.components import components, reaching


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    """The set of components as sets of flat pixel indices (numbering-free)."""
    flat = labels.ravel()
    return {frozenset(np.flatnonzero(flat == k).tolist()) for k in np.unique(flat[flat > 0])}


@pytest.mark.parametrize("connectivity", [4, 8])
def test_same_components_as_scipy(connectivity: int) -> None:
    rng = np.random.default_rng(3)
    structure = None if connectivity == 4 else np.ones((3, 3), dtype=bool)
    for _ in range(20):
        mask = ndimage.gaussian_filter(rng.random((40, 50)), 1.5) > 0.52
        expected, n_expected = ndimage.label(mask, structure=structure)
        labels, n = components(mask, connectivity=connectivity)
        assert n == n_expected
        assert _partition(labels) == _partition(expected)


def test_diagonal_pixels_join_only_with_eight_connectivity() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[1, 1] = mask[2, 2] = mask[4, 0] = True
    assert components(mask, connectivity=8)[1] == 2
    labels, n = components(mask, connectivity=4)
    assert n == 3
    assert labels[0, 0] == 0 and len({labels[1, 1], labels[2, 2], labels[4, 0]}) == 3


def test_reaching_keeps_whole_pieces_that_touch_the_region() -> None:
    """Known answer: three pieces (one of them two diagonal pixels, 8-connected); a region touching one
    pixel of the diagonal piece and none of the others keeps that whole piece and nothing else."""
    mask = np.zeros((6, 8), dtype=bool)
    mask[0, 0:3] = True  # piece A
    mask[3, 3] = mask[4, 4] = True  # piece B, diagonal
    mask[5, 7] = True  # piece C
    region = np.zeros_like(mask)
    region[4, 4:6] = True
    expected = np.zeros_like(mask)
    expected[3, 3] = expected[4, 4] = True
    np.testing.assert_array_equal(reaching(mask, region), expected)
    assert not reaching(mask, np.zeros_like(mask)).any()
    np.testing.assert_array_equal(reaching(mask, mask), mask)
