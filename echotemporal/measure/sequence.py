"""Per-frame measures of a sequence, before and after correction, cropped to the heart.

Attributes and consistency flags (DESIGN.md §3, §4.1), anatomical validity (§6) and clinical indices
(§5), computed on the heart's bounding box so that CAMUS-size frames stay cheap, and reused for frames
that a correction left bit-identical. Frames can be measured in parallel threads
(:func:`measure_threads`, default 1: the measures mostly hold the GIL); the results do not depend on
the thread count.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from echotemporal.core.boxes import HEART_MARGIN_PX, mask_box
from echotemporal.core.errors import ConfigError
from echotemporal.core.parallel import THREADS_ENV, env_threads

if TYPE_CHECKING:  # pragma: no cover
    from echotemporal.measure.temporal import AttributeThresholds

__all__ = [
    "CROP_MARGIN_PX",
    "THREADS_ENV",
    "measure_threads",
    "ShapeMeasures",
    "ClinicalMeasures",
    "heart_box",
    "present_labels",
    "attribute_order",
    "measure_shape",
    "add_validity",
    "restore_frames",
    "measure_clinical",
]

#: Pixels kept around the heart when cropping for measurement (the one margin, core.boxes.HEART_MARGIN_PX).
CROP_MARGIN_PX = HEART_MARGIN_PX


def measure_threads() -> int:
    """Threads measuring frames in parallel: ``$ECHOTEMPORAL_THREADS``, else 1.

    The per-frame measures (attributes, anatomy, clinical, clean-up) are many small numpy/scipy
    calls on tight crops, and most of their time holds the GIL, so a second thread on a small
    machine costs more than it brings. Results do not depend on the count; set the variable where
    more pays. The parallelism of a batch is its processes.
    """
    n = env_threads()
    return 1 if n is None else n


@dataclass(frozen=True)
class ShapeMeasures:
    """Per-frame shape measures, arrays indexed like the sequence."""

    attributes: np.ndarray  # (T, K) in thresholds.names order, physical units
    flags: np.ndarray  # (T, K) bool
    criteria: np.ndarray  # (T, C) bool, True = satisfied
    valid: np.ndarray  # (T,) bool
    checked: bool = True  # False: validity not measured (criteria empty)
    present: tuple[int, ...] = ()  # structure labels present in the sequence measured first (reference)

    @property
    def inconsistent(self) -> np.ndarray:
        """(T,) bool: frames flagged on any attribute."""
        return self.flags.any(axis=1)

    @property
    def clean(self) -> np.ndarray:
        """(T,) bool: frames valid and flagged on no attribute."""
        return self.valid & ~self.inconsistent

    def reversed(self) -> ShapeMeasures:
        return ShapeMeasures(
            self.attributes[::-1], self.flags[::-1], self.criteria[::-1], self.valid[::-1], self.checked, self.present
        )

    def translated(self, names: tuple[str, ...], offset_mm: tuple[float, float]) -> ShapeMeasures:
        """The measures of the same frames placed ``offset_mm`` (row, col) further from the image origin:
        the position attributes (``names``: the attribute columns) move, nothing else does."""
        attributes = self.attributes.copy()
        for name, axis in (("epi_center_y_mm", 0), ("epi_center_x_mm", 1)):
            if name in names:
                attributes[:, names.index(name)] += float(offset_mm[axis])
        return dataclasses.replace(self, attributes=attributes)


@dataclass(frozen=True)
class ClinicalMeasures:
    volumes_ml: np.ndarray  # (T,)
    strain_percent: np.ndarray  # (T,)
    ed_frame: int | None
    es_frame: int | None
    edv_ml: float
    esv_ml: float
    ef_percent: float
    gls_percent: float
    frames: Any = None  # clinical.FrameMeasures: per-frame measures, reused for unchanged frames

    def reversed(self) -> ClinicalMeasures:
        n = len(self.volumes_ml)
        flip = lambda i: None if i is None else n - 1 - int(i)  # noqa: E731
        return dataclasses.replace(
            self,
            volumes_ml=self.volumes_ml[::-1],
            strain_percent=self.strain_percent[::-1],
            ed_frame=flip(self.ed_frame),
            es_frame=flip(self.es_frame),
            frames=None if self.frames is None else self.frames.reversed(),
        )


def heart_box(labels: np.ndarray, margin: int = CROP_MARGIN_PX) -> tuple[slice, slice]:
    """Row/column slices of the bounding box of all non-background pixels over time, plus a margin."""
    h, w = labels.shape[-2:]
    footprint = labels.reshape(-1, h, w).max(axis=0)  # max of uint8: cheaper than any()
    box = mask_box(footprint, margin)
    if box is None:
        return slice(0, min(h, 2 * margin + 1)), slice(0, min(w, 2 * margin + 1))
    return box


def attribute_order(names: tuple[str, ...]) -> np.ndarray:
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES

    missing = [n for n in names if n not in ATTRIBUTE_NAMES]
    if missing:
        raise ConfigError(
            f"thresholds name attribute(s) {', '.join(missing)} that echotemporal.measure.attributes does not "
            f"measure ({', '.join(ATTRIBUTE_NAMES)}); regenerate the thresholds file"
        )
    return np.array([ATTRIBUTE_NAMES.index(n) for n in names])


def _criteria_beside(
    crop: np.ndarray, spacing_mm: tuple[float, float], present: tuple[int, ...], work: Callable[[int], Any]
) -> tuple[np.ndarray, Any]:
    """Anatomical criteria of the (n, h, w) ``crop`` computed beside ``work(threads)``, and its result.

    With more than one :func:`measure_threads`, the criteria run in other threads while this one
    runs ``work`` (Python-bound measures), which gets the thread count it may use itself; with one,
    they run in turn.

    Returns:
        ((n, C) bool criteria, work's result).
    """
    from echotemporal.measure.anatomy import check_validity

    threads = measure_threads()
    if threads <= 1:
        result = work(threads)
        criteria = check_validity(crop, spacing_mm, threads=1, present=present)
        return np.asarray(criteria, dtype=bool).reshape(len(crop), -1), result
    with ThreadPoolExecutor(1, thread_name_prefix="echotemporal-anatomy") as side:
        job = side.submit(check_validity, crop, spacing_mm, threads=threads, present=present)
        result = work(1)
        return np.asarray(job.result(), dtype=bool).reshape(len(crop), -1), result


def measure_shape(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    thresholds: AttributeThresholds,
    *,
    reference: tuple[np.ndarray, ShapeMeasures] | None = None,
    validity: bool = True,
    crop_to_heart: bool = True,
) -> ShapeMeasures:
    """Attributes, consistency flags and (optionally) anatomical validity of every frame.

    Flags follow ``temporal.detect_inconsistent_frames``: an attribute that is NaN in a frame while
    measurable in others (a structure vanishing for a frame) is flagged there. The anatomical
    criteria run beside the attributes (see :func:`_criteria_beside`).

    Args:
        labels: (T, H, W) uint8.
        spacing_mm: (row_mm, col_mm).
        thresholds: detection thresholds (their name order is the column order).
        reference: (labels, measures) of another version of the sequence: frames identical to it
            reuse its per-frame attributes and criteria (only flags depend on the neighbours).
        validity: also run the anatomical criteria (the costly part); else criteria/valid are empty.
        crop_to_heart: measure on the heart's bounding box (fast); False measures the whole frames,
            whose centroids then carry no crop offset (they can differ from the cropped ones in the
            last bits).
    """
    from echotemporal.measure.attributes import ATTRIBUTE_NAMES, compute_attributes
    from echotemporal.measure.temporal import detect_inconsistent_frames

    n = len(labels)
    todo = np.ones(n, dtype=bool)
    attrs = np.full((n, len(thresholds.names)), np.nan)
    ref_shape = None
    if reference is not None:
        ref_labels, ref_shape = reference
        todo = (labels != ref_labels).reshape(n, -1).any(axis=1)
        attrs[~todo] = ref_shape.attributes[~todo]
    # A label of the reference sequence must be present in every frame, measured or reused.
    present = ref_shape.present if ref_shape is not None else present_labels(labels)
    crop = criteria = None
    if todo.any():
        sub = labels[todo] if not todo.all() else labels
        rows, cols = heart_box(sub) if crop_to_heart else (slice(0, sub.shape[1]), slice(0, sub.shape[2]))
        crop = np.ascontiguousarray(sub[:, rows, cols]) if crop_to_heart else sub

        numbers = np.flatnonzero(todo)  # warnings name the sequence's frames, not the subset's

        def attributes(threads: int) -> np.ndarray:
            return compute_attributes(crop, spacing_mm, threads=threads, frame_numbers=numbers)

        if validity:
            criteria, raw = _criteria_beside(crop, spacing_mm, present, attributes)
        else:
            raw = attributes(measure_threads())
        raw = np.array(raw, dtype=np.float64).reshape(len(crop), -1)
        # Centroids are "mm from the image origin": undo the crop offset.
        if crop_to_heart:
            raw[:, ATTRIBUTE_NAMES.index("epi_center_x_mm")] += cols.start * spacing_mm[1]
            raw[:, ATTRIBUTE_NAMES.index("epi_center_y_mm")] += rows.start * spacing_mm[0]
        attrs[todo] = raw[:, attribute_order(tuple(thresholds.names))]
    flags = np.asarray(detect_inconsistent_frames(attrs, thresholds), dtype=bool)
    if not validity:
        return ShapeMeasures(attrs, flags, np.ones((n, 0), dtype=bool), np.ones(n, dtype=bool), False, present)
    criteria = _merge_criteria(todo, criteria, ref_shape)
    return ShapeMeasures(attrs, flags, criteria, criteria.all(axis=1), True, present)


def _merge_criteria(todo: np.ndarray, new: np.ndarray | None, ref_shape: ShapeMeasures | None) -> np.ndarray:
    """(T, C) criteria: ``new`` (n_todo, C) on the frames ``todo`` (T,) measured, the reference's elsewhere."""
    parts = {}
    if new is not None:
        parts["new"] = new
    if ref_shape is not None and (~todo).any():
        if not ref_shape.checked:
            raise RuntimeError("reference measures without validity")  # internal misuse
        parts["ref"] = ref_shape.criteria
    n_crit = next(iter(parts.values())).shape[1]
    criteria = np.ones((len(todo), n_crit), dtype=bool)
    if "new" in parts:
        criteria[todo] = parts["new"]
    if "ref" in parts:
        criteria[~todo] = parts["ref"][~todo]
    return criteria


def present_labels(labels: np.ndarray) -> tuple[int, ...]:
    """Non-background labels present anywhere in ``labels`` (T, H, W), validated CAMUS labels."""
    from echotemporal.core.labels import Label

    rows, cols = heart_box(labels, margin=0)
    crop = labels[:, rows, cols]
    return tuple(int(v) for v in Label if v != Label.BACKGROUND and (crop == np.uint8(v)).any())


def add_validity(
    labels: np.ndarray, shape: ShapeMeasures, spacing_mm: tuple[float, float], reference: tuple[np.ndarray, ShapeMeasures]
) -> ShapeMeasures:
    """Add the anatomical criteria to measures taken with ``validity=False`` (reusing unchanged frames)."""
    from echotemporal.measure.anatomy import check_validity

    ref_labels, ref_shape = reference
    n = len(labels)
    changed = (labels != ref_labels).reshape(n, -1).any(axis=1)
    criteria = ref_shape.criteria.copy()
    if changed.any():
        sub = labels[changed] if not changed.all() else labels
        rows, cols = heart_box(sub)
        criteria[changed] = np.asarray(
            check_validity(
                np.ascontiguousarray(sub[:, rows, cols]), spacing_mm, threads=measure_threads(), present=ref_shape.present
            ),
            dtype=bool,
        ).reshape(len(sub), -1)
    return ShapeMeasures(shape.attributes, shape.flags, criteria, criteria.all(axis=1), True, ref_shape.present)


def restore_frames(
    shape: ShapeMeasures, before: ShapeMeasures, rows: np.ndarray, thresholds: AttributeThresholds
) -> ShapeMeasures:
    """Measures after putting the input frames ``rows`` (T,) bool back: their rows of ``before``, flags redone."""
    from echotemporal.measure.temporal import detect_inconsistent_frames

    attrs = np.where(rows[:, None], before.attributes, shape.attributes)
    criteria = np.where(rows[:, None], before.criteria, shape.criteria)
    flags = np.asarray(detect_inconsistent_frames(attrs, thresholds), dtype=bool)
    return ShapeMeasures(attrs, flags, criteria, criteria.all(axis=1), True, shape.present)


def measure_clinical(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    ed_frame: int | None,
    es_frame: int | None,
    *,
    reference: tuple[np.ndarray, ClinicalMeasures] | None = None,
) -> ClinicalMeasures:
    """Clinical indices of the sequence, from its per-frame measures (``clinical.measure_frames``).

    Args:
        labels: (T, H, W) uint8; spacing_mm: (row_mm, col_mm); ed_frame, es_frame: 0-based or None.
        reference: (labels (T, H, W), their measures) of another version of the sequence (the input
            of a correction): only the frames that differ from it are measured; ED/ES detection, EF
            and strain/GLS are redone on the curve.
    """
    from echotemporal.measure.clinical import indices_from_measures, measure_frames

    if reference is None:
        rows, cols = heart_box(labels)
        frames = measure_frames(np.ascontiguousarray(labels[:, rows, cols]), spacing_mm, threads=measure_threads())
    else:
        ref_labels, ref = reference
        # One window for both versions: outside it both are background, so frames equal in the
        # window are equal whole, and a frame's measures do not depend on the window.
        rows, cols = heart_box(np.concatenate([labels, ref_labels]))
        frames = measure_frames(
            np.ascontiguousarray(labels[:, rows, cols]), spacing_mm, threads=measure_threads(),
            reference=(ref_labels[:, rows, cols], ref.frames),
        )
    ci = indices_from_measures(frames, ed_frame=ed_frame, es_frame=es_frame)
    return ClinicalMeasures(
        volumes_ml=np.asarray(ci.volumes_ml, dtype=np.float64),
        strain_percent=np.asarray(ci.strain_percent, dtype=np.float64),
        ed_frame=None if ci.ed_frame is None else int(ci.ed_frame),
        es_frame=None if ci.es_frame is None else int(ci.es_frame),
        edv_ml=float(ci.edv_ml),
        esv_ml=float(ci.esv_ml),
        ef_percent=float(ci.ef_percent),
        gls_percent=float(ci.gls_percent),
        frames=frames,
    )
