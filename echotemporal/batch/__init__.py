"""Whole CAMUS trees: one pipeline call per sequence, on a local process pool or a Dask cluster.

DESIGN.md §2, §5, §8. The unit of work sent to a worker is one patient: each of its views goes
through ``pipeline.smooth_file`` (the very function behind ``echotemporal smooth``), then the biplane
volume curve is computed while both views' labels are still in the worker's memory. Only small
tables travel back (a per-frame table, one row per view, one row per patient, the biplane curve), so
the parent's memory does not grow with the label maps, and no file is read twice.

Layout written under ``OUT``::

    patientNNNN/patientNNNN_4CH<suffix>.nii.gz   corrected sequences, mirroring ROOT (+ Info cfg copies)
    sequences.csv   one row per patient/view: indices before/after, inconsistent/invalid frame counts,
                    status ok/failed, outcome, error message, warnings (accepted implausible values,
                    detected ED/ES that give no EF), seconds
    frames.csv      one row per frame (long format: patient, view, then the pipeline's frame table)
    patients.csv    one row per patient: biplane EDV/ESV/EF where both views exist, monoplane otherwise
                    (column ``mode``), GLS averaged over the available views, Info cfg EF beside ours
    biplane.csv     biplane volume curves on normalized time 0 (ED) .. 1 (ES), before and after
    config.yaml     resolved configuration, package and library versions, weights sha256

Every table is replaced atomically (temporary file + ``os.replace``) every few sequences and at the
end; ``sequences.csv`` is written last, so a sequence it lists as ``ok`` has its other rows on disk.
``resume=True`` trusts exactly those rows (status ok and corrected file present) and redoes the rest.

Modules: ``tables`` (file names, columns, atomic writes), ``worker`` (one patient, in a pool process
or on a Dask worker), ``run`` (the parent: discovery, resume, dispatch, progress, flushing).
"""

from __future__ import annotations

from echotemporal.batch.run import BatchSummary, run_batch
from echotemporal.batch.tables import (
    BIPLANE_COLUMNS,
    BIPLANE_CSV,
    CONFIG_YAML,
    FRAMES_CSV,
    PATIENT_COLUMNS,
    PATIENTS_CSV,
    SEQUENCE_COLUMNS,
    SEQUENCES_CSV,
    BatchTables,
    read_tables,
)

__all__ = [
    "SEQUENCES_CSV",
    "FRAMES_CSV",
    "PATIENTS_CSV",
    "BIPLANE_CSV",
    "CONFIG_YAML",
    "SEQUENCE_COLUMNS",
    "PATIENT_COLUMNS",
    "BIPLANE_COLUMNS",
    "BatchSummary",
    "BatchTables",
    "run_batch",
    "read_tables",
]
