"""The documented model loader (README): re-exported from :mod:`echotemporal.model.registry`."""

from __future__ import annotations

from echotemporal.model.registry import file_sha256, load_model, resolve_weights

__all__ = ["file_sha256", "load_model", "resolve_weights"]
