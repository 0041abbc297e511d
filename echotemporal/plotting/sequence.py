"""Figures of one smoothed sequence: LV volume curve and attribute trajectories, before and after.

They read only the per-frame table and the summary of a SmoothingResult (the same columns and keys
as the CSV and JSON that ``smooth`` writes), so saved results can be re-plotted without the model.
Object-oriented matplotlib on an Agg canvas: no pyplot, no global state, safe in worker threads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from echotemporal.io.atomic import check_overwrite

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from echotemporal.correct.smoothing import SmoothingResult
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = [
    "plot_volume_curve",
    "plot_volume_rate",
    "plot_attribute_trajectories",
    "volume_figure",
    "attributes_figure",
    "save_sequence_figures",
]

_BEFORE = "0.45"
_AFTER = "tab:blue"
_FLAG = "tab:red"
_UNITS = {"mm2": "mm²", "mm": "mm", "deg": "°"}


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.1f}{unit}"


def _label(name: str) -> str:
    base, _, unit = name.rpartition("_")
    pretty = base.replace("lv_", "LV ").replace("myo_", "MYO ").replace("epi_", "epicardial ").replace("_", " ")
    return f"{pretty} ({_UNITS.get(unit, unit)})"


def _time_axis(frames: pd.DataFrame, summary: Mapping[str, Any]) -> tuple[np.ndarray, str, float]:
    """(x values, axis label, x units per frame): ms when the frame time is known, else frame numbers
    from 1 (as in the Info cfg)."""
    step = summary.get("frame_time_ms")
    if step:
        return frames["frame"].to_numpy() * float(step), "time (ms)", float(step)
    return frames["frame"].to_numpy() + 1, "frame (from 1)", 1.0


def _beat_frames(summary: Mapping[str, Any], when: str, key: str) -> list[int]:
    beats = summary.get(f"beats_{when}")
    if beats:
        return [int(b[key]) for b in beats]
    frame = summary.get(key if when == "after" else f"{key}_before")
    return [] if frame is None else [int(frame)]


def plot_volume_curve(ax: Axes, frames: pd.DataFrame, summary: Mapping[str, Any]) -> Axes:
    """LV volume per frame before and after, every beat's ED/ES marked, EF of each curve in the legend.

    Args:
        ax: axes to draw on.
        frames: per-frame table with ``frame``, ``lv_volume_ml_before``, ``lv_volume_ml_after``, and
            optionally ``trusted`` (input frames the correction did not trust are ringed).
        summary: with ``ef_percent_before/after`` (the mean over beats), ``beats_before/after`` (or
            ``ed_frame``/``es_frame``), ``ed_es_source`` and ``frame_time_ms`` (time axis in ms).

    Returns:
        ``ax``.
    """
    t, xlabel, _ = _time_axis(frames, summary)
    before = frames["lv_volume_ml_before"].to_numpy(dtype=float)
    after = frames["lv_volume_ml_after"].to_numpy(dtype=float)
    ax.plot(t, before, "o--", color=_BEFORE, ms=3, label=f"input (EF {_fmt(summary.get('ef_percent_before'), ' %')})")
    ax.plot(t, after, "o-", color=_AFTER, ms=3, label=f"{summary.get('method', 'smoothed')} (EF {_fmt(summary.get('ef_percent_after'), ' %')})")
    source = summary.get("ed_es_source", "")
    for key, name, style in (("ed_frame", "ED", "-"), ("es_frame", "ES", ":")):
        after_frames = _beat_frames(summary, "after", key)
        for k, frame in enumerate(after_frames):
            label = f"{name} ({source}): frame {', '.join(str(f + 1) for f in after_frames)}" if k == 0 else None
            ax.axvline(t[frame], color="k", ls=style, lw=1, label=label)
        moved = [f for f in _beat_frames(summary, "before", key) if f not in after_frames]
        for k, frame in enumerate(moved):
            ax.axvline(t[frame], color=_BEFORE, ls=style, lw=1,
                       label=f"{name} of input: frame {', '.join(str(f + 1) for f in moved)}" if k == 0 else None)
    flagged = frames["inconsistent_before"].to_numpy(dtype=bool) if "inconsistent_before" in frames else None
    if flagged is not None and flagged.any():
        ax.plot(t[flagged], before[flagged], "x", color=_FLAG, ms=7, mew=1.5, label="flagged in input")
    if "trusted" in frames:
        untrusted = ~frames["trusted"].to_numpy(dtype=bool)
        if untrusted.any():
            ax.plot(t[untrusted], after[untrusted], "o", color="tab:orange", ms=8, mfc="none", mew=1.2,
                    label="re-estimated (input not trusted)")
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if xlabel.startswith("frame") and len(t):
        ax.set_xlim(float(np.min(t)) - 0.5, float(np.max(t)) + 0.5)  # no tick at frame 0 on a 1-based axis
    ax.set_ylabel("LV volume (mL, Simpson monoplane)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def _consistency(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from echotemporal.measure.temporal import consistency_metric

    return np.asarray(consistency_metric(values, lo, hi), dtype=float)


def plot_attribute_trajectories(
    axes: np.ndarray, frames: pd.DataFrame, thresholds: AttributeThresholds
) -> np.ndarray:
    """Each attribute's trajectory (left) and consistency metric with ±τ (right), before and after.

    Args:
        axes: (K, 2) array of axes, one row per threshold attribute.
        frames: per-frame table with ``<name>_before/after`` and ``flag_<name>_before/after``.
        thresholds: bounds ``lo``/``hi`` and thresholds ``tau`` per attribute (DESIGN.md §4.1).

    Returns:
        ``axes``.
    """
    t = frames["frame"].to_numpy() + 1  # numbered from 1, as in the Info cfg
    for k, name in enumerate(thresholds.names):
        ax_v, ax_m = axes[k]
        lo, hi, tau = float(thresholds.lo[k]), float(thresholds.hi[k]), float(thresholds.tau[k])
        for when, color, style, marker in (("before", _BEFORE, "--", "x"), ("after", _AFTER, "-", "o")):
            values = frames[f"{name}_{when}"].to_numpy(dtype=float)
            flags = frames[f"flag_{name}_{when}"].to_numpy(dtype=bool)
            metric = _consistency(values, lo, hi) if len(values) >= 3 else np.zeros_like(values)
            ax_v.plot(t, values, style, color=color, lw=1.2, label="input" if when == "before" else "smoothed")
            ax_m.plot(t, metric, style, color=color, lw=1.2)
            if flags.any():
                ax_v.plot(t[flags], values[flags], marker, color=_FLAG, ms=6, mfc="none", mew=1.5,
                          label=f"flagged ({when})")
                ax_m.plot(t[flags], np.nan_to_num(metric[flags]), marker, color=_FLAG, ms=6, mfc="none", mew=1.5)
        for sign in (-1, 1):
            ax_m.axhline(sign * tau, color=_FLAG, ls=":", lw=1)
        ax_v.set_ylabel(_label(name), fontsize="small")
        ax_m.set_ylabel(f"metric (τ = {tau:.3g})", fontsize="small")
        for ax in (ax_v, ax_m):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize="small")
        if k == 0:
            ax_v.legend(fontsize="x-small")
            ax_v.set_title("attribute trajectory")
            ax_m.set_title("consistency metric (|m| > τ flags a frame)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[-1]:
        ax.set_xlabel("frame (from 1)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(float(t.min()) - 0.5, float(t.max()) + 0.5)  # no tick at frame 0
    return axes


def plot_volume_rate(ax: Axes, frames: pd.DataFrame, summary: Mapping[str, Any]) -> Axes:
    """dV/dt before and after (mL/s with a frame time, else mL/frame): ejection below 0, filling above.

    Args:
        ax: axes to draw on.
        frames: per-frame table with ``lv_dvdt_ml_per_frame_before/after``.
        summary: with ``frame_time_ms`` (None: per-frame units).
    """
    t, xlabel, _ = _time_axis(frames, summary)
    step = summary.get("frame_time_ms")
    scale, unit = (1000.0 / float(step), "mL/s") if step else (1.0, "mL/frame")
    for when, color, style in (("before", _BEFORE, "--"), ("after", _AFTER, "-")):
        column = f"lv_dvdt_ml_per_frame_{when}"
        if column in frames:
            ax.plot(t, frames[column].to_numpy(dtype=float) * scale, style, color=color, lw=1.2,
                    label="input" if when == "before" else "corrected")
    ax.axhline(0, color="k", lw=0.6)
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"dV/dt ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def volume_figure(frames: pd.DataFrame, summary: Mapping[str, Any], title: str | None = None) -> Figure:
    """Figure with :func:`plot_volume_curve` above :func:`plot_volume_rate` (shared time axis)."""
    rates = "lv_dvdt_ml_per_frame_after" in frames
    fig = _new_figure(7.0, 6.4 if rates else 4.2)
    if rates:
        ax, ax_rate = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
        plot_volume_rate(ax_rate, frames, summary)
    else:
        ax = fig.add_subplot()
    plot_volume_curve(ax, frames, summary)
    if rates:
        ax.set_xlabel("")  # the shared axis is labelled once, under the rate panel
    ax.set_title(title or "LV volume curve")
    return fig


def attributes_figure(
    frames: pd.DataFrame, thresholds: AttributeThresholds, title: str | None = None
) -> Figure:
    """Figure with :func:`plot_attribute_trajectories`, one row per attribute."""
    n = len(thresholds.names)
    height = 1.7 * n + 0.9
    # Fixed margins: a constrained layout of 2n axes costs seconds at save time.
    fig = _new_figure(10.0, height, layout=None)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.5 / height, top=1 - 0.75 / height, wspace=0.28, hspace=0.12)
    axes = np.asarray(fig.subplots(n, 2, sharex=True, squeeze=False))
    plot_attribute_trajectories(axes, frames, thresholds)
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig


def save_sequence_figures(
    result: SmoothingResult,
    *,
    volume_path: str | Path | None = None,
    attributes_path: str | Path | None = None,
    thresholds: AttributeThresholds | None = None,
    overwrite: bool = False,
    dpi: int = 110,
) -> dict[str, Path]:
    """Write the volume and attribute figures of one result (PNG or any matplotlib format).

    Returns:
        role ("volume_figure", "attributes_figure") -> path written.
    """
    if thresholds is None:
        from echotemporal.measure.temporal import load_thresholds

        thresholds = load_thresholds()
    title = Path(str(result.summary.get("input", ""))).name or None
    written: dict[str, Path] = {}
    jobs = (
        ("volume_figure", volume_path, lambda: volume_figure(result.frames, result.summary, title)),
        ("attributes_figure", attributes_path, lambda: attributes_figure(result.frames, thresholds, title)),
    )
    for role, path, make in jobs:
        if path is None:
            continue
        path = Path(path)
        check_overwrite(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        make().savefig(path, dpi=dpi)
        written[role] = path
    return written
