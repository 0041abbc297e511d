"""Weights registry and loader: strict round trip, sha256 check, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echotemporal.model import registry as pretrained
from echotemporal.core.errors import WeightsError
from echotemporal.model.registry import DEFAULT_WEIGHTS, REGISTRY, file_sha256, load_model, weights_dir

from tiny_model import NAMES, TINY, frames, tiny_checkpoint


def test_round_trip_is_strict_and_exact(tmp_path):
    net, path = tiny_checkpoint(tmp_path)
    model = load_model(path)
    assert model.config == TINY
    assert model.attribute_names == NAMES
    np.testing.assert_array_equal(model.latent_bounds[:, 1], np.arange(1, 8))
    assert model.sha256 == file_sha256(path) and len(model.sha256) == 64
    assert model.checkpoint["provenance"]["note"] == "test"
    from echotemporal.model.network import labels_to_onehot

    with torch.no_grad():
        ref = net.encode(labels_to_onehot(torch.from_numpy(frames())))[0].double().numpy()
    np.testing.assert_allclose(model.encode(frames()), ref, atol=1e-6)


def test_state_dict_mismatch_is_a_weights_error(tmp_path):
    _, path = tiny_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match="do not fit"):
        load_model(tmp_path / "broken.pt")


def test_tampered_registered_file_is_refused(tmp_path, monkeypatch):
    _, path = tiny_checkpoint(tmp_path, "registered.pt")
    monkeypatch.setitem(REGISTRY, "registered.pt", file_sha256(path))
    assert load_model(path).sha256 == REGISTRY["registered.pt"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    pretrained._CACHE.clear()
    with pytest.raises(WeightsError, match="sha256"):
        load_model(path)


def test_garbage_and_unknown_names_are_weights_errors(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a loadable"):
        load_model(bad)
    with pytest.raises(WeightsError, match="registered"):
        load_model("no-such-model-v9.pt")


def test_shipped_weights_load_and_match_registry():
    path = weights_dir() / DEFAULT_WEIGHTS
    if not path.is_file() or not REGISTRY.get(DEFAULT_WEIGHTS):
        pytest.skip("shipped weights not present yet")
    model = load_model()
    assert model.sha256 == REGISTRY[DEFAULT_WEIGHTS]
    assert model.latent_bounds.shape == (7, 2)
    assert model.attribute_names[0] == "lv_area_mm2"
    G = model.grid_size
    z = model.encode(np.zeros((2, G, G), np.uint8))
    assert model.decode(z).shape == (2, 3, G, G)


def test_traverse_cli_writes_a_figure(tmp_path):
    from click.testing import CliRunner

    from echotemporal.cli import main

    _, path = tiny_checkpoint(tmp_path)
    out = tmp_path / "trav.png"
    res = CliRunner().invoke(main, ["traverse", "--weights", str(path), "-o", str(out), "--steps", "3"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000 and "7 dims x 3 steps" in res.output
    again = CliRunner().invoke(main, ["traverse", "--weights", str(path), "-o", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output
