"""``batch --overwrite``: remove what an earlier batch wrote into OUT before writing anew, so that
nothing it no longer produces (views or patients left out, an old review) is left behind.

Only files the earlier batch names in its tables (and its table and review files) are removed:
never anything else a user keeps in the folder.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from echotemporal.batch.tables import BEATS_CSV, BIPLANE_CSV, CONFIG_YAML, FRAMES_CSV, PATIENTS_CSV, SEQUENCES_CSV

__all__ = ["remove_previous_outputs"]


def _report_files(output: Path) -> list[Path]:
    from echotemporal.outputs.files import output_paths

    return list(output_paths(output, None, plot=True).values())


def remove_previous_outputs(out: Path) -> list[Path]:
    """Delete the earlier batch's corrected sequences, their reports and copied Info cfgs, its tables
    and review files.

    Returns:
        The files removed.
    """
    import pandas as pd

    removed: list[Path] = []
    table = out / SEQUENCES_CSV
    candidates: list[Path] = []
    if table.is_file():
        with contextlib.suppress(Exception):  # an unreadable table: its outputs stay, the tables go
            rows = pd.read_csv(table, dtype=str)
            infos = rows["info"] if "info" in rows else [None] * len(rows)
            for relative, info in zip(rows["output"], infos):
                if not isinstance(relative, str):
                    continue
                output = (out / relative).resolve()
                if output.is_relative_to(out.resolve()):
                    candidates += _report_files(output)
                    if isinstance(info, str) and info:  # its Info cfg, copied beside it (the mirror)
                        candidates.append(output.parent / Path(info).name)
    candidates += [out / name for name in (SEQUENCES_CSV, FRAMES_CSV, PATIENTS_CSV, BIPLANE_CSV, BEATS_CSV, CONFIG_YAML)]
    candidates += sorted(out.glob("review*.pdf")) + sorted(out.glob("review_*.png"))
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
