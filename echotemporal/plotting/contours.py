"""Before/after masks of the frames a correction changed or flagged: what a cardiologist checks.

Each panel shows one frame's input labels (LV, myocardium, LA as muted fills) with the input's
endocardial and epicardial contours (white, dashed) and the corrected ones (cyan, solid), cropped to
the heart. Frames are numbered from 1, as in CAMUS Info cfg files. Object-oriented matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from echotemporal.core.boxes import heart_mask, mask_box
from echotemporal.core.labels import Label
from echotemporal.io.atomic import check_overwrite, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["review_frames", "plot_frame_contours", "contour_figure", "frame_notes", "save_contour_figure"]

#: Fills of background, LV, MYO, LA under the contours.
_FILLS = ((0.0, 0.0, 0.0), (0.55, 0.15, 0.15), (0.35, 0.35, 0.35), (0.15, 0.25, 0.5))
_MARGIN_PX = 8


def review_frames(changed: np.ndarray, flagged: np.ndarray, limit: int = 6, fallback: Sequence[int] = ()) -> list[int]:
    """0-based frames worth showing: changed and flagged first, then changed, then flagged (at most
    ``limit``, spread over the sequence); ``fallback`` (e.g. ED and ES) when there are none.

    Args:
        changed: (T,) bool, frames the correction changed.
        flagged: (T,) bool, input frames flagged inconsistent or invalid.
    """
    changed, flagged = np.asarray(changed, bool), np.asarray(flagged, bool)
    picked: list[int] = []
    for group in (changed & flagged, changed & ~flagged, flagged & ~changed):
        candidates = np.flatnonzero(group)
        room = limit - len(picked)
        if room <= 0:
            break
        if candidates.size > room:
            candidates = candidates[np.linspace(0, candidates.size - 1, room).round().astype(int)]
        picked += [int(c) for c in candidates]
    if not picked:
        picked = [int(f) for f in fallback if 0 <= int(f) < len(changed)][:limit]
    return sorted(set(picked))


def plot_frame_contours(ax: Axes, before: np.ndarray, after: np.ndarray, title: str = "") -> Axes:
    """One frame: (H, W) input labels filled, input contours dashed white, corrected contours cyan."""
    from matplotlib.colors import ListedColormap

    box = mask_box(heart_mask(before) | heart_mask(after), _MARGIN_PX) or (slice(None), slice(None))
    b, a = before[box], after[box]
    ax.imshow(b, cmap=ListedColormap(_FILLS), vmin=0, vmax=3, interpolation="nearest")
    for labels, color, style in ((b, "white", "--"), (a, "cyan", "-")):
        for mask in (labels == Label.LV, heart_mask(labels)):
            if mask.any() and not mask.all():
                ax.contour(mask.astype(float), levels=[0.5], colors=color, linestyles=style, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize="x-small")
    return ax


def contour_figure(
    before: np.ndarray, after: np.ndarray, frames: Sequence[int], title: str = "", notes: Sequence[str] = ()
) -> Figure:
    """A row of :func:`plot_frame_contours` panels for the 0-based ``frames`` of (T, H, W) sequences.

    Args:
        notes: one short note per frame (e.g. "changed, flagged"), shown under its number.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(frames))
    fig = Figure(figsize=(2.2 * n, 2.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, n))
    for k, frame in enumerate(frames):
        note = f"\n{notes[k]}" if k < len(notes) and notes[k] else ""
        plot_frame_contours(axes[k], before[frame], after[frame], f"frame {frame + 1}{note}")
    if not frames:
        axes[0].set_axis_off()
    fig.suptitle(f"{title} (input dashed white, corrected cyan; frames from 1)", fontsize="small")
    return fig


def frame_notes(frames: Sequence[int], changed: np.ndarray, flagged: np.ndarray) -> list[str]:
    """"changed", "flagged" or both for each 0-based frame."""
    return [", ".join(w for w, on in (("changed", changed[f]), ("flagged", flagged[f])) if on) for f in frames]


def save_contour_figure(
    path: str | Path, before: np.ndarray, after: np.ndarray, changed: np.ndarray, flagged: np.ndarray,
    *, title: str = "", fallback: Sequence[int] = (), overwrite: bool = False, dpi: int = 120,
) -> Path:
    """Write the contours of the changed/flagged frames (:func:`review_frames`) of one sequence to ``path``."""
    check_overwrite(path, overwrite)
    frames = review_frames(changed, flagged, fallback=fallback)
    fig = contour_figure(before, after, frames, title, frame_notes(frames, changed, flagged))
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png"),
                        overwrite=overwrite)
