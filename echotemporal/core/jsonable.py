"""Plain JSON types from the package's results: the one conversion every JSON writer uses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types (dict, list, int, float, bool, str, None) from nested results.

    Arrays and tensors become nested lists, numpy scalars Python ones, paths strings; NaN and inf
    become ``None`` so that the file is strict JSON. Anything else is written as its ``str``.
    """
    if hasattr(obj, "detach"):  # a torch tensor (checkpoint metadata), without importing torch
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
