"""A CAMUS-layout folder of synthetic patients, with their exact truth and a corruption manifest.

Layout (one folder per patient, both views sharing the patient's size, EF, wall and imaging)::

    ROOT/patientNNNN/patientNNNN_{2CH,4CH}_half_sequence_gt.nii.gz     annotation as a user would have it
                                                                       (expert-like jitter, + corruptions)
    ROOT/patientNNNN/patientNNNN_{2CH,4CH}_half_sequence_truth.nii.gz  exact phantom labels
    ROOT/patientNNNN/Info_{2CH,4CH}.cfg                                ED, ES, NbFrame, EF (analytic), ...
    ROOT/manifest.csv                                                  patient, view, frame, kind, detail
    ROOT/manifest.json                                                 analytic volumes / EF / GLS, params
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from echotemporal.core.errors import OutputExistsError
from echotemporal.phantoms.corruption import annotation_jitter, corrupt_sequence
from echotemporal.phantoms.parametric import VIEWS, _generate_patient_views
from echotemporal.phantoms.records import CORRUPTION_KINDS, Corruption

_SINGLE_FRAME_KINDS = tuple(k for k in CORRUPTION_KINDS if k != "boundary_noise")

__all__ = ["GT_SUFFIX", "TRUTH_SUFFIX", "MANIFEST_COLUMNS", "write_phantom_tree"]

GT_SUFFIX = "_half_sequence_gt"
TRUTH_SUFFIX = "_half_sequence_truth"
MANIFEST_COLUMNS: tuple[str, ...] = ("patient", "view", "frame", "kind", "detail")


def _patient_meta(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "sex": str(rng.choice(["F", "M"])),
        "age": int(rng.integers(20, 91)),
        "image_quality": str(rng.choice(["Good", "Medium", "Poor"], p=[0.4, 0.45, 0.15])),
        # Duration of the ED -> ES half-cycle; with NbFrame it sets FrameRate.
        "systole_s": float(rng.uniform(0.25, 0.4)),
    }


def _annotation(
    seq: Any, rng: np.random.Generator, *, jitter: bool, corrupt: bool, n_corruptions: tuple[int, int],
    boundary_noise_probability: float,
) -> tuple[np.ndarray, list[Corruption]]:
    """The ``_gt`` labels (T, H, W) of a view: the exact phantom, jittered, then corrupted; with the records."""
    gt = annotation_jitter(seq.labels, seq.spacing_mm, rng) if jitter else seq.labels.copy()
    records: list[Corruption] = []
    if corrupt:
        # Single-frame glitches in every corrupted view; whole-sequence boundary noise in some.
        n = int(rng.integers(n_corruptions[0], n_corruptions[1] + 1))
        gt, records = corrupt_sequence(gt, seq.spacing_mm, rng, kinds=_SINGLE_FRAME_KINDS, n_corruptions=n)
        if rng.random() < boundary_noise_probability:
            gt, noise = corrupt_sequence(gt, seq.spacing_mm, rng, kinds=("boundary_noise",))
            records = sorted(records + noise, key=lambda c: (c.frame, CORRUPTION_KINDS.index(c.kind)))
    return gt, records


def _write_view(pdir: Path, pid: str, view: str, seq: Any, gt: np.ndarray, meta: dict[str, Any], overwrite: bool) -> None:
    """The annotation, the exact truth and the ``Info_{view}.cfg`` of one view."""
    from echotemporal.io import InfoCfg, write_info_cfg, write_sequence

    write_sequence(pdir / f"{pid}_{view}{GT_SUFFIX}.nii.gz", gt, spacing_mm=seq.spacing_mm, overwrite=overwrite)
    write_sequence(pdir / f"{pid}_{view}{TRUTH_SUFFIX}.nii.gz", seq.labels, spacing_mm=seq.spacing_mm,
                   overwrite=overwrite)
    write_info_cfg(pdir / f"Info_{view}.cfg", InfoCfg(
        ed_frame=seq.ed_frame,
        es_frame=seq.es_frame,
        n_frames=seq.n_frames,
        ef_percent=seq.ef_percent,
        frame_rate_hz=round((seq.n_frames - 1) / meta["systole_s"], 1),
        sex=meta["sex"],
        age=meta["age"],
        image_quality=meta["image_quality"],
    ), overwrite=overwrite)


def _view_entry(pid: str, view: str, seq: Any, records: list[Corruption]) -> dict[str, Any]:
    """The ``manifest.json`` record of one view: files, analytic volumes, EF, GLS, corruptions."""
    p = seq.params
    return {
        "gt_file": f"{pid}/{pid}_{view}{GT_SUFFIX}.nii.gz",
        "truth_file": f"{pid}/{pid}_{view}{TRUTH_SUFFIX}.nii.gz",
        "n_frames": seq.n_frames,
        "ed_frame": seq.ed_frame,
        "es_frame": seq.es_frame,
        "image_shape": p["image_shape"],
        "spacing_mm": list(seq.spacing_mm),
        "lv_volume_ml": seq.lv_volume_ml.tolist(),
        "edv_ml": float(seq.lv_volume_ml[seq.ed_frame]),
        "esv_ml": float(seq.lv_volume_ml[seq.es_frame]),
        "ef_percent": seq.ef_percent,
        "gls_percent": seq.gls_percent,
        "lv_area_mm2": p["lv_area_mm2"],
        "myo_area_mm2": p["myo_area_mm2"],
        "lv_length_mm": p["lv_length_mm"],
        "corruptions": [{"frame": c.frame, "kind": c.kind, "detail": c.detail} for c in records],
        "physiology": p["physiology"],
    }


def _write_manifests(root: Path, rows: list[dict[str, Any]], patients: dict[str, Any], *, seed: int, corrupt: bool,
                     jitter: bool) -> None:
    from echotemporal import __version__

    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    manifest = {
        "generator": "echotemporal.phantoms.write_phantom_tree",
        "version": __version__,
        "seed": int(seed),
        "n_patients": len(patients),
        "corrupt": bool(corrupt),
        "jitter": bool(jitter),
        "gt_suffix": GT_SUFFIX,
        "truth_suffix": TRUTH_SUFFIX,
        "volume_definition": "analytic disk integral (1000 disks) of the exact LV contour about the "
                             "hinge-midpoint-to-apex axis, mL",
        "n_corrupted_frames": len({(r["patient"], r["view"], r["frame"]) for r in rows}),
        "patients": patients,
    }
    with open(root / "manifest.json", "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)


def write_phantom_tree(
    root: str | os.PathLike[str],
    n_patients: int,
    *,
    corrupt: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    jitter: bool = True,
    n_corruptions: tuple[int, int] = (1, 2),
    boundary_noise_probability: float = 0.15,
    on_patient: Callable[[str], None] | None = None,
) -> Path:
    """Write synthetic patients in the CAMUS layout, with exact truth and manifests.

    Patient ``i`` is generated from ``(seed, i)`` alone, so a tree of 5 patients is the start of a
    tree of 50 with the same seed.

    Args:
        root: output folder (created).
        n_patients: number of patients (>= 1), named patient0001, patient0002, ...
        corrupt: apply ``n_corruptions`` random corruptions per view (recorded in the manifests);
            False writes clean sequences.
        seed: base seed.
        overwrite: replace existing files; without it an existing non-empty ``root`` is an error.
        jitter: add expert-like annotation jitter (about one pixel, `annotation_jitter`) to the
            ``_gt`` sequences, as real ground truth has; the ``_truth`` files never have it.
        n_corruptions: inclusive (min, max) number of single-frame corruptions per view when ``corrupt``.
        boundary_noise_probability: chance that a corrupted view also gets ``boundary_noise`` on all
            its frames.
        on_patient: called with each patient id once it is written (progress reporting).

    Returns:
        ``root`` as a Path.

    Raises:
        OutputExistsError: ``root`` exists, is not empty and ``overwrite`` is False.
        ValueError: ``n_patients`` < 1.
    """
    if int(n_patients) < 1:
        raise ValueError(f"n_patients={n_patients}: need at least one patient")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise OutputExistsError(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise OutputExistsError(f"{root}: folder exists and is not empty; pass --overwrite (overwrite=True) or "
                                "choose another output folder")
    root.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    patients: dict[str, Any] = {}
    for index in range(1, int(n_patients) + 1):
        pid = f"patient{index:04d}"
        rng = np.random.default_rng([int(seed), index])
        meta = _patient_meta(rng)
        views = _generate_patient_views(rng)
        entry: dict[str, Any] = {**meta, "views": {}}
        for view in VIEWS:
            seq = views[view]
            gt, records = _annotation(seq, rng, jitter=jitter, corrupt=corrupt, n_corruptions=n_corruptions,
                                      boundary_noise_probability=boundary_noise_probability)
            _write_view(root / pid, pid, view, seq, gt, meta, overwrite)
            rows.extend({"patient": pid, "view": view, "frame": c.frame, "kind": c.kind, "detail": c.detail}
                        for c in records)
            entry["views"][view] = _view_entry(pid, view, seq, records)
        patients[pid] = entry
        if on_patient is not None:
            on_patient(pid)
    _write_manifests(root, rows, patients, seed=seed, corrupt=corrupt, jitter=jitter)
    return root
