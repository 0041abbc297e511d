"""Review figures of a batch: one page per patient and a cohort page, drawn from the batch tables.

Only the tables written by :func:`echotemporal.batch.run_batch` are read (``sequences.csv``,
``frames.csv``, ``patients.csv``, ``biplane.csv``), so a finished batch can be reviewed anywhere
without the images or the model. Object-oriented matplotlib on Agg/PDF canvases: no pyplot state.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echotemporal.core.errors import ConfigError
from echotemporal.io.atomic import check_overwrite

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from echotemporal.batch import BatchTables

__all__ = ["patient_figure", "cohort_figure", "write_review", "default_review_path"]

_BEFORE = "0.45"
_AFTER = "tab:blue"
_FLAG = "tab:red"
_PAGE = (11.69, 8.27)  # A4 landscape, inches
_GRID = {"left": 0.065, "right": 0.985, "bottom": 0.07, "top": 0.9, "wspace": 0.18, "hspace": 0.32}


def _new_figure(size: tuple[float, float] = _PAGE) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins rather than constrained layout: the layout solver doubled the time of a page,
    # and a whole-cohort review has hundreds of pages.
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    v = _num(value)
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}{unit}"


def _text(value: Any) -> str:
    """A table cell as text; empty CSV cells come back as NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(value)


def _count(value: Any) -> str:
    v = _num(value)
    return "n/a" if not math.isfinite(v) else str(int(round(v)))


def _method(tables: BatchTables) -> str:
    return str(tables.config.get("method") or "smoothed")


def _view_panel(ax: Axes, view: str, row: dict[str, Any] | None, frames: pd.DataFrame | None, method: str) -> None:
    """LV volume per frame before/after, ED/ES marked, EF and GLS of each curve in the legend."""
    if row is None:
        ax.text(0.5, 0.5, f"no {view} sequence", ha="center", va="center", transform=ax.transAxes, color=_BEFORE)
        ax.set_title(view)
        ax.set_axis_off()
        return
    if row.get("status") != "ok" or frames is None or frames.empty:
        message = textwrap.fill(f"failed: {_text(row.get('error')) or 'no result'}", 60)
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=_FLAG, fontsize="small")
        ax.set_title(f"{view}: failed")
        ax.set_axis_off()
        return
    t = (frames["frame"].to_numpy() if "frame" in frames else np.arange(len(frames))) + 1  # from 1, as in the cfg
    before = frames["lv_volume_ml_before"].to_numpy(dtype=float)
    after = frames["lv_volume_ml_after"].to_numpy(dtype=float)
    ax.plot(
        t, before, "o--", color=_BEFORE, ms=3, zorder=3,
        label=f"input: EF {_fmt(row.get('ef_percent_before'), ' %')}, GLS {_fmt(row.get('gls_percent_before'), ' %')}",
    )
    ax.plot(
        t, after, "o-", color=_AFTER, ms=4, lw=2, zorder=2,
        label=f"{method}: EF {_fmt(row.get('ef_percent_after'), ' %')}, GLS {_fmt(row.get('gls_percent_after'), ' %')}",
    )
    if "inconsistent_before" in frames:
        flagged = frames["inconsistent_before"].astype(bool).to_numpy()
        if flagged.any():
            ax.plot(t[flagged], before[flagged], "x", color=_FLAG, ms=7, mew=1.5, label="inconsistent in input")
    for key, name, style in (("ed_frame", "ED", "-"), ("es_frame", "ES", ":")):
        frame = _num(row.get(key)) + 1
        if math.isfinite(frame):
            ax.axvline(frame, color="k", ls=style, lw=1, label=f"{name} = frame {int(frame)}")
            ax.plot([frame], [np.interp(frame, t, after)], "v" if name == "ED" else "^", color="k", ms=6)
    outcome = _text(row.get("outcome"))
    ax.set_title(
        (f"{view} [{outcome}]" if outcome else view) + f": inconsistent frames {_count(row.get('n_inconsistent_before'))} → "
        f"{_count(row.get('n_inconsistent_after'))}, invalid "
        f"{_count(row.get('n_invalid_before'))} → {_count(row.get('n_invalid_after'))}",
        fontsize="medium",
    )
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("frame (from 1, as in the Info cfg)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("LV volume (mL, monoplane)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def _biplane_panel(ax: Axes, patient_row: dict[str, Any] | None, curve: pd.DataFrame | None, method: str) -> None:
    """Biplane volume curve on normalized time ED→ES, before/after, EDV/ESV/EF in the legend."""
    mode = _text((patient_row or {}).get("mode"))
    if curve is None or curve.empty:
        why = "monoplane only: one view available" if mode == "monoplane" else "no biplane curve"
        error = _text((patient_row or {}).get("error"))
        if error:
            why += f"\n{textwrap.fill(error, 60)}"
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color=_BEFORE)
        ax.set_title("biplane (2CH + 4CH)")
        ax.set_axis_off()
        return
    row = patient_row or {}
    t = curve["t"].to_numpy(dtype=float)
    for when, color, style, name, z in (("before", _BEFORE, "o--", "input", 3), ("after", _AFTER, "o-", method, 2)):
        ax.plot(
            t, curve[f"volume_ml_{when}"].to_numpy(dtype=float), style, color=color, ms=3, zorder=z,
            label=(
                f"{name}: EDV {_fmt(row.get(f'edv_ml_{when}'), ' mL')}, ESV {_fmt(row.get(f'esv_ml_{when}'), ' mL')}, "
                f"EF {_fmt(row.get(f'ef_percent_{when}'), ' %')}"
            ),
        )
    ax.axvline(0.0, color="k", lw=1)
    ax.axvline(1.0, color="k", ls=":", lw=1)
    info = _num(row.get("info_ef_percent"))
    title = "biplane Simpson (2CH + 4CH)"
    if math.isfinite(info):
        title += f"; Info cfg EF {info:.1f} %"
    ax.set_title(title, fontsize="medium")
    ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["ED", "0.25", "0.5", "0.75", "ES"])
    ax.set_xlabel("normalized time ED → ES")
    ax.set_ylabel("LV volume (mL, biplane)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def _beats_text(beats: pd.DataFrame | None, view: str, when: str) -> str:
    """A view's per-beat EF ("62.1, 60.4 (61.3 ± 1.2)"), or "" with fewer than two beats."""
    if beats is None or beats.empty:
        return ""
    mine = beats[(beats["view"].astype(str) == view) & (beats["when"] == when)]
    values = mine["ef_percent"].to_numpy(dtype=float)
    if values.size < 2:
        return ""
    return f"{', '.join(f'{v:.1f}' for v in values)} ({np.nanmean(values):.1f}±{np.nanstd(values, ddof=1):.1f})"


def _table_panel(ax: Axes, patient_row: dict[str, Any] | None, rows: dict[str, dict[str, Any]], method: str,
                 beats: pd.DataFrame | None = None) -> None:
    """The patient's indices as a small table: what a reviewer copies into a report."""
    row = patient_row or {}
    ax.set_axis_off()
    cells = [
        ["EDV (mL)", _fmt(row.get("edv_ml_before")), _fmt(row.get("edv_ml_after")), _fmt(row.get("info_edv_ml"))],
        ["ESV (mL)", _fmt(row.get("esv_ml_before")), _fmt(row.get("esv_ml_after")), _fmt(row.get("info_esv_ml"))],
        ["EF (%)", _fmt(row.get("ef_percent_before")), _fmt(row.get("ef_percent_after")),
         _fmt(row.get("info_ef_percent"))],
        ["GLS (%)", _fmt(row.get("gls_percent_before")), _fmt(row.get("gls_percent_after")), ""],
    ]
    for view, r in rows.items():
        if r.get("status") == "ok":
            cells.append([
                f"{view} inconsistent / invalid frames",
                f"{_count(r.get('n_inconsistent_before'))} / {_count(r.get('n_invalid_before'))}",
                f"{_count(r.get('n_inconsistent_after'))} / {_count(r.get('n_invalid_after'))}",
                "",
            ])
            per_beat = (_beats_text(beats, view, "before"), _beats_text(beats, view, "after"))
            if any(per_beat):
                cells.append([f"{view} EF per beat (mean ± SD)", *per_beat, ""])
        else:
            cells.append([f"{view}", "failed", "", ""])
    table = ax.table(
        cellText=cells, colLabels=["", "input", method, "Info cfg"], loc="center", cellLoc="center",
        colWidths=[0.46, 0.18, 0.18, 0.18],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.4)
    views = _text(row.get("view_outcomes")) or _text(row.get("views")) or "none"
    ax.set_title(f"{_text(row.get('mode')) or 'no'} indices (views: {views})", fontsize="medium")


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if table is None or table.empty else table.to_dict("records")


def _mask_strip(fig: Figure, cell: Any, out_dir: Path | None, rows: dict[str, dict[str, Any]],
                frames: pd.DataFrame, patient: str, views: list[str], per_view: int = 5) -> None:
    """Before/after masks of each view's changed and flagged frames (ED/ES when none), read from the
    batch folder: the input file named in sequences.csv, the corrected file under OUT."""
    from echotemporal.io import read_sequence
    from echotemporal.plotting.contours import frame_notes, plot_frame_contours, review_frames

    grid = cell.subgridspec(1, per_view * len(views), wspace=0.05)
    box = cell.get_position(fig)
    fig.text(box.x0, box.y1 + 0.035, "masks of the changed and flagged frames: input dashed white, corrected cyan "
             "(LV red, myocardium grey, LA blue; frames from 1)", fontsize="small")
    for v, view in enumerate(views):
        row = rows.get(view)
        axes = [fig.add_subplot(grid[0, v * per_view + k]) for k in range(per_view)]
        for ax in axes:
            ax.set_axis_off()
        if row is None or row.get("status") != "ok" or out_dir is None:
            continue
        mine = frames[(frames["patient"].astype(str) == str(patient)) & (frames["view"].astype(str) == view)]
        try:
            before = read_sequence(str(row["input"])).labels
            after = read_sequence(out_dir / str(row["output"])).labels
        except Exception:  # noqa: BLE001 - moved or deleted files: the curves still review the sequence
            axes[0].text(0, 0.5, f"{view}: masks not found\n(input or output moved)", fontsize="x-small",
                         color=_FLAG, transform=axes[0].transAxes)
            continue
        changed = mine["changed"].astype(bool).to_numpy() if "changed" in mine else np.zeros(len(before), bool)
        flagged = mine["inconsistent_before"].astype(bool).to_numpy() | ~mine["valid_before"].astype(bool).to_numpy()
        ed_es = [int(_num(row.get(k))) for k in ("ed_frame", "es_frame") if math.isfinite(_num(row.get(k)))]
        picked = review_frames(changed, flagged, limit=per_view, fallback=ed_es)
        notes = frame_notes(picked, changed, flagged)
        for k, frame in enumerate(picked):
            axes[k].set_axis_on()
            note = notes[k] or ("ED/ES" if frame in ed_es else "")
            plot_frame_contours(axes[k], before[frame], after[frame], f"{view} frame {frame + 1}\n{note}")


def patient_figure(tables: BatchTables, patient: str, out_dir: str | Path | None = None) -> Figure:
    """One review page for a patient: both views' volume curves, the biplane curve, the indices, and
    the before/after masks of the frames the correction changed or flagged (frames from 1).

    Args:
        tables: the batch tables (``echotemporal.batch.read_tables``).
        patient: patient id as in ``sequences.csv`` (e.g. "patient0001").
        out_dir: the batch folder, to draw the masks from its files (None: no masks).

    Returns:
        An A4-landscape Figure on an Agg canvas.

    Raises:
        ConfigError: the patient is not in the batch.
    """
    seq = tables.sequences
    mine = seq[seq["patient"].astype(str) == str(patient)]
    if mine.empty:
        known = ", ".join(seq["patient"].astype(str).unique()[:5])
        raise ConfigError(f"patient {patient!r} is not in this batch (e.g. {known}); pick one from sequences.csv")
    method = _method(tables)
    rows = {str(r["view"]): r for r in _records(mine)}
    frames = tables.frames
    patients = tables.patients
    patient_rows = _records(patients[patients["patient"].astype(str) == str(patient)]) if not patients.empty else []
    patient_row = patient_rows[0] if patient_rows else None
    curve = None
    if not tables.biplane.empty:
        curve = tables.biplane[tables.biplane["patient"].astype(str) == str(patient)]

    fig = _new_figure()
    grid = fig.add_gridspec(3, 2, height_ratios=(1.0, 1.0, 0.62), **{**_GRID, "bottom": 0.02, "hspace": 0.42})
    views = list(dict.fromkeys(["2CH", "4CH", *rows]))[:2]
    for k, view in enumerate(views):
        ax = fig.add_subplot(grid[0, k])
        view_frames = None
        if not frames.empty:
            view_frames = frames[(frames["patient"].astype(str) == str(patient)) & (frames["view"].astype(str) == view)]
        _view_panel(ax, view, rows.get(view), view_frames, method)
    _biplane_panel(fig.add_subplot(grid[1, 0]), patient_row, curve, method)
    beats = tables.beats
    if beats is not None and not beats.empty:
        beats = beats[beats["patient"].astype(str) == str(patient)]
    _table_panel(fig.add_subplot(grid[1, 1]), patient_row, rows, method, beats)
    _mask_strip(fig, grid[2, :], None if out_dir is None else Path(out_dir), rows, frames, patient, views)
    title = f"{patient}"
    if patient_row is not None:
        title += (
            f" — {patient_row.get('mode')} EF {_fmt(patient_row.get('ef_percent_before'), ' %')} → "
            f"{_fmt(patient_row.get('ef_percent_after'), ' %')} ({method})"
        )
        info = _num(patient_row.get("info_ef_percent"))
        if math.isfinite(info):
            title += f", Info cfg EF {info:.1f} %"
    fig.suptitle(title, fontsize="large")
    return fig


def _paired_counts(ax: Axes, before: np.ndarray, after: np.ndarray, what: str, method: str) -> None:
    """Per-sequence counts before vs after, jittered so that equal counts stay visible."""
    ok = np.isfinite(before) & np.isfinite(after)
    before, after = before[ok], after[ok]
    rng = np.random.default_rng(0)  # fixed jitter: the same page every time
    jitter = rng.uniform(-0.15, 0.15, size=(2, before.size))
    ax.scatter(before + jitter[0], after + jitter[1], s=14, alpha=0.6, color=_AFTER, edgecolors="none")
    top = max(1.0, float(np.max(before, initial=0)), float(np.max(after, initial=0))) + 0.5
    ax.plot([-0.5, top], [-0.5, top], color=_BEFORE, lw=1, ls="--")
    ax.set_xlim(-0.5, top)
    ax.set_ylim(-0.5, top)
    ax.set_xlabel(f"{what} frames, input")
    ax.set_ylabel(f"{what} frames, {method}")
    ax.set_title(
        f"{what} frames per sequence: total {int(before.sum())} → {int(after.sum())}; "
        f"{int((after == 0).sum())}/{after.size} sequences at 0",
        fontsize="medium",
    )
    ax.grid(alpha=0.3)


def _ef_vs_info(ax: Axes, pat: pd.DataFrame, method: str) -> None:
    """Our EF (input and corrected) against the Info cfg EF, one point per patient."""
    info = pat["info_ef_percent"].to_numpy(dtype=float) if not pat.empty else np.zeros(0)
    if np.isfinite(info).any():
        for when, color, marker, name in (("before", _BEFORE, "x", "input"), ("after", _AFTER, "o", method)):
            ours = pat[f"ef_percent_{when}"].to_numpy(dtype=float)
            both = np.isfinite(ours) & np.isfinite(info)
            mae = float(np.mean(np.abs(ours[both] - info[both]))) if both.any() else float("nan")
            ax.scatter(info, ours, s=18, color=color, marker=marker, label=f"{name}: mean |Δ| {_fmt(mae)} points")
        finite = info[np.isfinite(info)]
        span = [finite.min() - 5, finite.max() + 5]
        ax.plot(span, span, color=_BEFORE, lw=1, ls="--")
        ax.legend(fontsize="small")
        ax.set_title("our EF vs Info cfg EF", fontsize="medium")
    else:
        ax.text(0.5, 0.5, "no Info cfg EF in this batch", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("our EF vs Info cfg EF", fontsize="medium")
    ax.set_xlabel("Info cfg EF (%)")
    ax.set_ylabel("our EF (%)")
    ax.grid(alpha=0.3)


def cohort_figure(tables: BatchTables) -> Figure:
    """Cohort page: EF before vs after, our EF vs the Info cfg EF, inconsistent and invalid frames.

    Args:
        tables: the batch tables (``echotemporal.batch.read_tables``).

    Returns:
        An A4-landscape Figure on an Agg canvas.
    """
    method = _method(tables)
    seq, pat = tables.sequences, tables.patients
    n_ok = int((seq["status"] == "ok").sum()) if not seq.empty else 0
    n_failed = len(seq) - n_ok
    fig = _new_figure()
    axes = fig.subplots(2, 2, gridspec_kw=_GRID)

    ax = axes[0, 0]
    if not pat.empty:
        ef_b = pat["ef_percent_before"].to_numpy(dtype=float)
        ef_a = pat["ef_percent_after"].to_numpy(dtype=float)
        biplane = (pat["mode"] == "biplane").to_numpy()
        ax.scatter(ef_b[biplane], ef_a[biplane], s=18, color=_AFTER, label=f"biplane ({int(biplane.sum())})")
        ax.scatter(ef_b[~biplane], ef_a[~biplane], s=18, facecolors="none", edgecolors=_AFTER,
                   label=f"monoplane ({int((~biplane).sum())})")
        both = np.isfinite(ef_b) & np.isfinite(ef_a)
        if both.any():
            lo = float(min(ef_b[both].min(), ef_a[both].min())) - 5
            hi = float(max(ef_b[both].max(), ef_a[both].max())) + 5
            ax.plot([lo, hi], [lo, hi], color=_BEFORE, lw=1, ls="--")
            ax.set_title(f"EF per patient: median |change| {np.median(np.abs(ef_a[both] - ef_b[both])):.1f} points",
                         fontsize="medium")
        ax.legend(fontsize="small")
    ax.set_xlabel("EF input (%)")
    ax.set_ylabel(f"EF {method} (%)")
    ax.grid(alpha=0.3)

    _ef_vs_info(axes[0, 1], pat, method)

    okseq = seq[seq["status"] == "ok"] if not seq.empty else seq
    for ax, what, key in ((axes[1, 0], "inconsistent", "n_inconsistent"), (axes[1, 1], "invalid", "n_invalid")):
        if okseq.empty:
            ax.set_axis_off()
            continue
        _paired_counts(
            ax, okseq[f"{key}_before"].to_numpy(dtype=float), okseq[f"{key}_after"].to_numpy(dtype=float), what, method
        )

    n_patients = seq["patient"].nunique() if not seq.empty else 0
    outcomes = ""
    if "outcome" in seq and not seq.empty:
        counts = seq["outcome"].fillna("failed").value_counts()
        outcomes = " (" + ", ".join(f"{int(counts[o])} {o}" for o in ("clean", "residue", "worse", "failed")
                                     if o in counts) + ")"
    fig.suptitle(
        f"Cohort: {n_patients} patients, {n_ok} sequences ok{outcomes}, {n_failed} failed — method {method}",
        fontsize="large",
    )
    if n_failed:
        failed = seq[seq["status"] != "ok"]
        lines = [f"{r['patient']} {r['view']}: {_text(r.get('error'))}" for r in _records(failed.head(4))]
        more = f" (+{n_failed - 4} more in sequences.csv)" if n_failed > 4 else ""
        fig.text(0.01, 0.005, textwrap.shorten("failed: " + " | ".join(lines), 220) + more, fontsize="x-small",
                 color=_FLAG, va="bottom")
    return fig


def default_review_path(out_dir: str | Path, patient: str | None = None) -> Path:
    """``OUT/review.pdf``, or ``OUT/review_<patient>.pdf`` for one patient."""
    return Path(out_dir) / ("review.pdf" if patient is None else f"review_{patient}.pdf")


def write_review(
    out_dir: str | Path,
    output: str | Path | None = None,
    *,
    patient: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
    progress: bool = False,
) -> tuple[Path, int]:
    """Write the review of a batch: a multi-page PDF (cohort page, then one page per patient), or one
    patient's page.

    Args:
        out_dir: the batch output folder (holds ``sequences.csv`` etc.).
        output: file to write; default :func:`default_review_path`. The whole batch needs ``.pdf``;
            one patient may be any matplotlib format (``.pdf``, ``.png``, ``.svg``).
        patient: just this patient's page.
        overwrite: replace an existing file.
        dpi: resolution of raster output.
        progress: a progress bar (patients done / total) on stderr.

    Returns:
        (path written, number of pages).

    Raises:
        OutputExistsError: ``output`` exists and not ``overwrite``.
        ConfigError: unknown patient, or a non-PDF output for the whole batch.
        InputFileError: ``out_dir`` is not a batch output folder.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from tqdm import tqdm

    from echotemporal.batch import read_tables

    output = default_review_path(out_dir, patient) if output is None else Path(output)
    check_overwrite(output, overwrite)
    if patient is None and output.suffix.lower() != ".pdf":
        raise ConfigError(
            f"{output}: the whole-batch review is a multi-page PDF; use a .pdf name (or --patient for a PNG)"
        )
    tables = read_tables(out_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp{output.suffix}")
    try:
        if patient is not None:
            patient_figure(tables, patient, out_dir).savefig(tmp, dpi=dpi)
            n_pages = 1
        else:
            patients = list(dict.fromkeys(tables.sequences["patient"].astype(str)))
            with PdfPages(tmp, metadata={"Title": f"echotemporal batch review: {Path(out_dir).name}"}) as pdf:
                pdf.savefig(cohort_figure(tables))
                for name in tqdm(patients, desc="review", unit="patient", file=sys.stderr, disable=not progress):
                    pdf.savefig(patient_figure(tables, name, out_dir))
                n_pages = pdf.get_pagecount()
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return output, n_pages
