"""Batch throughput and parent memory (DESIGN.md §9: ≥ 4 sequences/s on 2 cores, memory flat).

Generates corrupted CAMUS-size half-sequences once (``phantoms.write_phantom_tree``) into a work
folder, then runs ``run_batch`` in a fresh subprocess per configuration, so that each measured parent
starts from the same state:

- process pool with 1 and 2 workers, and a local Dask cluster (2 worker processes, 1 thread each),
  on N sequences;
- the 2-worker pool again on 2N sequences: the parent's peak RSS must not grow with N.

Throughput is wall-clock sequences/s of the whole ``run_batch`` call, worker start-up (imports, model
loading) included; ``mean s/seq`` is the average per-sequence time measured inside the workers. On a
shared machine wall time depends on the neighbours, so the CPU time of the parent and all its worker
processes is reported too, with the rate it projects for 2 free cores (``2 / CPU-s per sequence``).
Peak RSS is the batch parent's own (``VmHWM``; worker processes are not counted).

The target is measured with the shipped trained weights (``--method arvae``, the default, without
``--weights``): the header line names the weights file and its sha256. ``--random-model`` (an untrained
network of the default architecture) is only for comparisons. Each pool worker runs with one thread
(``batch.environment.WORKER_ENV``).

The phantom tree's sequences are printed (frames, pixels, spacing). They are CAMUS-size: the real
CAMUS half-sequences of ``../shared/data/real-shapes/camus-travislatchman-mhd`` (5 patients, Info cfg)
have 15-21 frames of 427k-873k pixels (mean 606k) at 0.154x0.308 mm, about 11M frame-pixels per
sequence, as these have (24.9 frames x 463k pixels on average at seed 0).

Usage:
    python scripts/benchmark_batch.py --sequences 100                 # arvae, shipped weights
    python scripts/benchmark_batch.py --sequences 100 --method gaussian
    python scripts/benchmark_batch.py --sequences 100 --weights W
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

def _generate(root: Path, n_patients: int, seed: int) -> Path:
    """CAMUS tree of n_patients x (2CH, 4CH) corrupted CAMUS-size phantoms, generated once and reused."""
    from echotemporal.phantoms import write_phantom_tree

    marker = root / ".complete"
    if not marker.exists():
        write_phantom_tree(root, n_patients, corrupt=True, seed=seed, overwrite=True)
        marker.write_text("ok\n")
    return root


def _random_model(path: Path) -> Path:
    """Untrained AR-VAE of the default architecture: the arvae method's real cost, before trained weights."""
    if path.exists():
        return path
    import numpy as np
    import torch

    from echotemporal.measure.attributes import ATTRIBUTE_NAMES
    from echotemporal.core.config import ModelConfig
    from echotemporal.model.network import ARVAE
    from echotemporal.training.loop import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    network = ARVAE(ModelConfig())
    bounds = np.tile([-3.0, 3.0], (len(ATTRIBUTE_NAMES), 1))
    return save_checkpoint(make_checkpoint(network, ATTRIBUTE_NAMES, bounds), path)


def _subset(full: Path, dest: Path, n_patients: int) -> Path:
    """The first n_patients of the full tree, as symbolic links (no second copy of the data)."""
    dest.mkdir(parents=True, exist_ok=True)
    patients = sorted(p for p in full.iterdir() if p.is_dir() and p.name.startswith("patient"))[:n_patients]
    for patient in patients:
        link = dest / patient.name
        if not link.exists():
            link.symlink_to(patient, target_is_directory=True)
    return dest


def _data_sizes(root: Path) -> str:
    """Frames, pixels and spacing of the sequences under root (what "CAMUS-size" means here)."""
    import numpy as np

    from echotemporal.io import discover_camus, read_sequence

    frames, pixels, spacing = [], [], []
    for case in discover_camus(root, suffix="_half_sequence_gt"):
        seq = read_sequence(case.path)
        frames.append(seq.labels.shape[0])
        pixels.append(seq.labels.shape[1] * seq.labels.shape[2])
        spacing.append(seq.spacing_mm)
    sp = np.asarray(spacing)
    return (f"{len(frames)} sequences, frames mean {np.mean(frames):.1f} (min {min(frames)}, max {max(frames)}), "
            f"pixels/frame mean {np.mean(pixels) / 1e3:.0f}k (min {min(pixels) / 1e3:.0f}k, max {max(pixels) / 1e3:.0f}k), "
            f"spacing mean {sp[:, 0].mean():.3f}x{sp[:, 1].mean():.3f} mm; real CAMUS (5 patients with Info cfg): "
            "15-21 frames of 427k-873k pixels (mean 606k) at 0.154x0.308 mm")


def _model_description(args: argparse.Namespace) -> str:
    if args.method != "arvae":
        return "no model"
    if args.random_model:
        return "UNTRAINED model of the default architecture (not the target's configuration)"
    from echotemporal.model.registry import DEFAULT_WEIGHTS, file_sha256, resolve_weights

    path = resolve_weights(args.weights)
    shipped = args.weights is None or Path(args.weights).name == DEFAULT_WEIGHTS
    return f"{'shipped' if shipped else 'given'} weights {path.name} (sha256 {file_sha256(path)[:12]})"


def _peak_rss_mb() -> float:
    """This process's peak resident memory, MB.

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` would also carry the launching
    process's peak across ``execve`` on Linux (the benchmark driver, which may have imported torch).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # macOS: bytes, but no /proc


def _run_one(args: argparse.Namespace) -> None:
    """Child process: one run_batch, then a JSON line with timings and this process's peak RSS."""
    import pandas as pd

    from echotemporal.batch import run_batch

    cluster = None
    scheduler = None
    if args.dask:
        from distributed import LocalCluster

        # The cluster exists before the batch starts, as a real one would.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        scheduler = cluster.scheduler_address
    start = time.perf_counter()
    summary = run_batch(args.root, args.out, method=args.method, weights=args.weights, workers=args.workers,
                        scheduler=scheduler, progress=False, overwrite=True)
    wall = time.perf_counter() - start
    if cluster is not None:
        cluster.close()
    seq = pd.read_csv(summary.tables["sequences"])
    me = resource.getrusage(resource.RUSAGE_SELF)
    # Terminated and reaped descendants: the pool's workers, or the Dask nannies and their workers.
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "n": summary.n_sequences, "ok": summary.n_ok, "failed": summary.n_failed, "wall_s": wall,
        "mean_s_per_seq": float(seq["seconds"].mean()),
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "peak_rss_mb": _peak_rss_mb(),
    }))


def _measure(root: Path, out: Path, workers: int, dask: bool, method: str, weights: str | None) -> dict:
    cmd = [sys.executable, __file__, "_run", "--root", str(root), "--out", str(out), "--workers", str(workers),
           "--method", method]
    if dask:
        cmd.append("--dask")
    if weights:
        cmd += ["--weights", weights]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "_run"])
    parser.add_argument("--sequences", type=int, default=100, help="N (the memory check also runs 2N)")
    parser.add_argument("--method", default="arvae", choices=["arvae", "gaussian", "none"])
    parser.add_argument("--weights", default=None, help="weights file or name (default: the shipped model)")
    parser.add_argument("--random-model", action="store_true",
                        help="arvae with an untrained model of the default architecture (no trained weights yet)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "echotemporal-bench-batch")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    # child-only arguments
    parser.add_argument("--root", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dask", action="store_true")
    args = parser.parse_args()
    if args.command == "_run":
        _run_one(args)
        return

    if args.random_model:
        args.method = "arvae"
        args.weights = str(_random_model(args.workdir / "random-arvae-default-architecture.pt"))
    n_patients = max(1, args.sequences // 2)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    full = _generate(args.workdir / f"camus_{2 * n_patients}p_seed{args.seed}", 2 * n_patients, args.seed)
    half = _subset(full, args.workdir / f"camus_{n_patients}p_seed{args.seed}", n_patients)
    print(f"data: {4 * n_patients} CAMUS-size sequences in {full} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    sizes = _data_sizes(half)
    print(f"data (N): {sizes}", file=sys.stderr)

    runs = [("pool, 1 worker", half, 1, False), ("pool, 2 workers", half, 2, False)]
    if not args.no_dask:
        runs.append(("dask local, 2 workers", half, 2, True))
    runs.append(("pool, 2 workers (2N)", full, 2, False))
    rows = []
    for name, root, workers, dask in runs:
        out = args.workdir / "out" / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        result = _measure(root, out, workers, dask, args.method, args.weights)
        result["config"] = name
        rows.append(result)
        print(f"  {name}: {result['n'] / result['wall_s']:.2f} seq/s", file=sys.stderr)

    print(f"\nbatch benchmark: method={args.method}, {_model_description(args)}, {os.cpu_count()} CPUs visible, "
          f"1-min load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f} (a shared machine)")
    print(f"data (N): {sizes}")
    print(f"{'configuration':<26}{'n':>5}{'ok':>5}{'failed':>7}{'wall s':>9}{'seq/s':>8}{'mean s/seq':>12}"
          f"{'CPU-s/seq':>11}{'2-core seq/s':>14}{'parent peak RSS MB':>20}")
    for r in rows:
        cpu_per_seq = r["cpu_s"] / r["n"]
        print(f"{r['config']:<26}{r['n']:>5}{r['ok']:>5}{r['failed']:>7}{r['wall_s']:>9.1f}"
              f"{r['n'] / r['wall_s']:>8.2f}{r['mean_s_per_seq']:>12.3f}{cpu_per_seq:>11.3f}"
              f"{2 / cpu_per_seq:>14.2f}{r['peak_rss_mb']:>20.0f}")
    n_run = next(r for r in rows if r["config"] == "pool, 2 workers")
    n2_run = rows[-1]
    print(f"parent peak RSS, 2 workers: {n_run['peak_rss_mb']:.0f} MB at N={n_run['n']}, "
          f"{n2_run['peak_rss_mb']:.0f} MB at 2N={n2_run['n']} "
          f"({n2_run['peak_rss_mb'] - n_run['peak_rss_mb']:+.0f} MB)")


if __name__ == "__main__":
    main()
