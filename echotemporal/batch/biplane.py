"""A patient's indices in a batch: biplane volumes, EDV, ESV and EF from both views' per-frame
measures (monoplane with one view), with the Info cfg reference values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from echotemporal.batch.rows import as_float, as_frame_index, nan, one_line
from echotemporal.batch.tables import PATIENT_COLUMNS
from echotemporal.batch.tasks import ViewTask
from echotemporal.core.boxes import HEART_MARGIN_PX, heart_mask, mask_box

__all__ = ["ViewData", "patient_indices", "info_values"]


def _read_info(path: Path | None) -> Any:
    """Info cfg of a view, or None (a broken cfg costs the Info EF column, not the sequence)."""
    if path is None:
        return None
    from echotemporal.io import read_info_cfg

    try:
        return read_info_cfg(path)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{path}: Info cfg not usable ({one_line(exc)}); Info EF left empty", RuntimeWarning)
        return None


@dataclass
class ViewData:
    """One view's labels before/after, kept in the worker only until the patient's biplane is done."""

    before: np.ndarray  # (T, H, W) uint8 input
    after: np.ndarray  # (T, H, W) uint8 corrected
    spacing_mm: tuple[float, float]
    row: dict[str, Any]  # its sequences.csv row
    clinical: dict[str, Any] | None = None  # {"before", "after"}: SmoothingResult.clinical, when known

    @property
    def measures(self) -> dict[str, Any] | None:
        """{"before", "after"}: the per-frame clinical measures, when this run measured the view."""
        return None if self.clinical is None else {when: c.frames for when, c in self.clinical.items()}

    def ed_es(self, when: str) -> tuple[int, int] | None:
        """The (ED, ES) the pipeline used for this view's "before" or "after" indices: read from the
        result's typed measures, or from the table row of a view finished by an earlier run."""
        if self.clinical is not None:
            c = self.clinical[when]
            return None if c.ed_frame is None or c.es_frame is None else (int(c.ed_frame), int(c.es_frame))
        tail = "_before" if when == "before" else ""
        ed = as_frame_index(self.row.get(f"ed_frame{tail}"))
        es = as_frame_index(self.row.get(f"es_frame{tail}"))
        return None if ed is None or es is None else (ed, es)


def _heart_crops(*sequences: np.ndarray) -> list[np.ndarray]:
    """(T, H, W) label sequences of one view cropped to one box: LV∪MYO of all of them, plus a margin.

    Volumes depend on distances only (each frame is measured in its own coordinates), so the crop
    changes no number and saves most of the per-pixel work on CAMUS-size frames; one box for the
    versions of a view lets their identical frames be recognised and measured once.
    """
    arrays = [np.asarray(labels, dtype=np.uint8) for labels in sequences]
    heart = np.zeros(arrays[0].shape[1:], dtype=bool)  # LV or MYO in any frame of any version
    for labels in arrays:
        heart |= heart_mask(labels).any(axis=0)
    box = mask_box(heart, HEART_MARGIN_PX)
    if box is None:
        return arrays
    return [np.ascontiguousarray(labels[(slice(None), *box)]) for labels in arrays]


def _view_measures(view: ViewData) -> dict[str, Any]:
    """Per-frame clinical measures of a view before and after: the pipeline's, or measured again
    (a view finished by an earlier run; frames left unchanged measured once)."""
    from echotemporal.measure import clinical

    if view.measures is not None:
        return view.measures

    before, after = _heart_crops(view.before, view.after)
    measures = {"before": clinical.measure_frames(before, view.spacing_mm)}
    if after.shape == before.shape:
        measures["after"] = clinical.measure_frames(after, view.spacing_mm, reference=(before, measures["before"]))
    else:
        measures["after"] = clinical.measure_frames(after, view.spacing_mm)
    return measures


def _outcome(row: dict[str, Any]) -> str:
    """A view's outcome from its row (rows of older runs have none: their sequences finished ok)."""
    outcome = row.get("outcome")
    return outcome if isinstance(outcome, str) and outcome else "clean"


def _beat_frames(beats: list[dict[str, Any]], when: str) -> list[tuple[int, int]]:
    """0-based (ED, ES) of each beat of a view's ``beats.csv`` rows (frames there numbered from 1)."""
    return [(int(b["ed_frame"]) - 1, int(b["es_frame"]) - 1) for b in beats if b.get("when") == when]


def _per_beat_biplane(
    row: dict[str, Any], measures: dict[str, Any], beats: dict[str, list[dict[str, Any]]], when: str
) -> None:
    """EDV, ESV and EF of a several-beat patient as the means of its beats' biplane indices, in ``row``.

    Beats are paired in order (the k-th beat of 2CH with the k-th of 4CH); each pair's biplane curve
    runs from its ED to its ES, as a half-sequence's does.
    """
    from echotemporal.measure import clinical

    pairs = list(zip(_beat_frames(beats.get("2CH", []), when), _beat_frames(beats.get("4CH", []), when)))
    if len(pairs) < 2:
        return
    indices = []
    for ed_es_2ch, ed_es_4ch in pairs:
        _, volumes = clinical.biplane_volumes_from_measures(
            measures["2CH"][when], measures["4CH"][when], ed_es_2ch=ed_es_2ch, ed_es_4ch=ed_es_4ch
        )
        indices.append((volumes[0], volumes[-1], clinical.ejection_fraction_percent(volumes[0], volumes[-1])))
    edv, esv, ef = (float(np.nanmean(column)) for column in zip(*indices))
    row.update({f"edv_ml_{when}": edv, f"esv_ml_{when}": esv, f"ef_percent_{when}": ef, "n_beats_biplane": len(pairs),
                f"ef_percent_beats_{when}": ";".join(f"{value:.1f}" for _, _, value in indices)})


def patient_indices(
    patient: str, data: dict[str, ViewData], info: dict[str, float],
    beats: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Patient row (biplane when 2CH and 4CH are both available, else monoplane) and biplane curve.

    Args:
        patient: patient id.
        data: view -> labels and row of the views that finished ok.
        info: Info cfg reference values (info_ef_percent, info_edv_ml, info_esv_ml), NaN if absent.
        beats: view -> its ``beats.csv`` rows (this run's views); with several beats in both views,
            EDV/ESV/EF are the means of the paired beats' biplane indices.
    """
    from echotemporal.measure import clinical

    row: dict[str, Any] = {name: nan() for name in PATIENT_COLUMNS}
    row.update(info)
    row.update(patient=patient, mode="none", views="+".join(sorted(data)), error="",
               view_outcomes=", ".join(f"{v} {_outcome(data[v].row)}" for v in sorted(data)))
    curve = None
    if not data:
        return row, curve
    for when in ("before", "after"):
        gls = [as_float(d.row.get(f"gls_percent_{when}")) for d in data.values()]
        # Two-view GLS is the mean of the views (DESIGN.md §5); a NaN view makes it NaN, honestly.
        row[f"gls_percent_{when}"] = float(np.mean(gls))
    if "2CH" in data and "4CH" in data:
        row["mode"] = "biplane"
        two, four = data["2CH"], data["4CH"]
        try:
            curves = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN volumes are the record
                measures = {"2CH": _view_measures(two), "4CH": _view_measures(four)}
                for when in ("before", "after"):
                    unchanged = (
                        when == "after"
                        and two.ed_es("after") == two.ed_es("before")
                        and four.ed_es("after") == four.ed_es("before")
                        and np.array_equal(two.before, two.after)
                        and np.array_equal(four.before, four.after)
                    )
                    if unchanged:  # nothing corrected: the same curve, without measuring it again
                        volumes = curves["before"]
                    else:
                        t, volumes = clinical.biplane_volumes_from_measures(
                            measures["2CH"][when],
                            measures["4CH"][when],
                            ed_es_2ch=two.ed_es(when),
                            ed_es_4ch=four.ed_es(when),
                        )
                    curves[when] = volumes
                    # biplane_volumes_ml's grid runs from ED (t = 0) to ES (t = 1).
                    row[f"edv_ml_{when}"] = float(volumes[0])
                    row[f"esv_ml_{when}"] = float(volumes[-1])
                    row[f"ef_percent_{when}"] = clinical.ejection_fraction_percent(volumes[0], volumes[-1])
                    row["n_beats_biplane"] = 1
                    _per_beat_biplane(row, measures, beats or {}, when)
            curve = pd.DataFrame(
                {"patient": patient, "t": t, "volume_ml_before": curves["before"], "volume_ml_after": curves["after"]}
            )
        except Exception as exc:  # noqa: BLE001 - a failed biplane costs this patient's row only
            row["error"] = f"biplane: {one_line(exc)}"
    else:
        (only,) = data.values()
        row["mode"] = "monoplane"
        for when in ("before", "after"):
            for name in ("edv_ml", "esv_ml", "ef_percent"):
                row[f"{name}_{when}"] = as_float(only.row.get(f"{name}_{when}"))
    return row, curve


def info_values(views: Sequence[ViewTask]) -> dict[str, float]:
    """Reference EF/EDV/ESV from the Info cfg files (CAMUS repeats them in both views; 4CH first)."""
    values = {"info_ef_percent": nan(), "info_edv_ml": nan(), "info_esv_ml": nan()}
    for view in sorted(views, key=lambda v: v.view != "4CH"):
        info = _read_info(view.info)
        for key, attr in (("info_ef_percent", "ef_percent"), ("info_edv_ml", "edv_ml"), ("info_esv_ml", "esv_ml")):
            if math.isnan(values[key]):
                values[key] = as_float(getattr(info, attr, None))
    return values
