"""The paced group of the synthetic rhythm rows (bench/measure_rhythm.py): how each
paced rhythm is drawn, and the stimulus shapes its PACE recall is reported by; and
false pacemakers on real unpaced ECGs resampled to the carts' lower rates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from ludb_reference import ludb_is_paced
from scipy.signal import resample_poly

import model
from model.paced_atrial_rhythm import ATRIAL_PACING, ATRIAL_SENSED, AV_SEQUENTIAL
from model.report import Report
from model.rhythm_paced import PacedSpec
from model.synthetic import SyntheticSpec

PACED_GROUP = "paced: VVI, AAI, DDD, VVI in AF or sinus; spikes 1-5 samples, 0.2-5 mV, 3-12 leads"


def paced_spec(rng: np.random.Generator, morphology: SyntheticSpec) -> PacedSpec:
    """A paced rhythm with its stimulus as a cart may record it: one sample or
    low-passed to 2-5 samples, 0.2-5 mV (log-uniform), in all leads or 3-6 of them,
    at 500 Hz or resampled to 250 or 100 Hz."""
    return PacedSpec(
        mode=str(rng.choice(["VVI", "AAI", "DDD", "VVI_AF", "VVI_SINUS"])),
        lower_rate_bpm=float(rng.uniform(60, 80)),
        sinus_rate_bpm=float(rng.uniform(50, 110)),
        av_delay_ms=float(rng.uniform(120, 200)),
        af_rate_bpm=float(rng.uniform(55, 80)),
        f_wave_mv=float(rng.uniform(0.05, 0.2)),
        spike_mv=float(10 ** rng.uniform(np.log10(0.2), np.log10(5))),
        spike_width=int(rng.integers(1, 6)),
        spike_leads=int(rng.choice([12, 12, 6, 3])),
        sampling_rate=float(rng.choice([500.0, 500.0, 250.0, 100.0])),
        noise_mv=float(rng.uniform(0, 0.03)),
        wander_mv=float(rng.uniform(0, 0.3)),
        seed=int(rng.integers(1 << 30)),
        morphology=morphology,
    )


STIMULUS_SHAPES: dict[str, Callable[[PacedSpec], bool]] = {
    "1-sample spikes at 500 Hz": lambda s: s.spike_width == 1 and s.sampling_rate == 500,
    "low-passed spikes (2-5 samples) at 500 Hz": lambda s: (
        s.spike_width > 1 and s.sampling_rate == 500
    ),
    "spikes 0.2-0.5 mV": lambda s: s.spike_mv < 0.5,
    "spikes in 3-6 leads only": lambda s: s.spike_leads < 12,
    "resampled to 250 Hz": lambda s: s.sampling_rate == 250,
    "resampled to 100 Hz": lambda s: s.sampling_rate == 100,
    "all": lambda s: True,
}


# The atrial rhythm each drawn mode allows beside PACE (docs/measurement.md 3.28): the
# pacemaker's own atrial stimuli (AAI; DDD below the sinus rate's tracking), a sinus rhythm
# it tracks (DDD), fibrillation (VVI in AF), or the sinus rhythm VVI pacing runs beside.
# Naming none is never wrong; naming another is.
ALLOWED_ATRIAL_RHYTHMS = {
    "AAI": {"atrial-paced"},
    "DDD tracking the sinus node": {"sinus tracked"},
    "DDD at its lower rate": {"AV sequential"},
    "VVI_AF": {"AF"},
    "VVI_SINUS": {"sinus"},
    "VVI": {"sinus"},
}


def drawn_atrial_rhythm(spec: PacedSpec) -> str:
    """The key of ALLOWED_ATRIAL_RHYTHMS a drawing falls under. DDD is split as
    rhythm_paced.draw_ddd draws it: it tracks the sinus node while the sinus rate is
    above the lower rate, and paces both chambers below it, so on one strip only one
    of the two names is right."""
    if spec.mode != "DDD":
        return spec.mode
    if spec.sinus_rate_bpm > spec.lower_rate_bpm:
        return "DDD tracking the sinus node"
    return "DDD at its lower rate"


def atrial_rhythm_named(report: Report) -> str:
    """The atrial rhythm a paced report names, in ALLOWED_ATRIAL_RHYTHMS' words."""
    codes = set(report.codes)
    if "PACE" not in codes:
        return "no PACE"
    if "AFIB" in codes:
        return "AF"
    text = " ".join(statement.text for statement in report.statements)
    for words, named in (
        (ATRIAL_PACING, "atrial-paced"),
        (AV_SEQUENTIAL, "AV sequential"),
        (ATRIAL_SENSED, "sinus tracked"),
    ):
        if words in text:
            return named
    return "sinus" if codes & {"SR", "SBRAD", "STACH", "SARRH"} else "none"


def resampled_unpaced_rows(data: Path, ludb_records: int) -> list[list[str]]:
    """PACE stated on LUDB's unpaced records and CinC 2021's, resampled to 250 and 100
    Hz (PTB-XL ships 100 Hz files): the synthetic set draws its non-paced rhythms at
    500 Hz only, where a stimulus is told from a QRS apex more easily."""
    records = [
        data / "ludb" / "data" / str(n)
        for n in range(1, ludb_records + 1)
        if not ludb_is_paced(data / "ludb" / "data" / str(n))
    ]
    records += [h.with_suffix("") for h in sorted((data / "cinc2021").glob("*.hea"))]
    ecgs = [model.load(record) for record in records]
    rows = []
    for rate in (250, 100):
        paced = 0
        for ecg in ecgs:
            signal = resample_poly(ecg.signal, rate, int(ecg.sampling_rate), axis=1)
            low = replace(ecg, signal=signal.astype(np.float32), sampling_rate=float(rate))
            paced += "PACE" in model.analyze(low).codes
        quantity = f"PACE on unpaced LUDB and CinC 2021 records resampled to {rate} Hz"
        rows.append(["Real rhythms", quantity, str(len(ecgs)), str(paced), "", "0", _met(paced)])
    return rows


def _met(count: int) -> str:
    return "yes" if count == 0 else "no"
