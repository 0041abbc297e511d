"""HDF5 training sets of aligned frames and their attributes, and a lazy torch Dataset over them.

A training set is built from whole sequences: each sequence gets its one canonical alignment
(:mod:`echotemporal.model.alignment`), then every frame gets a small extra similarity perturbation (shift,
rotation, scale) so that the orientation, centre and size dims of the latent space see variation; the
perturbed frame is resampled from the native labels (no double interpolation). The 7 attributes are
measured on the aligned grid frame with grid pixels taken as isotropic 1 mm — that is what the
regularized latent dims track.

Sources:

* ``real-shapes``: the expert CAMUS ED/ES masks in ``../shared/data/real-shapes`` (upstream
  ``train``/``val`` patients; ``test`` is reserved for evaluation). Their 224×224 grid is stretched
  along depth by a per-patient factor of about 1.2-1.4 (see its PROVENANCE.md); we compensate by
  giving each sequence an anisotropic spacing with an aspect drawn in that range, so the alignment
  resamples to (approximately) true proportions. Frames in between ED and ES are built by
  signed-distance interpolation on a smooth time profile.
* ``phantoms``: parametric phantom sequences (``echotemporal.phantoms.generate_sequence``).
* a CAMUS tree (``ROOT/patientNNNN/patientNNNN_{2CH,4CH}_half_sequence_gt.nii.gz``).

File layout (h5py, chunked, gzip): ``frames`` (N, G, G) uint8 labels, ``attributes`` (N, 7) float32,
``patient``/``view``/``source``/``split`` (N,) strings, ``sequence_index``/``frame_index`` (N,) int32,
``augmentation`` (N, 4) float32 (shift_row_px, shift_col_px, rotation_deg, log_scale); file attributes
``attribute_names``, ``grid_size``, ``fill_fraction``, ``description``.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from echotemporal.model.alignment import SequenceAlignment, fit_alignment, to_grid
from echotemporal.core.config import AlignmentConfig
from echotemporal.core.distances import signed_distance
from echotemporal.core.errors import InputFileError
from echotemporal.io.atomic import check_overwrite
from echotemporal.phantoms.raster import smooth_time_profile
from echotemporal.phantoms.real_shapes import load_real_shapes, real_shape_spacing_mm

__all__ = [
    "Augmentation",
    "AlignedSequence",
    "interpolate_shapes",
    "real_shape_sequences",
    "phantom_sequences",
    "camus_sequences",
    "aligned_frames",
    "prepare_dataset",
    "FrameDataset",
    "load_split_arrays",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Augmentation:
    """Per-frame similarity perturbation on top of the sequence alignment (grid units).

    Attributes:
        shift_px: std of the shift per axis, in grid pixels (clipped at 2.5 std).
        rotation_deg: std of the rotation, degrees (clipped at 2.5 std).
        log_scale: std of the log scale factor (clipped at 2.5 std).
        probability: fraction of frames perturbed; the others keep the sequence transform.
    """

    shift_px: float = 4.0
    rotation_deg: float = 7.0
    log_scale: float = 0.06
    probability: float = 0.75


NO_AUGMENTATION = Augmentation(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class AlignedSequence:
    """One source sequence before alignment.

    Attributes:
        labels: (T, H, W) uint8 native labels.
        spacing_mm: (row_mm, col_mm).
        patient: patient id; splits are by patient.
        view: "2CH"/"4CH" or "".
        source: "real", "phantom" or "camus".
        split: "train", "val" or "test".
    """

    labels: np.ndarray
    spacing_mm: tuple[float, float]
    patient: str
    view: str
    source: str
    split: str


def interpolate_shapes(
    ed: np.ndarray, es: np.ndarray, weights: np.ndarray, spacing_mm: tuple[float, float]
) -> np.ndarray:
    """Frames between two label maps by signed-distance interpolation (mm).

    LV, LV∪MYO and LA are interpolated separately; since LV ⊂ LV∪MYO at both ends, the linear blend of
    their signed distances keeps the nesting, so the myocardium never inverts.

    Args:
        ed: (H, W) uint8 labels at weight 0.
        es: (H, W) uint8 labels at weight 1.
        weights: (T,) blend weights in [0, 1].
        spacing_mm: (row_mm, col_mm) for distances in mm.

    Returns:
        (T, H, W) uint8 labels.
    """
    def sdf(mask: np.ndarray) -> np.ndarray:
        return signed_distance(mask, spacing_mm).astype(np.float32)

    w = np.asarray(weights, dtype=np.float32)[:, None, None]
    out = np.zeros((w.shape[0],) + ed.shape, dtype=np.uint8)
    for value, sel in ((3, lambda x: x == 3), (2, lambda x: (x == 1) | (x == 2)), (1, lambda x: x == 1)):
        d = (1 - w) * sdf(sel(ed))[None] + w * sdf(sel(es))[None]
        out[d < 0] = value
    return out


def _time_profile(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth monotone ED→ES blend weights, with a random time warp (early/late ejection)."""
    return smooth_time_profile(n_frames, float(np.exp(rng.uniform(-0.4, 0.4))))


def real_shape_sequences(
    splits: Sequence[str] = ("train", "val"),
    *,
    copies: int = 2,
    n_frames: tuple[int, int] = (10, 16),
    aspect: tuple[float, float] = (1.2, 1.4),
    seed: int = 0,
    root: str | Path | None = None,
    limit: int | None = None,
) -> Iterator[AlignedSequence]:
    """ED→ES sequences from the real CAMUS ED/ES masks, ``copies`` per patient and view.

    Args:
        splits: upstream splits to use.
        copies: sequences per (patient, view), each with its own aspect, frame count and time warp.
        n_frames: inclusive range of T.
        aspect: range of the depth-stretch factor to compensate (uniform); a 1-tuple-like (a, a) fixes it.
        seed: random seed.
        root: real-shapes folder (default: the shared data folder).
        limit: stop after this many (patient, view) pairs (tests).

    Yields:
        AlignedSequence with source "real".
    """
    rng = np.random.default_rng(seed)
    for split in splits:
        shapes = load_real_shapes(split, root)
        labels, names = shapes.labels, shapes.names
        index = {str(n): i for i, n in enumerate(names)}
        keys = sorted({str(n).rsplit("_", 1)[0] for n in names})
        for count, key in enumerate(keys):
            if limit is not None and count >= limit:
                break
            if f"{key}_ED" not in index or f"{key}_ES" not in index:
                continue
            patient, view = key.rsplit("_", 1)
            ed, es = labels[index[f"{key}_ED"]], labels[index[f"{key}_ES"]]
            for _ in range(copies):
                spacing = real_shape_spacing_mm(rng.uniform(*aspect))
                T = int(rng.integers(n_frames[0], n_frames[1] + 1))
                seq = interpolate_shapes(ed, es, _time_profile(T, rng), spacing)
                yield AlignedSequence(seq, spacing, patient, view, "real", split)


def count_real_shape_sequences(
    splits: Sequence[str] = ("train", "val"), *, copies: int = 2, root: str | Path | None = None
) -> int:
    """How many sequences :func:`real_shape_sequences` yields with these arguments (no ``limit``)."""
    total = 0
    for split in splits:
        names = {str(n) for n in load_real_shapes(split, root).names}
        keys = {n.rsplit("_", 1)[0] for n in names}
        total += copies * sum(f"{k}_ED" in names and f"{k}_ES" in names for k in keys)
    return total


def _phantom_split(index: int, val_fraction: float) -> str:
    h = int(hashlib.sha256(f"phantom{index}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def phantom_sequences(
    n_sequences: int,
    *,
    seed: int = 0,
    n_frames: tuple[int, int] = (10, 16),
    val_fraction: float = 0.1,
    split: str | None = None,
) -> Iterator[AlignedSequence]:
    """Parametric phantom sequences (``echotemporal.phantoms.generate_sequence``), 2CH and 4CH alternating.

    Args:
        n_sequences: number of sequences.
        seed: base seed; sequence i uses seed ``seed * 1_000_003 + i``.
        n_frames: inclusive range of T.
        val_fraction: fraction of phantom patients assigned to "val" (by a hash of the index).
        split: force every sequence into this split (e.g. "test" for evaluation phantoms).

    Yields:
        AlignedSequence with source "phantom"; a phantom whose generation fails is skipped with a warning.
    """
    from echotemporal.phantoms import generate_sequence

    rng = np.random.default_rng(seed + 7919)
    for i in range(n_sequences):
        view = "2CH" if i % 2 else "4CH"
        T = int(rng.integers(n_frames[0], n_frames[1] + 1))
        try:
            ph = generate_sequence(seed * 1_000_003 + i, view=view, n_frames=T)
        except Exception as exc:  # a phantom generator bug must not kill a multi-minute build
            warnings.warn(f"phantom {i} skipped: {exc.__class__.__name__}: {exc}", stacklevel=2)
            continue
        yield AlignedSequence(
            np.asarray(ph.labels, dtype=np.uint8),
            tuple(float(s) for s in ph.spacing_mm),  # type: ignore[arg-type]
            f"phantom{seed}_{i:05d}",
            view,
            "phantom",
            split or _phantom_split(i, val_fraction),
        )


def camus_sequences(root: str | Path, *, suffix: str = "_half_sequence_gt", val_fraction: float = 0.1) -> Iterator[AlignedSequence]:
    """Ground-truth sequences of a CAMUS tree; patients split by a hash of their id.

    Args:
        root: CAMUS root folder.
        suffix: file-name suffix of the sequences to use.
        val_fraction: fraction of patients assigned to "val".

    Yields:
        AlignedSequence with source "camus".
    """
    from echotemporal.io import discover_camus, read_sequence

    cases = discover_camus(root, suffix=suffix)
    if not cases:
        raise InputFileError(f"{root}: no CAMUS sequences matching '*{suffix}' found; check the folder or --suffix")
    for case in cases:
        seq = read_sequence(case.path)
        h = int(hashlib.sha256(case.patient.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        yield AlignedSequence(
            np.asarray(seq.labels, dtype=np.uint8), tuple(seq.spacing_mm), case.patient, case.view, "camus",  # type: ignore[arg-type]
            "val" if h < val_fraction else "train",
        )


def _perturbed(alignment: SequenceAlignment, shift_px: np.ndarray, rot_deg: float, log_scale: float) -> SequenceAlignment:
    """The alignment moved by a grid-space shift/rotation/scale (what the frame will look like on the grid)."""
    R = alignment.rotation_matrix
    th = np.radians(rot_deg)
    dR = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    R2 = R @ dR
    # Shifting the content by +d on the grid means sampling from centre - R·d.
    center = np.asarray(alignment.center_mm) - R @ (np.asarray(shift_px) * alignment.scale_mm)
    return replace(
        alignment,
        center_mm=(float(center[0]), float(center[1])),
        rotation=((float(R2[0, 0]), float(R2[0, 1])), (float(R2[1, 0]), float(R2[1, 1]))),
        scale_mm=float(alignment.scale_mm * np.exp(-log_scale)),
        angle_deg=float(alignment.angle_deg - rot_deg),
    )


def aligned_frames(
    sequence: AlignedSequence,
    config: AlignmentConfig,
    augmentation: Augmentation,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align one sequence, perturb each frame, and measure the attributes on the grid.

    Args:
        sequence: the native sequence.
        config: alignment (grid size, fill fraction).
        augmentation: per-frame perturbation distribution.
        rng: random generator.

    Returns:
        frames (T, G, G) uint8, attributes (T, 7) float32 (grid pixels as 1 mm), augmentation
        parameters (T, 4) float32.
    """
    from echotemporal.measure.attributes import compute_attributes

    labels = sequence.labels
    base = fit_alignment(labels, sequence.spacing_mm, config)
    T = labels.shape[0]
    params = np.zeros((T, 4), dtype=np.float32)
    frames = to_grid(labels, base)
    lim = 2.5
    for t in range(T):
        if augmentation.probability <= 0 or rng.random() >= augmentation.probability:
            continue
        shift = np.clip(rng.normal(size=2), -lim, lim) * augmentation.shift_px
        rot = float(np.clip(rng.normal(), -lim, lim) * augmentation.rotation_deg)
        lsc = float(np.clip(rng.normal(), -lim, lim) * augmentation.log_scale)
        frames[t] = to_grid(labels[t : t + 1], _perturbed(base, shift, rot, lsc))[0]
        params[t] = (shift[0], shift[1], rot, lsc)
    with warnings.catch_warnings():
        # Unmeasurable frames (e.g. a hinge lost to a heavy rotation) are kept with NaN: the AR loss skips them.
        warnings.simplefilter("ignore")
        attrs = compute_attributes(frames, (1.0, 1.0)).astype(np.float32)
    return frames, attrs, params


def prepare_dataset(
    sequences: Iterator[AlignedSequence] | Sequence[AlignedSequence],
    out_path: str | Path,
    *,
    config: AlignmentConfig = AlignmentConfig(),
    augmentation: Augmentation = Augmentation(),
    seed: int = 0,
    overwrite: bool = False,
    description: str = "",
    progress: bool = True,
    total: int | None = None,
) -> dict[str, int]:
    """Align, augment and measure sequences and write them to an HDF5 training set.

    Args:
        sequences: the source sequences (any iterable of AlignedSequence).
        out_path: the .h5 file to write.
        config: alignment configuration (grid size, fill fraction).
        augmentation: per-frame perturbation.
        seed: random seed of the perturbations.
        overwrite: replace an existing file.
        description: free text stored in the file.
        progress: show a progress bar on stderr.
        total: number of sequences ``sequences`` yields, for the bar's total and ETA (None: unknown).

    Returns:
        Frame counts per split.

    Raises:
        OutputExistsError: the file exists and ``overwrite`` is False.
    """
    import h5py
    from tqdm import tqdm

    from echotemporal.measure.attributes import ATTRIBUTE_NAMES

    out_path = Path(out_path)
    check_overwrite(out_path, overwrite)
    rng = np.random.default_rng(seed)
    G = int(config.grid_size)
    frames_l, attrs_l, aug_l, meta = [], [], [], []
    for si, seq in enumerate(tqdm(sequences, desc="prepare", unit="seq", total=total, disable=not progress)):
        f, a, p = aligned_frames(seq, config, augmentation, rng)
        frames_l.append(f)
        attrs_l.append(a)
        aug_l.append(p)
        meta += [(seq.patient, seq.view, seq.source, seq.split, si, t) for t in range(f.shape[0])]
    if not frames_l:
        raise InputFileError(f"{out_path}: no sequences to write; check the SOURCE")
    frames = np.concatenate(frames_l)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    str_dt = h5py.string_dtype()
    with h5py.File(tmp, "w") as h5:
        chunk = (min(256, frames.shape[0]), G, G)
        h5.create_dataset("frames", data=frames, chunks=chunk, compression="gzip", compression_opts=4)
        h5.create_dataset("attributes", data=np.concatenate(attrs_l), compression="gzip")
        h5.create_dataset("augmentation", data=np.concatenate(aug_l), compression="gzip")
        for j, name in enumerate(("patient", "view", "source", "split")):
            h5.create_dataset(name, data=np.array([m[j] for m in meta], dtype=object), dtype=str_dt, compression="gzip")
        h5.create_dataset("sequence_index", data=np.array([m[4] for m in meta], dtype=np.int32))
        h5.create_dataset("frame_index", data=np.array([m[5] for m in meta], dtype=np.int32))
        h5.attrs["attribute_names"] = list(ATTRIBUTE_NAMES)
        h5.attrs["grid_size"] = G
        h5.attrs["fill_fraction"] = float(config.fill_fraction)
        h5.attrs["augmentation"] = [augmentation.shift_px, augmentation.rotation_deg, augmentation.log_scale, augmentation.probability]
        h5.attrs["seed"] = seed
        h5.attrs["description"] = description
    tmp.replace(out_path)
    splits = np.array([m[3] for m in meta])
    return {s: int((splits == s).sum()) for s in SPLITS if (splits == s).any()}


def load_split_arrays(path: str | Path, split: str | None = None) -> dict[str, Any]:
    """Read a whole split into memory: frames (N, G, G) uint8, attributes (N, 7) float32, ids.

    Args:
        path: HDF5 training set.
        split: "train", "val", "test" or None for all.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: training set not found; build it with `echotemporal prepare SOURCE -o {path.name}`")
    with h5py.File(path, "r") as h5:
        splits = h5["split"].asstr()[:]
        sel = np.ones(splits.shape, bool) if split is None else splits == split
        idx = np.flatnonzero(sel)
        # Reading the whole dataset then selecting is far faster than fancy-indexing gzip chunks.
        out = {
            "frames": h5["frames"][:][idx],
            "attributes": h5["attributes"][:][idx],
            "patient": h5["patient"].asstr()[:][idx],
            "view": h5["view"].asstr()[:][idx],
            "source": h5["source"].asstr()[:][idx],
            "attribute_names": tuple(str(a) for a in h5.attrs["attribute_names"]),
            "grid_size": int(h5.attrs["grid_size"]),
        }
    return out


class FrameDataset:
    """Lazy torch-style Dataset over one split of an HDF5 training set.

    ``dataset[i]`` returns ``(frame (G, G) uint8 tensor, attributes (7,) float32 tensor)``. The file
    is opened on first access (so the object pickles into DataLoader workers); ``in_memory=True``
    reads the split once instead, which is what the CPU training loop uses.

    Args:
        path: HDF5 file written by :func:`prepare_dataset`.
        split: "train", "val" or "test".
        in_memory: load the split into RAM.
    """

    def __init__(self, path: str | Path, split: str = "train", in_memory: bool = False):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"{self.path}: training set not found; build it with `echotemporal prepare`")
        with h5py.File(self.path, "r") as h5:
            self.indices = np.flatnonzero(h5["split"].asstr()[:] == split)
            self.attribute_names = tuple(str(a) for a in h5.attrs["attribute_names"])
            self.grid_size = int(h5.attrs["grid_size"])
        self.split = split
        self._h5 = None
        self._frames = self._attrs = None
        if in_memory:
            arrays = load_split_arrays(self.path, split)
            self._frames, self._attrs = arrays["frames"], arrays["attributes"]

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int):
        import torch

        if self._frames is not None:
            return torch.from_numpy(self._frames[i]), torch.from_numpy(self._attrs[i])
        if self._h5 is None:
            import h5py

            self._h5 = h5py.File(self.path, "r")
        j = int(self.indices[i])
        return torch.from_numpy(self._h5["frames"][j]), torch.from_numpy(self._h5["attributes"][j])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames (N, G, G) uint8, attributes (N, 7) float32) of the whole split (loads it if lazy)."""
        if self._frames is None:
            arrays = load_split_arrays(self.path, self.split)
            self._frames, self._attrs = arrays["frames"], arrays["attributes"]
        return self._frames, self._attrs

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = None
        return state
