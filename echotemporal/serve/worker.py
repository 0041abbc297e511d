"""Process side of the service: what runs in a pool worker, one job at a time.

The shape model is loaded once per worker process (``batch.worker.init_pool_worker`` as the pool
initializer); each task then reuses it (``pretrained.load_model`` caches it per process). Tasks take
and return small, picklable values: paths in the job's folder, JSON-able dicts, and the upload the
server has already read as a :class:`StoredSequence` (its voxels in a ``.npy`` file of the job's
folder: loading it costs a memory copy, where a second decode of the upload or a pickle of the voxels
through the pool's pipe would cost about twice as much CPU).
Result files keep fixed names in ``<job>/out``: labels.nii.gz, frames.csv, frames.json, summary.json,
config.yaml, and, drawn on first request, volume.png and contours.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echotemporal.batch.cache import worker_model, worker_thresholds
from echotemporal.batch.signals import SEQUENCE_TIME_LIMIT_S, time_limit
from echotemporal.io.atomic import write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.io import LabelSequence

__all__ = ["OUT", "StoredSequence", "worker_info", "correct_job", "check_job", "render_volume", "render_contours"]

#: Sub-folder of a job's folder holding its results.
OUT = "out"
#: Wall time (s) a job's correction may take before the worker stops it and the job fails.
JOB_TIME_LIMIT_S = SEQUENCE_TIME_LIMIT_S


@dataclass(frozen=True)
class StoredSequence:
    """A sequence the server has read and checked, handed to a worker: its labels in an ``.npy`` file,
    the other fields of the :class:`~echotemporal.io.LabelSequence` (spacing, geometry, path, frame
    time) as they are.

    Attributes:
        labels_path: the ``.npy`` file of the (T, H, W) uint8 labels.
        fields: every other LabelSequence field, by name.
    """

    labels_path: str
    fields: dict[str, Any]

    @classmethod
    def store(cls, sequence: LabelSequence, path: str | Path) -> StoredSequence:
        """Write ``sequence.labels`` to ``path`` (``numpy.save``); the handle of the stored sequence."""
        import numpy as np

        np.save(path, sequence.labels, allow_pickle=False)
        fields = {f.name: getattr(sequence, f.name) for f in dataclasses.fields(sequence) if f.name != "labels"}
        return cls(str(path), fields)

    def load(self) -> LabelSequence:
        """The sequence again, its labels read back; the ``.npy`` file is then deleted (the job keeps
        its upload, not a second, decoded copy of it)."""
        import numpy as np

        from echotemporal.io import LabelSequence

        labels = np.load(self.labels_path, allow_pickle=False)
        Path(self.labels_path).unlink()
        return LabelSequence(labels=labels, **self.fields)


def worker_info(weights: str | None) -> dict[str, Any]:
    """The worker's pid and its model's sha256 and backend (loads the model if not yet loaded)."""
    model = worker_model("arvae", weights)
    return {"pid": os.getpid(), "model_sha256": model.sha256, "backend": getattr(model, "backend", "torch")}


def correct_job(
    job_dir: str,
    sequence_path: str,
    sequence: StoredSequence,
    info_path: str | None,
    method: str,
    weights: str | None,
    fps: float | None,
) -> dict[str, Any]:
    """Correct one uploaded sequence with ``pipeline.smooth_file`` into ``<job_dir>/out``.

    Args:
        job_dir: the job's private folder.
        sequence_path: the uploaded sequence file (inside ``job_dir``).
        sequence: that file as the server read it (``io.read_sequence``), stored in ``job_dir``.
        info_path: its Info cfg (ED/ES), or None to detect ED/ES.
        method: one of ``core.config.METHODS``.
        weights: model weights name or path; None = shipped model.
        fps: frame rate in Hz, recorded in the summary (``frame_rate_hz``), or None.

    Returns:
        The JSON summary, with file names instead of server paths.
    """
    from echotemporal.outputs import files as export
    from echotemporal.outputs.sequence_file import smooth_file

    out = Path(job_dir) / OUT
    out.mkdir()
    fix = "the server stops a job after that long; check the sequence with `echotemporal check`"
    with time_limit(JOB_TIME_LIMIT_S, fix):
        result = smooth_file(
            sequence_path, out / "labels.nii.gz", method=method, model=worker_model(method, weights),
            info_path=info_path, report_dir=out, sequence=sequence.load(), thresholds=worker_thresholds(),
        )
    for role, name in (("frames", "frames.csv"), ("config", "config.yaml")):
        Path(result.summary["outputs"][role]).rename(out / name)
    Path(result.summary["outputs"]["summary"]).unlink()
    result.summary["input"] = Path(sequence_path).name
    result.summary["info_cfg"] = None if info_path is None else Path(info_path).name
    result.summary["frame_rate_hz"] = fps
    result.summary["outputs"] = {"labels": "labels.nii.gz", "frames": "frames.csv", "summary": "summary.json", "config": "config.yaml"}
    export.write_summary(result, out / "summary.json")
    frames = export.to_jsonable(result.columns)
    if fps:
        frames["time_s"] = [t / fps for t in frames["frame"]]
    (out / "frames.json").write_text(json.dumps(frames, allow_nan=False))
    return export.to_jsonable(result.summary)


def check_job(sequence_path: str, info_path: str | None) -> dict[str, Any]:
    """The ``echotemporal check --json`` report of an uploaded file (``report.check_file``)."""
    from echotemporal.measure.check import check_file

    return check_file(sequence_path, info_path)


def render_volume(job_dir: str) -> str:
    """Draw ``out/volume.png`` (the volume curve of ``plotting.volume_figure``) once; its path."""
    out = Path(job_dir) / OUT
    target = out / "volume.png"
    if target.exists():
        return str(target)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from echotemporal.plotting.sequence import volume_figure

    summary = json.loads((out / "summary.json").read_text())
    fig = volume_figure(pd.read_csv(out / "frames.csv"), summary, title=summary.get("input"))
    try:
        write_atomic(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), overwrite=True)
    finally:
        plt.close(fig)
    return str(target)


def render_contours(job_dir: str, sequence_path: str, tolerance_px: float = 0.7) -> str:
    """Write ``out/contours.json`` once: per frame, the LV/MYO/LA outlines before and after; its path.

    The file holds ``shape`` [H, W], ``spacing_mm`` [row_mm, col_mm] and ``frames``: a list of T
    ``{"before": {label: [polyline, ...]}, "after": {...}}``, each polyline a flat list
    ``[x0, y0, x1, y1, ...]`` in pixel units (x = column, y = row), simplified to ``tolerance_px``.
    """
    out = Path(job_dir) / OUT
    target = out / "contours.json"
    if target.exists():
        return str(target)
    import numpy as np
    from skimage.measure import approximate_polygon, find_contours

    from echotemporal.io import read_sequence
    from echotemporal.core.labels import LA, LV, MYO

    before = read_sequence(sequence_path)
    after = read_sequence(out / "labels.nii.gz")
    rows, cols = np.nonzero((before.labels > 0).any(axis=0) | (after.labels > 0).any(axis=0))
    r0, c0 = (int(rows.min()) - 1, int(cols.min()) - 1) if rows.size else (0, 0)
    r1, c1 = (int(rows.max()) + 2, int(cols.max()) + 2) if rows.size else (1, 1)

    def outlines(frame: np.ndarray) -> dict[str, list[list[float]]]:
        box = np.pad(frame[max(r0, 0) : r1, max(c0, 0) : c1], 1)
        lines: dict[str, list[list[float]]] = {}
        for label in (LV, MYO, LA):
            polylines = []
            for contour in find_contours((box == label).astype(np.float32), 0.5):
                simple = approximate_polygon(contour, tolerance_px)
                xy = np.column_stack([simple[:, 1] + max(c0, 0) - 1, simple[:, 0] + max(r0, 0) - 1])
                polylines.append([round(float(v), 1) for v in xy.ravel()])
            lines[str(int(label))] = polylines
        return lines

    frames = [{"before": outlines(b), "after": outlines(a)} for b, a in zip(before.labels, after.labels)]
    body = {"shape": list(before.labels.shape[1:]), "spacing_mm": list(before.spacing_mm), "frames": frames}
    write_atomic(target, lambda tmp: Path(tmp).write_text(json.dumps(body)), overwrite=True)
    return str(target)
