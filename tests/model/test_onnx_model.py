"""ONNX Runtime backend: export, equality with the torch model, backend choice, no torch import."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from echotemporal.model import registry as pretrained  # noqa: E402
from echotemporal.core.errors import OutputExistsError, WeightsError  # noqa: E402
from echotemporal.model.network import ShapeModel  # noqa: E402
from echotemporal.model.export import export_onnx  # noqa: E402
from echotemporal.model.onnx_runtime import OnnxShapeModel, onnx_paths, onnx_source_sha256  # noqa: E402
from echotemporal.model.registry import DEFAULT_WEIGHTS, REGISTRY, file_sha256, load_model, weights_dir  # noqa: E402
from tiny_model import NAMES, TINY, frames, tiny_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.delenv(pretrained.BACKEND_ENV, raising=False)
    pretrained._CACHE.clear()
    yield
    pretrained._CACHE.clear()


@pytest.fixture()
def exported(tmp_path):
    _, path = tiny_checkpoint(tmp_path)
    export_onnx(path)
    return path


def with_la(grid: np.ndarray) -> np.ndarray:
    out = grid.copy()
    out[:, :4, :] = 3  # LA rows: background for the model
    return out


def test_export_matches_the_torch_model_and_keeps_the_metadata(exported):
    encoder, decoder = onnx_paths(exported)
    assert encoder.name == "tiny.encoder.onnx" and decoder.name == "tiny.decoder.onnx"
    onnx_model = OnnxShapeModel(encoder, decoder)
    torch_model = load_model(exported, backend="torch")
    assert isinstance(torch_model, ShapeModel) and torch_model.backend == "torch"
    assert onnx_model.backend == "onnxruntime"
    assert onnx_model.config == TINY and onnx_model.attribute_names == NAMES
    np.testing.assert_array_equal(onnx_model.latent_bounds, torch_model.latent_bounds)
    assert onnx_model.sha256 == file_sha256(exported) == torch_model.sha256
    assert onnx_model.checkpoint["provenance"]["note"] == "test"
    assert onnx_model.alignment_config == torch_model.alignment_config
    grid = with_la(frames())
    z_torch, z_onnx = torch_model.encode(grid), onnx_model.encode(grid)
    assert z_onnx.shape == z_torch.shape == (3, TINY.latent_dim) and z_onnx.dtype == np.float64
    np.testing.assert_allclose(z_onnx, z_torch, atol=1e-5)
    # More frames than one batch: the batches are joined in order.
    np.testing.assert_allclose(onnx_model.encode(grid, batch_size=2), z_torch, atol=1e-5)
    p_torch, p_onnx = torch_model.decode(z_torch), onnx_model.decode(z_torch, batch_size=2)
    assert p_onnx.shape == (3, 3, 32, 32) and p_onnx.dtype == np.float32
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-5)
    np.testing.assert_allclose(p_onnx.sum(axis=1), 1.0, atol=1e-5)


def test_backend_choice_and_stale_exports(exported, tmp_path, monkeypatch):
    assert isinstance(load_model(exported), OnnxShapeModel)  # auto: the up-to-date export
    assert isinstance(load_model(exported, backend="torch"), ShapeModel)
    monkeypatch.setenv(pretrained.BACKEND_ENV, "torch")
    assert isinstance(load_model(exported), ShapeModel)
    monkeypatch.setenv(pretrained.BACKEND_ENV, "tensorflow")
    with pytest.raises(WeightsError, match="tensorflow"):
        load_model(exported)
    monkeypatch.delenv(pretrained.BACKEND_ENV)
    # The checkpoint retrained under the same name: its old export is not used, and asking for it fails.
    torch.manual_seed(1)
    from echotemporal.model.network import ARVAE
    from echotemporal.training.loop import make_checkpoint, save_checkpoint

    bounds = np.stack([-np.arange(1, 8), np.arange(1, 8)], axis=1).astype(float)
    save_checkpoint(make_checkpoint(ARVAE(TINY).eval(), NAMES, bounds), exported)
    assert onnx_source_sha256(onnx_paths(exported)[0]) != file_sha256(exported)
    model = load_model(exported)
    assert isinstance(model, ShapeModel) and model.sha256 == file_sha256(exported)
    with pytest.raises(WeightsError, match="another version"):
        load_model(exported, backend="onnx")
    # No export at all: auto uses torch, onnx says how to export.
    _, bare = tiny_checkpoint(tmp_path, "bare.pt")
    assert isinstance(load_model(bare), ShapeModel)
    with pytest.raises(WeightsError, match="export_onnx.py"):
        load_model(bare, backend="onnx")


def test_export_never_overwrites_without_asking(exported):
    encoder, _ = onnx_paths(exported)
    before = encoder.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        export_onnx(exported)
    assert encoder.read_bytes() == before
    export_onnx(exported, overwrite=True)
    assert onnx_source_sha256(encoder) == file_sha256(exported)


def test_a_damaged_graph_is_a_weights_error(exported):
    encoder, _ = onnx_paths(exported)
    encoder.write_bytes(b"not an onnx graph")
    with pytest.raises(WeightsError, match="not a loadable ONNX graph"):
        load_model(exported)


def test_shipped_graphs_are_registered_and_equal_the_shipped_checkpoint():
    from echotemporal.model.alignment import fit_alignment, to_grid
    from echotemporal.phantoms import generate_sequence

    checkpoint = weights_dir() / DEFAULT_WEIGHTS
    for graph in onnx_paths(checkpoint):
        assert file_sha256(graph) == REGISTRY[graph.name]
        assert onnx_source_sha256(graph) == REGISTRY[DEFAULT_WEIGHTS]
    default = load_model()
    reference = load_model(backend="torch")
    assert isinstance(default, OnnxShapeModel) and default.sha256 == reference.sha256 == REGISTRY[DEFAULT_WEIGHTS]
    phantom = generate_sequence(3, view="4CH", n_frames=12)
    grid = to_grid(phantom.labels, fit_alignment(phantom.labels, phantom.spacing_mm, default.alignment_config))
    z = reference.encode(grid)
    np.testing.assert_allclose(default.encode(grid), z, atol=1e-4)
    np.testing.assert_allclose(default.decode(z), reference.decode(z), atol=1e-5)
    np.testing.assert_array_equal(default.reconstruct(grid), reference.reconstruct(grid))


def test_smoothing_a_file_with_the_shipped_model_never_imports_torch_or_pandas(tmp_path):
    """The point of the ONNX backend and of the pandas-free CSV: a one-sequence run starts without
    torch's 2-3 s import, and writes its outputs without pandas' quarter of a second."""
    from echotemporal.io import write_sequence
    from echotemporal.phantoms import generate_sequence

    p = generate_sequence(5, view="2CH", n_frames=6, image_shape=(200, 160), spacing_mm=(0.6, 0.6))
    source = tmp_path / "p_2CH_half_sequence.nii.gz"
    write_sequence(source, p.labels, spacing_mm=p.spacing_mm)
    code = (
        "import json, sys\n"
        "from echotemporal.pipeline import smooth_file\n"
        f"r = smooth_file({str(source)!r})\n"
        "summary = json.load(open(r.summary['outputs']['summary']))\n"
        "assert summary['weights_sha256'], summary\n"
        "print('torch' in sys.modules, 'pandas' in sys.modules, summary['inference_backend'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != pretrained.BACKEND_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "onnxruntime"]
    assert (tmp_path / "p_2CH_half_sequence_smoothed_frames.csv").read_text().count("\n") == 7
