"""Training loop on a tiny generated training set: checkpoint, bounds, resume, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from shapes import ellipse_heart

from echotemporal.cli import main
from echotemporal.core.config import AlignmentConfig, ModelConfig, TrainingConfig
from echotemporal.training.dataset import AlignedSequence, prepare_dataset
from echotemporal.core.errors import OutputExistsError
from echotemporal.training.loop import train_model

TINY = ModelConfig(grid_size=32, latent_dim=10, channels=(4, 8, 16))
FAST = TrainingConfig(epochs=2, batch_size=8, num_threads=1, max_minutes=1.0, patience=5)


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    seqs = [AlignedSequence(ellipse_heart(T=4, scale=0.8 + 0.05 * i, shape=(160, 120), spacing=(0.4, 0.6)), (0.4, 0.6), f"p{i}", "4CH", "test", "val" if i < 2 else "train")
            for i in range(8)]
    prepare_dataset(seqs, path, config=AlignmentConfig(grid_size=32), progress=False)
    return path


def test_train_writes_a_loadable_checkpoint_with_bounds(tiny_h5, tmp_path):
    out = tmp_path / "w.pt"
    summary = train_model(tiny_h5, out, model_config=TINY, config=FAST, progress=False, log=lambda m: None)
    assert summary["epochs"] == 2
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["format_version"] == 1
    assert ckpt["model_config"]["channels"] == [4, 8, 16]
    assert len(ckpt["attribute_names"]) == 7 and ckpt["attribute_names"][0] == "lv_area_mm2"
    bounds = ckpt["latent_bounds"].numpy()
    assert bounds.shape == (7, 2) and np.all(np.isfinite(bounds)) and np.all(bounds[:, 0] <= bounds[:, 1])
    assert ckpt["metrics"]["final"] is True
    assert 0.0 <= ckpt["metrics"]["validation"]["dice_lv"] <= 1.0
    assert (tmp_path / "w.last.pt").is_file()
    with pytest.raises(OutputExistsError):
        train_model(tiny_h5, out, model_config=TINY, config=FAST, progress=False, log=lambda m: None)


def test_resume_continues_from_the_last_state(tiny_h5, tmp_path):
    out = tmp_path / "w.pt"
    train_model(tiny_h5, out, model_config=TINY, config=FAST, progress=False, log=lambda m: None)
    logs: list[str] = []
    more = TrainingConfig(**{**FAST.__dict__, "epochs": 3})
    summary = train_model(tiny_h5, out, model_config=TINY, config=more, resume=True, progress=False, log=logs.append)
    assert summary["epochs"] == 3
    assert any("resumed" in m and "epoch 2" in m for m in logs)


def test_train_cli(tiny_h5, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  grid_size: 32\n  latent_dim: 10\n  channels: [4, 8, 16]\n"
                   "training:\n  epochs: 1\n  batch_size: 8\n  num_threads: 1\n")
    out = tmp_path / "cli.pt"
    res = CliRunner().invoke(main, ["train", str(tiny_h5), "-o", str(out), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "best validation Dice" in res.output
    assert not (tmp_path / "cli.encoder.onnx").exists()
    pytest.importorskip("onnx")
    res = CliRunner().invoke(main, ["train", str(tiny_h5), "-o", str(out), "--config", str(cfg), "--overwrite", "--onnx"])
    assert res.exit_code == 0, res.output
    from echotemporal.model.onnx_runtime import OnnxShapeModel
    from echotemporal.model.registry import _CACHE, file_sha256, load_model

    _CACHE.clear()
    model = load_model(out)  # the new graphs, exported from the checkpoint just written
    assert isinstance(model, OnnxShapeModel) and model.sha256 == file_sha256(out)
    assert "cli.encoder.onnx" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epoch: 1\n")
    res = CliRunner().invoke(main, ["train", str(tiny_h5), "-o", str(tmp_path / "x.pt"), "--config", str(bad)])
    assert res.exit_code != 0 and "unknown key" in res.output
