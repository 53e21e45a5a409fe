"""Which leads of a recording can be trusted, and why not.

A lead that is flat (electrode off), clipped (amplifier saturated), implausibly
large or too noisy is excluded from every measurement; measurements that then
lack the leads they need become null with a reason instead of being guessed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

FLAT_SPAN_MV = 0.02
IMPLAUSIBLE_SPAN_MV = 20.0
# Samples held at the lead's own extreme value: a handful happen at R peaks,
# dozens mean the amplifier or the converter saturated.
CLIPPED_FRACTION = 0.004
CLIPPED_MIN_SAMPLES = 10
PLATEAU_SAMPLES = 3
# For normally distributed noise the SD is 1.4826 times the median absolute deviation.
MAD_TO_SD = 1.4826
# Beat-to-beat residual (robust SD, mV) above which a lead is too noisy to
# measure; clean resting ECGs stay below 0.03 mV.
NOISY_RESIDUAL_MV = 0.15


# Real leads never span the same range to within 1 %: where every usable lead does,
# the recording was rescaled lead by lead (LUDB as published: each lead spans
# exactly 1 "mV") and its amplitudes are not calibrated millivolts.
SAME_SPAN_TOLERANCE = 0.01
RESCALED_FLAG = (
    "every lead spans the same range: amplitudes rescaled lead by lead, not calibrated; "
    "no voltage criteria applied, frontal axes approximate"
)


def leads_rescaled(raw: np.ndarray, usable: np.ndarray) -> bool:
    """True where all usable leads (at least two) span the same range, within 1 %."""
    spans = np.ptp(raw[usable], axis=1)
    return spans.size >= 2 and float(spans.max()) <= (1 + SAME_SPAN_TOLERANCE) * float(spans.min())


def raw_lead_problem(x: np.ndarray) -> str | None:
    """Why a lead cannot be used, judged on its raw samples; None when it looks like an ECG."""
    if not np.all(np.isfinite(x)):
        return "non-finite samples"
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    if span < FLAT_SPAN_MV:
        return "flat (lead off?)"
    if span > IMPLAUSIBLE_SPAN_MV:
        return f"implausible amplitude ({span:.0f} mV)"
    if _samples_at_a_rail(x, lo, hi) >= max(CLIPPED_MIN_SAMPLES, int(CLIPPED_FRACTION * x.size)):
        return "clipped"
    return None


def _samples_at_a_rail(x: np.ndarray, lo: float, hi: float) -> int:
    """Samples in runs of 3 or more identical values at the lead's maximum or minimum.

    A saturated amplifier or converter holds one value; a physiological peak never
    repeats its exact value three samples in a row in every beat. A rail at the
    baseline (a noise-free flat line between beats) does not count.
    """
    at_hi, at_lo = x == hi, x == lo
    if int(at_hi.sum()) + int(at_lo.sum()) < CLIPPED_MIN_SAMPLES:
        return 0
    baseline = float(np.median(x))
    span = hi - lo
    count = 0
    for rail, at in ((hi, at_hi), (lo, at_lo)):
        if abs(rail - baseline) > 0.25 * span:
            count += _samples_in_runs(at, PLATEAU_SAMPLES)
    return count


def _samples_in_runs(flags: np.ndarray, min_run: int) -> int:
    """How many True values belong to runs of at least min_run consecutive Trues."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = stops - starts
    return int(lengths[lengths >= min_run].sum())


def beat_residual_noise(windows: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Per lead: robust SD (mV) of each beat's difference from the median beat.

    What differs from beat to beat is noise (muscle, mains, electrode motion); the
    median beat is what repeats. Uses the median absolute deviation so that one
    odd beat does not make a lead look noisy.
    """
    residual = np.abs(windows - median[:, None, :]).reshape(windows.shape[0], -1)
    if np.isnan(residual).any():
        return MAD_TO_SD * np.nanmedian(residual, axis=1)
    return MAD_TO_SD * np.median(residual, axis=1)


def fast_residual_noise(windows: np.ndarray, median: np.ndarray, slow: int) -> np.ndarray:
    """Per lead: beat_residual_noise of what changes faster than `slow` samples.

    A wave measured against a straight line between its ends (the P wave,
    model.measure.waves.locate_p) does not see baseline wander, which the line takes
    away, but the residual does: on the synthetic tuning seeds 1 and 3-7, 0.1-0.3 mV
    of wander raised it 4-8 fold (0.006 mV of noise read as 0.04 mV), and P waves of
    0.11-0.19 mV at 75-110/min were lost as 'not distinguishable from noise'.
    The residual's running mean over `slow` samples is removed first.
    """
    residual = windows - median[:, None, :]
    fast = residual - uniform_filter1d(residual, slow, axis=2, mode="nearest")
    return MAD_TO_SD * np.median(np.abs(fast).reshape(fast.shape[0], -1), axis=1)
