"""Known-answer tests for the anatomical criteria (DESIGN §6) on hearts built here in mm."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.measure import anatomy
from echotemporal.measure.anatomy import CRITERIA, THRESHOLDS, check_validity, forget_checked_frames, valid_frames
from echotemporal.core.errors import ConfigError, InvalidLabelsError
from echotemporal.phantoms.real_shapes import default_real_shapes_dir, load_real_shapes, real_shape_spacing_mm

SPACING = (0.1, 0.15)  # (row_mm, col_mm), anisotropic on purpose
RADIUS, BODY, CAP = 8.0, 10.0, 16.0  # LV half-width, straight part, apical cap (mm)
BASE = (36.0, 24.0)  # (y, x) mm of the middle of the mitral plane


def _coords(shape: tuple[int, int] = (520, 320)) -> tuple[np.ndarray, np.ndarray]:
    """(up, side) in mm of every pixel: distance above the mitral plane, signed distance from the axis."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return BASE[0] - rows * SPACING[0], cols * SPACING[1] - BASE[1]


def _bullet(up: np.ndarray, side: np.ndarray, radius: float, cap: float) -> np.ndarray:
    rect = (up >= 0) & (up <= BODY) & (np.abs(side) <= radius)
    dome = (up > BODY) & ((side / radius) ** 2 + ((up - BODY) / cap) ** 2 <= 1.0)
    return rect | dome


def _heart(wall: float = 5.0, la_half_width: float = RADIUS, with_la: bool = True) -> np.ndarray:
    """Bullet LV, MYO band of thickness ``wall`` open at the base, LA below the mitral plane."""
    up, side = _coords()
    lv = _bullet(up, side, RADIUS, CAP)
    myo = _bullet(up, side, RADIUS + wall, CAP + wall) & ~lv
    labels = np.zeros(up.shape, np.uint8)
    labels[myo] = 2
    labels[lv] = 1
    if with_la:
        la = (up < 0) & ((side / la_half_width) ** 2 + (up / 14.0) ** 2 <= 1.0) & (np.abs(side) <= la_half_width)
        labels[la & (labels == 0)] = 3
    return labels


def _failed(labels: np.ndarray) -> set[str]:
    ok = check_validity(labels, SPACING)
    assert ok.shape == (1 if labels.ndim == 2 else labels.shape[0], len(CRITERIA)) and ok.dtype == bool
    return {CRITERIA[j] for j in np.flatnonzero(~ok.all(axis=0))}


@pytest.mark.parametrize("with_la", [True, False])
def test_clean_heart_satisfies_every_criterion(with_la: bool) -> None:
    labels = _heart(with_la=with_la)
    assert _failed(labels) == set()
    assert valid_frames(np.stack([labels, labels]), SPACING).tolist() == [True, True]


def test_criteria_names_and_thresholds() -> None:
    assert len(set(CRITERIA)) == len(CRITERIA)
    assert set(THRESHOLDS) <= set(CRITERIA)
    assert THRESHOLDS["lv_myo_width_ratio"] == ("max", 4.15)
    assert THRESHOLDS["myo_erosion_ratio"] == ("min", 0.12)


def test_hole_in_lv() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(np.abs(up - 12.0) < 1.0) & (np.abs(side) < 1.0)] = 0
    failed = _failed(labels)
    assert "lv_no_holes" in failed
    assert "myo_no_holes" not in failed and "lv_one_component" not in failed


def test_hole_in_myo() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(np.abs(up - 5.0) < 0.6) & (np.abs(side - 10.5) < 0.6)] = 0
    failed = _failed(labels)
    assert "myo_no_holes" in failed and "lv_myo_no_holes" in failed
    assert "lv_no_holes" not in failed and "myo_one_component" not in failed


def test_hole_in_la() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(np.abs(up + 6.0) < 0.8) & (np.abs(side) < 0.8)] = 0
    assert "la_no_holes" in _failed(labels)


def test_extra_lv_blob() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(up - 25.0) ** 2 + (side - 15.0) ** 2 < 1.5**2] = 1
    failed = _failed(labels)
    assert "lv_one_component" in failed
    assert "lv_no_holes" not in failed


def test_myo_cut_through() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(np.abs(up - 6.0) < 0.5) & (side > RADIUS)] = 0
    failed = _failed(labels)
    assert {"myo_one_component", "myo_erosion_ratio"} <= failed


@pytest.mark.parametrize(("neck_mm", "splits"), [(0.4, True), (2.5, False)])
def test_myo_erosion_ratio_flags_a_thin_neck_only(neck_mm: float, splits: bool) -> None:
    # Thin the right wall to ``neck_mm`` over 2 mm of height, without cutting it.
    labels = _heart()
    up, side = _coords()
    labels[(np.abs(up - 6.0) < 1.0) & (side > RADIUS) & (side < RADIUS + 5.0 - neck_mm)] = 0
    failed = _failed(labels)
    assert "myo_one_component" not in failed
    assert ("myo_erosion_ratio" in failed) == splits


def test_gap_between_lv_and_myo_at_the_apex() -> None:
    labels = _heart()
    up, side = _coords()
    # Shrink the LV cap by 0.8 mm: a background crescent enclosed between LV and MYO.
    inner = _bullet(up, side, RADIUS, CAP - 0.8)
    labels[(labels == 1) & ~inner & (up > BODY)] = 0
    failed = _failed(labels)
    assert "lv_myo_no_gap" in failed
    assert "lv_no_holes" not in failed and "myo_no_holes" not in failed


def test_gap_along_the_wall_closed_by_the_la() -> None:
    # A background strip between LV and the left wall, open at the base where the LA closes it: not a
    # hole of LV∪MYO, but a gap of the heart.
    labels = _heart()
    up, side = _coords()
    labels[(labels == 1) & (up < 6.0) & (side < -RADIUS + 0.6)] = 0
    failed = _failed(labels)
    assert "lv_myo_no_gap" in failed
    assert "lv_myo_no_holes" not in failed


def test_single_pixel_pocket_at_a_hinge_is_tolerated() -> None:
    labels = _heart()
    rows, cols = np.nonzero(labels == 1)
    bottom = rows.max()
    labels[bottom, cols[rows == bottom].min()] = 0  # the LV corner at the left hinge
    assert _failed(labels) == set()


def test_lv_myo_width_ratio() -> None:
    # 16 mm of LV between two 1.5 mm walls: 16 / 3 > 4.15.
    assert "lv_myo_width_ratio" in _failed(_heart(wall=1.5))
    assert "lv_myo_width_ratio" not in _failed(_heart(wall=2.5))  # 16 / 5 = 3.2


def test_remembered_criteria_follow_the_frame_and_its_context(monkeypatch: pytest.MonkeyPatch) -> None:
    computed = []
    measure = anatomy._frame_criteria
    monkeypatch.setattr(anatomy, "_frame_criteria", lambda crop, *rest: computed.append(1) or measure(crop, *rest))
    wide_la, sound = _heart(la_half_width=RADIUS + 5.0), _heart()
    forget_checked_frames()
    first = check_validity(np.stack([wide_la, sound]), SPACING)
    assert len(computed) == 2 and not first[0].all() and first[1].all()
    first[:] = True  # the caller's array: not what is remembered
    again = check_validity(np.stack([sound, wide_la, wide_la]), SPACING)
    assert len(computed) == 2  # every frame known
    assert again[0].all() and "myo_la_frontier" in {CRITERIA[j] for j in np.flatnonzero(~again[1])}
    assert (again[1] == again[2]).all()
    # Other limits, another spacing, a frame one pixel different: measured again, with their own answers.
    assert check_validity(wide_la, SPACING, thresholds={"myo_la_frontier": 0.5}).all() and len(computed) == 3
    check_validity(sound, (2 * SPACING[0], 2 * SPACING[1]))
    assert len(computed) == 4
    moved = wide_la.copy()
    moved[np.argwhere(moved == 2)[0][0], np.argwhere(moved == 2)[0][1]] = 0
    check_validity(moved, SPACING)
    assert len(computed) == 5
    forget_checked_frames()
    check_validity(sound, SPACING)
    assert len(computed) == 6


def test_lv_touching_background() -> None:
    labels = _heart()
    up, side = _coords()
    labels[(labels == 2) & (side < 0) & (up < BODY)] = 0  # left wall missing over 10 mm of 16 mm width
    failed = _failed(labels)
    assert "lv_background_frontier" in failed
    assert "myo_one_component" not in failed


@pytest.mark.parametrize("with_la", [True, False])
def test_lv_open_through_its_side_wall(with_la: bool) -> None:
    # A 2 mm gap through the left wall, 5 mm above the mitral plane: 20 rows of 0.1 mm where the LV
    # touches background sideways, 2.0 mm of frontier over a 16 mm wide LV = 0.125, with or without
    # the LA (lv_background_frontier, which needs the LA, allows 0.4 x 16 mm = 6.4 mm of it).
    labels = _heart(with_la=with_la)
    up, side = _coords()
    labels[(labels == 2) & (up >= 4.0) & (up < 6.0) & (side < 0)] = 0
    assert "lv_side_closed" in _failed(labels)
    assert "lv_background_frontier" not in _failed(labels)
    at = lambda limit: check_validity(labels, SPACING, thresholds={"lv_side_closed": limit})[0, CRITERIA.index("lv_side_closed")]
    assert at(0.13) and not at(0.12)
    # The base opening itself, however wide, is not the side's: a heart whose LV opens onto the
    # background over its whole base passes.
    assert "lv_side_closed" not in _failed(_heart(with_la=with_la, la_half_width=RADIUS + 5.0))


@pytest.mark.skipif(
    not (default_real_shapes_dir() / "camus-gavkujo-224-npy" / "derived" / "labels_repaired_apex_up_uint8.npz").is_file(),
    reason="shared real-shape data not available",
)
def test_expert_masks_never_open_through_a_side_wall() -> None:
    masks = load_real_shapes("test").labels
    spacing = real_shape_spacing_mm(aspect=1.3)
    k = CRITERIA.index("lv_side_closed")
    assert check_validity(masks, spacing)[:, k].all()
    assert check_validity(np.where(masks == 3, 0, masks), spacing)[:, k].all()  # LA made background
    # Tilted 30 degrees either way (the hinge line tilts with the heart), with and without the LA.
    from scipy import ndimage

    for angle in (-30, 30):
        tilted = np.stack([ndimage.rotate(m, angle, reshape=True, order=0) for m in masks[::3]])
        assert check_validity(tilted, (0.6, 0.6))[:, k].all()
        assert check_validity(np.where(tilted == 3, 0, tilted), (0.6, 0.6))[:, k].all()


def test_myo_la_frontier() -> None:
    # An LA as wide as the heart touches the whole base of both walls: 2 x 5 mm over 26 mm of MYO.
    assert "myo_la_frontier" in _failed(_heart(la_half_width=RADIUS + 5.0))
    assert "myo_la_frontier" not in _failed(_heart(la_half_width=RADIUS + 0.5))


def test_missing_structure_in_one_frame() -> None:
    clean = _heart()
    no_myo = clean.copy()
    no_myo[no_myo == 2] = 0
    no_la = clean.copy()
    no_la[no_la == 3] = 0
    ok = check_validity(np.stack([clean, no_myo, no_la, np.zeros_like(clean)]), SPACING)
    failed = [{CRITERIA[j] for j in np.flatnonzero(~row)} for row in ok]
    assert failed[0] == set()
    assert "myo_present" in failed[1] and "lv_present" not in failed[1]
    assert failed[2] == {"la_present"}
    assert {"lv_present", "myo_present", "la_present"} == failed[3]
    # The same frames alone: absent labels are simply not part of the check.
    assert _failed(no_la) == set()


def test_present_labels_of_the_whole_sequence_apply_to_a_subset_of_its_frames() -> None:
    no_la = _heart()
    no_la[no_la == 3] = 0
    assert _failed(no_la) == set()  # alone, a frame without LA is simply checked without it
    ok = check_validity(no_la, SPACING, present=(1, 2, 3))[0]  # ...but its sequence has an LA
    assert {CRITERIA[j] for j in np.flatnonzero(~ok)} == {"la_present"}


def test_structures_cut_by_the_image_border_have_no_false_holes() -> None:
    labels = _heart()
    rows = np.nonzero(labels == 3)[0]
    cut = labels[: (rows.min() + rows.max()) // 2]  # the LA runs off the bottom of the image
    assert _failed(cut) == set()


def test_user_errors_are_specific() -> None:
    with pytest.raises(ConfigError, match="spacing_mm"):
        check_validity(np.zeros((1, 4, 4), np.uint8), (0.2, -1.0))
    with pytest.raises(InvalidLabelsError):
        check_validity(np.zeros((4,), np.uint8), SPACING)


def test_phantom_sequence_is_fully_valid() -> None:
    from echotemporal import phantoms
    if not hasattr(phantoms, "generate_sequence"):
        pytest.skip("phantoms.generate_sequence not available yet")
    for seed, view in ((0, "4CH"), (1, "2CH")):
        seq = phantoms.generate_sequence(seed, view=view, n_frames=6)
        ok = check_validity(seq.labels, seq.spacing_mm)
        assert ok.all(), [CRITERIA[j] for j in np.flatnonzero(~ok.all(axis=0))]


def test_threshold_override() -> None:
    wide_la = _heart(la_half_width=RADIUS + 5.0)
    assert "myo_la_frontier" in _failed(wide_la)
    assert check_validity(wide_la, SPACING, thresholds={"myo_la_frontier": 0.5}).all()
    with pytest.raises(ConfigError, match="unknown_criterion|only finite overrides"):
        check_validity(wide_la, SPACING, thresholds={"unknown_criterion": 1.0})


def test_kernel_euler_shortcuts_match_slow_labelling():
    """The hole and gap shortcuts (Euler number of 2x2 quads) never change a verdict: random blobs
    with and without holes, 4- and 8-connected, against plain labelling."""
    from scipy import ndimage

    from echotemporal.measure.anatomy import _euler8, _has_gap, _has_holes, _n_components, _tight

    rng = np.random.default_rng(0)
    eight = np.ones((3, 3), dtype=bool)
    seen_holes = seen_clean = 0
    for _ in range(300):
        noise = ndimage.gaussian_filter(rng.random((40, 50)), float(rng.uniform(0.8, 3.0)))
        mask = noise > np.quantile(noise, float(rng.uniform(0.3, 0.8)))
        if not mask.any():
            continue
        framed = _tight(mask)
        n = _n_components(framed)
        holes4 = ndimage.label(~framed)[1] - 1  # 4-connected complement regions other than the outside
        assert _euler8(framed) == n - holes4
        slow = _has_holes(framed)
        assert _has_holes(framed, n) == slow
        seen_holes += slow
        seen_clean += not slow
    assert seen_holes > 20 and seen_clean > 20  # both verdicts were exercised
    # Gap: a one-component silhouette without enclosed background has no gap; with a pocket, it has.
    lv = np.zeros((30, 30), dtype=bool)
    lv[8:20, 10:20] = True
    myo = ndimage.binary_dilation(lv, eight, iterations=3) & ~lv
    la = np.zeros_like(lv)
    assert not _has_gap(lv, myo, la, 1.0, connected=True) and not _has_gap(lv, myo, la, 1.0)
    pocket = lv.copy()
    pocket[8:10, 10:20] = False  # background between the LV and the MYO at the apex
    assert _has_gap(pocket, myo, la, 1.0, connected=True) and _has_gap(pocket, myo, la, 1.0)


def test_kernel_box_erosions_match_chessboard_distance_transform():
    """The erosion criterion reads its eroded levels and its depth floor from box erosions instead of a
    chessboard distance transform: same levels, same maximum depth, and the depth of a grid is at most
    2m + 1 for the maximum depth m of its 2x subsample (the bound that lets it skip the measurement)."""
    from scipy import ndimage

    from echotemporal.measure.anatomy import _erode, _max_depth

    rng = np.random.default_rng(1)
    for _ in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 40, size=2))
        noise = ndimage.gaussian_filter(rng.random(shape), float(rng.uniform(0.5, 4.0)))
        inner = noise > np.quantile(noise, float(rng.uniform(0.05, 0.7)))
        framed = np.pad(inner, 1)
        depth = ndimage.distance_transform_cdt(framed, metric="chessboard")
        kept = framed
        for k in range(1, 6):
            kept = _erode(kept, 3)  # one more 3x3 erosion, cropped by one more pixel
            assert np.array_equal(kept, (depth > k)[k:-k, k:-k])
            assert np.array_equal(_erode(framed, 2 * k + 1), kept)
        deepest = int(depth.max())
        assert _max_depth(framed, 0, max(shape)) == deepest
        m = int(ndimage.distance_transform_cdt(np.pad(inner[::2, ::2], 1), metric="chessboard").max())
        assert deepest <= 2 * m + 1
