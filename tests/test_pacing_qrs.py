"""The QRS duration of paced beats: the evoked QRS starts after its stimulus
(docs/measurement.md 3.16)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import model
from model.beats import pacing_spikes, samples
from model.measure import measure
from model.measure.fiducials import evoked_qrs_onset
from model.measure.leads import PRE, standard_twelve
from model.rhythm_paced import PacedSpec, paced_ecg

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _ludb_reference():
    """bench/ludb_reference.py, the one definition of LUDB's reference intervals."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("ludb_reference", BENCH / "ludb_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("number", [34, 74, 93, 104, 111])
def test_paced_qrs_onset_lies_after_the_stimulus(shared_data: Path, number: int) -> None:
    """LUDB paced records whose QRS onset was found 4-38 ms before the ventricular
    stimulus: on the line that blanks it (34, 74, 104, 111) or on the first of two
    biventricular stimuli (93, QRS 244 ms against LUDB's 210 ms global span). Each paced
    beat's onset (the median beat's, mapped back to the beat) now lies after the
    stimulus the one-sample search finds before it, and the QRS is no wider than
    LUDB's global annotated span (earliest lead's onset to latest lead's offset)."""
    record = shared_data / "ludb" / "data" / str(number)
    ecg = model.load(record)
    m = measure(ecg)
    raw, present = standard_twelve(ecg)
    spikes = pacing_spikes(raw, present)
    delays = []
    for position in m.beats.positions:
        before = spikes[(spikes <= position) & (spikes > position - samples(200))]
        if before.size:
            delays.append(position - PRE + m.fiducials.qrs_on - before[-1])
    assert len(delays) >= 3
    assert min(delays) >= 0, delays
    reference = _ludb_reference().ludb_reference(record)
    assert m.values.qrs_ms <= reference["qrs_extreme"] + 10


def test_an_onset_well_before_the_stimulus_is_the_qrs_own() -> None:
    """Only an onset on the stimulus (up to 50 ms before it) moves: one found earlier
    belongs to a QRS the stimulus fell into (fusion), and no stimulus moves nothing."""
    stimulus = 200
    evoked = stimulus + samples(8)
    assert evoked_qrs_onset(stimulus - samples(4), stimulus) == evoked
    assert evoked_qrs_onset(stimulus - samples(38), stimulus) == evoked
    assert evoked_qrs_onset(stimulus - samples(80), stimulus) == stimulus - samples(80)
    assert evoked_qrs_onset(evoked + 3, stimulus) == evoked + 3
    assert evoked_qrs_onset(stimulus - samples(4), None) == stimulus - samples(4)
    assert np.isscalar(evoked_qrs_onset(stimulus, stimulus))


@pytest.mark.parametrize("mode", ["VVI", "DDD"])
def test_synthetic_paced_qrs_onset_is_the_drawn_one(mode: str) -> None:
    """Synthetic ventricular and dual-chamber pacing at 500 Hz (one-sample stimuli in
    all 12 leads, test seeds 11-20), the QRS drawn 6 ms after each stimulus: the onset
    lay on the blanking line, 12-15 ms before the drawn onset in every draw; now
    within 2 ms (asked: 5 ms in the median draw, never over 10 ms early)."""
    errors = []
    for seed in range(11, 21):
        ecg, truth = paced_ecg(PacedSpec(mode=mode, spike_mv=2.0, seed=seed))
        m = measure(ecg)
        onsets = np.array(truth.qrs_onsets_ms) * 500.0 / 1000.0
        found = m.beats.dominant - PRE + m.fiducials.qrs_on
        nearest = onsets[np.abs(onsets[None, :] - found[:, None]).argmin(axis=1)]
        errors.append(float(np.median(found - nearest)) * 2.0)
    assert abs(float(np.median(errors))) <= 5, errors
    assert min(errors) >= -10, errors
