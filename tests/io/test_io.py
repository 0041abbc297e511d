"""Tests for echotemporal.io: file round trips, geometry, label validation, Info cfg, CAMUS discovery."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from echotemporal.core.errors import InputFileError, InvalidLabelsError, OutputExistsError
from echotemporal.io import (
    CamusCase,
    ImageGeometry,
    InfoCfg,
    discover_camus,
    geometry_from_spacing,
    read_info_cfg,
    read_sequence,
    write_info_cfg,
    write_sequence,
)

REAL_PATIENT = (
    Path(os.environ.get("ECHOTEMPORAL_REAL_SHAPES", Path(__file__).resolve().parents[3] / "shared/data/real-shapes"))
    / "camus-travislatchman-mhd/MIA23_Project1_data/patient0001"
)
needs_real = pytest.mark.skipif(not REAL_PATIENT.is_dir(), reason="real CAMUS sample not available")

FORMATS = ("nii.gz", "nii", "mhd")


@pytest.fixture
def labels() -> np.ndarray:
    """(T=4, H=7, W=5) random CAMUS labels: non-square so that a swapped axis cannot pass."""
    return np.random.default_rng(0).integers(0, 4, size=(4, 7, 5), dtype=np.uint8)


# Anisotropic spacing, off-zero origin and a non-identity direction; all values exact in float32, since
# NIfTI stores geometry as float32 and only such values survive the first write exactly.
GEOMETRY_3D = ImageGeometry(
    spacing=(0.375, 0.1875, 40.0),
    origin=(12.5, -3.25, 7.0),
    direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
)


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_keeps_labels_and_geometry(tmp_path: Path, labels: np.ndarray, ext: str) -> None:
    path = write_sequence(tmp_path / f"seq.{ext}", labels, GEOMETRY_3D)
    seq = read_sequence(path)
    assert seq.labels.dtype == np.uint8
    np.testing.assert_array_equal(seq.labels, labels)
    assert seq.geometry == GEOMETRY_3D
    # array order (row_mm, col_mm) is SimpleITK's (x, y) reversed
    assert seq.spacing_mm == (0.1875, 0.375)
    assert seq.path == path


@pytest.mark.parametrize("ext", FORMATS)
def test_file_to_file_round_trip_is_exact_for_any_double(tmp_path: Path, labels: np.ndarray, ext: str) -> None:
    # 0.308 mm and a 36.87 deg rotation are not float32: NIfTI rounds them once; copying a file is exact.
    c, s = 0.6, 0.8
    geometry = ImageGeometry((0.308, 0.154, 1.54), (1.1, -2.3, 0.7), (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    first = read_sequence(write_sequence(tmp_path / f"a.{ext}", labels, geometry))
    second = read_sequence(write_sequence(tmp_path / f"b.{ext}", first.labels, first.geometry))
    assert second.geometry == first.geometry
    np.testing.assert_array_equal(second.labels, labels)
    np.testing.assert_allclose(first.geometry.spacing, geometry.spacing, rtol=1e-6)
    if ext == "mhd":  # MetaImage writes doubles as text: exact from the start
        assert first.geometry == geometry


def test_geometry_from_spacing_is_in_sitk_order(tmp_path: Path, labels: np.ndarray) -> None:
    geometry = geometry_from_spacing((0.5, 0.25))
    assert geometry.spacing == (0.25, 0.5, 1.0)
    assert geometry.origin == (0.0, 0.0, 0.0)
    assert geometry_from_spacing((0.5, 0.25), n_dims=2).direction == (1.0, 0.0, 0.0, 1.0)
    seq = read_sequence(write_sequence(tmp_path / "s.nii.gz", labels, spacing_mm=(0.5, 0.25)))
    assert seq.spacing_mm == (0.5, 0.25)
    # the image's physical extent follows the spacing: columns (x) are 0.25 mm apart
    image = sitk.ReadImage(str(tmp_path / "s.nii.gz"))
    assert image.GetSize() == (5, 7, 4)
    assert image.TransformIndexToPhysicalPoint((1, 0, 0))[0] == pytest.approx(0.25)


@pytest.mark.parametrize("bad", [(0.0, 1.0), (1.0,), (float("nan"), 1.0)])
def test_geometry_from_spacing_rejects_bad_spacing(bad: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="spacing_mm"):
        geometry_from_spacing(bad)


def test_write_needs_geometry_or_spacing(tmp_path: Path, labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="spacing_mm"):
        write_sequence(tmp_path / "s.nii.gz", labels)
    with pytest.raises(ValueError, match="contradicts"):
        write_sequence(tmp_path / "s.nii.gz", labels, GEOMETRY_3D, spacing_mm=(1.0, 1.0))
    assert not (tmp_path / "s.nii.gz").exists()


@pytest.mark.parametrize("ext", FORMATS)
def test_2d_file_reads_as_one_frame_and_writes_back_2d(tmp_path: Path, ext: str) -> None:
    frame = np.random.default_rng(1).integers(0, 4, size=(6, 9), dtype=np.uint8)
    image = sitk.GetImageFromArray(frame)
    image.SetSpacing((0.25, 0.5))
    image.SetOrigin((3.0, -1.5))
    sitk.WriteImage(image, str(tmp_path / f"frame.{ext}"))

    seq = read_sequence(tmp_path / f"frame.{ext}")
    assert seq.labels.shape == (1, 6, 9)
    np.testing.assert_array_equal(seq.labels[0], frame)
    assert seq.spacing_mm == (0.5, 0.25)
    assert seq.geometry.dimension == 2

    out = write_sequence(tmp_path / f"copy.{ext}", seq.labels, seq.geometry)
    back = sitk.ReadImage(str(out))
    assert back.GetDimension() == 2
    assert back.GetOrigin() == (3.0, -1.5)


def test_2d_geometry_refuses_several_frames(tmp_path: Path, labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2D geometry"):
        write_sequence(tmp_path / "s.nii.gz", labels, geometry_from_spacing((1.0, 1.0), n_dims=2))


@needs_real
def test_real_camus_mhd_reads_as_one_frame_with_header_spacing(tmp_path: Path) -> None:
    seq = read_sequence(REAL_PATIENT / "patient0001_2CH_ED_gt.mhd")
    assert seq.labels.shape == (1, 778, 549)
    assert seq.spacing_mm == (0.154, 0.308)
    assert set(np.unique(seq.labels).tolist()) == {0, 1, 2, 3}
    # apex up: the LA (3) lies below the LV (1)
    rows = np.indices(seq.labels.shape[1:])[0]
    assert rows[seq.labels[0] == 3].mean() > rows[seq.labels[0] == 1].mean()
    # written back as it came: a 3D file with a size-1 third axis, identical geometry
    out = write_sequence(tmp_path / "copy.mhd", seq.labels, seq.geometry)
    assert sitk.ReadImage(str(out)).GetSize() == (549, 778, 1)
    back = read_sequence(out)
    assert back.geometry == seq.geometry
    np.testing.assert_array_equal(back.labels, seq.labels)


def test_float_image_is_rejected_naming_the_file(tmp_path: Path) -> None:
    bmode = np.random.default_rng(2).random((3, 8, 8)).astype(np.float32) * 255
    sitk.WriteImage(sitk.GetImageFromArray(bmode), str(tmp_path / "bmode.nii.gz"))
    with pytest.raises(InvalidLabelsError, match="bmode.nii.gz") as info:
        read_sequence(tmp_path / "bmode.nii.gz")
    assert "B-mode" in str(info.value)


def test_label_value_7_is_rejected_naming_file_and_values(tmp_path: Path, labels: np.ndarray) -> None:
    bad = labels.copy()
    bad[0, 0, 0] = 7
    sitk.WriteImage(sitk.GetImageFromArray(bad), str(tmp_path / "bad.mhd"))
    with pytest.raises(InvalidLabelsError, match=r"bad\.mhd.*7"):
        read_sequence(tmp_path / "bad.mhd")
    with pytest.raises(InvalidLabelsError, match="7"):
        write_sequence(tmp_path / "out.nii.gz", bad, spacing_mm=(1.0, 1.0))
    assert not (tmp_path / "out.nii.gz").exists()


def test_missing_unreadable_unsupported_and_4d_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.nii.gz: not found"):
        read_sequence(tmp_path / "nope.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"this is not an image")
    with pytest.raises(InputFileError, match="junk.nii.gz: unreadable"):
        read_sequence(tmp_path / "junk.nii.gz")
    (tmp_path / "seq.png").write_bytes(b"")
    with pytest.raises(InputFileError, match="unsupported format"):
        read_sequence(tmp_path / "seq.png")
    # an .mhd whose .raw is missing
    write_sequence(tmp_path / "lonely.mhd", np.zeros((2, 3, 3), np.uint8), spacing_mm=(1.0, 1.0))
    (tmp_path / "lonely.raw").unlink()
    with pytest.raises(InputFileError, match="lonely.mhd"):
        read_sequence(tmp_path / "lonely.mhd")
    sitk.WriteImage(sitk.Image([3, 3, 2, 2], sitk.sitkUInt8), str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputFileError, match="four.nii.gz: 4D.*one view's sequence per file"):
        read_sequence(tmp_path / "four.nii.gz")
    sitk.WriteImage(sitk.Image([3, 3, 1, 2], sitk.sitkUInt8), str(tmp_path / "slab.nii.gz"))
    with pytest.raises(InputFileError, match=r"slab.nii.gz: 4D image of size \(3, 3, 1, 2\).*drop its axis of size 1"):
        read_sequence(tmp_path / "slab.nii.gz")


def test_input_errors_are_one_line_without_native_noise(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # MetaIO prints parse errors to the C++ stderr; they must end up in the message, not on the terminal
    (tmp_path / "junk.mhd").write_text("NDims = 3\nnonsense\n")
    with pytest.raises(InputFileError, match="junk.mhd: unreadable") as info:
        read_sequence(tmp_path / "junk.mhd")
    assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("ext", FORMATS)
def test_no_overwrite_without_permission(tmp_path: Path, labels: np.ndarray, ext: str) -> None:
    path = write_sequence(tmp_path / f"seq.{ext}", labels, spacing_mm=(1.0, 1.0))
    with pytest.raises(OutputExistsError, match=rf"seq\.{ext}.*rerun with --overwrite"):
        write_sequence(path, np.zeros_like(labels), spacing_mm=(1.0, 1.0))
    np.testing.assert_array_equal(read_sequence(path).labels, labels)  # untouched
    write_sequence(path, np.zeros_like(labels), spacing_mm=(1.0, 1.0), overwrite=True)
    assert read_sequence(path).labels.max() == 0
    # atomic write: no temporary files left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"seq.{ext}"] + (["seq.raw"] if ext == "mhd" else []))


def test_mhd_does_not_clobber_a_foreign_raw(tmp_path: Path, labels: np.ndarray) -> None:
    (tmp_path / "seq.raw").write_bytes(b"someone else's data")
    with pytest.raises(OutputExistsError, match=r"seq\.raw"):
        write_sequence(tmp_path / "seq.mhd", labels, spacing_mm=(1.0, 1.0))
    assert (tmp_path / "seq.raw").read_bytes() == b"someone else's data"
    assert not (tmp_path / "seq.mhd").exists()


@pytest.mark.parametrize("keep", ["half", "all but one byte"])
@pytest.mark.parametrize("ext", FORMATS)
def test_truncated_file_is_an_input_error_naming_the_file(
    tmp_path: Path, labels: np.ndarray, ext: str, keep: str
) -> None:
    # SimpleITK reads a short NIfTI without complaint, filling the missing voxels with zeros
    path = write_sequence(tmp_path / f"seq.{ext}", labels, GEOMETRY_3D)
    np.testing.assert_array_equal(read_sequence(path).labels, labels)  # intact: exact round trip
    data_file = tmp_path / "seq.raw" if ext == "mhd" else path  # an .mhd's voxels are in its .raw
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-1])
    with pytest.raises(InputFileError, match=rf"seq\.{ext}: file is truncated or corrupt \(.*\); re-export") as info:
        read_sequence(path)
    assert "\n" not in str(info.value)
    if ext == "mhd":
        assert "seq.raw" in str(info.value)


def test_truncated_header_and_corrupt_gzip_are_input_errors(tmp_path: Path, labels: np.ndarray) -> None:
    path = write_sequence(tmp_path / "seq.nii.gz", labels, GEOMETRY_3D)
    data = path.read_bytes()
    (tmp_path / "head.nii.gz").write_bytes(data[:20])  # cut inside the gzip header of the NIfTI header
    (tmp_path / "crc.nii.gz").write_bytes(data[:-8] + bytes([data[-8] ^ 1]) + data[-7:])  # CRC trailer off
    plain = write_sequence(tmp_path / "seq.nii", labels, GEOMETRY_3D).read_bytes()
    (tmp_path / "head.nii").write_bytes(plain[:100])  # inside the 348-byte NIfTI-1 header
    for name in ("head.nii.gz", "crc.nii.gz", "head.nii"):
        with pytest.raises(InputFileError, match=rf"{name}: file is truncated or corrupt"):
            read_sequence(tmp_path / name)


def test_a_file_over_the_voxel_limit_is_refused_before_it_is_read(tmp_path: Path, labels: np.ndarray, monkeypatch) -> None:
    """A header announcing more voxel data than a label sequence may hold, and a gzip stream that
    inflates past that limit (a few hundred kB can inflate to tens of GB), are refused unread."""
    import gzip
    import struct

    from echotemporal.io import integrity

    path = write_sequence(tmp_path / "seq.nii.gz", labels, GEOMETRY_3D)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<4h", raw, 40, 3, 30000, 30000, 3000)  # 2.7 TB of uint8 voxels announced
    (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    (tmp_path / "huge.nii").write_bytes(bytes(raw))
    for name in ("huge.nii.gz", "huge.nii"):
        with pytest.raises(InputFileError, match=rf"{name}: its NIfTI header announces 2700000000352 bytes, over the 2 GiB"):
            read_sequence(tmp_path / name)
    monkeypatch.setattr(integrity, "MAX_VOXEL_BYTES", 10_000)
    padded = gzip.decompress(path.read_bytes()) + bytes(20_000)  # the header announces 492 bytes; 20 kB follow
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(padded))
    with pytest.raises(InputFileError, match=r"bomb.nii.gz: decompresses to over 20492 bytes"):
        read_sequence(tmp_path / "bomb.nii.gz")
    np.testing.assert_array_equal(read_sequence(path).labels, labels)  # under the limit: read as ever


def test_gzip_padding_after_a_complete_stream_is_not_truncation(tmp_path: Path, labels: np.ndarray) -> None:
    path = write_sequence(tmp_path / "seq.nii.gz", labels, GEOMETRY_3D)
    path.write_bytes(path.read_bytes() + b"\0" * 16)  # some tools pad; ITK and gzip ignore it
    np.testing.assert_array_equal(read_sequence(path).labels, labels)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_mode_umask_allows(tmp_path: Path, labels: np.ndarray, umask: int) -> None:
    # tempfile.mkstemp makes 0600 files: an atomic writer must not leak that mode into its outputs
    previous = os.umask(umask)
    try:
        written = [
            write_info_cfg(tmp_path / "Info_4CH.cfg", InfoCfg(ed_frame=0, es_frame=3)),
            write_sequence(tmp_path / "seq.nii.gz", labels, GEOMETRY_3D),
            write_sequence(tmp_path / "seq.mhd", labels, GEOMETRY_3D),
        ]
    finally:
        os.umask(previous)
    for path in [*written, tmp_path / "seq.raw"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name
    # atomic: nothing but the outputs is left in the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Info_4CH.cfg", "seq.mhd", "seq.nii.gz", "seq.raw"]


# ---- Info cfg --------------------------------------------------------------------------------------


@needs_real
def test_read_old_release_info_cfg() -> None:
    info = read_info_cfg(REAL_PATIENT / "Info_2CH.cfg")
    assert (info.ed_frame, info.es_frame, info.n_frames) == (0, 17, 18)  # file: ED 1, ES 18
    assert (info.edv_ml, info.esv_ml, info.ef_percent) == (94.0, 34.6, 63.2)
    assert (info.sex, info.age, info.image_quality) == ("F", 56.0, "Good")
    assert info.frame_rate_hz is None
    assert info.extra == {}
    assert not info.stored_es_to_ed


def test_new_release_info_cfg_with_unknown_key_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "Info_4CH.cfg"
    path.write_text("ED: 14\nES: 1\nNbFrame: 14\nSex: M\nAge: 71\nImageQuality: Poor\nEF: 41\n"
                    "FrameRate: 33.5\nScanner: GE Vivid E95\n")
    info = read_info_cfg(path)
    assert (info.ed_frame, info.es_frame, info.n_frames) == (13, 0, 14)
    assert info.stored_es_to_ed
    assert (info.ef_percent, info.frame_rate_hz, info.edv_ml) == (41.0, 33.5, None)
    assert info.extra == {"Scanner": "GE Vivid E95"}

    with pytest.raises(OutputExistsError, match="rerun with --overwrite"):
        write_info_cfg(path, info)
    out = write_info_cfg(tmp_path / "copy.cfg", info)
    text = out.read_text()
    assert "ED: 14\n" in text and "ES: 1\n" in text and "EF: 41.0\n" in text and "LVef" not in text
    assert read_info_cfg(out) == info


def test_info_cfg_with_both_ef_keys_keeps_lvef_as_text(tmp_path: Path) -> None:
    path = tmp_path / "Info_2CH.cfg"
    path.write_text("ED: 1\nES: 10\nLVef: 55.5\nEF: 56\n")
    info = read_info_cfg(path)
    assert info.ef_percent == 56.0
    assert info.extra == {"LVef": "55.5"}
    assert read_info_cfg(write_info_cfg(tmp_path / "copy.cfg", info)) == info


@pytest.mark.parametrize(
    ("text", "match"),
    [("ED: one\n", "ED: 'one' is not a number"), ("ES: 0\n", "start at 1"), ("ObjectType = Image\n", "Key: value")],
)
def test_bad_info_cfg_is_an_input_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "Info_2CH.cfg"
    path.write_text(text)
    with pytest.raises(InputFileError, match=match) as info:
        read_info_cfg(path)
    assert "Info_2CH.cfg" in str(info.value)
    with pytest.raises(InputFileError, match="not found"):
        read_info_cfg(tmp_path / "missing.cfg")


# ---- CAMUS discovery -------------------------------------------------------------------------------


def test_discover_camus_finds_cases_sorted(tmp_path: Path) -> None:
    small = np.zeros((2, 4, 4), np.uint8)
    layout = {
        "patient0010": [("4CH", "nii.gz"), ("2CH", "mhd")],
        "patient0002": [("2CH", "nii"), ("4CH", "nii.gz")],
    }
    for patient, entries in layout.items():
        for view, ext in entries:
            write_sequence(tmp_path / patient / f"{patient}_{view}_half_sequence_gt.{ext}", small, spacing_mm=(1, 1))
    (tmp_path / "patient0002" / "Info_4CH.cfg").write_text("ED: 1\nES: 2\n")
    # noise the discovery must ignore
    write_sequence(tmp_path / "patient0002" / "patient0002_2CH_half_sequence.nii.gz", small, spacing_mm=(1, 1))
    (tmp_path / "notes").mkdir()
    (tmp_path / "patient0003.txt").write_text("")

    cases = discover_camus(tmp_path)
    assert [(c.patient, c.view, c.path.name) for c in cases] == [
        ("patient0002", "2CH", "patient0002_2CH_half_sequence_gt.nii"),
        ("patient0002", "4CH", "patient0002_4CH_half_sequence_gt.nii.gz"),
        ("patient0010", "2CH", "patient0010_2CH_half_sequence_gt.mhd"),
        ("patient0010", "4CH", "patient0010_4CH_half_sequence_gt.nii.gz"),
    ]
    assert cases[1].info_path == tmp_path / "patient0002" / "Info_4CH.cfg"
    assert cases[0].info_path is None
    assert all(isinstance(c, CamusCase) for c in cases)
    assert [c.view for c in discover_camus(tmp_path, views=("4CH",))] == ["4CH", "4CH"]
    assert [c.path.name for c in discover_camus(tmp_path, suffix="_half_sequence")] == [
        "patient0002_2CH_half_sequence.nii.gz"
    ]


def test_discover_camus_empty_and_missing_root(tmp_path: Path) -> None:
    assert discover_camus(tmp_path) == []
    with pytest.raises(InputFileError, match="nowhere.*patientNNNN"):
        discover_camus(tmp_path / "nowhere")


@needs_real
def test_discover_real_camus_ed_files() -> None:
    cases = discover_camus(REAL_PATIENT.parent, suffix="_ED_gt")
    assert len(cases) == 10
    assert cases[0].path.name == "patient0001_2CH_ED_gt.mhd"
    assert cases[0].info_path == REAL_PATIENT / "Info_2CH.cfg"
