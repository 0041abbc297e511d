"""A tiny random AR-VAE checkpoint and matching frames, shared by the model tests (needs torch)."""

from __future__ import annotations

import numpy as np
import torch

from echotemporal.core.config import ModelConfig
from echotemporal.model.network import ARVAE
from echotemporal.training.loop import make_checkpoint, save_checkpoint

TINY = ModelConfig(grid_size=32, latent_dim=10, channels=(4, 8, 16))
NAMES = ("lv_area_mm2", "lv_length_mm", "lv_base_width_mm", "lv_orientation_deg", "myo_area_mm2",
         "epi_center_x_mm", "epi_center_y_mm")


def tiny_checkpoint(tmp_path, name="tiny.pt"):
    """(network, path) of a seeded tiny AR-VAE written as a checkpoint under ``tmp_path``."""
    torch.manual_seed(0)
    net = ARVAE(TINY).eval()
    bounds = np.stack([-np.arange(1, 8), np.arange(1, 8)], axis=1).astype(float)
    path = save_checkpoint(make_checkpoint(net, NAMES, bounds, provenance={"note": "test"}), tmp_path / name)
    return net, path


def frames():
    """(3, 32, 32) uint8 concentric LV/MYO discs of growing radius."""
    yy, xx = np.mgrid[:32, :32]
    d = np.hypot(yy - 16, xx - 16)
    return np.stack([np.where(d < r, 1, np.where(d < r + 3, 2, 0)) for r in (5, 7, 9)]).astype(np.uint8)
