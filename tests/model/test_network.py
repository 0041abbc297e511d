"""AR-VAE module, losses and ShapeModel wrapper on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echotemporal.core.config import ModelConfig
from echotemporal.model.network import (
    ARVAE,
    ShapeModel,
    arvae_loss,
    attribute_regularization,
    labels_to_onehot,
    latent_traversal,
    plot_traversal,
)

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one intra-op thread avoids thread-sync stalls on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ModelConfig(grid_size=32, n_classes=3, latent_dim=10, n_attributes=7, channels=(4, 8, 16))


def tiny_batch(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """n frames of discs of varying radius (LV) in a ring (MYO), and their LV areas as attribute 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    frames, attrs = [], []
    for _ in range(n):
        r = rng.uniform(4, 9)
        d = np.hypot(yy - 16, xx - 16)
        f = np.where(d < r, 1, np.where(d < r + 3, 2, 0)).astype(np.uint8)
        frames.append(f)
        a = np.full(7, np.nan, np.float32)
        a[0] = (f == 1).sum()
        attrs.append(a)
    return torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(attrs))


def test_shapes_and_finite_loss():
    torch.manual_seed(0)
    net = ARVAE(TINY)
    x, a = tiny_batch()
    logits, mu, logvar, z = net(labels_to_onehot(x))
    assert logits.shape == (8, 3, 32, 32)
    assert mu.shape == logvar.shape == z.shape == (8, 10)
    terms = arvae_loss(logits, x, mu, logvar, z, a, beta=1e-3, gamma=1.0, delta=10.0)
    for key in ("total", "ce", "dice", "kl", "ar"):
        assert torch.isfinite(terms[key]), key


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = ARVAE(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, a = tiny_batch()

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # same reparameterisation noise before and after the step
        logits, mu, logvar, z = net(labels_to_onehot(x))
        return arvae_loss(logits, x, mu, logvar, z, a, beta=1e-3, gamma=1.0, delta=10.0)["total"]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_attribute_regularization_known_answers():
    a = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    ordered = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]])
    # Same order, well separated: tanh saturates to sign(Δa) -> ~0.
    assert attribute_regularization(ordered, a, delta=10.0).item() < 1e-6
    # Reversed: 12 off-diagonal pairs at |-1 - 1| = 2, 4 diagonal pairs at 0 -> 24 / 16.
    assert attribute_regularization(-ordered, a, delta=10.0).item() == pytest.approx(1.5, abs=1e-6)
    # NaN attributes are skipped: only the two measured frames count (2 pairs at 2, 2 diagonal at 0).
    a_nan = torch.tensor([[1.0], [float("nan")], [3.0], [float("nan")]])
    assert attribute_regularization(-ordered, a_nan, delta=10.0).item() == pytest.approx(1.0, abs=1e-6)


def test_onehot_maps_la_to_background():
    lab = torch.tensor([[[0, 1], [2, 3]]])
    oh = labels_to_onehot(lab, 3)
    assert oh.shape == (1, 3, 2, 2)
    assert oh[0, 0, 1, 1] == 1 and oh[0, :, 1, 1].sum() == 1


def test_shape_model_numpy_interface_and_traversal(tmp_path):
    torch.manual_seed(0)
    model = ShapeModel(ARVAE(TINY), tuple(f"a{i}" for i in range(7)), np.tile([-1.0, 1.0], (7, 1)))
    frames = tiny_batch()[0].numpy()
    z = model.encode(frames)
    assert z.shape == (8, 10) and z.dtype == np.float64
    probs = model.decode(z)
    assert probs.shape == (8, 3, 32, 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Eval mode: encoding is deterministic.
    np.testing.assert_array_equal(model.encode(frames), z)
    trav = latent_traversal(model, n_steps=3, span=2.0)
    assert trav["frames"].shape == (7, 3, 32, 32)
    assert trav["attributes"].shape == (7, 3, 7)
    out = plot_traversal(trav, tmp_path / "trav.png")
    assert out.stat().st_size > 1000


def test_grid_size_must_fit_the_stages():
    with pytest.raises(ValueError, match="divisible"):
        ARVAE(ModelConfig(grid_size=36, channels=(4, 8, 16)))
