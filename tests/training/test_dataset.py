"""HDF5 training sets: interpolation, prepare (API and CLI on a tiny CAMUS tree), lazy reading."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from shapes import ellipse_heart

from echotemporal.cli import main
from echotemporal.core.config import AlignmentConfig
from echotemporal.training.dataset import (
    NO_AUGMENTATION,
    AlignedSequence,
    Augmentation,
    FrameDataset,
    aligned_frames,
    interpolate_shapes,
    prepare_dataset,
    real_shape_sequences,
)
from echotemporal.phantoms.real_shapes import default_real_shapes_dir, load_real_shapes
from echotemporal.core.errors import OutputExistsError


def test_interpolation_reproduces_ends_and_keeps_nesting():
    seq = ellipse_heart(T=2)
    ed, es = seq[0], seq[1]
    frames = interpolate_shapes(ed, es, np.linspace(0, 1, 6), (0.35, 0.5))
    assert frames.shape == (6,) + ed.shape
    np.testing.assert_array_equal(frames[0] == 1, ed == 1)
    np.testing.assert_array_equal(frames[-1] == 1, es == 1)
    lv_area = (frames == 1).sum(axis=(1, 2))
    assert np.all(np.diff(lv_area) <= 0)  # ED -> ES contracts monotonically
    # MYO and LV present and LV never outside LV∪MYO (nesting): every frame has a MYO ring.
    assert np.all((frames == 2).sum(axis=(1, 2)) > 0)


REAL_SHAPES = default_real_shapes_dir()


@pytest.mark.skipif(
    not (REAL_SHAPES / "camus-gavkujo-224-npy" / "derived" / "labels_repaired_apex_up_uint8.npz").is_file(),
    reason="shared real-shape data not available",
)
def test_real_shape_sequences_interpolate_between_the_real_masks():
    shapes = load_real_shapes("train", REAL_SHAPES)
    seqs = list(real_shape_sequences(("train",), copies=1, n_frames=(4, 4), aspect=(1.3, 1.3), root=REAL_SHAPES, limit=2))
    assert len(seqs) == 2
    index = {str(n): i for i, n in enumerate(shapes.names)}
    for seq in seqs:
        key = f"{seq.patient}_{seq.view}"
        assert seq.labels.shape == (4, 224, 224) and seq.spacing_mm[1] / seq.spacing_mm[0] == pytest.approx(1.3)
        np.testing.assert_array_equal(seq.labels[0], shapes.labels[index[key + "_ED"]])
        np.testing.assert_array_equal(seq.labels[-1], shapes.labels[index[key + "_ES"]])


def test_aligned_frames_attributes_and_augmentation():
    seq = AlignedSequence(ellipse_heart(), (0.35, 0.5), "p1", "4CH", "test", "train")
    cfg = AlignmentConfig(grid_size=32)
    f0, a0, p0 = aligned_frames(seq, cfg, NO_AUGMENTATION, np.random.default_rng(0))
    assert f0.shape == (5, 32, 32) and a0.shape == (5, 7) and np.all(p0 == 0)
    # LV area on the grid (grid pixel = 1 mm) shrinks from ED to ES like the native one.
    assert a0[0, 0] > a0[-1, 0]
    f1, a1, p1 = aligned_frames(seq, cfg, Augmentation(probability=1.0), np.random.default_rng(0))
    assert np.any(p1 != 0) and np.any(f1 != f0)


def test_prepare_writes_chunked_h5_and_reads_lazily(tmp_path):
    seqs = [AlignedSequence(ellipse_heart(scale=s), (0.35, 0.5), f"p{i}", "4CH", "test", "val" if i == 0 else "train")
            for i, s in enumerate((0.9, 1.0, 1.1))]
    out = tmp_path / "t.h5"
    counts = prepare_dataset(seqs, out, config=AlignmentConfig(grid_size=32), progress=False)
    assert counts == {"train": 10, "val": 5}
    with h5py.File(out, "r") as h5:
        assert h5["frames"].shape == (15, 32, 32) and h5["frames"].dtype == np.uint8
        assert h5["frames"].compression == "gzip" and h5["frames"].chunks is not None
        assert h5["attributes"].shape == (15, 7)
        assert list(h5["patient"].asstr()[:5]) == ["p0"] * 5
    lazy = FrameDataset(out, "train")
    mem = FrameDataset(out, "train", in_memory=True)
    assert len(lazy) == len(mem) == 10
    x, a = lazy[3]
    np.testing.assert_array_equal(x.numpy(), mem[3][0].numpy())
    assert x.shape == (32, 32) and a.shape == (7,)
    with pytest.raises(OutputExistsError):
        prepare_dataset(seqs, out, config=AlignmentConfig(grid_size=32), progress=False)


def test_prepare_cli_on_a_tiny_camus_tree(tmp_path):
    from echotemporal.io import write_sequence

    root = tmp_path / "camus"
    for i in range(3):
        pid = f"patient{i + 1:04d}"
        write_sequence(root / pid / f"{pid}_4CH_half_sequence_gt.nii.gz", ellipse_heart(T=4, scale=0.9 + 0.1 * i),
                       spacing_mm=(0.35, 0.5))
    cfg = tmp_path / "grid.yaml"
    cfg.write_text("alignment:\n  grid_size: 32\n")
    out = tmp_path / "train.h5"
    res = CliRunner().invoke(main, ["prepare", str(root), "-o", str(out), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "12 frames" in res.output
    with h5py.File(out, "r") as h5:
        assert h5["frames"].shape == (12, 32, 32)
        assert set(h5["source"].asstr()[:]) == {"camus"}
    again = CliRunner().invoke(main, ["prepare", str(root), "-o", str(out), "--config", str(cfg)])
    assert again.exit_code != 0 and "--overwrite" in again.output
