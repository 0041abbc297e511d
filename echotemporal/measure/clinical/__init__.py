"""Clinical indices from LV segmentations: volumes, EF and segmentation-derived strain (DESIGN.md §5).

Volumes follow Simpson's method of disks as in the ASE/EACVI chamber-quantification recommendations
(Lang et al., J Am Soc Echocardiogr 2015): the LV long axis runs from the midpoint of the two mitral
hinge points to the apex and is cut into ``n_disks`` slabs of equal height ``h``; each slab is a disk
(monoplane: circular, diameter ``d_i``; biplane: elliptic, diameters ``a_i`` from 2CH and ``b_i`` from
4CH) whose diameter is the chord of the LV mask on the line perpendicular to the axis through the
slab's centre. Every measure is in millimetres on the (often anisotropic) pixel grid.

Chord measurement (sub-pixel): the LV mask is turned into its boundary polygon by marching squares at
level 0.5 (the polygon ``skimage.measure.find_contours`` gives on a binary mask: vertices half-way
between inside and outside pixel centres), in physical coordinates; each perpendicular line is
intersected exactly with the polygon edges (vectorised over disks and edges) and the chord is the
summed length of the inside intervals (even-odd rule, so holes are excluded). The axis length is
likewise taken where the axis line leaves the polygon beyond the apex, not at the apex pixel centre.
On half prolate ellipsoids at CAMUS spacing this gives volumes within about 1 % of the analytic value.

Strain here is a *segmentation-derived* longitudinal strain: the relative change of the length of the
endocardial (LV) contour from one mitral hinge to the other through the apex, cut on the line through
the hinges (the mitral plane excluded); it is not speckle-tracking strain.

Modules: ``geometry`` (LV boundary polygon, landmarks, long axis of one frame), ``volume`` (Simpson
disks, monoplane volumes), ``strain`` (hinge-to-hinge contour, strain curve), ``frames`` (per-frame
measures, reused), ``indices`` (ED/ES, EF, GLS of a view), ``biplane`` (a patient's biplane volumes), ``cycles`` (ED/ES of every beat of half-sequences,
full cycles and several beats; per-beat indices; peak ejection/filling rates).
"""

from __future__ import annotations

from echotemporal.measure.clinical.biplane import biplane_volumes_from_measures, biplane_volumes_ml
from echotemporal.measure.clinical.frames import FrameMeasures, measure_frames
from echotemporal.measure.clinical.beats import BeatIndices, BeatRates, beat_indices, summarize_beats, volume_rates
from echotemporal.measure.clinical.cycles import CardiacCycles, detect_beats
from echotemporal.measure.clinical.indices import (
    ClinicalIndices,
    clinical_indices,
    detect_ed_es,
    ejection_fraction_percent,
    indices_from_measures,
)
from echotemporal.measure.clinical.strain import STRAIN_POINTS, strain_curve_percent
from echotemporal.measure.clinical.volume import N_DISKS, disk_diameters_mm, lv_volumes_ml

__all__ = [
    "N_DISKS",
    "STRAIN_POINTS",
    "BeatIndices",
    "BeatRates",
    "CardiacCycles",
    "ClinicalIndices",
    "FrameMeasures",
    "beat_indices",
    "biplane_volumes_from_measures",
    "biplane_volumes_ml",
    "clinical_indices",
    "detect_beats",
    "detect_ed_es",
    "disk_diameters_mm",
    "ejection_fraction_percent",
    "indices_from_measures",
    "lv_volumes_ml",
    "measure_frames",
    "strain_curve_percent",
    "summarize_beats",
    "volume_rates",
]
