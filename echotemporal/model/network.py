"""Attribute-regularized VAE (AR-VAE) of single aligned frames, and its losses.

Method: Pati & Lerch, "Attribute-based regularization of latent spaces for variational auto-encoders",
Neural Comput. Appl. 2021, as used for cardiac shapes by Painchaud et al., IEEE TMI 2022. The first
``n_attributes`` latent dims are tied monotonically (increasing) to the attributes in
``attributes.ATTRIBUTE_NAMES`` order; the other dims are free.

Modelled classes: 0 background, 1 LV, 2 MYO. The left atrium is not modelled: inputs map it to
background, and the pipeline carries it over from the input.

The network is sized for CPU training and inference: stride-2 convolutions (one per entry of
``ModelConfig.channels``), a linear bottleneck, and a mirrored transposed-convolution decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from echotemporal.core.config import ModelConfig, model_config_from_dict
from echotemporal.core.config import config_to_dict as model_config_to_dict
from echotemporal.model.interface import TrainedShapeModel

__all__ = [
    "ARVAE",
    "ShapeModel",
    "LossTerms",
    "labels_to_onehot",
    "arvae_loss",
    "attribute_regularization",
    "soft_dice_loss",
    "model_config_to_dict",
    "model_config_from_dict",
    "latent_traversal",
    "plot_traversal",
]


def labels_to_onehot(labels: torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    """(B, G, G) integer labels -> (B, n_classes, G, G) float one-hot; labels ≥ n_classes (LA) -> background."""
    lab = labels.long()
    lab = torch.where(lab >= n_classes, torch.zeros_like(lab), lab)
    return F.one_hot(lab, n_classes).permute(0, 3, 1, 2).float()


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1, inplace=True))


class ARVAE(nn.Module):
    """Convolutional VAE on (B, C, G, G) one-hot frames.

    Args:
        config: architecture; ``grid_size`` must be divisible by 2**len(channels).
    """

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        chans = tuple(int(c) for c in config.channels)
        n_stages = len(chans)
        if config.grid_size % (2**n_stages):
            raise ValueError(f"grid_size {config.grid_size} must be divisible by 2**{n_stages} (len(channels))")
        self.bottom = config.grid_size // (2**n_stages)
        enc: list[nn.Module] = []
        c_prev = config.n_classes
        for i, c in enumerate(chans):
            enc += [nn.Conv2d(c_prev, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.1, inplace=True)]
            if i >= 2:  # extra capacity where it is cheap (low resolution)
                enc.append(_block(c, c))
            c_prev = c
        self.encoder = nn.Sequential(*enc)
        flat = chans[-1] * self.bottom * self.bottom
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)
        self.fc_dec = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.LeakyReLU(0.1, inplace=True))
        dec: list[nn.Module] = []
        rev = chans[::-1]
        for i in range(n_stages):
            c_in = rev[i]
            c_out = rev[i + 1] if i + 1 < n_stages else chans[0]
            if i < n_stages - 2:
                dec.append(_block(c_in, c_in))
            dec += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1, inplace=True)]
        dec.append(nn.Conv2d(chans[0], config.n_classes, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, G, G) one-hot -> posterior mean and log-variance, each (B, D)."""
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) latents -> (B, C, G, G) logits."""
        h = self.fc_dec(z).view(z.shape[0], -1, self.bottom, self.bottom)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns logits (B, C, G, G), mu (B, D), logvar (B, D), sampled z (B, D)."""
        mu, logvar = self.encode(x)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return self.decode(z), mu, logvar, z


def soft_dice_loss(logits: torch.Tensor, target_onehot: torch.Tensor) -> torch.Tensor:
    """1 − mean soft Dice over the foreground classes (1..C-1), pooled over the batch."""
    probs = torch.softmax(logits, dim=1)[:, 1:]
    tgt = target_onehot[:, 1:]
    inter = (probs * tgt).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + tgt.sum(dim=(0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (denom + 1.0)).mean()


def attribute_regularization(z: torch.Tensor, attributes: torch.Tensor, delta: float = 10.0) -> torch.Tensor:
    """Pati & Lerch (2021) AR loss: mean over dims and in-batch pairs of |tanh(δ·Δz) − sign(Δa)|.

    Args:
        z: (B, K) the regularized latent dims.
        attributes: (B, K) their attributes, NaN where unmeasurable (pairs with a NaN are skipped).
        delta: tanh sharpness δ.

    Returns:
        Scalar loss (0 when K == 0 or no valid pair).
    """
    if z.shape[1] == 0:
        return z.sum() * 0.0
    dz = z[:, None, :] - z[None, :, :]  # (B, B, K)
    da = attributes[:, None, :] - attributes[None, :, :]
    valid = torch.isfinite(da)
    diff = (torch.tanh(delta * dz) - torch.sign(torch.nan_to_num(da))).abs()
    n_valid = valid.sum()
    if n_valid == 0:
        return z.sum() * 0.0
    return (diff * valid).sum() / n_valid


class LossTerms(dict):
    """Named scalar loss terms (tensors); ``total`` is what is optimized."""


def arvae_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    z: torch.Tensor,
    attributes: torch.Tensor,
    *,
    beta: float,
    gamma: float,
    delta: float,
    dice_weight: float = 1.0,
) -> LossTerms:
    """AR-VAE loss: CE + dice_weight·(1 − soft Dice) + β·KL + γ·AR.

    Args:
        logits: (B, C, G, G) decoder output.
        target: (B, G, G) integer labels (LA already mapped to background).
        mu, logvar, z: (B, D) posterior mean, log-variance and sample.
        attributes: (B, K) attributes of the first K regularized dims, NaN allowed.
        beta, gamma, delta, dice_weight: loss weights (TrainingConfig).

    Returns:
        LossTerms with ``total``, ``ce``, ``dice``, ``kl`` (per sample, summed over dims) and ``ar``.
    """
    n_classes = logits.shape[1]
    onehot = labels_to_onehot(target, n_classes)
    ce = F.cross_entropy(logits, onehot.argmax(dim=1))
    dice = soft_dice_loss(logits, onehot)
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()
    k = attributes.shape[1]
    # Regularize the posterior means: they are what the pipeline encodes and edits.
    ar = attribute_regularization(mu[:, :k], attributes, delta)
    total = ce + dice_weight * dice + beta * kl + gamma * ar
    return LossTerms(total=total, ce=ce, dice=dice, kl=kl, ar=ar)


class ShapeModel(TrainedShapeModel):
    """A trained AR-VAE run with torch (see :class:`echotemporal.model.interface.TrainedShapeModel` for the
    interface and attributes; :class:`echotemporal.model.onnx_runtime.OnnxShapeModel` runs its ONNX export).

    Attributes:
        network: the ARVAE module (eval mode).
        inference_threads: torch intra-op threads used inside encode/decode (restored afterwards). One
            thread: a pass over a sequence is short, and more threads on a shared machine only add
            stalls. None keeps the process setting.
    """

    backend = "torch"

    def __init__(
        self,
        network: ARVAE,
        attribute_names: tuple[str, ...],
        latent_bounds: np.ndarray,
        *,
        latent_mean: np.ndarray | None = None,
        latent_std: np.ndarray | None = None,
        sha256: str = "",
        checkpoint: dict[str, Any] | None = None,
    ):
        super().__init__(
            network.config,
            attribute_names,
            latent_bounds,
            latent_mean=latent_mean,
            latent_std=latent_std,
            sha256=sha256,
            checkpoint=checkpoint,
        )
        self.network = network.eval()
        self.inference_threads: int | None = 1

    def _threads(self):
        """Context manager applying ``inference_threads`` for one call."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            before = torch.get_num_threads()
            n = self.inference_threads
            if n is not None and n != before:
                torch.set_num_threads(n)
            try:
                yield
            finally:
                if n is not None and n != before:
                    torch.set_num_threads(before)

        return ctx()

    @torch.no_grad()
    def encode(self, grid_labels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(grid_labels, dtype=np.uint8))
        if x.ndim == 2:
            x = x[None]
        with self._threads():
            out = [self.network.encode(labels_to_onehot(x[i : i + batch_size], self.config.n_classes))[0] for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def decode(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        z = torch.as_tensor(np.atleast_2d(np.asarray(latents)), dtype=torch.float32)
        with self._threads():
            out = [torch.softmax(self.network.decode(z[i : i + batch_size]), dim=1) for i in range(0, z.shape[0], batch_size)]
        return torch.cat(out).numpy()


def latent_traversal(model: ShapeModel, n_steps: int = 7, span: float = 3.0) -> dict[str, Any]:
    """Decode a sweep of each regularized dim around the mean latent, and measure the decoded frames.

    Each regularized dim k is swept over ``mean_k + s·std_k`` for s in ``linspace(-span, span, n_steps)``,
    the other dims held at the training-set mean (as in the latent-exploration figures of Pati & Lerch).

    Args:
        model: a trained ShapeModel.
        n_steps: decoded frames per dim.
        span: sweep half-width in training-set standard deviations of that dim.

    Returns:
        dict with ``names`` (K,), ``sigmas`` (S,), ``latents`` (K, S) swept values, ``frames``
        (K, S, G, G) uint8 decoded labels, ``attributes`` (K, S, 7) measured on them (grid pixel = 1 mm;
        NaN where unmeasurable), ``measured`` (K, S) the swept dim's own attribute.
    """
    import warnings

    from echotemporal.measure.attributes import compute_attributes

    K = len(model.attribute_names)
    sig = np.linspace(-span, span, n_steps)
    G = model.grid_size
    frames = np.zeros((K, n_steps, G, G), dtype=np.uint8)
    lat = np.zeros((K, n_steps))
    for k in range(K):
        z = np.tile(model.latent_mean, (n_steps, 1))
        z[:, k] = model.latent_mean[k] + sig * model.latent_std[k]
        lat[k] = z[:, k]
        frames[k] = model.decode(z).argmax(axis=1).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmeasurable decoded frames are reported as NaN in the figure
        attrs = compute_attributes(frames.reshape(K * n_steps, G, G), (1.0, 1.0)).reshape(K, n_steps, -1)
    measured = np.stack([attrs[k, :, k] for k in range(K)]) if attrs.shape[-1] >= K else np.full((K, n_steps), np.nan)
    return {"names": model.attribute_names, "sigmas": sig, "latents": lat, "frames": frames, "attributes": attrs, "measured": measured}


def plot_traversal(traversal: dict[str, Any], path: str | Path) -> Path:
    """Figure of :func:`latent_traversal`: one row per regularized dim, measured value on each frame.

    Args:
        traversal: output of :func:`latent_traversal`.
        path: .png/.pdf file to write (matplotlib OO API, Agg; no pyplot state).

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    frames = traversal["frames"]
    K, S = frames.shape[:2]
    cmap = ListedColormap(["#000000", "#d62728", "#2ca02c", "#1f77b4"])
    fig = Figure(figsize=(1.5 * S + 1.6, 1.6 * K + 0.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(K, S, squeeze=False)
    for k in range(K):
        for s in range(S):
            ax = axes[k, s]
            ax.imshow(frames[k, s], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            v = traversal["measured"][k, s]
            ax.set_title("NaN" if not np.isfinite(v) else f"{v:.4g}", fontsize=8)
            if k == K - 1:
                ax.set_xlabel(f"{traversal['sigmas'][s]:+.1f}σ", fontsize=8)
        axes[k, 0].set_ylabel(traversal["names"][k], fontsize=8)
    fig.suptitle("AR-VAE latent traversal: regularized dim swept around the mean (value measured on the decoded frame, grid px = 1 mm)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
