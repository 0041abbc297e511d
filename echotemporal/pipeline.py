"""The documented one-call API (README): correct a sequence in memory or a file on disk.

A facade over the stages: :mod:`echotemporal.correct` holds the correction, :mod:`echotemporal.outputs`
the files. Library code imports from those; this module only re-exports for users.
"""

from __future__ import annotations

from echotemporal.correct.smoothing import METHODS, SmoothingResult, gaussian_smooth_labels, smooth_sequence
from echotemporal.correct.decoding import decode_sequence, encode_sequence, latent_tolerances
from echotemporal.outputs.sequence_file import default_output_path, run_demo, smooth_file

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
