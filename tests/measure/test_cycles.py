"""Cardiac cycles: beat detection, per-beat indices, volume rates, phantoms with whole cycles, frame time."""

from __future__ import annotations

import numpy as np
import pytest

from echotemporal.measure.clinical import detect_ed_es, measure_frames
from echotemporal.measure.clinical.beats import beat_indices, summarize_beats, volume_derivative, volume_rates
from echotemporal.measure.clinical.cycles import detect_beats, robust_smooth
from echotemporal.core.errors import ConfigError
from echotemporal.io.sequence import frame_time_ms_from_header, read_sequence, write_sequence
from echotemporal.phantoms import (
    corrupt_sequence,
    cycle_profile,
    generate_cycle_sequence,
    generate_sequence,
    real_shape_sequence,
    sample_beat_timing,
)

PERIOD = 30  # frames per beat of the analytic curves


def cycle_curve(n_frames: int, start: float = 0.0, edv: float = 120.0, sv: float = 60.0) -> np.ndarray:
    """(n_frames,) volume of cos² beats: ED at frames start + k·PERIOD, ES half a period later."""
    t = np.arange(n_frames) + start
    return edv - sv * np.sin(np.pi * t / PERIOD) ** 2


def test_half_sequence():
    c = detect_beats(cycle_curve(16))
    assert c.kind == "half" and c.n_beats == 1 and c.reason is None
    assert c.ed_frames[0] == 0 and abs(c.es_frames[0] - 15) <= 1


def test_es_to_ed_sequence():
    c = detect_beats(cycle_curve(16, start=15))
    assert c.kind == "es-to-ed" and c.n_beats == 1
    assert c.es_frames[0] <= 1 and c.ed_frames[0] == 15


def test_full_cycle_pairs_the_first_ed():
    c = detect_beats(cycle_curve(31))
    assert c.kind == "full" and c.beats == [(0, 15)] and c.end_frames == (30,)


@pytest.mark.parametrize("n_beats", [2, 3])
def test_several_beats(n_beats):
    c = detect_beats(cycle_curve(n_beats * PERIOD + 1))
    assert c.kind == "multi" and c.n_beats == n_beats
    for k, (ed, es) in enumerate(c.beats):
        assert abs(ed - k * PERIOD) <= 1 and abs(es - (k * PERIOD + 15)) <= 1


def test_sequence_starting_in_diastole_drops_the_leading_filling():
    c = detect_beats(cycle_curve(2 * PERIOD, start=20))  # filling, a beat, a beat with part of its filling
    assert c.kind == "multi" and c.beats == [(10, 25), (40, 55)] and c.end_frames == (40, 59)
    c = detect_beats(cycle_curve(PERIOD + 10, start=20))  # filling, then one whole beat
    assert c.kind == "full" and c.beats == [(10, 25)]


@pytest.mark.parametrize("curve, why", [(np.full(20, 80.0), "flat"), (cycle_curve(3), "too short"),
                                        (np.full(10, np.nan), "too short")])
def test_cannot_tell(curve, why):
    c = detect_beats(curve)
    assert c.n_beats == 0 and c.kind == "unknown" and c.reason.startswith(why)


@pytest.mark.parametrize("end", ["first", "last"])
def test_glitch_at_either_end_of_a_full_cycle(end):
    v = cycle_curve(31)
    frame = 0 if end == "first" else 30
    v[frame] = 70.0  # a contracted glitch where ED is
    c = detect_beats(v)
    assert c.kind == "full" and abs(c.ed_frames[0] - 0) <= 1 and abs(c.es_frames[0] - 15) <= 1
    v = cycle_curve(31)
    v[14] = 110.0  # a dilated glitch at ES
    assert abs(detect_beats(v).es_frames[0] - 15) <= 1


def test_explicit_frames_override_detection():
    v = cycle_curve(61)
    c = detect_beats(v, ed_frames=[3, 33], es_frames=[20, 50])
    assert c.source == "given" and c.beats == [(3, 20), (33, 50)] and c.kind == "multi"
    only_ed = detect_beats(v, ed_frames=[0, 30])
    assert only_ed.beats == [(0, 15), (30, 45)]
    only_es = detect_beats(v, es_frames=15)
    assert only_es.beats == [(0, 15)]


@pytest.mark.parametrize("kwargs", [{"ed_frames": 31}, {"es_frames": [-1]}, {"ed_frames": [0, 1], "es_frames": [5]},
                                    {"ed_frames": 2.5}])
def test_explicit_frames_out_of_range_are_an_error(kwargs):
    with pytest.raises(ConfigError, match="frames"):
        detect_beats(cycle_curve(31), **kwargs)


def test_detect_ed_es_uses_the_first_beat():
    assert detect_ed_es(cycle_curve(61)) == (0, 15)
    assert detect_ed_es(cycle_curve(16, start=15)) == (15, 0)


def test_robust_smooth_removes_a_single_frame_glitch():
    v = cycle_curve(31)
    g = v.copy()
    g[30] = 20.0
    # the glitch is gone; the ends lose a little height (the median of the three end frames)
    assert np.max(np.abs(robust_smooth(g) - v)) < 0.05 * 60


def test_per_beat_ef_and_gls_known_answer():
    # Beat 1: EDV 120, ESV 60 (EF 50 %); beat 2: EDV 120, ESV 90 (EF 25 %).
    v = np.concatenate([cycle_curve(30), 120 - 30 * np.sin(np.pi * np.arange(31) / PERIOD) ** 2])
    contour = 100.0 * (v / 120.0) ** (1 / 3)  # lengths scale as V^(1/3)
    c = detect_beats(v)
    beats = beat_indices(v, contour, c)
    assert [b.ef_percent for b in beats] == pytest.approx([50.0, 25.0])
    assert [b.sv_ml for b in beats] == pytest.approx([60.0, 30.0])
    assert beats[0].gls_percent == pytest.approx(100 * (0.5 ** (1 / 3) - 1))
    summary = summarize_beats(beats)
    assert summary.n_beats == 2
    assert summary.mean["ef_percent"] == pytest.approx(37.5)
    assert summary.sd["ef_percent"] == pytest.approx(np.std([50.0, 25.0], ddof=1))
    assert np.isnan(beat_indices(v, None, c)[0].gls_percent)


def test_rates_of_an_analytic_curve():
    # V = 120 − 60 sin²(πt/P): |dV/dt| peaks at 60·π/P per frame.
    v = cycle_curve(31)
    c = detect_beats(v)
    truth = 60 * np.pi / PERIOD
    per_frame = volume_rates(v, None, c)[0]
    assert per_frame.rate_unit == "mL/frame" and per_frame.time_unit == "frames"
    assert per_frame.peak_ejection_rate == pytest.approx(truth, rel=0.02)
    assert per_frame.peak_filling_rate == pytest.approx(truth, rel=0.02)
    assert per_frame.time_to_peak_filling == pytest.approx(7.5, abs=1.0)
    timed = volume_rates(v, 20.0, c)[0]
    assert timed.rate_unit == "mL/s" and timed.peak_ejection_rate == pytest.approx(truth * 50, rel=0.02)
    assert timed.peak_ejection_rate_edv == pytest.approx(timed.peak_ejection_rate / 120.0)
    # A half-sequence has no filling phase.
    assert np.isnan(volume_rates(v[:16], 20.0, detect_beats(v[:16]))[0].peak_filling_rate)


def test_derivative_of_a_cubic_is_exact():
    t = np.arange(12.0)
    np.testing.assert_allclose(volume_derivative(t**3 - 2 * t, 1000.0), 3 * t**2 - 2, atol=1e-9)


def test_cycle_profile_derivative_matches_its_values():
    rng = np.random.default_rng(0)
    prof = cycle_profile([sample_beat_timing(rng), sample_beat_timing(rng, 0.9)], 40)
    x = np.linspace(0, len(prof.values) - 1, 2001)
    p, dp = prof.evaluate(x)
    np.testing.assert_allclose(np.gradient(p, x)[5:-5], dp[5:-5], atol=2e-3)
    assert prof.ed_frames == (0, 40) and p.max() == pytest.approx(1.0)
    assert prof.values[prof.es_frames[1]] == pytest.approx(0.9)


def test_phantom_full_cycle_with_a_glitch_near_either_end():
    ph = generate_cycle_sequence(3, frames_per_beat=24, spacing_mm=(0.5, 0.5))
    assert ph.beats == ((0, ph.es_frame),) and ph.frame_time_ms > 0
    clean = measure_frames(ph.labels, ph.spacing_mm)
    c = detect_beats(clean.volumes_ml)
    ef_clean = beat_indices(clean.volumes_ml, clean.contour_mm, c)[0].ef_percent
    plateau_end = ph.params["beats"][0]["es_plateau_end_frame"]
    assert c.kind == "full" and c.ed_frames[0] <= 1 and ph.es_frame - 1 <= c.es_frames[0] <= plateau_end + 1
    assert ef_clean == pytest.approx(ph.ef_percent, abs=1.5)
    for frame in (1, ph.n_frames - 2):
        labels = ph.labels.copy()
        # On three frames a temporal corruption can only hit the middle one: ``frame``.
        glitched, record = corrupt_sequence(labels[frame - 1 : frame + 2], ph.spacing_mm,
                                            np.random.default_rng(frame), kinds=["contraction"])
        assert record[0].frame == 1
        labels[frame - 1 : frame + 2] = glitched
        m = measure_frames(labels, ph.spacing_mm)
        g = detect_beats(m.volumes_ml)
        assert g.ed_frames[0] <= 1 and ph.es_frame - 1 <= g.es_frames[0] <= plateau_end + 1
        ef = beat_indices(m.volumes_ml, m.contour_mm, g)[0].ef_percent
        assert ef == pytest.approx(ef_clean, abs=1.0)


def test_phantom_two_beats_known_ed_es_and_rates():
    ph = generate_cycle_sequence(5, n_beats=2, frames_per_beat=36)
    c = detect_beats(ph.lv_volume_ml)
    assert c.kind == "multi" and c.n_beats == 2
    for (ed, es), truth in zip(c.beats, ph.params["beats"]):
        assert abs(ed - truth["ed_frame"]) <= 1
        assert truth["es_frame"] - 1 <= es <= truth["es_plateau_end_frame"] + 1
    for rates, truth in zip(volume_rates(ph.lv_volume_ml, ph.frame_time_ms, c), ph.params["beats"]):
        assert rates.peak_ejection_rate == pytest.approx(truth["peak_ejection_rate_ml_s"], rel=0.05)
        assert rates.peak_filling_rate == pytest.approx(truth["peak_filling_rate_ml_s"], rel=0.05)


def test_frame_time_from_a_written_nifti(tmp_path):
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    path = tmp_path / "seq.nii"
    write_sequence(path, labels, spacing_mm=(0.3, 0.3))
    assert read_sequence(path).frame_time_ms is None  # frame spacing 1: no frame time
    # pixdim[4] (float32 at byte 76 + 4·4 of the NIfTI-1 header) = 0.025 s, as converters write it.
    raw = bytearray(path.read_bytes())
    raw[92:96] = np.float32(0.025).tobytes()
    path.write_bytes(bytes(raw))
    assert read_sequence(path).frame_time_ms == pytest.approx(25.0, rel=1e-6)


def test_frame_time_from_header_units_and_plausibility():
    assert frame_time_ms_from_header((0.3, 0.3, 33.0), {}) == 33.0
    assert frame_time_ms_from_header((0.3, 0.3, 0.04), {}) == pytest.approx(40.0)
    assert frame_time_ms_from_header((0.3, 0.3, 1.0), {}) is None
    four_d = {"dim[4]": "20", "pixdim[4]": "20000", "xyzt_units": str(2 | 24)}  # microseconds
    assert frame_time_ms_from_header((0.3, 0.3, 1.0), four_d) == pytest.approx(20.0)


def test_real_shape_sequence_on_a_two_beat_profile():
    half = generate_sequence(11, n_frames=2, spacing_mm=(0.5, 0.5))
    prof = cycle_profile([sample_beat_timing(np.random.default_rng(1)) for _ in range(2)], 20)
    ph = real_shape_sequence(half.labels[0], half.labels[1], 0, spacing_mm=half.spacing_mm, profile=prof)
    assert ph.n_frames == len(prof.values) and ph.beat_ed_frames == prof.ed_frames
    assert np.array_equal(ph.labels[prof.ed_frames[1]], half.labels[0])
    assert np.array_equal(ph.labels[prof.es_frames[0]], half.labels[1])
    c = detect_beats(measure_frames(ph.labels, ph.spacing_mm).volumes_ml)
    assert c.kind == "multi" and c.n_beats == 2
    for (ed, es), (ed_true, es_true), end in zip(c.beats, ph.beats, prof.es_plateau_frames):
        assert abs(ed - ed_true) <= 1 and es_true - 1 <= es <= end + 1
