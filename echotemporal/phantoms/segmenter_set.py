"""The segmenter-in-the-loop failure set on disk: a U-Net's predictions with their true labels.

``scripts/make_segmenter_set.py`` writes it; benchmarks read it with `load_segmenter_set`. A set is a
folder of ``<name>.npz`` files (one held-out sequence each) and a ``manifest.json`` listing them in
order with how the set was made.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echotemporal.core.errors import InputFileError
from echotemporal.core.labels import validate_labels

__all__ = ["BLANK_PLACES", "MANIFEST_NAME", "blank_run", "SegmenterCase", "write_segmenter_case", "write_manifest", "load_segmenter_set"]

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields
class SegmenterCase:
    """One held-out sequence segmented by the U-Net.

    Attributes:
        name: file stem, e.g. ``"000_patient0401_4CH_la"``.
        predicted: (T, H, W) uint8 the U-Net's labels (0/1/2 only when ``with_la`` is False).
        truth: (T, H, W) uint8 the true labels (the LA mapped to background when ``with_la`` is False).
        image: (T, H, W) uint8 the rendered B-mode frames the U-Net saw (0..255), on the label grid.
        spacing_mm: (row_mm, col_mm) pixel size.
        ed_frame: 0-based ED frame.
        es_frame: 0-based ES frame.
        view: "2CH" or "4CH".
        with_la: whether the LA label is segmented.
        patient: CAMUS patient, ``patientNNNN``.
        split: upstream split of the patient ("val" or "test").
    """

    name: str
    predicted: np.ndarray
    truth: np.ndarray
    image: np.ndarray
    spacing_mm: tuple[float, float]
    ed_frame: int
    es_frame: int
    view: str
    with_la: bool
    patient: str
    split: str


def write_segmenter_case(folder: str | os.PathLike[str], case: SegmenterCase) -> Path:
    """Write one case as ``<folder>/<name>.npz`` (compressed) and return its path."""
    path = Path(folder) / f"{case.name}.npz"
    np.savez_compressed(
        path,
        predicted=case.predicted.astype(np.uint8),
        truth=case.truth.astype(np.uint8),
        image=case.image.astype(np.uint8),
        spacing_mm=np.asarray(case.spacing_mm, dtype=np.float64),
        ed_frame=case.ed_frame,
        es_frame=case.es_frame,
        view=case.view,
        with_la=case.with_la,
        patient=case.patient,
        split=case.split,
    )
    return path


def write_manifest(folder: str | os.PathLike[str], cases: list[SegmenterCase], info: dict[str, Any]) -> Path:
    """Write ``manifest.json``: the case names in order, their views/LA flags/frames, and ``info``."""
    entries = [
        {"name": c.name, "patient": c.patient, "split": c.split, "view": c.view, "with_la": c.with_la,
         "n_frames": int(c.truth.shape[0]), "ed_frame": c.ed_frame, "es_frame": c.es_frame}
        for c in cases
    ]
    path = Path(folder) / MANIFEST_NAME
    path.write_text(json.dumps({"cases": entries, **info}, indent=2) + "\n")
    return path


def load_segmenter_set(folder: str | os.PathLike[str]) -> list[SegmenterCase]:
    """Read a segmenter-in-the-loop set in its manifest's order.

    Args:
        folder: the folder written by ``scripts/make_segmenter_set.py``.

    Returns:
        One `SegmenterCase` per held-out sequence.

    Raises:
        InputFileError: the manifest or a case file is missing or unreadable.
    """
    base = Path(folder).expanduser()
    manifest = base / MANIFEST_NAME
    try:
        entries = json.loads(manifest.read_text())["cases"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"{manifest}: cannot read the segmenter-set manifest ({exc}); make the set with "
                             "scripts/make_segmenter_set.py -o FOLDER") from exc
    cases = []
    for entry in entries:
        path = base / f"{entry['name']}.npz"
        try:
            with np.load(path) as data:
                cases.append(SegmenterCase(
                    name=str(entry["name"]),
                    predicted=validate_labels(data["predicted"], str(path)),
                    truth=validate_labels(data["truth"], str(path)),
                    image=np.asarray(data["image"], dtype=np.uint8),
                    spacing_mm=(float(data["spacing_mm"][0]), float(data["spacing_mm"][1])),
                    ed_frame=int(data["ed_frame"]),
                    es_frame=int(data["es_frame"]),
                    view=str(data["view"]),
                    with_la=bool(data["with_la"]),
                    patient=str(data["patient"]),
                    split=str(data["split"]),
                ))
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(f"{path}: cannot read a segmenter-set case ({exc}); regenerate the set") from exc
    return cases


#: Where :func:`blank_run` puts its run of blank frames.
BLANK_PLACES = ("random", "start", "end")


def blank_run(n_frames: int, length: int, place: str = "random", seed: int = 0) -> np.ndarray:
    """(T,) bool: a run of ``length`` consecutive frames that a segmenter left blank (found nothing).

    Real segmenters lose the heart over several frames at once (a dark sector, a probe moved), and
    a run through ED or ES is the hardest to bridge: ``place`` "start" ends it at frame 0, "end" at the
    last frame, "random" puts it anywhere it fits (``numpy.random.default_rng(seed)``). ``length`` is
    clipped to ``n_frames``.
    """
    if place not in BLANK_PLACES:
        raise ValueError(f"place {place!r}: pick one of {', '.join(BLANK_PLACES)}")
    length = max(0, min(int(length), int(n_frames)))
    if place == "start":
        first = 0
    elif place == "end":
        first = n_frames - length
    else:
        first = int(np.random.default_rng(seed).integers(0, n_frames - length + 1))
    out = np.zeros(n_frames, dtype=bool)
    out[first : first + length] = True
    return out
