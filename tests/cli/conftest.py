"""Fixtures shared by the CLI tests: a small phantom and its NIfTI file."""

from __future__ import annotations

import pytest

from echotemporal.io import write_sequence

#: Pixel size of the fixture files (mm).
SPACING = (0.8, 0.8)


@pytest.fixture(scope="module")
def phantom():
    from echotemporal.phantoms import generate_sequence

    return generate_sequence(7, n_frames=8, spacing_mm=SPACING)


@pytest.fixture()
def seq_path(tmp_path, phantom):
    path = tmp_path / "case_4CH_half_sequence.nii.gz"
    write_sequence(path, phantom.labels, spacing_mm=SPACING)
    return path
