"""What every trained shape model offers the pipeline, whichever runtime executes it (no torch here).

:class:`echotemporal.model.network.ShapeModel` runs the network with torch and
:class:`echotemporal.model.onnx_runtime.OnnxShapeModel` runs its ONNX export with ONNX Runtime; both derive
from :class:`TrainedShapeModel`, which holds the checkpoint's metadata and defines the interface.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from echotemporal.core.config import AlignmentConfig, ModelConfig, checkpoint_alignment_config

__all__ = ["TrainedShapeModel"]


class TrainedShapeModel:
    """A trained AR-VAE with everything the pipeline needs, numpy in and out (CPU, inference).

    Attributes:
        config: its ModelConfig.
        attribute_names: names of the regularized dims, in latent order.
        latent_bounds: (K, 2) robust (1st, 99th) percentiles of the posterior means of the regularized dims
            over the training set.
        latent_mean: (D,) mean posterior mean over the training set.
        latent_std: (D,) std of the posterior means over the training set.
        sha256: hex digest of the checkpoint file ("" for an in-memory model).
        checkpoint: the remaining checkpoint metadata (provenance, metrics, attribute stats).
        backend: the runtime executing the network ("torch" or "onnxruntime").
    """

    backend = ""

    def __init__(
        self,
        config: ModelConfig,
        attribute_names: tuple[str, ...],
        latent_bounds: Any,
        *,
        latent_mean: Any = None,
        latent_std: Any = None,
        sha256: str = "",
        checkpoint: dict[str, Any] | None = None,
    ):
        self.config = config
        self.attribute_names = tuple(attribute_names)
        self.latent_bounds = np.asarray(latent_bounds, dtype=np.float64)
        D = config.latent_dim
        self.latent_mean = np.zeros(D) if latent_mean is None else np.asarray(latent_mean, dtype=np.float64)
        self.latent_std = np.ones(D) if latent_std is None else np.asarray(latent_std, dtype=np.float64)
        self.sha256 = sha256
        self.checkpoint = checkpoint or {}

    @property
    def grid_size(self) -> int:
        """Side G of the model grid."""
        return int(self.config.grid_size)

    @property
    def alignment_config(self) -> AlignmentConfig:
        """The alignment the model was trained with (from its checkpoint; defaults on its grid otherwise)."""
        return checkpoint_alignment_config(self.checkpoint, self.grid_size)

    def encode(self, grid_labels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Posterior means of aligned frames.

        Args:
            grid_labels: (T, G, G) or (G, G) uint8 labels on the model grid (labels the model does not
                know, the LA, are background).
            batch_size: frames per forward pass.

        Returns:
            (T, D) float64 latents.
        """
        raise NotImplementedError

    def decode(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class probabilities of latents.

        Args:
            latents: (T, D) or (D,) latents.
            batch_size: frames per forward pass.

        Returns:
            (T, C, G, G) float32 softmax probabilities (C = background, LV, MYO).
        """
        raise NotImplementedError

    def reconstruct(self, grid_labels: np.ndarray) -> np.ndarray:
        """(T, G, G) labels -> (T, G, G) uint8 argmax of decode(encode(.))."""
        return self.decode(self.encode(grid_labels)).argmax(axis=1).astype(np.uint8)
