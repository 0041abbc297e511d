"""What a batch worker process loads once and keeps: the shape model (by weights) and the thresholds."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["worker_thresholds", "worker_model"]

_MODELS: dict[tuple[str, str | None], Any] = {}
_MODELS_LOCK = threading.Lock()
_THRESHOLDS: list[Any] = []  # the packaged consistency thresholds, read once per worker process


def worker_thresholds() -> Any:
    if not _THRESHOLDS:
        from echotemporal.measure.temporal import load_thresholds

        _THRESHOLDS.append(load_thresholds())
    return _THRESHOLDS[0]


def worker_model(method: str, weights: str | None) -> Any:
    """The shape model of this worker process, loaded once and cached by weights path."""
    if method != "arvae":
        return None
    key = (method, weights)
    with _MODELS_LOCK:  # Dask workers may run several tasks in threads of one process
        if key not in _MODELS:
            from echotemporal.model.registry import load_model

            _MODELS[key] = load_model(weights)
        return _MODELS[key]
