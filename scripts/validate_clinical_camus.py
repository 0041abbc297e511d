"""External check of DESIGN.md §5: biplane Simpson on full-resolution CAMUS ED/ES masks vs CAMUS references.

The 5 CAMUS-2019 patients in ``real-shapes/camus-travislatchman-mhd`` carry the reference LVedv, LVesv and
LVef of the CAMUS release (Leclerc et al., IEEE TMI 2019) in their ``Info_{2CH,4CH}.cfg``. This script
measures biplane Simpson (20 disks) on the expert ED/ES masks of both views with the header spacing and
prints ours vs the reference per patient, then the median and max errors.

Usage:
    python scripts/validate_clinical_camus.py [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from echotemporal.measure.clinical import biplane_volumes_ml, ejection_fraction_percent, lv_volumes_ml
from echotemporal.io import read_info_cfg, read_sequence

DEFAULT_ROOT = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/real-shapes/camus-travislatchman-mhd/MIA23_Project1_data"
)


def read_mask(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """(H, W) uint8 mask and (row_mm, col_mm) header spacing of a 2D CAMUS ``.mhd`` mask."""
    seq = read_sequence(path)
    return seq.labels[0], tuple(seq.spacing_mm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="MIA23_Project1_data folder")
    args = parser.parse_args(argv)
    patients = sorted(p for p in args.root.glob("patient*") if p.is_dir())
    if not patients:
        print(f"no patient folders under {args.root}", file=sys.stderr)
        return 1

    header = (
        f"{'patient':<12}{'EDV ours':>9}{'ref':>7}{'err%':>7} |{'ESV ours':>9}{'ref':>7}{'err%':>7} |"
        f"{'EF ours':>8}{'ref':>6}{'err':>6} | mono EF 2CH/4CH"
    )
    print(header)
    print("-" * len(header))
    errors = []
    for patient in patients:
        views = {}
        for view in ("2CH", "4CH"):
            ed, spacing = read_mask(patient / f"{patient.name}_{view}_ED_gt.mhd")
            es, spacing_es = read_mask(patient / f"{patient.name}_{view}_ES_gt.mhd")
            assert spacing == spacing_es, f"{patient.name} {view}: ED/ES spacings differ"
            views[view] = (np.stack([ed, es]), spacing)
        info = read_info_cfg(patient / "Info_2CH.cfg")
        reference = {"LVedv": info.edv_ml, "LVesv": info.esv_ml, "LVef": info.ef_percent}
        _, volumes = biplane_volumes_ml(*views["2CH"], *views["4CH"], ed_es_2ch=(0, 1), ed_es_4ch=(0, 1))
        edv, esv = float(volumes[0]), float(volumes[-1])
        ef = ejection_fraction_percent(edv, esv)
        mono = [lv_volumes_ml(*views[v]) for v in ("2CH", "4CH")]
        mono_ef = [ejection_fraction_percent(m[0], m[1]) for m in mono]
        e_edv = 100 * (edv - reference["LVedv"]) / reference["LVedv"]
        e_esv = 100 * (esv - reference["LVesv"]) / reference["LVesv"]
        e_ef = ef - reference["LVef"]
        errors.append((e_edv, e_esv, e_ef))
        print(
            f"{patient.name:<12}{edv:9.1f}{reference['LVedv']:7.1f}{e_edv:+7.1f} |"
            f"{esv:9.1f}{reference['LVesv']:7.1f}{e_esv:+7.1f} |"
            f"{ef:8.1f}{reference['LVef']:6.1f}{e_ef:+6.1f} | {mono_ef[0]:.1f}/{mono_ef[1]:.1f}"
        )
    err = np.abs(np.array(errors))
    print("-" * len(header))
    print(
        f"|error| median/max: EDV {np.median(err[:, 0]):.1f}/{err[:, 0].max():.1f} %, "
        f"ESV {np.median(err[:, 1]):.1f}/{err[:, 1].max():.1f} %, "
        f"EF {np.median(err[:, 2]):.1f}/{err[:, 2].max():.1f} points"
    )
    signed = np.array(errors)
    print(
        f"signed mean: EDV {signed[:, 0].mean():+.1f} %, ESV {signed[:, 1].mean():+.1f} %, "
        f"EF {signed[:, 2].mean():+.1f} points"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
