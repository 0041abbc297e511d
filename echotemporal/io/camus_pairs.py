"""Native CAMUS-2019 layout: the ED and ES masks of a view as two files, read as a 2-frame sequence.

``ROOT/patientNNNN/patientNNNN_{2CH,4CH}_ED{suffix}.mhd`` and ``..._ES{suffix}.mhd`` (suffix ``_gt`` for
the expert masks, or a segmenter's). Frame 1 is ED and frame 2 ES; the clinical indices and the
per-frame checks apply, a temporal correction has no interior frame to work on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from echotemporal.core.errors import InputFileError
from echotemporal.io.camus import CamusCase, discover_camus
from echotemporal.io.sequence import ImageGeometry, LabelSequence, read_sequence

__all__ = ["discover_camus_pairs", "read_ed_es_pair", "pair_output_name"]


def discover_camus_pairs(
    root: str | os.PathLike[str], suffix: str = "_gt", views: Iterable[str] = ("2CH", "4CH")
) -> list[CamusCase]:
    """ED/ES mask pairs of a CAMUS-2019 tree, one case per patient and view with both files present.

    Returns:
        Cases whose ``path`` is the ED file and ``es_path`` the ES file, sorted by patient then view.

    Raises:
        InputFileError: ``root`` is missing or not a folder.
    """
    cases = []
    for case in discover_camus(root, suffix=f"_ED{suffix}", views=views):
        name = case.path.name.replace(f"_{case.view}_ED{suffix}", f"_{case.view}_ES{suffix}", 1)
        es = case.path.with_name(name)
        if es.is_file():
            cases.append(dataclasses.replace(case, es_path=es))
    return cases


def pair_output_name(case: CamusCase, suffix: str = "_gt") -> str:
    """File name of a pair's corrected 2-frame sequence: ``patientNNNN_{view}_EDES{suffix}.nii.gz``."""
    return f"{case.patient}_{case.view}_EDES{suffix}.nii.gz"


def read_ed_es_pair(ed_path: str | os.PathLike[str], es_path: str | os.PathLike[str]) -> LabelSequence:
    """The ED and ES masks as one (2, H, W) sequence (ED first) with the ED file's geometry.

    Raises:
        InputFileError: a file is unreadable or holds more than one frame, or the two differ in size
            or pixel spacing.
    """
    ed, es = read_sequence(ed_path), read_sequence(es_path)
    for seq in (ed, es):
        if seq.n_frames != 1:
            raise InputFileError(f"{seq.path}: {seq.n_frames} frames; an ED or ES mask file holds one frame")
    if ed.labels.shape != es.labels.shape or not np.allclose(ed.spacing_mm, es.spacing_mm, rtol=1e-5):
        raise InputFileError(
            f"{es_path}: size {es.labels.shape[1:]} / spacing {es.spacing_mm} differ from {ed_path}'s "
            f"{ed.labels.shape[1:]} / {ed.spacing_mm}; pass the ED and ES masks of one view"
        )
    geometry = ed.geometry
    if geometry is not None and len(geometry.spacing) == 2:  # a 2D file: add the frame axis
        direction = (geometry.direction[0], geometry.direction[1], 0.0, geometry.direction[2], geometry.direction[3],
                     0.0, 0.0, 0.0, 1.0)
        geometry = ImageGeometry(spacing=(*geometry.spacing, 1.0), origin=(*geometry.origin, 0.0), direction=direction)
    return LabelSequence(labels=np.concatenate([ed.labels, es.labels]), spacing_mm=ed.spacing_mm, geometry=geometry,
                         path=Path(ed_path), frame_time_ms=None)
