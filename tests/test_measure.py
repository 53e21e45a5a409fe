"""Measurements against synthetic ECGs whose intervals and axes are known by construction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import model
from model.beats import samples
from model.ecg import STANDARD_LEADS, Ecg, derive_limb_leads
from model.measure import (
    canonical_lead_name,
    frontal_axis,
    measure,
    net_area,
    standard_twelve,
)
from model.measure.waves import locate_p
from model.synthetic import SyntheticSpec, qrs_onsets_ms, synthetic_ecg

# The synthetic ECGs whose intervals and axes the engine must give back: the defaults, and
# one row of these fields each.
SPEC_FIELDS = (
    "heart_rate_bpm",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "p_axis_deg",
    "qrs_axis_deg",
    "t_axis_deg",
)
SPEC_ROWS = [
    (50, 200, 100, 440, 30, -60, 10),
    (95, 140, 110, 360, 75, 110, 70),
    (120, 140, 80, 310, 50, 20, 30),
]
SPECS = [SyntheticSpec()] + [
    SyntheticSpec(**dict(zip(SPEC_FIELDS, row, strict=True))) for row in SPEC_ROWS
]
INTERVALS = {
    "pr_ms": "pr_ms",
    "p_duration_ms": "p_duration_ms",
    "qrs_ms": "qrs_ms",
    "qt_ms": "qt_ms",
}
AXES = {"p_axis_deg": "p_axis_deg", "qrs_axis_deg": "qrs_axis_deg", "t_axis_deg": "t_axis_deg"}


def _angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"hr{s.heart_rate_bpm:.0f}")
def test_intervals_and_axes_match_the_truth(spec: SyntheticSpec, fs: float) -> None:
    values = measure(synthetic_ecg(spec, sampling_rate=fs)).values
    for key, truth_key in INTERVALS.items():
        assert getattr(values, key) == pytest.approx(getattr(spec, truth_key), abs=4), key
    for key, truth_key in AXES.items():
        assert _angle_difference(getattr(values, key), getattr(spec, truth_key)) <= 5, key
    assert values.heart_rate_bpm == pytest.approx(spec.heart_rate_bpm, abs=1)


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
@pytest.mark.parametrize("qrs_ms", [110, 120])
@pytest.mark.parametrize("qrs_axis", [0, 15, 30])
def test_qrs_ends_after_a_slow_terminal_s_wave(qrs_axis: int, qrs_ms: int, fs: float) -> None:
    """At the nadir of a slow terminal S wave every lead turns at once: the spatial
    velocity stays near zero while the signal is still far from the baseline. The QRS
    ends where the S wave has returned (it ended at the nadir, 38-48 ms short)."""
    spec = SyntheticSpec(qrs_ms=qrs_ms, qrs_axis_deg=qrs_axis, slow_terminal_s=True)
    measured = measure(synthetic_ecg(spec, sampling_rate=fs)).values.qrs_ms
    assert measured == pytest.approx(qrs_ms, abs=4)


def _with_qrs_locked_ripple(ecg: Ecg, spec: SyntheticSpec, lead: str) -> Ecg:
    """ecg with a 110 Hz ripple of 0.04 mV in one lead, from 35 ms before each QRS to
    35 ms after it (10 ms tapers): noise above 40 Hz that every beat repeats, so the
    median beat keeps it, as in LUDB 56 and 4."""
    t = np.arange(ecg.n_samples) * 1000.0 / ecg.sampling_rate
    ripple = np.zeros_like(t)
    for onset in qrs_onsets_ms(spec, ecg.duration_s):
        start, length = onset - 35.0, spec.qrs_ms + 70.0
        inside = np.clip(np.minimum(t - start, start + length - t) / 10.0, 0.0, 1.0)
        ripple += 0.04 * np.sin(np.pi / 2 * inside) ** 2 * np.sin(2 * np.pi * 0.11 * (t - start))
    signal = ecg.signal.copy()
    signal[ecg.lead_names.index(lead)] += ripple.astype(np.float32)
    return replace(ecg, signal=signal)


@pytest.mark.parametrize("fs", [500.0, 1000.0])
@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: f"hr{s.heart_rate_bpm:.0f}")
def test_ripple_above_40_hz_does_not_carry_the_qrs_edges_out(
    spec: SyntheticSpec, fs: float
) -> None:
    """Ripple above 40 Hz in one lead is not a QRS slope: the edges walked on the 150 Hz
    velocity stay within those the 40 Hz velocity gives, which a synthetic QRS's sharp
    edges put 8-12 ms outside the truth (the ripple carried them 42-48 ms out; now 22-28)."""
    ecg = _with_qrs_locked_ripple(synthetic_ecg(spec, sampling_rate=fs), spec, "V1")
    assert 0 <= measure(ecg).values.qrs_ms - spec.qrs_ms <= 30


def test_p_wave_starting_on_the_t_wave_gives_no_pr_but_keeps_the_rhythm() -> None:
    """At 120/min a PR of 184 ms puts the P onset 7 ms before the T wave ends: no
    isoelectric segment shows where the P wave starts, so no PR or P duration is
    given (the onset found there came out 28 ms late), yet the P wave still makes
    the rhythm sinus tachycardia and its axis is measured."""
    spec = SyntheticSpec(heart_rate_bpm=120, pr_ms=184, qrs_ms=104, qt_ms=323, p_axis_deg=33)
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert values.pr_ms is None and values.p_duration_ms is None
    assert "preceding T wave" in report.null_reasons["pr_ms"]
    assert values.p_axis_deg == pytest.approx(33, abs=5)
    assert values.qt_ms == pytest.approx(323, abs=4)
    assert "STACH" in {s.code for s in report.statements}


def test_t_wave_hidden_by_the_next_p_wave_gives_no_qt() -> None:
    """At 123/min with a PR of 204 ms the next P wave starts 44 ms before the T wave
    ends; the QT measured to where that merged descent stops came out 40 ms long and
    called a long QT."""
    spec = SyntheticSpec(**dict(zip(SPEC_FIELDS, (123, 204, 77, 328, 38, 41, 53), strict=True)))
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert values.qt_ms is None and values.qtc_bazett_ms is None
    assert "hides its end" in report.null_reasons["qt_ms"]
    assert values.qrs_ms == pytest.approx(77, abs=5)
    assert "LNGQT" not in {s.code for s in report.statements}
    # The P wave lies on that T wave: not "indistinguishable from noise", as it was.
    assert values.p_axis_deg is None
    assert "preceding T wave, whose end the next beat hides" in report.null_reasons["pr_ms"]


@pytest.mark.parametrize(("rate", "pr", "qt"), [(100, 260, 380), (115, 260, 316), (130, 220, 292)])
def test_p_wave_on_the_t_wave_descent_gives_no_qt(rate: int, pr: int, qt: int) -> None:
    """The next P wave starts 40-54 ms before the T wave ends and merges with its
    descent; the QT, measured to where the merged descent stops, came out 38-58 ms
    long and called a long QT. No P wave is found before the QRS, and that end lies
    within a PR segment of the next QRS: it may be the P wave's end."""
    spec = SyntheticSpec(heart_rate_bpm=rate, pr_ms=pr, qt_ms=qt)
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert values.qt_ms is None and values.qtc_bazett_ms is None and values.t_axis_deg is None
    assert "may be the end of a P wave" in report.null_reasons["qt_ms"]
    assert "P wave on the T wave's descent" in report.null_reasons["pr_ms"]
    assert "LNGQT" not in report.codes


def test_t_end_far_from_the_next_qrs_keeps_the_qt_without_a_p_wave() -> None:
    """A regular rhythm without P waves (junctional) at 75/min: the T wave ends 400 ms
    before the next QRS, further than a P wave's end lies from it."""
    spec = SyntheticSpec(heart_rate_bpm=75, qt_ms=400, p_mv=0.0)
    values = measure(synthetic_ecg(spec)).values
    assert values.pr_ms is None
    assert values.qt_ms == pytest.approx(400, abs=4)


def test_irregular_rhythm_keeps_a_qt_close_to_the_next_qrs() -> None:
    """Atrial fibrillation at 110/min: the T wave ends about 200 ms before the next
    QRS (median RR), but fibrillatory waves are not locked to the QRS and average out
    of the median beat, so no P wave can end the T wave found."""
    spec = SyntheticSpec(rhythm="atrial_fibrillation", heart_rate_bpm=110, qt_ms=340, seed=3)
    values = measure(synthetic_ecg(spec)).values
    assert values.pr_ms is None
    assert values.qt_ms == pytest.approx(340, abs=10)


def test_p_wave_after_a_hidden_t_end_gives_no_pr() -> None:
    """At 170/min with a QT of 248 ms the T wave still falls 120 ms before the next
    QRS: its end there is only the earliest it can be, so a P onset found after it
    may be the T wave's tail (PR 82 ms for 100 when taken as a located T end). The P
    wave still names the rhythm."""
    spec = SyntheticSpec(heart_rate_bpm=170, pr_ms=100, qt_ms=248, qrs_ms=70)
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert "hides its end" in report.null_reasons["qt_ms"]
    assert values.pr_ms is None and "P onset not separable" in report.null_reasons["pr_ms"]
    assert values.p_axis_deg == pytest.approx(60, abs=5)
    assert "STACH" in report.codes


@pytest.mark.parametrize(("rate", "pr", "qt"), [(127, 200, 297), (135, 180, 304), (151, 160, 278)])
def test_p_wave_on_the_t_wave_is_not_read_from_its_peak(rate: int, pr: int, qt: int) -> None:
    """The P wave starts 25-41 ms before the T wave ends, and the P search, starting
    after the T end, began on the P wave's peak. Its isoelectric line, anchored there,
    made the P wave's fall to the PR segment look like a wave pointing the other way:
    PR 94-128 ms, P axis -120 degrees. No isoelectric baseline precedes that P wave,
    so none of its measurements is given."""
    spec = SyntheticSpec(heart_rate_bpm=rate, pr_ms=pr, qt_ms=qt)
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert values.pr_ms is None and values.p_duration_ms is None and values.p_axis_deg is None
    assert "starts on the preceding T wave" in report.null_reasons["p_axis_deg"]


@pytest.mark.parametrize(("rate", "pr", "qt"), [(95, 220, 388), (135, 120, 304)])
def test_p_wave_just_after_the_t_wave_gives_no_pr(rate: int, pr: int, qt: int) -> None:
    """The P wave starts 20-24 ms after the T wave ends: too little isoelectric line
    before it to anchor its onset, which came out 8 ms late (PR 212 and 112 ms). The
    P wave still makes the rhythm sinus, and its axis is measured."""
    spec = SyntheticSpec(heart_rate_bpm=rate, pr_ms=pr, qt_ms=qt)
    report = model.analyze(synthetic_ecg(spec))
    values = report.measurements
    assert values.pr_ms is None and values.p_duration_ms is None
    assert "P onset not separable" in report.null_reasons["pr_ms"]
    assert values.p_axis_deg == pytest.approx(spec.p_axis_deg, abs=5)
    assert {"SR", "STACH"} & set(report.codes)


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
@pytest.mark.parametrize(("p_mv", "p_ms", "pr"), [(0.05, 130, 220), (0.04, 140, 230)])
def test_small_slowly_rising_p_wave_onset_is_where_it_was_drawn(
    p_mv: float, p_ms: int, pr: int, fs: float
) -> None:
    """A small (0.04-0.05 mV), long (130-140 ms) P wave rising slowly from the line, with
    a PR over 200 ms: the kind PTB-XL's false first-degree AV blocks carry (docs/
    measurement.md 3.6). Its onset is not put before the wave (the PR is not longer
    than drawn) nor past its foot (within 6 ms, the QRS onset's own 1-2 ms included):
    the trapezium onset finds a smooth wave's start. Onsets at 5-10 % of the peak
    (tried, 3.2) lie a further 6-12 ms late here (PRs 10-18 ms short)."""
    spec = SyntheticSpec(heart_rate_bpm=62, pr_ms=pr, p_duration_ms=p_ms, p_mv=p_mv)
    values = model.analyze(synthetic_ecg(spec, sampling_rate=fs)).measurements
    assert values.pr_ms is not None
    assert pr - 6 <= values.pr_ms <= pr


@pytest.mark.parametrize("fs", [250.0, 500.0])
@pytest.mark.parametrize(
    ("rate", "pr", "p_ms", "p_mv", "u_mv", "u_ms", "u_axis"),
    [
        (90, 160, 110, 0.08, 0.05, 107, -120),
        (90, 160, 110, 0.08, 0.03, 107, -160),
        (80, 180, 120, 0.05, 0.03, 185, -120),
    ],
)
def test_p_onset_is_not_put_on_a_u_wave_returning_to_the_line(
    rate: int, pr: int, p_ms: int, p_mv: float, u_mv: float, u_ms: int, u_axis: int, fs: float
) -> None:
    """A U wave pointing away from the P wave fills the TP segment and returns to the line
    as the P wave starts (at 80/min 5 ms after). The P onset's anchor lies on the U wave,
    and the trapezium took its return for the P wave's slow foot: PRs 26-32 ms long and
    P waves of 144-146 ms, the pattern of PTB-XL's false first-degree AV blocks (docs/
    measurement.md 3.6). The onset is where the rise stalls at the line."""
    spec = SyntheticSpec(
        heart_rate_bpm=rate,
        pr_ms=pr,
        p_duration_ms=p_ms,
        p_mv=p_mv,
        qt_ms=400,
        u_mv=u_mv,
        u_ms=u_ms,
        u_axis_deg=u_axis,
    )
    values = model.analyze(synthetic_ecg(spec, sampling_rate=fs)).measurements
    assert values.pr_ms is not None and values.p_duration_ms is not None
    assert abs(values.pr_ms - pr) <= 4
    assert abs(values.p_duration_ms - p_ms) <= 6
    assert values.qt_ms == pytest.approx(400, abs=4)


@pytest.mark.parametrize("lead_ms, lobe_ms", [(50, 120), (60, 140)])
def test_p_onset_is_not_put_on_a_deflection_leading_the_p_wave(lead_ms: int, lobe_ms: int) -> None:
    """A median beat drawn as LUDB 127's: a 0.045 mV P wave of 150 ms and, starting
    lead_ms before it, a 0.02 mV lobe in a nearby direction; the noise as low as the
    wander-free P noise makes it (0.0045 mV). The trapezium read the lobe as the P
    wave's slow foot: onsets 44-50 ms early, P waves of 190-200 ms. Either the onset is
    the P wave's, or it is marked as one that may lie on a deflection before it (the
    P measurements are then nulled: the LUDB 127 test in test_measure_real.py)."""
    n, qrs_on = 500, 400
    p_on = qrs_on - samples(180)
    t = np.arange(n)

    def lobe(start: int, duration: int, mv: float) -> np.ndarray:
        inside = (t >= start) & (t < start + duration)
        return np.where(inside, mv * np.sin(np.pi * (t - start) / duration), 0.0)

    p_direction = np.array([0.6, 0, 0.5, 0.5, -0.2, 0.2, 0, -0.1])
    lobe_direction = np.array([1, 0.2, 0.3, 0.3, -0.3, 0, -0.1, -0.3])
    median = np.zeros((12, n))
    median[:8] += np.outer(
        p_direction / np.linalg.norm(p_direction), lobe(p_on, samples(150), 0.045)
    )
    lead_in = lobe(p_on - samples(lead_ms), samples(lobe_ms), 0.02)
    median[:8] += np.outer(lobe_direction / np.linalg.norm(lobe_direction), lead_in)
    median[:8, qrs_on : qrs_on + samples(80)] += 1.0
    p, _ = locate_p(median, np.arange(8), qrs_on, previous_t_end=-n, noise=0.0045)
    assert p is not None
    if not p.onset_stalls:
        assert abs(p.onset - p_on) <= samples(10)


def test_no_p_wave_is_read_from_filter_ripple() -> None:
    """At 103/min with a PR of 260 ms the P wave sits on the T wave and the P search
    window after it is empty. On this noise-free ECG the noise test passed a 3 µV
    ripple there as a P wave: PR 76 ms, P duration 56 ms, P axis -138 degrees."""
    spec = SyntheticSpec(heart_rate_bpm=103, pr_ms=260, qt_ms=355)
    report = model.analyze(synthetic_ecg(spec))
    assert report.measurements.pr_ms is None and report.measurements.p_axis_deg is None
    assert "0.02 mV" in report.null_reasons["pr_ms"]


@pytest.mark.parametrize("rate", [170, 190, 212, 240])
def test_regular_tachycardia_over_160_gives_no_flutter_no_guessed_pr_and_no_crash(
    rate: int,
) -> None:
    """A regular tachycardia with one P wave per beat, the P wave on the previous T wave.
    Three errors it used to meet: above 200/min the T search had no room left and
    raised; the sinus P waves' second harmonic, left in the atrial residual, read as
    flutter waves (170-210/min); and with the T wave not located, the P search
    reached back to the previous QRS and reported a PR of 286-340 ms with a
    first-degree AV block."""
    qt = round(400 * (60 / rate) ** 0.33)
    spec = SyntheticSpec(heart_rate_bpm=rate, qrs_ms=70, qt_ms=qt, pr_ms=120, p_duration_ms=70)
    report = model.analyze(synthetic_ecg(spec))
    assert report.measurements.heart_rate_bpm == pytest.approx(rate, abs=2)
    assert report.measurements.pr_ms is None and report.null_reasons["pr_ms"]
    assert not {"AFLT", "AFIB", "1AVB"} & set(report.codes)


def test_qtc_formulas() -> None:
    values = measure(synthetic_ecg(SyntheticSpec(heart_rate_bpm=80, qt_ms=380))).values
    rr_s = values.rr_ms / 1000.0
    assert values.qtc_bazett_ms == pytest.approx(values.qt_ms / np.sqrt(rr_s), abs=1)
    assert values.qtc_fridericia_ms == pytest.approx(values.qt_ms / np.cbrt(rr_s), abs=1)
    assert values.rr_ms == pytest.approx(60000 / 80, abs=2)


def test_eight_independent_leads_give_the_same_result() -> None:
    """Carts often store I, II, V1-V6 only; the other limb leads are derived."""
    full = synthetic_ecg(SyntheticSpec(qrs_axis_deg=-40))
    keep = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    eight = Ecg(
        signal=full.signal[keep],
        sampling_rate=full.sampling_rate,
        lead_names=tuple(STANDARD_LEADS[i] for i in keep),
    )
    assert measure(eight).values == measure(full).values


def test_lead_names_are_matched_whatever_their_case() -> None:
    assert canonical_lead_name("AVF") == "aVF"
    assert canonical_lead_name(" v1") == "V1"
    assert canonical_lead_name("X") is None
    ecg = synthetic_ecg()
    upper = Ecg(
        signal=ecg.signal[::-1],
        sampling_rate=500.0,
        lead_names=tuple(n.upper() for n in STANDARD_LEADS[::-1]),
    )
    signal, present = standard_twelve(upper)
    assert present.all()
    np.testing.assert_allclose(signal, ecg.signal, atol=1e-6)


def test_net_area_against_a_sloping_line() -> None:
    """A wave riding on a ramp: against the level at its start the ramp counts as
    area; against the line from start to end it does not."""
    ramp = np.linspace(0.3, 0.0, 101)
    hump = 0.1 * np.sin(np.linspace(0, np.pi, 101)) ** 2
    x = ramp + hump
    assert net_area(x, 0, 100, 0, 100) == pytest.approx(net_area(hump, 0, 100, 0), rel=0.05)
    assert net_area(x, 0, 100, 0) < 0


def test_frontal_axis_from_limb_lead_areas() -> None:
    for angle in (-120, -45, 0, 60, 95, 170):
        a = np.radians(angle)
        x, y = np.cos(a), np.sin(a)
        lead_i, lead_ii = x, 0.5 * x + np.sqrt(3) / 2 * y
        areas = derive_limb_leads({"I": lead_i, "II": lead_ii})
        assert _angle_difference(frontal_axis(areas), angle) < 0.5
        without_i = {k: v for k, v in areas.items() if k != "I"}
        assert _angle_difference(frontal_axis(without_i), angle) < 0.5
    assert frontal_axis({"I": 1.0}) is None


def test_ectopic_beats_do_not_change_the_median_beat() -> None:
    plain = measure(synthetic_ecg(SyntheticSpec()))
    with_pvcs = measure(synthetic_ecg(SyntheticSpec(pvc_beats=(3, 7))))
    assert with_pvcs.beats.count("V") == 2
    assert with_pvcs.values.qrs_ms == pytest.approx(plain.values.qrs_ms, abs=2)
    assert with_pvcs.values.pr_ms == pytest.approx(plain.values.pr_ms, abs=2)


def test_atrial_fibrillation_has_no_p_wave_measurements() -> None:
    result = measure(synthetic_ecg(SyntheticSpec(rhythm="atrial_fibrillation", seed=3)))
    for key in ("pr_ms", "p_duration_ms", "p_axis_deg"):
        assert getattr(result.values, key) is None
        assert "P wave" in result.null_reasons[key]
    assert result.values.qrs_ms == pytest.approx(90, abs=4)
