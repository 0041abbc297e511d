"""Temporal correction of segmented sequences: the one path used by ``smooth``, ``batch`` and tests.

Modules: ``correction`` (:func:`smooth_sequence`, the methods "arvae", "gaussian", "none"),
``decoding`` (alignment, encoding, residual decoding), ``measurement`` (attributes, flags, validity,
clinical indices before/after), ``cleanup`` (per-frame morphology), ``sequence_file`` (files in and
out: :func:`smooth_file`, :func:`run_demo`).
"""

from __future__ import annotations

from echotemporal.pipeline.correction import METHODS, SmoothingResult, gaussian_smooth_labels, smooth_sequence
from echotemporal.pipeline.decoding import decode_sequence, encode_sequence, latent_tolerances
from echotemporal.pipeline.sequence_file import default_output_path, run_demo, smooth_file

__all__ = [
    "METHODS",
    "SmoothingResult",
    "smooth_sequence",
    "smooth_file",
    "gaussian_smooth_labels",
    "default_output_path",
    "run_demo",
    "encode_sequence",
    "decode_sequence",
    "latent_tolerances",
]
