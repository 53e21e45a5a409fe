"""Atrial activity left once the QRS-T complexes are cancelled: flutter waves, and
fibrillatory waves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import welch

from model.beats import FS, Beats, beat_windows, median_over_beats, samples
from model.measure.leads import LEAD_INDEX, PRE
from model.measure.result import Fiducials
from model.measure.rhythm import AtrialWaves

# Atrial flutter: after the QRS-T complexes are cancelled, II, III, aVF and V1 keep a
# wave at one shared frequency of 4-5.67 Hz (240-340/min), of at least
# result.FLUTTER_MIN_MV RMS in II, III and aVF. Fibrillatory waves run faster (350-600/min).
FLUTTER_HZ = (4.0, 340 / 60)
FLUTTER_LEADS = ("II", "III", "aVF", "V1")
INFERIOR_LEADS = ("II", "III", "aVF")
# Below FLUTTER_MIN_MV, one shared peak still names flutter where the wave is regular,
# which needs no mV scale (LUDB's leads are rescaled one by one):
# - its spectrum concentrated: in every one of the four leads at least this share of
#   the 2-15 Hz power lies within PEAK_HALF_WIDTH_HZ of the peak or of its second
#   harmonic (an organisation index, Everett et al., IEEE TBME 2001). Tuning seeds 1
#   and 3-7, LUDB, CinC 2021 and the WFDB samples, records whose four peaks agree in
#   the band: non-flutters up to 0.44 (sinus tachycardias, their P wave's second
#   harmonic), LUDB 101 (atrial fibrillation) 0.40; LUDB 52 (typical flutter) 0.79;
# - or every RR a whole number of flutter cycles (within RR_CYCLE_TOLERANCE), at least
#   two different numbers: flutter with variable conduction, each QRS at one fixed
#   interval after a flutter wave. Premature atrial beats couple at 0.55-0.72 of a sinus
#   cycle, 1.1-1.44 cycles of a peak at twice the sinus rate (its P wave's harmonic).
# Where the four leads' peaks do not agree in the band, the RRs still name the atrial
# rate at variable conduction (every RR a whole number of its cycles, as above) where
# at least RR_PEAK_LEADS of the four leads peak within RR_PEAK_HZ of it. Synthetic tuning
# seeds 1 and 3-7, flutter at variable conduction named nothing: one or two leads
# peak at 3.66-3.84 Hz (a sub-harmonic the cancellation of the conducted waves leaves),
# or all four at the band's edge (241/min read at 3.86-3.93 Hz, 339/min at 5.67-5.70).
RR_PEAK_HZ = 0.3
RR_PEAK_LEADS = 2
ORGANISED_SHARE = 0.6
PEAK_HALF_WIDTH_HZ = 0.6
RR_CYCLE_TOLERANCE = 0.06


def atrial_residual(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials, cancel_p: bool
) -> tuple[float | None, float, bool]:
    """Flutter-wave frequency (Hz) shared by II, III, aVF and V1, the mean RMS (mV)
    of II, III and aVF, and whether the wave is regular whatever its size (ORGANISED_SHARE).

    Subtracting the median beat from every beat cancels the QRS-T complexes, and
    with cancel_p the P wave too; what is left is atrial activity and noise. Flutter
    waves are one regular wave at 240-340/min in the inferior leads and V1, the
    strongest atrial activity there; fibrillation is faster and not one frequency,
    sinus rhythm leaves almost nothing. A sinus P wave left in would
    not: from 120/min its second harmonic lies in the flutter band. The caller cancels
    only a P wave with a sinus axis: in flutter with 2:1 block the median beat holds a
    flutter wave locked to the QRS, with a superior axis, and cancelling it would hide
    the flutter. Each beat's window ends where the next
    one's starts, so no stretch is cancelled twice. Ectopic beats, which the median
    does not cancel, are cut out. Returns (None, rms, False) without a shared peak.
    """
    spectrum = _residual_spectrum(sig, beats, median, fid, cancel_p)
    if spectrum is None:
        return None, 0.0, False
    freq, power = spectrum
    band = (freq >= 3.0) & (freq <= 10.0)
    rms = _inferior_rms(freq, power)
    # Each lead's strongest peak in the 3-10 Hz band must itself lie in the flutter range.
    peaks = _peak_frequencies(freq, np.where(band, power, 0.0))
    if peaks.min() < FLUTTER_HZ[0] or peaks.max() > FLUTTER_HZ[1]:
        return None, rms, False
    if peaks.max() - peaks.min() > 0.5:
        return None, rms, False
    hz = float(np.median(peaks))
    organised = _peak_share(freq, power, peaks).min() >= ORGANISED_SHARE
    return hz, rms, bool(organised or _rr_in_flutter_cycles(beats, hz))


def residual_after_dominant_mv(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials
) -> float | None:
    """The residual's 3-10 Hz RMS (mV, II, III and aVF; atrial_residual with the P wave
    cancelled) over the dominant beats that follow a dominant beat alone: the beats
    whose sinus P wave, if that is what the median beat holds, it cancels. Flutter waves
    run on through them; a sinus P wave's leftovers lie in the premature beats (whose
    P wave comes early or sits on the T wave) and next to ectopic beats. None where
    less than 4 s is left."""
    after_dominant = np.concatenate(([False], beats.both_normal))
    spectrum = _residual_spectrum(sig, beats, median, fid, True, after_dominant)
    return None if spectrum is None else _inferior_rms(*spectrum)


def _inferior_rms(freq: np.ndarray, power: np.ndarray) -> float:
    """The mean over II, III and aVF of the 3-10 Hz RMS (mV) of a residual spectrum."""
    band = (freq >= 3.0) & (freq <= 10.0)
    inferior = [FLUTTER_LEADS.index(n) for n in INFERIOR_LEADS]
    return float(np.sqrt(power[inferior][:, band].sum(axis=1) * (freq[1] - freq[0])).mean())


def _residual_spectrum(
    sig: np.ndarray,
    beats: Beats,
    median: np.ndarray,
    fid: Fiducials,
    cancel_p: bool,
    kept: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Welch spectrum (frequencies, power per FLUTTER_LEADS row) of what is left once
    every dominant beat's median beat is subtracted (atrial_residual), the windows of
    beats not `kept` (per beat; all dominant beats by default) cut out too; None where
    less than 4 s is left."""
    first = fid.p_on if cancel_p and fid.p_on is not None else fid.qrs_on
    # Within the median beat: a P onset can lie less than 20 ms from its start (a
    # synthetic fibrillation drawn with tuning seed 4 had one at 14 ms, and crashed).
    start = max(first - samples(20), 0)
    t_end = fid.t_end_found if fid.t_end_found is not None else fid.qrs_off + samples(300)
    stop = min(t_end + samples(40), median.shape[1])
    rows = [LEAD_INDEX[n] for n in FLUTTER_LEADS]
    residual = sig[rows].copy()
    keep = np.ones(residual.shape[1], dtype=bool)
    next_starts = np.append(beats.positions[1:] + start - PRE, residual.shape[1])
    if kept is None:
        kept = np.isin(beats.labels, ("N", "S"))
    for p, keep_beat, next_start in zip(beats.positions, kept, next_starts):
        a, b = p + start - PRE, min(p + stop - PRE, next_start)
        if a < 0 or b > residual.shape[1] or not keep_beat:
            keep[max(a, 0) : min(b, residual.shape[1])] = False
            continue
        residual[:, a:b] -= median[rows, start : start + b - a]
    residual = residual[:, keep]
    if residual.shape[1] < samples(4000):
        return None
    return welch(residual, fs=FS, nperseg=1024, detrend=False, axis=1)


def _peak_share(freq: np.ndarray, power: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Each lead's share of its 2-15 Hz power at its peak and the peak's second harmonic."""
    near = (np.abs(freq[None, :] - peaks[:, None]) <= PEAK_HALF_WIDTH_HZ) | (
        np.abs(freq[None, :] - 2 * peaks[:, None]) <= PEAK_HALF_WIDTH_HZ
    )
    total = power[:, (freq >= 2.0) & (freq <= 15.0)].sum(axis=1) + 1e-20
    return (power * near).sum(axis=1) / total


def _rr_in_flutter_cycles(beats: Beats, hz: float) -> bool:
    """Every RR between two beats of the dominant shape (early ones too: at variable
    conduction a 2:1 cycle after a 4:1 one reads as premature) a whole number of
    flutter cycles (_whole_cycles). Only conducted beats follow a flutter wave at a
    fixed interval: a PVC coupled at half the sinus RR, with its compensatory pause,
    made 1, 2 and 3 'cycles' of a sinus P wave's second harmonic (sinus rhythms at
    136-146/min with PVCs, test seeds 17 and 21: flutter was named)."""
    return _whole_cycles(beats.rr[_conducted_rr(beats)], hz)


def _conducted_rr(beats: Beats) -> np.ndarray:
    """Per RR: True where both its beats have the dominant shape (N or S)."""
    conducted = np.isin(beats.labels, ("N", "S"))
    return conducted[1:] & conducted[:-1]


def _whole_cycles(rr: np.ndarray, hz: float) -> bool:
    """Every RR (samples) a whole number of flutter cycles, not all the same number, and
    no common divisor: RRs of 3 and 6 cycles are whole P-P cycles of a slower atrial
    rhythm whose P wave's third harmonic made the peak (Mobitz II at 85-90/min, tuning
    seeds 1 and 6). A single RR shorter than the
    commonest number is one premature beat: a premature atrial beat coupled at 2.04
    cycles of a sinus P wave's third harmonic among RRs of 3 made sinus tachycardia at
    114/min with PVCs flutter (tuning seed 3003, docs/measurement.md 3.20); a single
    longer one is a conducted wave dropped, as in flutter at 2:1 with one 3:1 RR."""
    cycles = rr * hz / FS
    whole = np.round(cycles).astype(int)
    if cycles.size < 3 or (np.abs(cycles - whole) > RR_CYCLE_TOLERANCE).any():
        return False
    numbers, counts = np.unique(whole, return_counts=True)
    commonest = numbers[np.argmax(counts)]
    off = whole[whole != commonest]
    if off.size == 1 and off[0] < commonest:
        return False
    return bool(numbers.size >= 2 and np.gcd.reduce(whole) == 1)


def flutter_in_rr_cycles(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials, cancel_p: bool
) -> float | None:
    """The atrial rate (Hz) of flutter at variable conduction where the four leads'
    peaks do not agree (atrial_residual found none): every RR a whole number of cycles
    of one rate in the flutter band, and the residual peaking within RR_PEAK_HZ of it
    in at least RR_PEAK_LEADS of II, III, aVF and V1; else None. The RRs are read
    first: a sinus rhythm's rarely pass, and the spectrum is then not computed again."""
    hz = _conducted_cycles_hz(beats)
    if hz is None:
        return None
    spectrum = _residual_spectrum(sig, beats, median, fid, cancel_p)
    if spectrum is None:
        return None
    freq, power = spectrum
    peaks = _peak_frequencies(freq, np.where((freq >= 3.0) & (freq <= 10.0), power, 0.0))
    return hz if np.count_nonzero(np.abs(peaks - hz) <= RR_PEAK_HZ) >= RR_PEAK_LEADS else None


def _conducted_cycles_hz(beats: Beats) -> float | None:
    """The atrial rate (Hz, 240-340/min) of which every RR between two beats of the
    dominant shape is a whole number of cycles (_rr_in_flutter_cycles), read from
    those RRs; else None."""
    rr = beats.rr[_conducted_rr(beats)]
    shortest = float(rr.min()) if rr.size else 0.0
    for k in range(1, 5):
        cycle = shortest / k
        if not FS * 60 / 340 <= cycle <= FS * 60 / 240:
            continue
        hz = FS * np.round(rr / cycle).sum() / rr.sum()
        if _rr_in_flutter_cycles(beats, hz):
            return float(hz)
    return None


# Flutter at variable conduction whose cycle drifts, as real flutter's does by a few
# per cent: no fixed cycle then divides every RR within RR_CYCLE_TOLERANCE, the residual
# often stays under FLUTTER_MIN_MV and short of ORGANISED_SHARE, and the irregular RR was
# named atrial fibrillation (docs/measurement.md 3.20). Each RR divided by its whole
# number of cycles is the cycle it held; from one RR to the next that changes by little
# where flutter waves drive the beats, and jumps where fibrillation does. Synthetic
# drifting flutter (tuning seeds 1 and 3-7, cycle drifting 1-5 %, variable conduction):
# at most 0.05 of the median cycle; LUDB 103 (flutter) 0.072; the fibrillations whose
# residual peaks in the flutter band, LUDB 44 0.13, LUDB 101 0.13 and 0.20 (whichever
# cycle), synthetic tuning seed 7 0.56. At least DRIFT_PEAK_LEADS of II, III, aVF and V1
# must peak within RR_PEAK_HZ of that rate, and DRIFT_MIN_RRS intervals be there to judge:
# fibrillation at 350-600/min leaves no such peak (2 of 360 synthetic fibrillations and
# 2 of 11 LUDB/CinC ones peak in the band at all).
# Every RR holds at most DRIFT_MAX_CYCLES: variable conduction is 2:1 to 4:1 (LUDB 35
# and 103 read 2-4; the generator draws those). From 5 cycles on, a cycle can change by
# no more than 0.5/5 whichever RRs the rounding takes: LUDB 7 (sinus rhythm at 60/min
# with one PAC) read as 3, 5 and 6 cycles of 301/min, within 0.08.
DRIFT_BETWEEN_RRS = 0.08
DRIFT_MAX_CYCLES = 4
DRIFT_MIN_RRS = 8
DRIFT_PEAK_LEADS = 3


def drifting_flutter_hz(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials
) -> float | None:
    """The atrial rate (Hz) of flutter at variable conduction whose cycle drifts: every
    RR between two beats of the dominant shape a whole number of cycles, at least two
    different numbers without a common divisor, the cycle each RR holds changing by at
    most DRIFT_BETWEEN_RRS from one RR to the next, and the residual peaking at that
    rate in DRIFT_PEAK_LEADS of the four leads; else None. The RRs are read first.
    The median beat's "P wave", where one was found, is judged both left in and
    cancelled: this is asked only where no P wave stands before the beats consistently,
    and flutter waves along 30-90 degrees pass for one, whose cancellation can take the
    flutter peak with it (docs/measurement.md 3.20)."""
    hz = _drifting_cycles_hz(beats.rr[_conducted_rr(beats)])
    if hz is None:
        return None
    for cancel_p in (False, True) if fid.p_on is not None else (False,):
        spectrum = _residual_spectrum(sig, beats, median, fid, cancel_p)
        if spectrum is None:
            return None
        freq, power = spectrum
        peaks = _peak_frequencies(freq, np.where((freq >= 3.0) & (freq <= 10.0), power, 0.0))
        if np.count_nonzero(np.abs(peaks - hz) <= RR_PEAK_HZ) >= DRIFT_PEAK_LEADS:
            return hz
    return None


def _drifting_cycles_hz(rr: np.ndarray) -> float | None:
    """The mean atrial rate (Hz, 240-340/min) of RRs (samples) that hold 1-4 times as many
    cycles as the shortest one, read as drifting_flutter_hz asks; else None."""
    if rr.size < DRIFT_MIN_RRS:
        return None
    for k in range(1, DRIFT_MAX_CYCLES + 1):
        cycles = np.round(rr * k / rr.min())
        held = rr / cycles
        drift = np.abs(np.diff(held)).max() / np.median(held)
        hz = FS * cycles.sum() / rr.sum()
        if (
            drift <= DRIFT_BETWEEN_RRS
            and cycles.max() <= DRIFT_MAX_CYCLES
            and np.unique(cycles).size >= 2
            and np.gcd.reduce(cycles.astype(int)) == 1
            and FLUTTER_HZ[0] <= hz <= FLUTTER_HZ[1]
        ):
            return float(hz)
    return None


def _peak_frequencies(freq: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Each row's peak frequency, between the 0.49 Hz bins by a parabola through the
    log power of the peak bin and its neighbours (a fibrillatory wave at 5.8 Hz fell
    into the bin that holds 340/min; zero-padding to 0.12 Hz bins cost 8 ms)."""
    k = np.clip(np.argmax(power, axis=1), 1, power.shape[1] - 2)
    rows = np.arange(power.shape[0])
    left, mid, right = (np.log(power[rows, k + d] + 1e-20) for d in (-1, 0, 1))
    shift = (
        0.5 * (left - right) / np.where(left - 2 * mid + right == 0, -1e-12, left - 2 * mid + right)
    )
    return freq[k] + np.clip(shift, -0.5, 0.5) * (freq[1] - freq[0])


# A "P wave" is a flutter wave where the median beat repeats it one flutter cycle
# earlier, in the TQ segment (II, III, aVF and V1 together), this alike and this
# close in size: at fixed conduction (3:1, 4:1) every flutter wave is locked to the
# QRS, the median beat holds them all, and the QRS-T cancellation above takes them
# away with it. A sinus P wave has a flat TP segment before it.
LOCKED_FLUTTER_CORRELATION = 0.9
LOCKED_FLUTTER_SIZE = (0.7, 1.4)


def locked_flutter(sig: np.ndarray, beats: Beats, fid: Fiducials) -> tuple[float | None, float]:
    """Flutter-wave frequency (Hz) and RMS (mV, II, III, aVF) where the dominant beats'
    'P wave' repeats one 240-340/min cycle earlier, after the previous T wave's end;
    else None. The median is taken here over a window reaching further back than the
    median beat's (a flutter wave 200 ms long, one cycle before one that starts 250 ms
    before the QRS)."""
    if fid.p_on is None or fid.p_off is None:
        return None, 0.0
    rows = [LEAD_INDEX[n] for n in FLUTTER_LEADS]
    longest = round(FS * 60 / 240)
    start = fid.p_on - PRE - longest
    windows = beat_windows(sig[rows], beats.dominant, start, fid.p_off - PRE)
    windows = windows[:, ~np.isnan(windows).any(axis=(0, 2))]
    if windows.shape[1] < 3:
        return None, 0.0
    median = median_over_beats(windows)  # index 0 is `longest` before the P onset
    t_end = fid.t_end_found if fid.t_end_found is not None else fid.qrs_off + samples(300)
    previous_t_end = t_end - int(beats.dominant_rr) + samples(20) - (fid.p_on - longest)
    best, best_lag = 0.0, None
    # Every 4 ms: the flutter cycle to within 2 %, at half the cost.
    for lag in range(round(FS * 60 / 340), longest + 1, 2):
        # Compare the part of the P wave whose copy one cycle earlier lies after the
        # previous T wave, if 60 ms or more of it does.
        first = max(longest, previous_t_end + lag)
        if median.shape[1] - first < samples(60):
            continue
        wave = median[:, first:] - median[:, first:].mean(axis=1, keepdims=True)
        before = median[:, first - lag : median.shape[1] - lag]
        before = before - before.mean(axis=1, keepdims=True)
        size = np.sqrt((before**2).sum() / ((wave**2).sum() + 1e-12))
        norm = np.sqrt((wave**2).sum() * (before**2).sum()) + 1e-12
        corr = float((wave * before).sum() / norm)
        if corr > best and LOCKED_FLUTTER_SIZE[0] <= size <= LOCKED_FLUTTER_SIZE[1]:
            best, best_lag = corr, lag
    if best_lag is None or best < LOCKED_FLUTTER_CORRELATION:
        return None, 0.0
    inferior = [FLUTTER_LEADS.index(n) for n in INFERIOR_LEADS]
    wave = median[inferior, longest:] - median[inferior, longest:].mean(axis=1, keepdims=True)
    rms = float(np.sqrt((wave**2).mean(axis=1)).mean())
    return FS / best_lag, rms


# Fibrillatory waves: atrial fibrillation's dominant frequency on the surface ECG lies
# at 4-9 Hz (240-540/min). What the QRS-T cancellation leaves in II, III, aVF and V1
# has most of its power there, and the atrial activity before the dominant beats does
# not repeat beat to beat. Set on the synthetic tuning seeds 1 and 3-7
# (docs/measurement.md 3.4.4): atrial fibrillation share median 0.50, 0.44-0.66 in
# those whose RR is only mildly irregular (0.23 with f waves of 0.03 mV); the 110 non-AF strips without a P wave found
# (sinus rhythms with PACs at 120-180/min, whose P wave's harmonics lie in the band; AV
# blocks) at most 0.40, and at most 0.36 among those whose atrial activity repeats as
# little as fibrillation's does (repeat: atrial fibrillation 0.86-1.32, 5th-95th
# percentile; a sinus P wave found up to 30).
FIBRILLATORY_HZ = (4.0, 9.0)
MIN_FIBRILLATORY_SHARE = 0.45
MAX_FIBRILLATORY_REPEAT = 1.5


@dataclass(frozen=True)
class FibrillatoryWaves:
    """share: the smallest, over II, III, aVF and V1, share of the cancelled residual's
    1-40 Hz power at 4-9 Hz; peak_hz: the lowest and highest of those leads' strongest
    3-12 Hz frequency; repeat: the atrial activity before the dominant beats, its
    median's size over how far single beats stray from it, corrected for their number
    (model.measure.rhythm AtrialWaves; a P wave repeats, fibrillatory waves do not);
    None with fewer than two such beats."""

    share: float
    peak_hz: tuple[float, float]
    repeat: float | None

    @property
    def in_band(self) -> bool:
        """Fibrillatory waves in all four leads, whether or not they repeat."""
        return self.share >= MIN_FIBRILLATORY_SHARE and self.peaks_fibrillatory

    @property
    def clear(self) -> bool:
        """Fibrillatory waves in all four leads, not repeating before the beats."""
        return self.in_band and self.repeat is not None and self.repeat <= MAX_FIBRILLATORY_REPEAT

    @property
    def unorganised(self) -> bool:
        """Each lead's strongest frequency fibrillatory, and no repeat found (where judged):
        no sinus P wave or PAC at a slow rate, whose harmonic peaks under 4 Hz and which
        repeats (docs/measurement.md 3.37, review fix)."""
        return self.peaks_fibrillatory and (
            self.repeat is None or self.repeat <= MAX_FIBRILLATORY_REPEAT
        )

    @property
    def peaks_below_band(self) -> bool:
        """Some lead's strongest 3-12 Hz peak under the fibrillatory band: a sinus P
        wave's harmonics, or noise, rather than fibrillatory waves."""
        return self.peak_hz[0] < FIBRILLATORY_HZ[0]

    @property
    def peaks_fibrillatory(self) -> bool:
        """Every lead's strongest 3-12 Hz peak within the fibrillatory band."""
        return FIBRILLATORY_HZ[0] <= self.peak_hz[0] and self.peak_hz[1] <= FIBRILLATORY_HZ[1]


def fibrillatory_waves(
    sig: np.ndarray, leads: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials
) -> FibrillatoryWaves | None:
    """The fibrillatory-wave evidence (FibrillatoryWaves) of an ECG in which no P wave
    was found; None where less than 4 s is left once the QRS-T complexes are cut out."""
    spectrum = _residual_spectrum(sig, beats, median, fid, cancel_p=False)
    if spectrum is None:
        return None
    freq, power = spectrum
    total = power[:, (freq >= 1.0) & (freq <= 40.0)].sum(axis=1) + 1e-20
    band = (freq >= FIBRILLATORY_HZ[0]) & (freq <= FIBRILLATORY_HZ[1])
    share = float((power[:, band].sum(axis=1) / total).min())
    peaks = _peak_frequencies(freq, np.where((freq >= 3.0) & (freq <= 12.0), power, 0.0))
    atrial = AtrialWaves(sig, leads, beats, median, fid, after_premature=True)
    repeat = None
    n = atrial.references
    if atrial.sinus_p is not None and atrial.noise and n >= 2:
        # Windows stray less from the median of a few of them, which each one pulls
        # toward itself: by sqrt((n - 1) / n) for n windows (half the difference for two).
        # Slow AF with PVCs keeps 2-4 (docs/measurement.md 3.37).
        repeat = float(atrial.sinus_p / (atrial.noise * np.sqrt(n / (n - 1))))
    return FibrillatoryWaves(share, (float(peaks.min()), float(peaks.max())), repeat)
