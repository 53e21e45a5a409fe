"""The accuracy bench's synthetic rhythm set (bench/measure_rhythm.py scores it): each
group's parameters drawn from its stated ranges with one seed, so that a run draws the
same strips. Groups added later are appended last, so that every group before them
draws as it did.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from paced_rhythms import PACED_GROUP, paced_spec

from model.rhythm_paced import PacedSpec
from model.rhythm_synthetic import RhythmSpec
from model.synthetic import SyntheticSpec

# No threshold was tuned on this seed (tuning used seeds 1 and 3-7; seed 2026, the first
# bench set, showed one false AFIB that changed a rule, so the bench draws with 2027).
BENCH_SEED = 2027


def bench_morphology(rng: np.random.Generator, rate: float) -> SyntheticSpec:
    return SyntheticSpec(
        pr_ms=round(rng.uniform(120, 190)),
        qrs_ms=round(rng.uniform(80, 110)),
        qt_ms=round(rng.uniform(380, 420)),
        p_axis_deg=round(rng.uniform(20, 75)),
        qrs_axis_deg=round(rng.uniform(-20, 90)),
        t_axis_deg=round(rng.uniform(10, 70)),
        p_mv=rng.uniform(0.1, 0.2),
    )


# Appended after the paced group, so that every group before it draws as it did.
MIXED_ECTOPY_GROUP = "sinus with PACs and PVCs 10-20 % each"
FREQUENT_PVC_GROUP = "sinus tachycardia 110-150/min with PVCs 20-40 %"
FUSED_FLUTTER_GROUP = "flutter 2:1 at 135-170/min, waves 0.2-0.3 mV"
MOBITZ_PAC_GROUP = "AV block Mobitz I with PACs 5-20 %"
MIXED_PATTERN_GROUP = "bigeminy / trigeminy, PACs and PVCs in turn"
SLOW_PAC_PVC_GROUP = "sinus 42-55/min, a PAC and a PVC after each sinus beat"
CONDUCTED_RESET_GROUP = "sinus 42-55/min, an early PAC and a PVC, the reset P conducted"
NOISY_MOBITZ_GROUP = "AV block Mobitz I 45-110/min, noise 0.02-0.1 mV"


def synthetic_rhythm_specs(seed: int = BENCH_SEED) -> list[tuple[str, RhythmSpec | PacedSpec]]:
    """The synthetic set: (group, spec), every parameter drawn from the stated ranges."""
    rng = np.random.default_rng(seed)
    specs: list[tuple[str, RhythmSpec | PacedSpec]] = []

    def add(group: str, n: int, **fixed: object) -> None:
        for _ in range(n):
            rate = float(rng.uniform(40, 160))
            drawn = {
                "rate_bpm": rate,
                "noise_mv": float(rng.uniform(0, 0.03)),
                "wander_mv": float(rng.uniform(0, 0.3)),
                "seed": int(rng.integers(1 << 30)),
                "morphology": bench_morphology(rng, rate),
            }
            drawn.update({k: v(rng) if callable(v) else v for k, v in fixed.items()})
            specs.append((group, RhythmSpec(**drawn)))

    add("sinus 40-160/min", 30)
    add("sinus with PACs 5-40 %", 60, pac_fraction=lambda r: float(r.uniform(0.05, 0.4)))
    add("sinus with PVCs 5-40 %", 40, pvc_fraction=lambda r: float(r.uniform(0.05, 0.4)))
    add("sinus with PJCs 5-20 %", 10, pjc_fraction=lambda r: float(r.uniform(0.05, 0.2)))
    add(
        "bigeminy / trigeminy",
        24,
        rate_bpm=lambda r: float(r.uniform(50, 100)),
        pattern=lambda r: str(r.choice(["bigeminy", "trigeminy"])),
        pattern_origin=lambda r: str(r.choice(["atrial", "ventricular"])),
    )
    add(
        "AF, f waves 0.02-0.2 mV",
        60,
        rhythm="atrial_fibrillation",
        rate_bpm=lambda r: float(r.uniform(50, 150)),
        f_wave_mv=lambda r: float(r.uniform(0.02, 0.2)),
        pvc_fraction=lambda r: float(r.choice([0.0, 0.0, 0.1])),
    )
    add(
        "flutter 2:1, 3:1, 4:1, variable",
        40,
        rhythm="atrial_flutter",
        rate_bpm=lambda r: float(r.uniform(240, 340)),
        flutter_conduction=lambda r: int(r.choice([2, 3, 4, 0])),
        f_wave_mv=lambda r: float(r.uniform(0.1, 0.3)),
    )
    add(
        "AV block (1st, Mobitz I and II, 3rd)",
        24,
        rate_bpm=lambda r: float(r.uniform(55, 95)),
        av_block=lambda r: str(r.choice(["first", "mobitz1", "mobitz2", "third"])),
    )
    # Added after the groups above so that their draws stay as they were.
    add(
        "AV block (2:1, Mobitz 3:2-5:4, junctional or ventricular escape)",
        24,
        rate_bpm=lambda r: float(r.uniform(50, 110)),
        av_block=lambda r: str(r.choice(["two_to_one", "mobitz1", "mobitz2", "third"])),
        av_ratio=lambda r: int(r.choice([3, 4, 5])),
        escape=lambda r: str(r.choice(["junctional", "ventricular"])),
    )
    specs += [(PACED_GROUP, paced_spec(rng, bench_morphology(rng, 70.0))) for _ in range(60)]
    add(
        MIXED_ECTOPY_GROUP,
        30,
        pac_fraction=lambda r: float(r.uniform(0.1, 0.2)),
        pvc_fraction=lambda r: float(r.uniform(0.1, 0.2)),
    )
    # Frequent PVCs at fast rates: their pauses once set the "dominant RR" and a third of
    # the sinus beats read premature (AF on 12 of 240 such draws of the tuning seeds).
    add(
        FREQUENT_PVC_GROUP,
        30,
        rate_bpm=lambda r: float(r.uniform(110, 150)),
        pvc_fraction=lambda r: float(r.uniform(0.2, 0.4)),
        pac_fraction=lambda r: float(r.choice([0.0, 0.0, 0.1])),
    )
    # Large flutter waves at 2:1: the wave before the QRS looks like a sinus P wave and
    # the next fuses with the QRS (sinus tachycardia on 26 of 540 tuning draws, 3.25).
    add(
        FUSED_FLUTTER_GROUP,
        30,
        rhythm="atrial_flutter",
        rate_bpm=lambda r: float(r.uniform(270, 340)),
        flutter_conduction=2,
        f_wave_mv=lambda r: float(r.uniform(0.2, 0.3)),
    )
    # Mobitz I with premature atrial beats, which break the grouped beating and reset
    # the sinus node: AF on 25 of 200 such draws of the tuning seeds (docs 3.31, 3.32).
    add(
        MOBITZ_PAC_GROUP,
        20,
        rate_bpm=lambda r: float(r.uniform(50, 110)),
        av_block="mobitz1",
        av_ratio=lambda r: int(r.choice([3, 4, 5])),
        pac_fraction=lambda r: float(r.uniform(0.05, 0.2)),
    )
    # Premature atrial and ventricular beats taking turns after the sinus beats: no
    # pattern was named where one origin did not hold it throughout (docs 3.36).
    add(
        MIXED_PATTERN_GROUP,
        20,
        rate_bpm=lambda r: float(r.uniform(50, 100)),
        pattern=lambda r: str(r.choice(["bigeminy", "trigeminy"])),
        pattern_origin="mixed",
    )
    # Slow sinus rhythm with a PAC and a PVC after each sinus beat and a small P wave:
    # AF on 30 of 60 tuning draws (docs 3.38); with the sinus P wave due after the PAC's
    # reset conducted, AF on 12 of 84 (3.40). Mobitz I under noise: AF on 5 of 300 (3.39).
    small_p = {
        "sinus_arrhythmia": lambda r: float(r.uniform(0, 0.15)),
        "morphology": lambda r: replace(
            bench_morphology(r, 50.0), p_mv=float(r.uniform(0.05, 0.1))
        ),
    }
    for group, conducted in ((SLOW_PAC_PVC_GROUP, False), (CONDUCTED_RESET_GROUP, True)):
        add(
            group,
            20,
            rate_bpm=lambda r: float(r.uniform(42, 55)),
            pattern="pac_pvc",
            reset_p_conducts=conducted,
            **small_p,
        )
    add(
        NOISY_MOBITZ_GROUP,
        20,
        rate_bpm=lambda r: float(r.uniform(45, 110)),
        av_block="mobitz1",
        av_ratio=lambda r: int(r.choice([3, 4, 5])),
        noise_mv=lambda r: float(r.uniform(0.02, 0.1)),
    )
    return specs
