"""A small 2D U-Net that segments rendered B-mode frames: a stand-in for a real echo segmenter.

Trained briefly on CPU, it makes the errors real segmenters make (split cavities, missing wall
segments, leaks through drop-out, blobs) so that the correction can be tested on genuine model
output. One network serves both label sets: frames segmented without the LA (labels 0/1/2, the LA
being background as in a no-LA training set) drop the LA logit from the softmax, in training and in
prediction, so the network learns "LA, else background rather than LV" in the atrium. The U-Net
follows Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015, scaled down.

This module imports torch; the package's inference path never imports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "TrainingLog", "train_segmenter", "predict_labels"]

_N_CLASSES = 4


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``len(widths) - 1`` poolings; input (N, 1, S, S) with S divisible by 2**(len(widths)-1).

    Args:
        widths: channels per level, finest first.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.down = nn.ModuleList()
        c_in = 1
        for w in self.widths:
            self.down.append(_block(c_in, w))
            c_in = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_fine, w_coarse in zip(self.widths[-2::-1], self.widths[:0:-1]):
            self.up.append(nn.ConvTranspose2d(w_coarse, w_fine, 2, stride=2))
            self.merge.append(_block(2 * w_fine, w_fine))
        self.head = nn.Conv2d(self.widths[0], _N_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) images -> (N, 4, S, S) logits."""
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, skips[-2::-1]):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def _inputs(images: np.ndarray) -> torch.Tensor:
    """(N, S, S) images -> (N, 1, S, S) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)[:, None])


def _drop_la(logits: torch.Tensor, with_la: np.ndarray) -> torch.Tensor:
    """(N, 4, S, S) logits with the LA logit of the frames without LA pushed to -1e4 (out of the softmax)."""
    keep = torch.from_numpy(np.asarray(with_la, dtype=bool))
    la = torch.where(keep[:, None, None], logits[:, 3], torch.full_like(logits[:, 3], -1e4))
    return torch.cat([logits[:, :3], la[:, None]], dim=1)


@dataclass(frozen=True)
class TrainingLog:
    """What a training run did.

    Attributes:
        steps: optimiser steps taken.
        losses: (steps,) training cross-entropy per step.
        seconds: wall time of the training loop.
        stopped_by_time: True when ``max_seconds`` ended the run before ``steps`` (the result then
            depends on the machine's speed).
    """

    steps: int
    losses: np.ndarray
    seconds: float
    stopped_by_time: bool


def train_segmenter(
    images: np.ndarray,
    labels: np.ndarray,
    with_la: np.ndarray,
    *,
    steps: int,
    seed: int,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    la_weight: float = 2.0,
    max_seconds: float | None = None,
) -> tuple[UNet, TrainingLog]:
    """Train a `UNet` with cross-entropy on random mini-batches.

    Args:
        images: (N, S, S) float in [0, 1], S divisible by 2**(len(widths)-1).
        labels: (N, S, S) uint8 targets in 0..3 (the LA must already be 0 where ``with_la`` is False).
        with_la: (N,) bool, whether each frame's target segments the LA.
        steps: optimiser steps (the run's length; fixed for reproducibility).
        seed: seeds the weights and the batch order.
        batch_size: images per step.
        learning_rate: Adam step size.
        widths: channels per U-Net level.
        la_weight: cross-entropy weight of the LA class (the others 1): the LA, small and present in
            only some targets, is otherwise learnt last.
        max_seconds: optional wall-time cap; the log says whether it ended the run.

    Returns:
        The trained network in eval mode and its `TrainingLog`.

    Raises:
        ValueError: mismatched shapes or no images.
    """
    if images.shape != labels.shape or images.ndim != 3 or len(images) == 0 or len(with_la) != len(images):
        raise ValueError(f"images {images.shape}, labels {labels.shape}, with_la {np.shape(with_la)}: expected "
                         "(N, S, S) images and labels and (N,) flags, N > 0")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet(widths)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=max(int(steps), 1))
    flags = np.asarray(with_la, dtype=bool)
    weight = torch.tensor([1.0, 1.0, 1.0, float(la_weight)])
    losses = []
    start = time.perf_counter()
    stopped = False
    net.train()
    for _ in range(int(steps)):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            stopped = True
            break
        batch = rng.choice(len(images), size=min(batch_size, len(images)), replace=False)
        logits = _drop_la(net(_inputs(images[batch])), flags[batch])
        loss = F.cross_entropy(logits, torch.from_numpy(labels[batch].astype(np.int64)), weight=weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    net.eval()
    return net, TrainingLog(len(losses), np.asarray(losses), time.perf_counter() - start, stopped)


@torch.no_grad()
def predict_labels(
    net: UNet,
    images: np.ndarray,
    with_la: bool,
    output_shape: tuple[int, int],
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """Segment frames, upsampling the class probabilities to the label grid before the arg-max.

    Args:
        net: a trained `UNet` (eval mode).
        images: (T, S, S) float frames at the network's resolution.
        with_la: segment the LA; without it the LA class is never predicted (labels 0/1/2).
        output_shape: (H, W) of the label grid covering the same field of view.
        batch_size: frames per forward pass.

    Returns:
        (T, H, W) uint8 labels.
    """
    out = np.empty((len(images), *output_shape), dtype=np.uint8)
    n_classes = _N_CLASSES if with_la else _N_CLASSES - 1
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        probs = torch.softmax(net(_inputs(chunk))[:, :n_classes], dim=1)
        probs = F.interpolate(probs, size=tuple(output_shape), mode="bilinear", align_corners=False)
        out[start:start + len(chunk)] = probs.argmax(dim=1).numpy().astype(np.uint8)
    return out
