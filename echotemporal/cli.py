"""Command-line interface: one click group, thin commands.

Each command resolves paths, calls one library function and prints one summary line. Heavy imports
(torch, matplotlib, pandas) happen inside the command bodies so that ``--help`` is instant.
Library exceptions become one-line errors here and only here; ``-v`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from echotemporal import __version__
from echotemporal.core.config import METHODS
from echotemporal.core.errors import EchoTemporalError


def _friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and common OS errors) into one-line ClickExceptions."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        verbose = bool(ctx.find_root().params.get("verbose"))
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (EchoTemporalError, OSError, ValueError) as exc:
            if verbose:
                raise
            raise click.ClickException(_cli_message(exc)) from None

    return wrapper


#: Python-API words some library messages carry, in the CLI's words.
_CLI_WORDS = {
    " (overwrite=True)": "",
    "pass ed_frame/es_frame from the Info cfg": "give ED/ES with --info or --ed/--es",
    " or pass root=": " (README: 'Where CAMUS data comes from'), or use 'prepare CAMUS_ROOT' or 'prepare phantoms'",
}


def _cli_message(exc: BaseException) -> str:
    """The one line a user reads: OS errors rewritten (path, failure, fix), API words in CLI words."""
    from echotemporal.core.os_errors import describe_os_error

    if isinstance(exc, OSError) and not isinstance(exc, EchoTemporalError) and exc.errno is not None:
        return describe_os_error(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    for api, cli in _CLI_WORDS.items():
        text = text.replace(api, cli)
    # Library messages list 0-based frame indices (core.labels.frames_text); a person reads frames
    # numbered from 1, as in the cfg.
    return re.sub(r"frame\(s\) \[([\d, ]*)\] \(0-based\)",
                  lambda m: "frame(s) " + ", ".join(str(int(f) + 1) for f in m[1].split(",") if f.strip()), text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="echotemporal")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
def main(verbose: bool) -> None:
    """Make segmented echocardiography sequences temporally and anatomically consistent."""


# ---- options shared by several commands, defined once ----


class _Option(click.Option):
    """A click option whose old spellings (``hidden_names``) still parse but do not show in ``--help``."""

    def __init__(self, *args: Any, hidden_names: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_names = hidden_names

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.hidden_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def _output_option(help: str, *, folder: bool = False, old: tuple[str, ...] = (), **kwargs: Any) -> Callable[..., Any]:
    """``-o/--output``: what the command writes (a file, or a ``folder``); ``old`` spellings stay hidden aliases."""
    path = click.Path(path_type=Path, file_okay=not folder, dir_okay=folder)
    return click.option("-o", "--output", *old, "output", cls=_Option, hidden_names=old, type=path, help=help, **kwargs)


def _overwrite_option(help: str = "Replace existing outputs.") -> Callable[..., Any]:
    return click.option("--overwrite", is_flag=True, help=help)


def _weights_option(help: str = "Model weights file or name [default: shipped model].") -> Callable[..., Any]:
    return click.option("--weights", default=None, metavar="W", help=help)


def _config_option(help: str = "Smoothing preset YAML (see configs/smoothing.yaml); flags override it.") -> Callable[..., Any]:
    return click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=help)


def _spacing_option(help: str = "Pixel size in mm when the header's is missing or wrong (0.05-2 mm).") -> Callable[..., Any]:
    return click.option("--spacing", type=(float, float), default=None, metavar="ROW_MM COL_MM", help=help)


def _allow_implausible_option(
    help: str = "Warn instead of refusing ED/ES that give no EF or a transposed/rotated sequence.",
) -> Callable[..., Any]:
    return click.option("--allow-implausible", is_flag=True, help=help)


def _frame_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--ed/--es`` (1-based, as in the Info cfg), ``--fps``, ``--spacing`` and ``--allow-implausible``."""
    options = [
        click.option("--ed", type=click.IntRange(min=1), default=None, metavar="N",
                     help="ED frame, numbered from 1 as in the Info cfg (with --es; overrides the cfg)."),
        click.option("--es", type=click.IntRange(min=1), default=None, metavar="N",
                     help="ES frame, numbered from 1 (with --ed)."),
        click.option("--fps", type=float, default=None, help="Frames per second [default: the file's frame time]."),
        _spacing_option(),
        _allow_implausible_option(),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _zero_based(ed: int | None, es: int | None) -> tuple[int | None, int | None]:
    """The 1-based ``--ed/--es`` as the library's 0-based indices."""
    return (None if ed is None else ed - 1), (None if es is None else es - 1)


#: Exit codes of smooth and batch (also in their --help and the README).
EXIT_RESIDUE, EXIT_WORSE, EXIT_FAILED = 3, 4, 1


def _exit_code(outcomes: list[str], strict: bool) -> int:
    """The exit code of a run whose sequences had these outcomes (the most serious wins)."""
    if "failed" in outcomes:
        return EXIT_FAILED
    if "worse" in outcomes:
        return EXIT_WORSE
    if strict and "residue" in outcomes:
        return EXIT_RESIDUE
    return 0


# ---- commands are added below, one block each, in the order of DESIGN.md §8 ----


@contextlib.contextmanager
def _one_line_warnings() -> Any:
    """Show library warnings (degenerate frames) as one stderr line each, for this command only."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: click.echo(f"warning: {_cli_message(message)}", err=True)
        yield


@main.command()
@click.argument("seq", type=click.Path(path_type=Path, dir_okay=False))
@_output_option("Corrected sequence [default: <stem>_smoothed.nii.gz beside SEQ].", default=None)
@click.option("--method", type=click.Choice(METHODS), default=None,
              help="Correction method [default: arvae, or the --config preset's].")
@_weights_option()
@click.option("--info", "info_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CAMUS Info_{2CH,4CH}.cfg giving ED/ES (else detected from the volume curve).")
@_config_option()
@click.option("--report-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the CSV/JSON/figures [default: the output's folder].")
@click.option("--plot/--no-plot", default=False, show_default=True,
              help="Write the volume and attribute figures and the before/after contours of changed frames.")
@_frame_options
@click.option("--force", is_flag=True, help="Keep a correction that scored worse than the input (default: keep the input).")
@click.option("--strict", is_flag=True, help="Exit 3 when frames are still flagged or invalid (residue).")
@_overwrite_option()
@_friendly_errors
def smooth(seq: Path, output: Path | None, method: str | None, weights: str | None, info_path: Path | None,
           config_path: Path | None, report_dir: Path | None, plot: bool, ed: int | None, es: int | None,
           fps: float | None, spacing: tuple[float, float] | None, allow_implausible: bool, force: bool,
           strict: bool, overwrite: bool) -> None:
    """Correct the temporal and anatomical glitches of one segmented sequence SEQ.

    The summary line starts with the outcome: CLEAN, RESIDUE (frames still flagged or invalid: see
    the summary JSON) or WORSE (the correction scored worse than the input on the inconsistent/invalid
    frame counts, or put the ESV at or above the EDV of the given ED/ES; the input is written unchanged
    unless --force). Frames are numbered from 1, as in the Info cfg.

    \b
    Exit codes: 0 clean or residue, 3 residue with --strict, 4 worse,
    1 error, 2 usage error.
    """
    import dataclasses

    from echotemporal.core.config import SmoothingConfig, load_config
    from echotemporal.outputs.files import summary_line
    from echotemporal.outputs.sequence_file import smooth_file

    config = load_config(config_path, SmoothingConfig) if config_path is not None else None
    if force:
        config = dataclasses.replace(config or SmoothingConfig(), on_worse="keep_output")
    ed0, es0 = _zero_based(ed, es)
    with _one_line_warnings():
        result = smooth_file(seq, output, method=method, model=weights, config=config, info_path=info_path,
                             report_dir=report_dir, plot=plot, overwrite=overwrite, ed_frame=ed0, es_frame=es0,
                             spacing_mm=spacing, fps=fps, allow_implausible=allow_implausible)
    click.echo(summary_line(result))
    code = _exit_code([result.summary.get("outcome", "clean")], strict)
    if code:
        sys.exit(code)


@main.command()
@click.argument("seq", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON instead of a summary.")
@click.option("--info", "info_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CAMUS Info_{2CH,4CH}.cfg giving ED/ES (else detected from the volume curve).")
@_frame_options
@_friendly_errors
def check(seq: Path, as_json: bool, info_path: Path | None, ed: int | None, es: int | None, fps: float | None,
          spacing: tuple[float, float] | None, allow_implausible: bool) -> None:
    """Report inconsistent frames, anatomical validity and clinical indices of SEQ (no model).

    Frames are numbered from 1, as in the Info cfg (the --json report keeps 0-based indices).
    """
    import json

    from echotemporal.measure.check import check_file, format_report

    ed0, es0 = _zero_based(ed, es)
    with _one_line_warnings():
        report = check_file(seq, info_path, ed_frame=ed0, es_frame=es0, spacing_mm=spacing, fps=fps,
                            allow_implausible=allow_implausible)
    for message in report["warnings"]:
        click.echo(f"warning: {_cli_message(Warning(message))}", err=True)
    click.echo(json.dumps(report, indent=2, allow_nan=False) if as_json else format_report(report))


@main.command()
@_output_option("Folder for the phantom, its correction, report and figures.", folder=True, old=("--output-dir",),
                default="echotemporal-demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Phantom and corruption seed.")
@_weights_option()
@_overwrite_option("Replace existing demo files.")
@_friendly_errors
def demo(output: Path, seed: int, weights: str | None, overwrite: bool) -> None:
    """Smooth a generated, corrupted phantom with the shipped model and write everything to a folder."""
    from echotemporal.outputs.files import summary_line
    from echotemporal.outputs.sequence_file import run_demo

    with _one_line_warnings():
        result, files = run_demo(output, seed=seed, overwrite=overwrite, model=weights)
    click.echo(f"{summary_line(result)}; demo files in {output}/ "
               f"(figures {files['volume_figure'].name}, {files['attributes_figure'].name})")


@main.command()
@click.argument("camus_root", type=click.Path(path_type=Path, file_okay=False))
@_output_option("Output folder OUT: corrected tree mirroring CAMUS_ROOT, tables, config.yaml.", folder=True,
                old=("--out",), required=True)
@click.option("--suffix", default="_half_sequence_gt", show_default=True,
              help="File-name part after the view, e.g. _half_sequence_gt or your segmenter's _half_sequence_pred.")
@click.option("--views", default="2CH,4CH", show_default=True, help="Comma-separated views to process.")
@click.option("--ed-es-pairs", is_flag=True,
              help="Native CAMUS-2019 layout: each view's _ED_gt.mhd and _ES_gt.mhd masks as a 2-frame sequence "
                   "(indices and per-frame checks; no temporal step). --suffix then defaults to _gt.")
@click.option("--method", type=click.Choice(METHODS), default=None,
              help="Correction method [default: arvae, or the --config preset's].")
@_weights_option()
@_config_option()
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Local worker processes, one model and one torch thread each (0: in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster instead, e.g. tcp://host:8786 (needs echotemporal[dask]).")
@click.option("--resume", is_flag=True, help="Keep the sequences OUT already finished; process the rest.")
@_overwrite_option("Redo a batch into an OUT that already holds results (removes what it no longer produces).")
@click.option("--fps", type=float, default=None, help="Frames per second of every sequence [default: each file's header].")
@_spacing_option("Pixel size in mm of every sequence, replacing each header's (0.05-2 mm) "
                 "[default: each file's header; a sequence without one fails].")
@_allow_implausible_option("Process sequences with implausible ED/ES or orientation (with a warning) instead of failing them.")
@click.option("--force", is_flag=True, help="Keep corrections that scored worse than their input (default: keep the input).")
@click.option("--strict", is_flag=True, help="Exit 3 when a sequence has frames still flagged or invalid (residue).")
# The default is batch.signals.SEQUENCE_TIME_LIMIT_S, written out: --help must not import the batch package.
@click.option("--time-limit", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="Stop a sequence still running after this long and record it as failed (0: no limit; "
                   "local workers only).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@_friendly_errors
def batch(camus_root: Path, output: Path, suffix: str, views: str, ed_es_pairs: bool, method: str | None,
          weights: str | None, config_path: Path | None, workers: int, scheduler: str | None, resume: bool, overwrite: bool,
          fps: float | None, spacing: tuple[float, float] | None, allow_implausible: bool, force: bool, strict: bool,
          time_limit: float, progress: bool) -> None:
    """Smooth every sequence of a CAMUS tree CAMUS_ROOT; per-sequence, per-frame and patient tables in OUT.

    Each sequence's outcome (clean, residue, worse, failed) is in sequences.csv; the run ends with
    their count. OUT is locked while a batch runs; Ctrl-C, SIGTERM and SIGHUP leave consistent
    tables (rerun with --resume).

    \b
    Exit codes: 0 all clean or residue, 3 residue with --strict,
    4 a sequence worse, 1 a sequence failed or an error, 2 usage error,
    130/143/129 interrupted by Ctrl-C/SIGTERM/SIGHUP.
    """
    import dataclasses

    from echotemporal.batch import run_batch
    from echotemporal.batch.signals import Terminated
    from echotemporal.core.config import SmoothingConfig, load_config

    config = load_config(config_path, SmoothingConfig) if config_path is not None else None
    if force:
        config = dataclasses.replace(config or SmoothingConfig(), on_worse="keep_output")
    view_list = tuple(v.strip() for v in views.split(",") if v.strip())
    if ed_es_pairs and click.get_current_context().get_parameter_source("suffix").name == "DEFAULT":
        suffix = "_gt"
    try:
        with _one_line_warnings():
            summary = run_batch(camus_root, output, suffix=suffix, views=view_list, method=method, weights=weights,
                                config=config, workers=workers, scheduler=scheduler, resume=resume,
                                overwrite=overwrite, progress=progress, fps=fps, spacing_mm=spacing,
                                allow_implausible=allow_implausible, ed_es_pairs=ed_es_pairs,
                                time_limit_s=time_limit or None)
    except KeyboardInterrupt as exc:
        what = f"stopped by {exc.args[0]}" if isinstance(exc, Terminated) else "interrupted"
        click.echo(f"{what}: tables of the finished sequences are in {output}/; rerun with --resume", err=True)
        sys.exit(128 + exc.signum if isinstance(exc, Terminated) else 130)
    outcomes = ", ".join(f"{n} {name}" for name, n in summary.outcomes.items())
    modes = ", ".join(f"{n} {mode}" for mode, n in summary.modes.items())
    click.echo(f"{summary.n_sequences} sequences: {outcomes}"
               + (f" ({summary.n_skipped} from an earlier run)" if summary.n_skipped else "")
               + f"; patients: {modes}; {summary.seconds:.1f} s; tables in {summary.out}/ "
               f"(sequences.csv with each outcome, frames.csv, beats.csv, patients.csv)")
    listed = [name for name in ("failed", "worse") if summary.outcomes.get(name)]
    if listed or summary.modes.get("monoplane"):
        click.echo(f"see sequences.csv for the {' and '.join(listed) or 'single-view'} sequences"
                   + (" and patients.csv for the monoplane fallbacks" if summary.modes.get("monoplane") else ""),
                   err=True)
    if summary.n_warned:
        click.echo(f"warning: {summary.n_warned} sequence(s) with warnings (implausible values accepted, or detected "
                   "ED/ES that give no EF): see the warnings column of sequences.csv", err=True)
    outcome_list = [name for name, n in summary.outcomes.items() if n]
    code = _exit_code(outcome_list, strict)
    if code:
        sys.exit(code)


@main.command()
@click.argument("batch_out", metavar="OUT", type=click.Path(path_type=Path, file_okay=False))
@click.option("--patient", default=None, metavar="ID", help="Only this patient's page (PDF or PNG by extension).")
@_output_option("Review file [default: OUT/review.pdf, or OUT/review_<ID>.pdf with --patient].", default=None)
@_overwrite_option("Replace an existing review file.")
@_friendly_errors
def plot(batch_out: Path, patient: str | None, output: Path | None, overwrite: bool) -> None:
    """Review figures of a batch OUT: a cohort page and one page per patient (volume curves, EF, GLS)."""
    from echotemporal.batch.review import write_review

    path, n_pages = write_review(batch_out, output, patient=patient, overwrite=overwrite, progress=True)
    click.echo(f"{n_pages} page(s) written to {path}")


@main.command()
@_output_option("Folder for the CAMUS-layout phantom tree.", folder=True, old=("--output-dir",), required=True)
@click.option("--patients", type=click.IntRange(min=1), default=10, show_default=True, help="Number of patients.")
@click.option("--corrupt/--clean", default=True, show_default=True,
              help="Apply recorded corruptions (manifest.csv), or write clean sequences.")
@click.option("--jitter/--no-jitter", default=True, show_default=True,
              help="Expert-like annotation jitter (~1 px) on the _gt sequences.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed (patient i uses (seed, i)).")
@_overwrite_option("Write into a non-empty folder, replacing files.")
@_friendly_errors
def phantom(output: Path, patients: int, corrupt: bool, jitter: bool, seed: int, overwrite: bool) -> None:
    """Write synthetic CAMUS-like patients (2CH+4CH half-sequences, exact truth, Info cfg, manifests)."""
    import csv

    from echotemporal.phantoms import write_phantom_tree

    from tqdm import tqdm

    with tqdm(total=patients, unit="patient", desc="phantom", file=sys.stderr, disable=None) as bar:
        root = write_phantom_tree(output, patients, corrupt=corrupt, seed=seed, overwrite=overwrite, jitter=jitter,
                                  on_patient=lambda _: bar.update())
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        n_rows = sum(1 for _ in csv.DictReader(handle))
    click.echo(f"{patients} patient(s), {2 * patients} sequences, {n_rows} corrupted frame record(s) "
               f"written to {root}/ (manifest.csv, manifest.json)")


@main.command()
@click.argument("source")
@_output_option("HDF5 training set to write.", required=True)
@click.option("--phantoms", type=click.IntRange(min=0), default=None,
              help="Parametric phantom sequences to add [default: 400 for 'phantoms', else 0].")
@click.option("--copies", type=click.IntRange(min=1), default=2, show_default=True,
              help="real-shapes: sequences per patient and view.")
@click.option("--suffix", default="_half_sequence_gt", show_default=True, help="CAMUS tree: file suffix to use.")
@_config_option("YAML with an 'alignment' section (grid_size, fill_fraction).")
@click.option("--seed", type=int, default=0, show_default=True)
@_overwrite_option("Replace an existing output file.")
@_friendly_errors
def prepare(source: str, output: Path, phantoms: int | None, copies: int, suffix: str, config_path: Path | None,
            seed: int, overwrite: bool) -> None:
    """Build an HDF5 training set: SOURCE is a CAMUS tree, 'real-shapes' or 'phantoms'."""
    import itertools

    from echotemporal.core.config import AlignmentConfig, load_config
    from echotemporal.training.dataset import (
        camus_sequences,
        count_real_shape_sequences,
        phantom_sequences,
        prepare_dataset,
        real_shape_sequences,
    )

    cfg = load_config(config_path, AlignmentConfig, "alignment") if config_path else AlignmentConfig()
    from echotemporal.io.atomic import check_overwrite

    check_overwrite(output, overwrite)
    if source == "real-shapes":
        sources = [real_shape_sequences(("train", "val"), copies=copies, seed=seed)]
        total = count_real_shape_sequences(("train", "val"), copies=copies)
    elif source == "phantoms":
        phantoms = 400 if phantoms is None else phantoms
        sources, total = [], 0
    elif Path(source).is_dir():
        from echotemporal.io import discover_camus

        sources = [camus_sequences(source, suffix=suffix)]
        total = len(discover_camus(source, suffix=suffix))
    else:
        raise click.ClickException(f"{source}: not a folder; SOURCE is a CAMUS tree, 'real-shapes' or 'phantoms'")
    if phantoms:
        sources.append(phantom_sequences(phantoms, seed=seed))
        total += phantoms
    counts = prepare_dataset(itertools.chain(*sources), output, config=cfg, seed=seed, overwrite=overwrite,
                             description=f"echotemporal prepare {source}", total=total)
    click.echo(f"{sum(counts.values())} frames ({', '.join(f'{k} {v}' for k, v in counts.items())}) written to {output}")


@main.command()
@click.argument("data", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_output_option("Checkpoint to write.", required=True)
@_config_option("YAML with 'model' and 'training' sections (e.g. configs/default_model.yaml).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override training.epochs.")
@click.option("--max-minutes", type=click.FloatRange(min=0.01), default=None, help="Override training.max_minutes.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Override training.num_threads.")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT's .last.pt state.")
@_overwrite_option("Replace an existing checkpoint.")
@click.option("--onnx", "export", is_flag=True,
              help="Also export the model as ONNX graphs beside the checkpoint (needs `pip install onnx`): "
                   "smoothing with it then runs on ONNX Runtime, without importing torch.")
@_friendly_errors
def train(data: Path, output: Path, config_path: Path | None, epochs: int | None, max_minutes: float | None,
          threads: int | None, resume: bool, overwrite: bool, export: bool) -> None:
    """Train the AR-VAE on a training set from `echotemporal prepare`; writes the best checkpoint."""
    import dataclasses

    from echotemporal.core.config import ModelConfig, TrainingConfig, load_config
    from echotemporal.training.loop import train_model

    model_cfg = load_config(config_path, ModelConfig, "model") if config_path else ModelConfig()
    train_cfg = load_config(config_path, TrainingConfig, "training") if config_path else TrainingConfig()
    flags = {"epochs": epochs, "max_minutes": max_minutes, "num_threads": threads}
    train_cfg = dataclasses.replace(train_cfg, **{k: v for k, v in flags.items() if v is not None})
    summary = train_model(data, output, model_config=model_cfg, config=train_cfg, resume=resume, overwrite=overwrite)
    best = summary["best_validation"]
    click.echo(f"{summary['epochs']} epochs, {summary['minutes']:.1f} min; best validation Dice LV "
               f"{best.get('dice_lv', float('nan')):.4f} MYO {best.get('dice_myo', float('nan')):.4f}; written to {output}")
    if export:
        from echotemporal.model.export import export_onnx

        # Graphs beside a checkpoint just written can only be stale ones: they are replaced.
        graphs = export_onnx(output, overwrite=True)
        click.echo(f"ONNX graphs written to {', '.join(str(g) for g in graphs)}")


@main.command()
@_weights_option("Registered name or checkpoint path [default: shipped model].")
@_output_option("Figure (.png/.pdf).", required=True)
@click.option("--steps", type=click.IntRange(min=2), default=7, show_default=True, help="Decoded frames per dim.")
@click.option("--span", type=click.FloatRange(min=0.1), default=3.0, show_default=True, help="Sweep ±span·σ.")
@_overwrite_option("Replace an existing figure.")
@_friendly_errors
def traverse(weights: str | None, output: Path, steps: int, span: float, overwrite: bool) -> None:
    """Figure: decode a sweep of each attribute dim around the mean shape, with measured attributes."""
    from echotemporal.model.network import latent_traversal, plot_traversal
    from echotemporal.model.registry import load_model

    from echotemporal.io.atomic import check_overwrite

    check_overwrite(output, overwrite)
    model = load_model(weights)
    trav = latent_traversal(model, n_steps=steps, span=span)
    plot_traversal(trav, output)
    click.echo(f"{len(trav['names'])} dims x {steps} steps written to {output} (weights sha256 {model.sha256[:12]})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless told otherwise).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes (one model each).")
@click.option("--max-queue", type=click.IntRange(min=0), default=32, show_default=True,
              help="Requests that may wait for a worker; more get 503 with Retry-After.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), default=64.0, show_default=True,
              help="Largest request body; larger uploads get 413.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="File holding a bearer token required on /v1/* [default: none].")
@click.option("--results-ttl", type=click.FloatRange(min=1), default=3600.0, show_default=True,
              help="Seconds a finished job's results are kept.")
@click.option("--method", type=click.Choice(METHODS), default="arvae", show_default=True,
              help="Method when a request names none.")
@click.option("--weights", default=None, metavar="W", help="Model weights file or name [default: shipped model].")
@_friendly_errors
def serve(host: str, port: int, workers: int, max_queue: int, max_upload_mb: float, token_file: Path | None,
          results_ttl: float, method: str, weights: str | None) -> None:
    """Serve the correction over HTTP (API at /v1, docs at /docs, review page at /)."""
    try:
        from echotemporal.serve import ServeSettings, run_server
        import fastapi, uvicorn  # noqa: E401,F401 - the serve extra
    except ImportError as exc:
        raise click.ClickException(f"{exc.name} is not installed; pip install 'echotemporal[serve]'") from None
    token = None
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise click.ClickException(f"{token_file}: empty token file; write the token on its first line")
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} without --token-file: anyone who can reach it can submit jobs", err=True)
    run_server(ServeSettings(host=host, port=port, workers=workers, max_queue=max_queue, max_upload_mb=max_upload_mb,
                             token=token, results_ttl_s=results_ttl, method=method, weights=weights))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
