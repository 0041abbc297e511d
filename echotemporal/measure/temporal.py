"""Temporal consistency metric, packaged thresholds and frame detection (DESIGN.md §4.1).

The metric is the one of Painchaud et al., "Echocardiography Segmentation With Enforced Temporal
Consistency", IEEE TMI 2022, so numbers compare: for an attribute trajectory ``a`` (T,) with fixed
normalization bounds ``(lo, hi)``::

    ã = (a − lo) / (hi − lo)
    m_t = ã_t − (ã_{t−1} + ã_{t+1}) / 2     interior frames,   m_0 = m_{T−1} = 0

and frame t is inconsistent for that attribute when ``|m_t| > tau``. Bounds and thresholds are in
physical units (mm, mm², degrees) and ship in ``echotemporal/data/thresholds.yaml``, written by
``scripts/calibrate_thresholds.py``.

Unmeasurable frames (NaN attribute, e.g. no LV in that frame):

* a NaN frame is flagged for that attribute whenever some other frame of the sequence is measurable
  (a structure that vanishes for one frame is a glitch); if no frame is measurable nothing is flagged
  (the structure is simply absent, which is the validity checks' business, not a temporal glitch);
* a measurable frame is compared with the linear interpolation, in time, of the nearest measurable
  frame on each side (with no NaN this is exactly ``(ã_{t−1} + ã_{t+1}) / 2``); a measurable frame
  with no measurable frame on one side is treated like an end frame (metric 0);
* the metric itself is NaN at NaN frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from echotemporal.core.errors import ConfigError, InputFileError

__all__ = [
    "AttributeThresholds",
    "consistency_metric",
    "detect_inconsistent_frames",
    "load_thresholds",
    "default_thresholds_path",
]

THRESHOLDS_FORMAT_VERSION = 1


def _bounds(lo: float | np.ndarray, hi: float | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast normalization bounds to (k,) and check ``lo < hi``."""
    lo_a = np.broadcast_to(np.asarray(lo, dtype=np.float64), (k,))
    hi_a = np.broadcast_to(np.asarray(hi, dtype=np.float64), (k,))
    if not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a)) and np.all(hi_a > lo_a)):
        raise ValueError(f"normalization bounds must be finite with lo < hi; got lo={lo_a}, hi={hi_a}")
    return lo_a, hi_a


def _metric_with_gaps(a: np.ndarray) -> np.ndarray:
    """Metric (T,) of one normalized trajectory holding NaN frames (rule in the module docstring)."""
    m = np.full(a.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(a))
    if idx.size == 0:
        return m
    m[idx] = 0.0
    if idx.size >= 3:
        left, mid, right = idx[:-2], idx[1:-1], idx[2:]
        w = (mid - left) / (right - left)
        m[mid] = a[mid] - ((1.0 - w) * a[left] + w * a[right])
    return m


def consistency_metric(
    values: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray
) -> np.ndarray:
    """Second-difference consistency metric of attribute trajectories (Painchaud et al. 2022).

    Args:
        values: (T,) or (T, K) attribute values per frame, physical units; NaN = unmeasurable.
        lo: scalar or (K,) lower normalization bound, same units as ``values``.
        hi: scalar or (K,) upper normalization bound (> lo).

    Returns:
        Same shape as ``values``, dimensionless: ``m_t = ã_t − (ã_{t−1} + ã_{t+1})/2`` on interior
        frames, 0 on the first and last frames (and everywhere when T < 3), NaN on NaN frames.
        Measurable frames next to NaN frames use the nearest measurable frames (module docstring).

    Raises:
        ValueError: ``values`` is not 1-D or 2-D, or a bound is not finite with lo < hi.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"values must be (T,) or (T, K); got shape {v.shape}")
    v2 = v[:, None] if v.ndim == 1 else v
    lo_a, hi_a = _bounds(lo, hi, v2.shape[1])
    a = (v2 - lo_a) / (hi_a - lo_a)
    m = np.zeros_like(a)
    if a.shape[0] >= 3:
        m[1:-1] = a[1:-1] - 0.5 * (a[:-2] + a[2:])
    finite = np.isfinite(a)
    for k in np.flatnonzero(~finite.all(axis=0)):
        m[:, k] = _metric_with_gaps(a[:, k]) if a.shape[0] >= 3 else np.where(finite[:, k], 0.0, np.nan)
    return m[:, 0] if v.ndim == 1 else m


@dataclass(frozen=True)
class AttributeThresholds:
    """Normalization bounds and detection thresholds, one entry per attribute.

    Attributes:
        names: (K,) attribute names, in the column order of the attribute arrays.
        lo: (K,) lower normalization bound, physical units of each attribute.
        hi: (K,) upper normalization bound (> lo), physical units.
        tau: (K,) threshold on ``|m_t|`` (dimensionless, a fraction of ``hi − lo``).
    """

    names: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    tau: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.names)
        for field in ("lo", "hi", "tau"):
            arr = np.array(getattr(self, field), dtype=np.float64)  # private copy: frozen means frozen
            if arr.shape != (k,) or not np.all(np.isfinite(arr)):
                raise ConfigError(f"thresholds: '{field}' must hold {k} finite numbers; got {arr!r}")
            arr.setflags(write=False)
            object.__setattr__(self, field, arr)
        object.__setattr__(self, "names", tuple(self.names))
        if not np.all(self.hi > self.lo):
            bad = [n for n, lo, hi in zip(self.names, self.lo, self.hi) if not hi > lo]
            raise ConfigError(f"thresholds: lo must be < hi; violated for {', '.join(bad)}")
        if not np.all(self.tau > 0):
            bad = [n for n, t in zip(self.names, self.tau) if not t > 0]
            raise ConfigError(f"thresholds: tau must be > 0; violated for {', '.join(bad)}")

    @property
    def tolerance(self) -> np.ndarray:
        """(K,) largest allowed distance of a frame from its neighbours' mean, physical units."""
        return self.tau * (self.hi - self.lo)

    def index(self, name: str) -> int:
        """Column of attribute ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no threshold for attribute '{name}'; known: {', '.join(self.names)}") from None


def default_thresholds_path() -> Path:
    """Path of the packaged ``echotemporal/data/thresholds.yaml``."""
    return Path(str(resources.files("echotemporal") / "data" / "thresholds.yaml"))


def load_thresholds(path: str | Path | None = None) -> AttributeThresholds:
    """Read normalization bounds and thresholds from a YAML file.

    Args:
        path: YAML file with an ``attributes`` mapping ``name: {lo, hi, tau}`` (physical units);
            None reads the packaged ``echotemporal/data/thresholds.yaml``.

    Returns:
        AttributeThresholds in the file's attribute order.

    Raises:
        InputFileError: the file is missing or unreadable.
        ConfigError: the file is not valid YAML or an entry is missing/invalid.
    """
    p = default_thresholds_path() if path is None else Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputFileError(
            f"{p}: cannot read thresholds file ({exc.__class__.__name__}); check the path or "
            "re-run scripts/calibrate_thresholds.py"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    attrs = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attrs, dict) or not attrs:
        raise ConfigError(f"{p}: expected a top-level 'attributes' mapping of name: {{lo, hi, tau}}")
    names, rows = [], []
    for name, entry in attrs.items():
        if not isinstance(entry, dict) or set(entry) < {"lo", "hi", "tau"}:
            raise ConfigError(f"{p}: attribute '{name}' needs numeric keys lo, hi and tau")
        try:
            rows.append([float(entry["lo"]), float(entry["hi"]), float(entry["tau"])])
        except (TypeError, ValueError):
            raise ConfigError(f"{p}: attribute '{name}': lo, hi and tau must be numbers") from None
        names.append(str(name))
    arr = np.array(rows)
    try:
        return AttributeThresholds(tuple(names), arr[:, 0], arr[:, 1], arr[:, 2])
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def detect_inconsistent_frames(
    attributes: np.ndarray, thresholds: AttributeThresholds | None = None
) -> np.ndarray:
    """Flag frames whose attribute jumps away from its neighbours (DESIGN.md §4.1).

    Args:
        attributes: (T, K) attribute values, physical units, columns in ``thresholds.names`` order;
            NaN = unmeasurable.
        thresholds: bounds and thresholds; None loads the packaged ones.

    Returns:
        (T, K) bool, True where ``|m_t| > tau`` or where the attribute is NaN while some other frame
        of the sequence is measurable. Nothing is flagged when T < 3.

    Raises:
        ValueError: ``attributes`` is not (T, K) with K = number of thresholds.
    """
    th = load_thresholds() if thresholds is None else thresholds
    a = np.asarray(attributes, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(th.names):
        raise ValueError(
            f"attributes must be (T, {len(th.names)}) with columns {', '.join(th.names)}; got shape {a.shape}"
        )
    flags = np.zeros(a.shape, dtype=bool)
    if a.shape[0] < 3:
        return flags
    m = consistency_metric(a, th.lo, th.hi)
    flags = np.abs(m) > th.tau  # False at NaN frames, which are handled just below
    nan = np.isnan(a)
    flags |= nan & (~nan).any(axis=0)
    return flags
