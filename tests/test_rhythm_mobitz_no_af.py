"""Mobitz I and 2:1 block with premature atrial beats read as atrial fibrillation
(docs/measurement.md 3.39). Under 0.1 mV of noise no P wave is found, and the
Wenckebach groups leave the intervals between dominant beats irregular; at a slow rate
the P waves found keep no atrial cycle across the premature beats. Neither shows
fibrillatory waves: the atrial activity peaks under 4 Hz in some lead, and either it
repeats before the beats or the RR between dominant beats takes a short and a long
value (model.measure.rhythm.grouped_beating). With 7 beats in 10 s (47/min, two of
them PACs) only the whole RR was judged: there AF needs fibrillatory evidence too.
Guards: atrial fibrillation with fine f waves under noise also peaks under 4 Hz, and
keeps AFIB (it neither repeats nor groups the RR).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import model
from model.beats import FS, Beats, label_beats
from model.measure import measure
from model.measure.rhythm import grouped_beating
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg

FAST_MOBITZ = RhythmSpec(
    rate_bpm=106.0, av_block="mobitz1", av_ratio=4, pac_fraction=0.1, noise_mv=0.097
)
SLOW_MOBITZ = RhythmSpec(
    rate_bpm=49.0, av_block="mobitz1", av_ratio=3, pac_fraction=0.15, noise_mv=0.002
)
SLOW_NOISY_MOBITZ = RhythmSpec(
    rate_bpm=47.0, av_block="mobitz1", av_ratio=4, pac_fraction=0.17, noise_mv=0.098
)
TWO_TO_ONE = RhythmSpec(
    rate_bpm=84.0, av_block="two_to_one", av_ratio=3, pac_fraction=0.2, noise_mv=0.093
)
FINE_AF = RhythmSpec(rate_bpm=100.0, rhythm="atrial_fibrillation", f_wave_mv=0.03, noise_mv=0.08)


def _beats(rr_ms: list[float]) -> Beats:
    """Beats all of the dominant shape at these RRs, labelled by label_beats."""
    positions = np.round(np.r_[0.0, np.cumsum(rr_ms)] * FS / 1000.0).astype(int) + 100
    return label_beats(positions, np.ones(positions.size, dtype=bool))


def test_wenckebach_groups_between_dominant_beats_are_grouped_beating() -> None:
    """4:3 Mobitz I at 106/min with a PAC (RRs as measured on test seed 11): between
    dominant beats 598-662 ms and 1,006-1,012 ms pauses, the PAC's two intervals left out."""
    rr = [648, 606, 338, 1138, 660, 604, 1012, 654, 602, 1006, 662, 598]
    beats = _beats(rr)
    assert "".join(beats.labels) == "NNNSNNNNNNNNN"
    assert grouped_beating(beats)


def test_atrial_fibrillation_rr_is_not_grouped_beating() -> None:
    """Atrial fibrillation at 100/min (test seed 11's RRs): they spread continuously."""
    rr = [756, 550, 550, 594, 438, 590, 586, 650, 580, 674, 464, 536, 522, 490, 604]
    assert not grouped_beating(_beats(rr))


def test_two_long_intervals_in_a_row_are_no_wenckebach_groups() -> None:
    """A Wenckebach pause is single: two long RRs in a row are not grouped beating."""
    rr = [600, 610, 1000, 1010, 605, 600, 1005, 600, 610]
    assert not grouped_beating(_beats(rr))


@pytest.mark.parametrize(
    ("design", "seed"),
    [
        (FAST_MOBITZ, 11),
        (FAST_MOBITZ, 14),
        (FAST_MOBITZ, 18),
        (FAST_MOBITZ, 19),
        (SLOW_MOBITZ, 13),
        (SLOW_MOBITZ, 38),
        (SLOW_MOBITZ, 42),
        (SLOW_NOISY_MOBITZ, 32),
        (SLOW_NOISY_MOBITZ, 33),
        (SLOW_NOISY_MOBITZ, 41),
        (TWO_TO_ONE, 87),
    ],
)
def test_av_block_with_pacs_is_not_atrial_fibrillation(design: RhythmSpec, seed: int) -> None:
    """Each read AFIB on 44617ac; now no AF, and the reason says why not."""
    result = model.analyze(rhythm_ecg(replace(design, seed=seed))[0])
    assert "AFIB" not in result.codes, f"test seed {seed}: {result.impression}"
    assert "not atrial fibrillation" in result.impression


@pytest.mark.parametrize("seed", [11, 12, 15, 16])
def test_fine_atrial_fibrillation_under_noise_keeps_afib(seed: int) -> None:
    """Fine f waves (0.03 mV) under 0.08 mV of noise peak under 4 Hz too; AF stays."""
    ecg = rhythm_ecg(replace(FINE_AF, seed=seed))[0]
    fibrillatory = measure(ecg).fibrillatory
    assert fibrillatory is not None and fibrillatory.peaks_below_band
    assert "AFIB" in model.analyze(ecg).codes, f"test seed {seed}"
