"""VVI pacing that takes over from a sinus rhythm now and then, recorded at 100 Hz:
stated, with the sinus rhythm of the beats the pacemaker did not drive
(docs/measurement.md 3.19). Synthetic paced rhythms (model.rhythm_paced), test seeds."""

from __future__ import annotations

from dataclasses import replace

import pytest

import model
from model.rhythm_paced import PacedSpec, paced_ecg
from model.synthetic import SyntheticSpec

# 2 mV stimuli low-passed to 2 samples in all 12 leads, the sinus rhythm swinging about
# the pacemaker's lower rate of 65/min.
VVI_OVER_SINUS = PacedSpec(
    mode="VVI_SINUS",
    lower_rate_bpm=65,
    noise_mv=0.01,
    morphology=SyntheticSpec(qrs_axis_deg=30),
    spike_mv=2.0,
    spike_width=2,
    sampling_rate=100.0,
)


@pytest.mark.parametrize("seed", [12, 15, 17, 20, 35])
def test_vvi_over_sinus_rhythm_at_100_hz_states_pacing(seed: int) -> None:
    """At 100 Hz a conducted beat's narrow R apex is as sharp as a stimulus and
    outscores it: the train found before every beat was the conducted beats' apexes,
    no pacemaker explained it, and the stimuli before the paced beats were lost. Each
    of these read plain "Sinus rhythm" with 4-5 of 10-11 beats paced; the stimuli are
    now searched before the beats of another shape alone."""
    ecg, truth = paced_ecg(replace(VVI_OVER_SINUS, seed=seed))
    assert truth.beats.count("P") >= 4
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    assert not report.impression.startswith("Sinus rhythm.")


@pytest.mark.parametrize("seed", [22, 24, 33])
def test_sinus_rhythm_named_beside_intermittent_ventricular_pacing(seed: int) -> None:
    """3-4 of 10-11 beats paced, the others conducted sinus beats with their P waves:
    the rhythm is named from the beats no stimulus drove, before the pacing (each read
    "Sinus rhythm" alone, no pacing stated, before)."""
    ecg, truth = paced_ecg(replace(VVI_OVER_SINUS, seed=seed))
    report = model.analyze(ecg)
    paced = truth.beats.count("P")
    assert report.codes[:2] == ["SR", "PACE"]
    assert report.impression.startswith(
        f"Sinus rhythm with intermittent ventricular pacing ({paced} of {len(truth.beats)} "
        "beats paced)."
    )
    sinus = report.statements[0]
    assert sinus.evidence.criterion.startswith("in the beats no stimulus drove")


def test_aai_at_100_hz_behind_the_r_apexes_is_paced() -> None:
    """AAI at 100 Hz, 1.2 mV stimuli in 3 leads (drawn from test seed 34): the R apexes
    found before every beat were taken for ventricular stimuli, could not be blanked
    without the beats becoming unmeasurable, and the report read "Sinus rhythm ...
    pacing not excluded". They rise from half their height in 11-13 ms, its stimuli
    in 5-7.5: turned down, the atrial search finds the stimuli."""
    heart = ("pr_ms", "qt_ms", "p_axis_deg", "qrs_axis_deg", "t_axis_deg", "p_mv")
    morphology = SyntheticSpec(**dict(zip(heart, (157, 406, 73, 53, 47, 0.15744388303076212))))
    rate, spike, noise, wander = 72.82676679767053, 1.2434855778594829, 0.00243979, 0.28439714
    spec = replace(VVI_OVER_SINUS, mode="AAI", lower_rate_bpm=rate, spike_mv=spike)
    spec = replace(spec, spike_width=4, spike_leads=3, noise_mv=noise, wander_mv=wander)
    spec = replace(spec, seed=1032014403, morphology=morphology)
    report = model.analyze(paced_ecg(spec)[0])
    assert "PACE" in report.codes
    assert "SR" not in report.codes and "NORM" not in report.codes
    assert "pacing not excluded" not in report.impression


@pytest.mark.parametrize("seed", [21, 27])
def test_atrial_fibrillation_named_before_intermittent_ventricular_pacing(seed: int) -> None:
    """VVI pacing filling 3-4 of the pauses of atrial fibrillation (500 Hz, one-sample
    stimuli): the rhythm of the beats no stimulus drove comes first, as with a sinus
    rhythm (before: "Intermittent pacing (4 of 12 beats paced) with atrial
    fibrillation")."""
    spec = replace(VVI_OVER_SINUS, mode="VVI_AF", seed=seed, sampling_rate=500.0, spike_width=1)
    ecg, truth = paced_ecg(spec)
    report = model.analyze(ecg)
    assert report.codes[:2] == ["AFIB", "PACE"]
    assert report.impression.startswith(
        "Atrial fibrillation with intermittent ventricular pacing ("
    )
    # A paced beat too near the record's start for a search window may go uncounted.
    paced = report.statements[1].evidence.values["paced_beats"]
    assert 3 <= paced <= truth.beats.count("P")
