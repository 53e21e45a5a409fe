"""Each lead's Q, R, S, R' amplitudes and the frontal P, QRS and T axes of the median beats."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from model.beats import FS, samples
from model.ecg import STANDARD_LEADS
from model.measure.leads import LEAD_INDEX, LIMB_LEADS, ms
from model.measure.result import EcgMeasurement, Fiducials, LeadAmplitudes

# A deflection counts as a wave (Q, R, S, R') from 0.03 mV and 5 % of the QRS span.
MIN_WAVE_MV = 0.03
MIN_WAVE_FRACTION = 0.05
# A last deflection still holding this share of its extreme at the QRS end has not
# turned back: it is the ST segment leaving the baseline (the ST elevation in V1 and
# depression in I and V6 of a left bundle branch block), not an r' or S wave. Set on
# LUDB: every complete LBBB (24, 44, 51, 83, 116) showed such a terminal "r" in V1
# peaking within 4 ms of the QRS end; the R' of the right bundle branch blocks (10, 22,
# 60, 97, 108, 141) peak 18-34 ms before it and return.
UNRETURNED_FRACTION = 0.5

# Frontal lead directions (degrees) and gains on the hexaxial reference system;
# the augmented leads see the heart vector scaled by sqrt(3)/2.
LIMB_LEAD_VECTORS = {
    "I": (0.0, 1.0),
    "II": (60.0, 1.0),
    "III": (120.0, 1.0),
    "aVR": (-150.0, np.sqrt(3) / 2),
    "aVL": (-30.0, np.sqrt(3) / 2),
    "aVF": (90.0, np.sqrt(3) / 2),
}


@dataclass(frozen=True)
class _Lobe:
    """One deflection of the QRS to one side of the baseline."""

    sign: int
    extreme: float
    index: int
    start: int


def wave_limit(qrs: np.ndarray) -> float:
    """The smallest deflection that counts as a wave in this QRS (mV)."""
    return max(MIN_WAVE_MV, MIN_WAVE_FRACTION * float(qrs.max() - qrs.min()))


def qrs_lobes(qrs: np.ndarray, limit: float) -> list[_Lobe]:
    """The significant deflections of a QRS (baseline-corrected), in time order.

    Runs of one sign are split where the signal crosses the baseline; a run too
    small to be a wave (under `limit`, wave_limit()) merges into its neighbours,
    so that a notch does not cut an R wave in two.
    """
    sign = np.where(qrs >= 0, 1, -1)
    edges = np.flatnonzero(np.diff(sign)) + 1
    lobes: list[_Lobe] = []
    # np.concatenate rather than np.r_, whose index parsing cost more than the loop.
    starts, stops = np.concatenate(([0], edges)), np.concatenate((edges, [qrs.size]))
    for a, b in zip(starts, stops):
        run = qrs[a:b]
        i = int(np.argmax(np.abs(run)))
        if abs(run[i]) < limit:
            continue
        lobe = _Lobe(int(sign[a]), float(run[i]), a + i, int(a))
        if lobes and lobes[-1].sign == lobe.sign:
            bigger = lobe if abs(lobe.extreme) > abs(lobes[-1].extreme) else lobes[-1]
            lobe = _Lobe(bigger.sign, bigger.extreme, bigger.index, lobes[-1].start)
            lobes[-1] = lobe
        else:
            lobes.append(lobe)
    # A lead's only wave stays, whatever its end: a QS or an R is still measured.
    if len(lobes) >= 2 and qrs[-1] * lobes[-1].sign >= UNRETURNED_FRACTION * abs(lobes[-1].extreme):
        lobes.pop()
    return lobes


def lead_amplitudes(x: np.ndarray, fid: Fiducials) -> LeadAmplitudes:
    """Q, R, S, R' (as a cardiologist names the deflections) of one median beat.

    R is the first positive wave, Q a negative wave before it, S the negative wave
    after it and R' a positive wave after S. A complex without a positive wave (QS)
    reports its depth as both Q and S. The R peak time runs to the peak of the last
    positive wave (R' where there is one), as the AHA/ACCF/HRS 2009 statement defines
    it: a notched R of a left bundle branch block peaks at its second summit.
    """
    on, off = fid.qrs_on, fid.qrs_off
    level = float(x[on - 3 : on].mean())
    qrs = x[on : off + 1] - level
    limit = wave_limit(qrs)
    lobes = qrs_lobes(qrs, limit)
    positive = [i for i, lobe in enumerate(lobes) if lobe.sign > 0]
    q = r = s = r_prime = 0.0
    r_peak = 0
    if positive:
        first = positive[0]
        r, r_peak = lobes[first].extreme, lobes[positive[-1]].index
        if first > 0:
            q = lobes[first - 1].extreme
        if first + 1 < len(lobes):
            s = lobes[first + 1].extreme
            if first + 2 < len(lobes):
                r_prime = lobes[first + 2].extreme
    elif lobes:
        q = s = min(lobe.extreme for lobe in lobes)
    return LeadAmplitudes(
        q=q,
        r=r,
        s=s,
        r_prime=r_prime,
        qrs_max=float(qrs.max()),
        qrs_min=float(qrs.min()),
        r_peak_ms=ms(r_peak),
        terminal_40ms=float(qrs[-samples(40) :].mean()),
        upright_fraction=float(np.mean(qrs > limit)),
    )


def net_area(
    x: np.ndarray, start: int, stop: int, level_at: int, end_level_at: int | None = None
) -> float:
    """Net area (mV*ms) of one lead between two fiducials, against the level at
    `level_at`, or against the straight line from it to the level at `end_level_at`."""
    level = _level(x, level_at)
    if end_level_at is None:
        baseline = np.full(stop + 1 - start, level)
    else:
        baseline = np.linspace(level, _level(x, end_level_at), stop + 1 - start)
    return float((x[start : stop + 1] - baseline).sum()) * 1000.0 / FS


def _level(x: np.ndarray, at: int) -> float:
    """The lead's level at `at`: the mean of the four samples ending there."""
    return float(x[max(at - 3, 0) : at + 1].mean())


def frontal_axis(areas: dict[str, float]) -> float | None:
    """Frontal axis (degrees, -180..180) fitted to the limb-lead areas by least squares.

    Using every usable limb lead instead of only I and aVF keeps the axis defined
    when one of those two is off, and averages out their noise.
    """
    names = tuple(n for n in LIMB_LEADS if n in areas)
    rows = _lead_directions(names)
    if rows is None:
        return None
    vector, *_ = np.linalg.lstsq(rows, np.array([areas[n] for n in names]), rcond=None)
    if np.hypot(*vector) < 1e-9:
        return None
    return float(np.degrees(np.arctan2(vector[1], vector[0])))


# A limb lead whose P area is under this share of the largest limb lead's is
# isoelectric for polarity_fits_axis (either sign fits): a lead within about 6 degrees
# of perpendicular to the wave's vector (sin 6 = 0.1). LUDB 19 and 24, sinus rhythms
# whose rescaled P axes read -45 and -34: lead II's P at 1.7 and 2.6 % of lead I's,
# every other limb lead's polarity that of a -30 degree axis.
ISOELECTRIC_SHARE = 0.1


def polarity_fits_axis(areas: dict[str, float], bounds: tuple[int, int]) -> bool:
    """Some axis within `bounds` (degrees) gives every limb lead the polarity its
    wave has there. For leads rescaled one by one, where the areas cannot be compared
    and a fitted axis is skewed, but a positive rescale keeps each lead's sign."""
    largest = max((abs(a) for a in areas.values()), default=0.0)
    if len(areas) < 2 or largest <= 0.0:
        return False
    signed = {n: a for n, a in areas.items() if abs(a) >= ISOELECTRIC_SHARE * largest}
    return any(
        all(np.cos(np.radians(axis - LIMB_LEAD_VECTORS[n][0])) * a > 0 for n, a in signed.items())
        for axis in range(bounds[0], bounds[1] + 1)
    )


@cache
def _lead_directions(names: tuple[str, ...]) -> np.ndarray | None:
    """The least-squares rows of these limb leads' directions, or None where they
    cannot fix an axis. Cached: only a few sets of leads occur, and the rank test
    (an SVD) cost as much as the fit."""
    if len(names) < 2 or ({"I", "II", "III"}.isdisjoint(names) and len(names) < 3):
        return None
    rows = np.array(
        [
            [g * np.cos(np.radians(a)), g * np.sin(np.radians(a))]
            for a, g in (LIMB_LEAD_VECTORS[n] for n in names)
        ]
    )
    rows.flags.writeable = False  # shared by every caller
    return rows if np.linalg.matrix_rank(rows) >= 2 else None


def axes_and_amplitudes(result: EcgMeasurement, median: np.ndarray, usable: np.ndarray) -> None:
    fid = result.fiducials
    limb = {n: median[LEAD_INDEX[n]] for n in LIMB_LEADS if usable[LEAD_INDEX[n]]}
    # A P wave with no isoelectric TP segment before it may start above the isoelectric
    # level, on the T wave's tail: its area is taken against the line from there to its
    # offset, which leaves that tail out. A P wave rising from the isoelectric line keeps
    # the level at its onset, where GE's P axes agree.
    p_level_end = None if fid.p_on_clear else fid.p_off
    waves = {
        "qrs_axis_deg": (fid.qrs_on, fid.qrs_off, fid.qrs_on, None),
        "t_axis_deg": (fid.qrs_off, fid.t_off, fid.qrs_on, None),
        "p_axis_deg": (fid.p_on, fid.p_off, fid.p_on, p_level_end),
    }
    for key, (start, stop, level_at, end_level_at) in waves.items():
        if start is None or stop is None:
            continue
        areas = {n: net_area(x, start, stop, level_at, end_level_at) for n, x in limb.items()}
        if key == "p_axis_deg":
            result.p_areas = areas
        axis = frontal_axis(areas)
        if axis is None:
            result.set_null((key,), "too few usable limb leads")
        else:
            setattr(result.values, key, round(axis))
    result.amplitudes = {
        name: lead_amplitudes(median[i], fid) for i, name in enumerate(STANDARD_LEADS) if usable[i]
    }
