"""Synthetic CAMUS-like sequences with exact ground truth, corruptions, and real-shape sequences.

Modules: `parametric` (analytic bullet-shaped hearts, ED -> ES or whole cycles), `cycle_profile`
(contraction over whole beats), `real_shapes` (expert CAMUS ED/ES
masks and signed-distance interpolation between them), `corruption` (annotation jitter and recorded
corruptions), `coherent` (runs of frames broken as CNN segmenters fail), `failure_set` (benchmark
sets of coherently broken sequences), `tree` (CAMUS-layout folders of synthetic patients), `raster`
(polygon filling, mask surgery), `contour` (exact contour measures), `records` (result types), `bmode`
(B-mode-like images of a label sequence), `segmenter_set` (a U-Net's predictions with their truth, on
disk) and `segmenter` (that U-Net; imports torch, so it is not imported here).
"""

from __future__ import annotations

from echotemporal.phantoms.coherent import broken_frames, coherent_failures
from echotemporal.phantoms.corruption import annotation_jitter, corrupt_sequence
from echotemporal.phantoms.failure_set import FailureCase, coherent_failure_case, coherent_failure_set
from echotemporal.phantoms.cycle_profile import BeatTiming, CycleProfile, cycle_profile, sample_beat_timing
from echotemporal.phantoms.parametric import VIEWS, generate_cycle_sequence, generate_sequence
from echotemporal.phantoms.real_shapes import (
    NATIVE_LIKE_GRID,
    REAL_SHAPE_JITTER_PX,
    FullResolutionCase,
    RealShapes,
    default_real_shapes_dir,
    load_full_resolution_camus,
    load_real_shapes,
    real_shape_sequence,
    real_shape_spacing_mm,
)
from echotemporal.phantoms.records import (
    COHERENT_KINDS,
    CORRUPTION_KINDS,
    Corruption,
    CorruptionRun,
    PhantomSequence,
)
from echotemporal.phantoms.tree import write_phantom_tree

__all__ = [
    "NATIVE_LIKE_GRID",
    "REAL_SHAPE_JITTER_PX",
    "COHERENT_KINDS",
    "CORRUPTION_KINDS",
    "VIEWS",
    "annotation_jitter",
    "broken_frames",
    "coherent_failure_case",
    "coherent_failure_set",
    "coherent_failures",
    "BeatTiming",
    "CycleProfile",
    "cycle_profile",
    "generate_cycle_sequence",
    "sample_beat_timing",
    "corrupt_sequence",
    "Corruption",
    "CorruptionRun",
    "FailureCase",
    "FullResolutionCase",
    "PhantomSequence",
    "RealShapes",
    "default_real_shapes_dir",
    "generate_sequence",
    "load_full_resolution_camus",
    "load_real_shapes",
    "real_shape_sequence",
    "real_shape_spacing_mm",
    "write_phantom_tree",
]
