"""One-line errors in the CLI's words: OS errors rewritten, all-or-nothing outputs, weights names."""

from __future__ import annotations

import errno

import pytest
from click.testing import CliRunner

from echotemporal.cli import main
from echotemporal.core.os_errors import describe_os_error
from echotemporal.io import write_sequence
from echotemporal.outputs import files
from echotemporal.phantoms import generate_sequence


@pytest.fixture()
def seq_path(tmp_path):
    phantom = generate_sequence(7, n_frames=6, spacing_mm=(0.8, 0.8))
    path = tmp_path / "case.nii.gz"
    write_sequence(path, phantom.labels, spacing_mm=(0.8, 0.8))
    return path


def test_os_errors_name_the_real_path_and_a_fix():
    text = describe_os_error(OSError(errno.EROFS, "Read-only file system", "/data/.x.nii.gz.k3j2_a.tmp"))
    assert text == "/data/x.nii.gz: cannot write, the file system is read-only; write to another folder (-o)"
    assert "Errno" not in describe_os_error(OSError(errno.ENOSPC, "No space left", "/d/f"))


def test_a_failed_report_write_leaves_nothing_and_reads_as_one_line(seq_path, tmp_path, monkeypatch):
    def read_only(result, path, *, overwrite=False):
        raise OSError(errno.EROFS, "Read-only file system", str(path.parent / f".{path.name}.abc123.tmp"))

    monkeypatch.setattr(files, "write_summary", read_only)
    out = tmp_path / "o.nii.gz"
    result = CliRunner().invoke(main, ["smooth", str(seq_path), "-o", str(out), "--method", "none"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0] == f"Error: {tmp_path / 'o_summary.json'}: cannot write, the file system is read-only; write to another folder (-o)"
    assert not out.exists() and not list(tmp_path.glob("o_*"))  # all or nothing: the rerun is not blocked


def test_weights_accepts_the_names_it_lists(seq_path, tmp_path):
    bad = CliRunner().invoke(main, ["smooth", str(seq_path), "-o", str(tmp_path / "a.nii.gz"), "--weights", "nosuch"])
    listed = bad.output.split("registered: ")[1].split(";")[0].split(", ")
    assert bad.exit_code == 1 and listed and not any(name.endswith((".onnx", ".pt")) for name in listed)
    good = CliRunner().invoke(main, ["smooth", str(seq_path), "-o", str(tmp_path / "b.nii.gz"), "--weights", listed[0]])
    assert good.exit_code in (0, 3, 4) and "Error" not in good.output, good.output
