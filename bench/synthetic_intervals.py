"""Synthetic ECGs with known intervals and axes (model.synthetic): a grid at 250, 500 and
1000 Hz, random morphologies, and fast rates with the P wave near the T wave; the engine's
and the neurokit2 baseline's errors (rows of bench/measure_accuracy.py)."""

from __future__ import annotations

import numpy as np
from neurokit_baseline import neurokit_lead_ii
from scores import INTERVAL_KEYS, INTERVAL_LABELS, mean_sd

import model

# Quantity -> the field named alike in SyntheticSpec (the truth) and Measurements.
SYNTHETIC_KEYS = {
    **INTERVAL_KEYS,
    "p_axis": "p_axis_deg",
    "qrs_axis": "qrs_axis_deg",
    "t_axis": "t_axis_deg",
}
SYNTHETIC_LABELS = {
    **INTERVAL_LABELS,
    "p_axis": "P axis",
    "qrs_axis": "QRS axis",
    "t_axis": "T axis",
}


def synthetic_specs() -> list:
    """A grid of rates, intervals and axes, at the three sampling rates the engine accepts."""
    from model.synthetic import SyntheticSpec

    specs = []
    shapes = [(50, 200, 100, 440), (70, 160, 90, 400), (95, 140, 110, 360), (120, 140, 80, 310)]
    axes = [(60, 45, 40), (30, -60, 10), (75, 110, 70)]
    for hr, pr, qrs, qt in shapes:
        for p_axis, qrs_axis, t_axis in axes:
            specs.append(
                SyntheticSpec(
                    heart_rate_bpm=hr,
                    pr_ms=pr,
                    qrs_ms=qrs,
                    qt_ms=qt,
                    p_axis_deg=p_axis,
                    qrs_axis_deg=qrs_axis,
                    t_axis_deg=t_axis,
                )
            )
    return specs


def random_synthetic_specs(n: int = 24, seed: int = 7) -> list:
    """ECGs drawn at random over resting ranges (rate 45-130/min, PR 120-220, QRS
    70-130 ms, a rate-appropriate QT, any sinus P and T axis, QRS axis -60..+110):
    a check that the engine was not fitted to the grid above. At high rates with a
    long PR the P wave starts at or on the end of the previous T wave."""
    from model.synthetic import SyntheticSpec

    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        hr = rng.uniform(45, 130)
        specs.append(
            SyntheticSpec(
                heart_rate_bpm=round(hr),
                pr_ms=round(rng.uniform(120, 220)),
                qrs_ms=round(rng.uniform(70, 130)),
                qt_ms=round(440 - (hr - 50) * 1.6 + rng.uniform(-20, 20)),
                p_axis_deg=round(rng.uniform(0, 80)),
                qrs_axis_deg=round(rng.uniform(-60, 110)),
                t_axis_deg=round(rng.uniform(0, 80)),
            )
        )
    return specs


def fast_synthetic_specs() -> list:
    """Fast rates (100-160/min) with PRs of 140-260 ms: the P wave starts from 120 ms
    after to 170 ms before the end of the T wave, where an engine that cannot tell
    them apart reads one for the other. Three axis sets take turns."""
    from model.synthetic import SyntheticSpec

    axes = [(60, 45, 40), (20, -30, 60), (75, 90, 10)]
    specs = []
    for hr in (100, 115, 130, 145, 160):
        for pr in (140, 180, 220, 260):
            for qt_offset in (-20, 20):
                p_axis, qrs_axis, t_axis = axes[len(specs) % len(axes)]
                specs.append(
                    SyntheticSpec(
                        heart_rate_bpm=hr,
                        pr_ms=pr,
                        qt_ms=round(440 - (hr - 50) * 1.6 + qt_offset),
                        p_axis_deg=p_axis,
                        qrs_axis_deg=qrs_axis,
                        t_axis_deg=t_axis,
                    )
                )
    return specs


# Spec set, its name, the sampling rates it is measured at, and whether a null is
# a right answer there (a P onset or T end hidden by the neighbouring wave).
SYNTHETIC_GROUPS = {
    "grid, 500 and 1000 Hz": (synthetic_specs, (500.0, 1000.0), False),
    "grid, 250 Hz": (synthetic_specs, (250.0,), False),
    "24 random, 500 Hz": (random_synthetic_specs, (500.0,), True),
    "24 random, 250 Hz": (random_synthetic_specs, (250.0,), True),
    "40 fast, P wave near the T wave, 500 Hz": (fast_synthetic_specs, (500.0,), True),
}


def run_synthetic() -> dict[str, dict[str, dict[str, list[float]]]]:
    """Engine and baseline errors against the exactly known truth of synthetic ECGs,
    per group of sampling rates: {group: {"engine" | "baseline": {quantity: errors}}}."""
    from model.synthetic import synthetic_ecg

    errors: dict[str, dict[str, dict[str, list[float]]]] = {}
    for group, (specs, rates, _) in SYNTHETIC_GROUPS.items():
        found = errors.setdefault(group, {"engine": {}, "baseline": {}})
        for spec in specs():
            truth = {key: getattr(spec, name) for key, name in SYNTHETIC_KEYS.items()}
            for fs in rates:
                ecg = synthetic_ecg(spec, sampling_rate=fs)
                measured = model.analyze(ecg).measurements
                for key, field_name in SYNTHETIC_KEYS.items():
                    value = getattr(measured, field_name)
                    if value is not None:
                        found["engine"].setdefault(key, []).append(value - truth[key])
                for key, value in neurokit_lead_ii(ecg).items():
                    if value is not None:
                        found["baseline"].setdefault(key, []).append(value - truth[key])
    return errors


def synthetic_rows(errors: dict[str, dict[str, dict[str, list[float]]]]) -> list[list[str]]:
    rows = []
    for group, found in errors.items():
        specs, rates, nulls_allowed = SYNTHETIC_GROUPS[group]
        n = len(specs()) * len(rates)
        goal = "each measured within ±{}" + (", or null" if nulls_allowed else "")
        for key in SYNTHETIC_KEYS:
            engine = found["engine"].get(key, [])
            baseline = found["baseline"].get(key, [])
            limit = 5 if key.endswith("axis") else 4
            unit = "°" if key.endswith("axis") else "ms"
            worst = _largest(engine)
            rows.append(
                [
                    "Synthetic",
                    f"{SYNTHETIC_LABELS[key]} Δ mean ± SD {unit}, largest ({group})",
                    f"{len(engine)} of {n}",
                    f"{mean_sd(engine)}, largest {worst:.0f}",
                    f"{mean_sd(baseline)}, largest {_largest(baseline):.0f}" if baseline else "",
                    goal.format(limit),
                    "yes" if (nulls_allowed or len(engine) == n) and worst <= limit else "no",
                ]
            )
    return rows


def _largest(errors: list[float]) -> float:
    return max((abs(e) for e in errors), default=float("nan"))
