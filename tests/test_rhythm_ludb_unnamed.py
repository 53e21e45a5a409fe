"""Real LUDB records that named no rhythm (docs/measurement.md 3.17): sinus P waves on
leads rescaled one by one, judged by each lead's polarity rather than the skewed
fitted axis; atrial fibrillation whose on-time beats of another shape (aberrant
conduction) the intervals between dominant beats left out; and the two records
whose P waves cannot be read, which must say why."""

from __future__ import annotations

from pathlib import Path

import pytest

import model
from model.measure import measure
from model.measure.amplitudes import polarity_fits_axis
from model.measure.waves import SINUS_P_AXIS
from model.rhythm_statements import sinus_p_axis


def _ludb(shared_data: Path, record: int):
    return model.load(shared_data / "ludb" / "data" / str(record))


@pytest.mark.parametrize("record", [19, 24])
def test_sinus_p_wave_on_rescaled_leads_is_sinus(shared_data: Path, record: int) -> None:
    """LUDB 19 (sinus rhythm) and 24 (sinus bradycardia, complete LBBB): a P wave
    before every QRS at a steady PR, whose fitted axis on the rescaled leads falls
    outside the sinus range (-45, -34) while each limb lead's polarity is that of a
    -30 degree axis. Sinus, with the rescale named in the criterion."""
    ecg = _ludb(shared_data, record)
    m = measure(ecg)
    assert not m.amplitudes_calibrated
    assert not SINUS_P_AXIS[0] <= m.values.p_axis_deg <= SINUS_P_AXIS[1]
    report = model.analyze(ecg)
    rhythm = [s for s in report.statements if s.code in {"SR", "SBRAD", "STACH"}]
    assert len(rhythm) == 1, report.codes
    assert "AFIB" not in report.codes and "AFLT" not in report.codes
    assert "leads rescaled" in rhythm[0].evidence.criterion
    assert report.impression.startswith("Sinus")


def test_polarity_judges_only_uncalibrated_leads(shared_data: Path) -> None:
    """The same P areas on calibrated leads keep the fitted axis's verdict, and a P
    wave pointing up and right (negative in I and II, positive in aVR) fits no sinus
    axis whatever the rescale."""
    m = measure(_ludb(shared_data, 19))
    assert polarity_fits_axis(m.p_areas, SINUS_P_AXIS)
    assert sinus_p_axis(m) is not None
    m.amplitudes_calibrated = True
    assert sinus_p_axis(m) is None
    flipped = {lead: -area for lead, area in m.p_areas.items()}
    assert not polarity_fits_axis(flipped, SINUS_P_AXIS)


def test_fibrillation_with_aberrant_beats_is_named(shared_data: Path) -> None:
    """LUDB 109, atrial fibrillation with aberrant conduction: no P wave, no premature
    beat, 7 of 16 beats of another shape that come on time; the RR between all beats
    is irregularly irregular."""
    ecg = _ludb(shared_data, 109)
    m = measure(ecg)
    assert m.fiducials.p_on is None
    assert m.rhythm.count("X") >= 3
    report = model.analyze(ecg)
    assert "AFIB" in report.codes
    afib = next(s for s in report.statements if s.code == "AFIB")
    assert "aberrant conduction" in afib.evidence.criterion


@pytest.mark.parametrize(
    ("record", "why"),
    [(127, "upstroke stalls"), (130, "P duration 260 ms")],
)
def test_unreadable_p_waves_say_why(shared_data: Path, record: int, why: str) -> None:
    """LUDB 127 (40/min, P waves barely above the baseline, a wandering atrial
    pacemaker) and 130 (tremor and quantisation steps in the limb leads): no P wave a
    reader could time, so no rhythm named; the impression gives the rate, the rhythm's
    regularity and why the P wave was not measured, and a heart rate is given."""
    report = model.analyze(_ludb(shared_data, record))
    assert not {"SR", "SBRAD", "STACH", "AFIB", "AFLT"} & set(report.codes)
    assert report.impression.startswith("Rhythm undetermined: regular")
    assert "no P wave measured" in report.impression and why in report.impression
    assert measure(_ludb(shared_data, record)).values.heart_rate_bpm is not None
