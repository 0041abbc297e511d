"""CAMUS folder layout: ``ROOT/patientNNNN/patientNNNN_{2CH,4CH}{suffix}.{nii.gz,nii,mhd}`` and its Info cfg."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from echotemporal.core.errors import InputFileError
from echotemporal.io.sequence import SEQUENCE_SUFFIXES

__all__ = ["CamusCase", "discover_camus"]


@dataclass(frozen=True)
class CamusCase:
    """One view of one CAMUS patient.

    Attributes:
        patient: patient folder name, e.g. ``"patient0001"``.
        view: ``"2CH"`` or ``"4CH"``.
        path: the label-sequence file.
        info_path: its ``Info_{view}.cfg``, or None when absent.
        es_path: for a CAMUS-2019 ED/ES pair (:mod:`echotemporal.io.camus_pairs`), the ES mask file;
            ``path`` is then the ED mask file.
    """

    patient: str
    view: str
    path: Path
    info_path: Path | None
    es_path: Path | None = None


_PATIENT_DIR = re.compile(r"patient(\d+)")


def discover_camus(
    root: str | os.PathLike[str],
    suffix: str = "_half_sequence_gt",
    views: Iterable[str] = ("2CH", "4CH"),
) -> list[CamusCase]:
    """Find CAMUS label sequences: ``ROOT/patientNNNN/patientNNNN_{view}{suffix}.{nii.gz,nii,mhd}``.

    When one case exists in several formats, ``.nii.gz`` is preferred, then ``.nii``, ``.mhd``, ``.mha``.

    Args:
        root: folder holding the ``patientNNNN`` folders.
        suffix: file-name part after the view, e.g. ``"_half_sequence_gt"`` or ``"_ED_gt"``.
        views: views to look for.

    Returns:
        The cases found, sorted by patient then view; empty if none.

    Raises:
        InputFileError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: CAMUS folder not found; pass the folder that holds the patientNNNN/ folders")
    views = sorted(set(views))
    patients = [p for p in root.iterdir() if p.is_dir() and _PATIENT_DIR.fullmatch(p.name)]
    patients.sort(key=lambda p: (int(_PATIENT_DIR.fullmatch(p.name).group(1)), p.name))  # type: ignore[union-attr]
    cases: list[CamusCase] = []
    for patient_dir in patients:
        for view in views:
            stem = f"{patient_dir.name}_{view}{suffix}"
            found = next((patient_dir / (stem + ext) for ext in SEQUENCE_SUFFIXES if (patient_dir / (stem + ext)).is_file()), None)
            if found is None:
                continue
            info = patient_dir / f"Info_{view}.cfg"
            cases.append(CamusCase(patient_dir.name, view, found, info if info.is_file() else None))
    return cases
