"""Known-answer tests of the per-frame clean-up of decoded label maps (`pipeline.cleanup`)."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.measure.anatomy import CRITERIA, check_validity
from echotemporal.core.labels import Label
from echotemporal.correct.cleanup import close_lv_gaps

SPACING = (0.3, 0.4)  # anisotropic, CAMUS-like


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    from echotemporal.phantoms import generate_sequence

    return generate_sequence(5, view="4CH", n_frames=3, spacing_mm=SPACING).labels[0]


def _failed(labels: np.ndarray) -> set[str]:
    ok = check_validity(labels, SPACING)[0]
    return {CRITERIA[j] for j in np.flatnonzero(~ok)}


def _lift_lv_base(frame: np.ndarray, mm: float) -> np.ndarray:
    """The LV's bottom ``mm`` turned to background: the strip a decoded LV leaves above a carried LA."""
    out = frame.copy()
    rows = np.flatnonzero((frame == Label.LV).any(axis=1))
    cut = rows[-1] - round(mm / SPACING[0])
    out[cut:][out[cut:] == Label.LV] = Label.BACKGROUND
    return out


def test_gap_between_lv_and_la_is_closed_without_touching_the_lv(frame: np.ndarray) -> None:
    assert _failed(frame) == set()
    gapped = _lift_lv_base(frame, 2.0)
    assert _failed(gapped) & {"lv_background_frontier", "lv_myo_no_gap"}
    closed = close_lv_gaps(gapped[None].copy(), SPACING)[0]
    assert _failed(closed) == set()
    # The LV (hence its area, length and base width) stays exactly as decoded.
    np.testing.assert_array_equal(closed == Label.LV, gapped == Label.LV)
    filled = (gapped == Label.BACKGROUND) & (closed != Label.BACKGROUND)
    assert filled.sum() > 0
    assert set(np.unique(closed[filled])) <= {int(Label.LA), int(Label.MYO)}
    # Nothing outside the heart's closing moved: the background far from the strip is untouched.
    assert ((closed != gapped) <= filled).all()


def test_valid_frame_and_frames_without_la_are_left_alone(frame: np.ndarray) -> None:
    np.testing.assert_array_equal(close_lv_gaps(frame[None].copy(), SPACING)[0], frame)
    no_la = _lift_lv_base(frame, 2.0)
    no_la[no_la == Label.LA] = Label.BACKGROUND
    np.testing.assert_array_equal(close_lv_gaps(no_la[None].copy(), SPACING)[0], no_la)


def test_a_gap_wider_than_the_radius_stays_open(frame: np.ndarray) -> None:
    gapped = _lift_lv_base(frame, 6.0)
    closed = close_lv_gaps(gapped[None].copy(), SPACING, radius_mm=1.0)[0]
    assert _failed(closed) & {"lv_background_frontier", "lv_myo_no_gap"}
    assert ((closed == Label.BACKGROUND) & (frame == Label.LV)).sum() > 0


def test_la_running_along_the_myo_is_trimmed_back(frame: np.ndarray) -> None:
    from scipy import ndimage

    from echotemporal.correct.cleanup import trim_la_along_myo

    # An LA grown 12 mm outwards and wrapped 10 mm up the outside of both basal walls: the MYO-LA
    # frontier criterion fails.
    wide = frame.copy()
    la_top = np.flatnonzero((frame == Label.LA).any(axis=1))[0]
    near_la = ndimage.distance_transform_edt(frame != Label.LA, sampling=SPACING) <= 12.0
    near_la[: la_top - int(10.0 / SPACING[0])] = False
    wide[near_la & (frame == Label.BACKGROUND)] = Label.LA
    assert "myo_la_frontier" in _failed(wide)
    trimmed = trim_la_along_myo(wide[None].copy(), SPACING)[0]
    assert "myo_la_frontier" not in _failed(trimmed)
    # Only LA was removed: LV and MYO are exactly as before.
    for value in (Label.LV, Label.MYO):
        np.testing.assert_array_equal(trimmed == value, wide == value)
    assert set(np.unique(trimmed[trimmed != wide])) == {int(Label.BACKGROUND)}
    # A frame within the limit is left alone.
    np.testing.assert_array_equal(trim_la_along_myo(frame[None].copy(), SPACING)[0], frame)


def _junction_strip() -> np.ndarray:
    """(70, 240) labels at 1 mm: an LV above a 2 mm strip of background that runs 80 mm along the LA.

    The strip reaches far past the LV's contact: :func:`close_lv_gaps` must widen its window to it.
    """
    frame = np.zeros((70, 240), dtype=np.uint8)
    frame[10:41, 30:211] = Label.MYO
    frame[20:41, 110:131] = Label.LV
    frame[43:61, 20:221] = Label.LA
    return frame


def test_a_long_pocket_is_closed_whole_and_the_frame_margin_does_not_matter() -> None:
    frame = _junction_strip()
    closed = close_lv_gaps(frame[None].copy(), (1.0, 1.0))[0]
    # The whole strip between the MYO and the LA joined a structure; the LV is untouched.
    assert (closed[41:43, 30:211] != Label.BACKGROUND).all()
    np.testing.assert_array_equal(closed == Label.LV, frame == Label.LV)
    # Background beyond the frame's edge counts as background: extra margin changes nothing.
    padded = np.pad(frame, ((15, 25), (40, 30)))
    closed_padded = close_lv_gaps(padded[None].copy(), (1.0, 1.0))[0]
    np.testing.assert_array_equal(closed_padded[15:-25, 40:-30], closed)
    assert (closed_padded != padded)[15:-25, 40:-30].sum() == (closed_padded != padded).sum()
    # A heart cut by the frame's edge closes as if the frame went on empty.
    tight = frame[10:61, 20:221]
    np.testing.assert_array_equal(close_lv_gaps(tight[None].copy(), (1.0, 1.0))[0], closed[10:61, 20:221])


def test_holes_take_their_nearest_label_each() -> None:
    from echotemporal.correct.cleanup import cleanup_labels, hole_mask

    frame = np.zeros((60, 80), dtype=np.uint8)
    frame[5:55, 5:75] = Label.MYO
    frame[15:45, 15:65] = Label.LV
    damaged = frame.copy()
    damaged[25:28, 20:23] = Label.BACKGROUND  # hole in the LV
    damaged[8, 40] = Label.BACKGROUND  # one-pixel hole in the MYO, far from the first
    damaged[50:52, 70:72] = Label.LV  # stray LV piece in the MYO: removed, then filled as MYO
    holes = hole_mask(damaged[None] != Label.BACKGROUND)[0]
    assert holes.sum() == 9 + 1
    cleaned = cleanup_labels(damaged[None].copy(), (0, 1, 2))[0]
    np.testing.assert_array_equal(cleaned, frame)


def test_an_atrium_in_pieces_with_holes_or_apart_from_the_base_is_put_together(frame: np.ndarray) -> None:
    """Known answers of ``mended_atrium``: LA cut in two by a band of background, LA with a hole, LA
    drawn 3 mm below the LV's base: each fails on the atrium alone and comes back valid, with only LA
    pixels added (LV and MYO exactly as drawn); a sound frame is returned as it is."""
    from echotemporal.correct.cleanup import mended_atrium

    la_rows = np.flatnonzero((frame == Label.LA).any(axis=1))
    cut = frame.copy()
    middle = (la_rows[0] + la_rows[-1]) // 2
    cut[middle - 3 : middle + 3][cut[middle - 3 : middle + 3] == Label.LA] = Label.BACKGROUND
    holed = frame.copy()
    la = np.argwhere(frame == Label.LA)
    r, c = la[len(la) // 2]
    holed[r - 3 : r + 3, c - 3 : c + 3] = Label.BACKGROUND
    lowered = frame.copy()
    drop = int(round(3.0 / SPACING[0]))
    lowered[lowered == Label.LA] = Label.BACKGROUND
    moved = np.zeros_like(frame, dtype=bool)
    moved[drop:] = (frame == Label.LA)[:-drop]
    lowered[moved & (lowered == Label.BACKGROUND)] = Label.LA
    for broken, fails in ((cut, "la_one_component"), (holed, "la_no_holes"), (lowered, "lv_background_frontier")):
        assert fails in _failed(broken[None])
        mended = mended_atrium(broken, SPACING)
        assert not _failed(mended[None]), (fails, _failed(mended[None]))
        for value in (Label.LV, Label.MYO):
            np.testing.assert_array_equal(mended == value, broken == value)
        assert set(np.unique(mended[mended != broken])) == {int(Label.LA)}
    np.testing.assert_array_equal(mended_atrium(frame, SPACING), frame)
