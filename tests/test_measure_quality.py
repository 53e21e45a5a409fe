"""Poor signals: nulls with reasons, never a crash, never a guess."""

from __future__ import annotations

import numpy as np
import pytest

import model
from model.ecg import STANDARD_LEADS, Ecg
from model.measure import measure
from model.report import MEASUREMENT_KEYS
from model.synthetic import SyntheticSpec, synthetic_ecg

CLEAN = synthetic_ecg(SyntheticSpec(seed=1))


def _with_signal(signal: np.ndarray, lead_names: tuple[str, ...] = STANDARD_LEADS) -> Ecg:
    return Ecg(signal=signal, sampling_rate=CLEAN.sampling_rate, lead_names=lead_names)


def _all_null_with_reason(report: model.Report) -> None:
    for key in MEASUREMENT_KEYS:
        assert getattr(report.measurements, key) is None, key
        assert report.null_reasons[key], key
    assert report.statements == []
    assert report.impression.startswith("Technically inadequate recording")


def test_flat_recording() -> None:
    report = model.analyze(_with_signal(np.zeros_like(CLEAN.signal)))
    _all_null_with_reason(report)
    assert "I: flat (lead off?)" in report.source.quality_flags
    assert report.null_reasons["qrs_ms"] == "too few usable leads"


def test_clipped_recording() -> None:
    report = model.analyze(_with_signal(np.clip(CLEAN.signal, -0.3, 0.3)))
    _all_null_with_reason(report)
    assert any(flag.endswith("clipped") for flag in report.source.quality_flags)


def test_one_lead_off_is_left_out_and_the_rest_measured() -> None:
    signal = CLEAN.signal.copy()
    signal[STANDARD_LEADS.index("V3")] = 0.0
    report = model.analyze(_with_signal(signal))
    assert "V3: flat (lead off?)" in report.source.quality_flags
    assert "lead V3 not used: flat (lead off?)" in report.warnings
    assert report.measurements.qrs_ms == pytest.approx(90, abs=4)
    assert report.null_reasons == {}


def test_lead_i_off_keeps_the_axes_from_the_other_limb_leads() -> None:
    signal = CLEAN.signal.copy()
    signal[0] = 0.0
    values = measure(_with_signal(signal)).values
    assert values.qrs_axis_deg == pytest.approx(45, abs=5)
    assert values.p_axis_deg == pytest.approx(60, abs=5)


def test_very_noisy_recording() -> None:
    report = model.analyze(synthetic_ecg(SyntheticSpec(noise_mv=0.6, seed=2)))
    _all_null_with_reason(report)
    assert any("from noise" in reason for reason in report.null_reasons.values())


def test_non_finite_samples_mark_the_lead_unusable() -> None:
    signal = CLEAN.signal.copy()
    signal[2, 100:200] = np.nan
    report = model.analyze(_with_signal(signal))
    assert "III: non-finite samples" in report.source.quality_flags
    assert report.measurements.pr_ms == pytest.approx(160, abs=4)


def test_too_few_leads() -> None:
    report = model.analyze(_with_signal(CLEAN.signal[:6], STANDARD_LEADS[:6]))
    _all_null_with_reason(report)
    assert "at least 8 leads" in report.null_reasons["heart_rate_bpm"]


def test_too_short_for_three_beats() -> None:
    report = model.analyze(_with_signal(CLEAN.signal[:, :1000]))
    _all_null_with_reason(report)
    assert report.null_reasons["rr_ms"] == "fewer than 3 QRS complexes detected"


@pytest.mark.parametrize("n_samples", [5, 10, 400])
def test_recording_shorter_than_a_beat_gives_nulls_not_an_exception(n_samples: int) -> None:
    """Under 16 samples at 500 Hz the band-pass filter raised (padlen)."""
    report = model.analyze(_with_signal(CLEAN.signal[:, :n_samples]))
    _all_null_with_reason(report)
    assert "at least 1.3 s needed" in report.null_reasons["rr_ms"]


def test_amplitudes_rescaled_lead_by_lead_get_no_voltage_statement() -> None:
    """Low voltages, then the same ECG with every lead rescaled to span exactly 1 (as
    LUDB publishes its leads): the rescaling is flagged and no voltage statement, nor
    NORM, is made from amplitudes that are not millivolts."""
    low = synthetic_ecg(SyntheticSpec(r_mv=0.4, t_mv=0.1, p_mv=0.08))
    assert "LVOLT" in model.analyze(low).codes
    spans = np.ptp(low.signal, axis=1, keepdims=True)
    report = model.analyze(_with_signal(low.signal / spans))
    assert any("rescaled lead by lead" in flag for flag in report.source.quality_flags)
    assert not {"LVOLT", "LVH", "NORM"} & set(report.codes)
    assert "SR" in report.codes and report.measurements.pr_ms is not None
    assert report.impression.endswith(
        "QRS voltages not assessed: the amplitudes are not calibrated."
    )
    assert any("rescaled lead by lead" in warning for warning in report.warnings)


def test_calibrated_leads_are_not_taken_for_rescaled_ones() -> None:
    report = model.analyze(CLEAN)
    assert not any("rescaled" in flag for flag in report.source.quality_flags)
    assert "NORM" in report.codes


def test_flat_t_wave_gives_no_qt() -> None:
    values = measure(synthetic_ecg(SyntheticSpec(t_mv=0.0)))
    assert values.values.qt_ms is None
    assert values.null_reasons["qt_ms"] == "T wave too flat to locate its end"
    assert values.null_reasons["qtc_bazett_ms"] == "T wave too flat to locate its end"
    assert values.values.qrs_ms == pytest.approx(90, abs=4)
