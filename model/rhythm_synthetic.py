"""Synthetic 12-lead rhythms with beat-by-beat ground truth, for the rhythm statements.

Built on model.synthetic's single-dipole heart: every P wave, conducted QRS-T,
ventricular ectopic beat, fibrillatory and flutter wave is drawn where the spec's
rhythm puts it, and the truth records what each QRS complex is ('N' conducted
sinus or supraventricular beat, 'A' premature atrial, 'J' premature junctional,
'V' premature ventricular, 'E' escape) and the SCP codes a cardiologist would give the strip.

    rhythm_ecg(RhythmSpec(...)) -> (Ecg, RhythmTruth)

What it draws (all seeded, so a spec always gives the same ECG):
- sinus rhythm at any rate, with premature atrial complexes (an early P wave of
  another axis, the sinus node reset: a non-compensatory pause), premature
  ventricular complexes (wide, no P wave, the sinus P that falls into it not
  conducted: a fully compensatory pause) and premature junctional complexes (a
  normal QRS without a P wave, the pause compensatory), at random or as bigeminy /
  trigeminy, of one origin or with atrial and ventricular premature beats in turn at
  random ("mixed"), or each sinus beat followed by a PAC and a PVC ("pac_pvc"); with
  a respiratory sinus arrhythmia where asked;
- atrial fibrillation: irregularly irregular RR and fibrillatory waves of a given size;
- atrial flutter: a sawtooth at 240-340/min conducted 2:1, 3:1, 4:1 or variably;
- AV block: first degree (long PR), Mobitz I and II at 3:2 to 5:4, 2:1, third degree
  (P waves and a slow junctional or ventricular escape rhythm independent of each other);
- white noise and baseline wander.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy.signal import sawtooth

from model.ecg import Ecg
from model.measure.rhythm import MIN_PATTERN_ECTOPICS
from model.statement_limits import DEFAULT_LIMITS
from model.synthetic import (
    SyntheticSpec,
    direction,
    drawing_times,
    p_wave_vector,
    pvc_vector,
    vector_to_ecg,
    ventricular_vector,
)

Rhythm = Literal["sinus", "atrial_fibrillation", "atrial_flutter"]
AvBlock = Literal["none", "first", "mobitz1", "mobitz2", "two_to_one", "third"]
Pattern = Literal["random", "bigeminy", "trigeminy", "pac_pvc"]

# The first P wave starts here (ms); no QRS is drawn closer than this to the end.
FIRST_P_MS = 150.0
END_MARGIN_MS = 600.0
# Coupling intervals as fractions of the sinus cycle (premature atrial: P to P;
# premature ventricular: QRS to QRS).
PAC_COUPLING = (0.55, 0.72)
PVC_COUPLING = (0.5, 0.68)
# "pac_pvc" with reset_p_conducts: an early PAC (P to P) and a PVC soon after it (QRS to
# QRS), so that the sinus P wave due a cycle after the PAC conducts after the PVC.
EARLY_PAC_COUPLING = (0.38, 0.42)
EARLY_PVC_COUPLING = (0.34, 0.38)
# An ectopic atrial focus: P axes away from the sinus node's (low atrial, left atrial).
ECTOPIC_P_AXES = (-60.0, -40.0, 150.0, 170.0)
# Flutter: the QRS follows the conducted flutter wave's start by this much.
FLUTTER_FR_MS = 240.0
# Wenckebach: the PR's first lengthening (ms); each next one this fraction of the last.
WENCKEBACH_STEP_MS = 90.0
WENCKEBACH_DECAY = 0.45
# Escape rhythms in complete heart block (per min): junctional, ventricular.
ESCAPE_RATES = {"junctional": (35.0, 50.0), "ventricular": (20.0, 40.0)}
# Sinus arrhythmia: the sinus cycle swings with breathing, one breath in this long (ms).
RESPIRATION_MS = 3000.0


@dataclass(frozen=True)
class DrawingSpec:
    """What every synthetic rhythm drawing takes (here and in model.rhythm_paced): the
    white noise and baseline wander added, the seed, the beats' morphology, the length."""

    noise_mv: float = 0.0
    wander_mv: float = 0.0
    seed: int = 0
    morphology: SyntheticSpec = field(default_factory=SyntheticSpec)
    duration_s: float = 10.0


@dataclass(frozen=True)
class RhythmSpec(DrawingSpec):
    """A rhythm to draw. rate_bpm: the sinus rate; in atrial fibrillation the mean
    ventricular rate; in atrial flutter the atrial (flutter wave) rate."""

    rhythm: Rhythm = "sinus"
    rate_bpm: float = 70.0
    pac_fraction: float = 0.0
    pvc_fraction: float = 0.0
    pjc_fraction: float = 0.0
    # "pac_pvc": each sinus beat followed by a PAC and a PVC (docs/measurement.md 3.37).
    pattern: Pattern = "random"
    # "pac_pvc": the PAC and PVC early (EARLY_PAC_COUPLING, EARLY_PVC_COUPLING) and the
    # sinus P wave due a cycle after the PAC conducted after the PVC, not blocked by it:
    # the RRs around the PVC then span one sinus cycle, not two (docs/measurement.md 3.38).
    reset_p_conducts: bool = False
    # "mixed": each premature beat of the pattern atrial or ventricular at random.
    pattern_origin: Literal["atrial", "ventricular", "mixed"] = "ventricular"
    # Sinus rhythm: the cycle swings with breathing (RESPIRATION_MS) by up to this fraction.
    sinus_arrhythmia: float = 0.0
    av_block: AvBlock = "none"
    # Mobitz I and II: P waves per group, one of them not conducted (4: 4:3 block).
    av_ratio: int = 4
    escape: Literal["junctional", "ventricular"] = "junctional"
    flutter_conduction: int = 2  # 2, 3 or 4; 0 for variable conduction
    f_wave_mv: float = 0.08
    # The frontal axis the flutter wave's slow phase points to; None: typical flutter
    # (-90: negative in II, III and aVF, positive in V1). 90 draws reverse typical
    # flutter, upright in the inferior leads like a sinus P wave, negative in V1.
    f_wave_axis_deg: float | None = None
    # Real flutter cycles vary by a few per cent, slowly; the RR follows at fixed
    # conduction. This draws the cycle length swinging by up to this fraction.
    f_cycle_variation: float = 0.0
    # Sinus rhythm: the beats (places in the beat plan) at which the sinus node does
    # not fire (sinoatrial exit block): no P wave and no QRS, a pause of two cycles.
    sinus_exit_blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class RhythmTruth:
    """What was drawn: the rhythm's SCP code, the other findings' codes, and per QRS
    its onset (ms) and kind ('N', 'A', 'V', 'E')."""

    rhythm: str
    findings: frozenset[str]
    qrs_onsets_ms: tuple[float, ...]
    beats: tuple[str, ...]

    def count(self, kind: str) -> int:
        return self.beats.count(kind)

    @property
    def codes(self) -> frozenset[str]:
        return self.findings | {self.rhythm}


class HeartVectorDrawing:
    """What every rhythm drawing shares (this module's and model.rhythm_paced's): it
    holds `spec` (with duration_s and morphology), the drawing times `t` and the heart
    `vector` being drawn."""

    @property
    def end_ms(self) -> float:
        """No beat is drawn later than this: its T wave must fit in the strip."""
        return self.spec.duration_s * 1000.0 - END_MARGIN_MS

    def p_wave(self, at: float, axis: float | None = None) -> None:
        m = self.spec.morphology
        self.vector += p_wave_vector(self.t, m, at, m.p_axis_deg if axis is None else axis)


@dataclass
class _Drawing(HeartVectorDrawing):
    """The heart vector being drawn and the beats drawn so far."""

    t: np.ndarray
    spec: RhythmSpec
    qt_ms: float
    vector: np.ndarray = field(init=False)
    onsets: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vector = np.zeros((3, self.t.size))

    def qrs(self, at: float, kind: str) -> None:
        m = self.spec.morphology
        if kind == "V" or (kind == "E" and self.spec.escape == "ventricular"):
            self.vector += pvc_vector(self.t, m, at)
        else:
            self.vector += ventricular_vector(self.t, m, at, self.qt_ms)
        self.onsets.append(at)
        self.kinds.append(kind)


def rate_qt_ms(rr_ms: float, qt_at_60: float) -> float:
    """A QT that shortens with the rate as Fridericia's formula says (qt_at_60 at 60/min)."""
    return qt_at_60 * np.cbrt(rr_ms / 1000.0)


def ectopic_plan(spec: RhythmSpec, n: int, rng: np.random.Generator) -> list[str]:
    """Per sinus cycle: '' (sinus beat), 'A', 'J' or 'V' (replaced by a premature beat).

    Random ectopy never puts two premature beats in a row, so that each premature
    beat has a sinus beat before it to be premature against."""
    if spec.pattern == "pac_pvc":
        return [("", "A", "V")[i % 3] for i in range(n)]
    if spec.pattern != "random":
        every = 2 if spec.pattern == "bigeminy" else 3
        kinds = pattern_kinds(spec, n // every, rng)
        return [kinds[i // every] if i % every == every - 1 else "" for i in range(n)]
    plan = [""] * n
    fractions = (("A", spec.pac_fraction), ("V", spec.pvc_fraction), ("J", spec.pjc_fraction))
    for kind, fraction in fractions:
        wanted = round(fraction * n)
        free = [i for i in range(1, n) if not plan[i] and not plan[i - 1]]
        free = [i for i in free if i + 1 >= n or not plan[i + 1]]
        for i in rng.permutation(free):
            if wanted == 0:
                break
            if not plan[i - 1] and (i + 1 >= n or not plan[i + 1]):
                plan[i] = kind
                wanted -= 1
    return plan


def pattern_kinds(spec: RhythmSpec, n: int, rng: np.random.Generator) -> list[str]:
    """The origin of each of a pattern's n premature beats. Mixed: the first two one
    atrial, one ventricular (so that both are drawn in any strip), the rest at random."""
    if spec.pattern_origin != "mixed":
        return ["A" if spec.pattern_origin == "atrial" else "V"] * n
    first = [str(k) for k in rng.permutation(["A", "V"])]
    return (first + [str(k) for k in rng.choice(["A", "V"], max(n - 2, 0))])[:n]


def draw_sinus(d: _Drawing, rng: np.random.Generator) -> None:
    """Sinus rhythm with premature beats and AV block, beat by beat."""
    spec, m = d.spec, d.spec.morphology
    mean_cycle = 60000.0 / spec.rate_bpm
    plan = ectopic_plan(spec, int(spec.duration_s * spec.rate_bpm / 60.0) + 4, rng)
    p_at = FIRST_P_MS
    wenckebach = 0
    conducts = spec.pattern == "pac_pvc" and spec.reset_p_conducts
    for beat, ectopic in enumerate(plan):
        pr = m.pr_ms
        breath = np.sin(2 * np.pi * p_at / RESPIRATION_MS)
        cycle = mean_cycle * (1 + spec.sinus_arrhythmia * breath)
        if ectopic == "A" and beat > 0:
            coupling = EARLY_PAC_COUPLING if conducts else PAC_COUPLING
            p_at = d.onsets[-1] - pr + rng.uniform(*coupling) * cycle
            if p_at + pr > d.end_ms:
                break
            d.p_wave(p_at, float(rng.choice(ECTOPIC_P_AXES)))
            d.qrs(p_at + pr, "A")
            # The ectopic beat resets the sinus node: the next sinus P follows one cycle on.
            p_at += cycle * rng.uniform(1.0, 1.08)
            continue
        if ectopic == "V" and conducts:
            at = d.onsets[-1] + rng.uniform(*EARLY_PVC_COUPLING) * cycle
            if at > d.end_ms:
                break
            # The sinus P wave due after the PAC's reset is drawn, and conducts, as the
            # next beat of the plan.
            d.qrs(at, "V")
            continue
        if ectopic in ("V", "J") and beat > 0:
            coupling = PVC_COUPLING if ectopic == "V" else PAC_COUPLING
            at = d.onsets[-1] + rng.uniform(*coupling) * cycle
            if at > d.end_ms:
                break
            d.qrs(min(at, p_at + pr - 40.0), ectopic)
            # The sinus P wave on schedule falls into the ventricular or junctional
            # premature beat and is not conducted: a compensatory pause.
            d.p_wave(p_at)
            p_at += cycle * (1 + rng.normal(0, 0.01))
            continue
        if p_at + m.pr_ms > d.end_ms:
            break
        if beat in spec.sinus_exit_blocks:
            p_at += cycle
            continue
        d.p_wave(p_at)
        conducted = True
        if spec.av_block == "mobitz2":
            conducted = beat % spec.av_ratio != spec.av_ratio - 1
        elif spec.av_block == "two_to_one":
            conducted = beat % 2 == 0
        elif spec.av_block == "mobitz1":
            pr = m.pr_ms + wenckebach_lengthening(wenckebach)
            conducted = wenckebach != spec.av_ratio - 1
            wenckebach = (wenckebach + 1) % spec.av_ratio
        if conducted and spec.av_block != "third":
            d.qrs(p_at + pr, "N")
        p_at += cycle * (1 + rng.normal(0, 0.01))


def wenckebach_lengthening(beat: int) -> float:
    """How much longer than the first the PR of a Wenckebach group's beat-th P wave is:
    the lengthening shrinks beat by beat (0, 90, 130, 148 ms...)."""
    return round(WENCKEBACH_STEP_MS * (1 - WENCKEBACH_DECAY**beat) / (1 - WENCKEBACH_DECAY))


def draw_escape_rhythm(d: _Drawing, rng: np.random.Generator) -> None:
    """Third-degree AV block: a junctional (35-50/min, narrow) or ventricular (20-40/min,
    wide) escape rhythm, blind to the P waves."""
    rr = 60000.0 / rng.uniform(*ESCAPE_RATES[d.spec.escape])
    at = FIRST_P_MS + rng.uniform(0, rr / 2)
    while at <= d.end_ms:
        d.qrs(at, "E")
        at += rr * (1 + rng.normal(0, 0.01))


def draw_fibrillation(d: _Drawing, rng: np.random.Generator) -> None:
    """Irregularly irregular ventricular beats (log-normal RR, CV 15-30 %) and f waves."""
    spec = d.spec
    mean_rr = 60000.0 / spec.rate_bpm
    spread = rng.uniform(0.15, 0.3)
    at = FIRST_P_MS + 100.0
    while at <= d.end_ms:
        early = d.onsets and rng.random() < spec.pvc_fraction
        if early:
            d.qrs(d.onsets[-1] + rng.uniform(*PVC_COUPLING) * mean_rr, "V")
        else:
            d.qrs(at, "N")
        at = d.onsets[-1] + max(300.0, mean_rr * rng.lognormal(0.0, spread))
    d.vector += fibrillation_vector(d.t, rng, spec.f_wave_mv)


def fibrillation_vector(t: np.ndarray, rng: np.random.Generator, amplitude_mv: float) -> np.ndarray:
    """Fibrillatory waves after Stridh and Sörnmo (2001): a sawtooth-like wave of three
    harmonics at 350-480/min whose frequency swings by up to 0.6 Hz and whose size
    swings by a third, every few seconds; its direction drifts, so each lead sees
    another mixture. Peak size `amplitude_mv` in the leads facing it."""
    seconds = t / 1000.0
    base = rng.uniform(5.8, 8.0)
    swing = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * seconds)
    phase = 2 * np.pi * np.cumsum(base + swing) * (seconds[1] - seconds[0])
    size = 1 + 0.33 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * seconds + rng.uniform(0, 6))
    wave = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    wave = amplitude_mv * size * wave / 1.5
    drift = rng.uniform(-30, 30) * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * seconds)
    angle = np.radians(70 + drift)
    return np.stack([np.cos(angle) * wave, np.sin(angle) * wave, 0.6 * wave])


def draw_flutter(d: _Drawing, rng: np.random.Generator) -> None:
    """A sawtooth of flutter waves (typical: negative in II, III and aVF, positive in
    V1; else along spec.f_wave_axis_deg), every n-th of which is conducted to the
    ventricles. f_wave_mv is their size in aVF (typical) or along their axis."""
    spec = d.spec
    cycle = 60000.0 / spec.rate_bpm
    phase = rng.uniform(0, cycle)
    # Slow descent, fast return: the inverted sawtooth of typical flutter.
    angle = 2 * np.pi * (d.t + phase) / cycle
    if spec.f_cycle_variation:
        cycles = _varying_cycles(d.t, cycle, phase, spec.f_cycle_variation, rng)
        angle = 2 * np.pi * cycles
    wave = spec.f_wave_mv * sawtooth(angle, width=0.8)
    if spec.f_wave_axis_deg is None:
        d.vector += np.outer(-direction(90, -0.6), wave / direction(90, -0.6)[1])
    else:
        axis = np.radians(spec.f_wave_axis_deg)
        d.vector += np.outer([np.cos(axis), np.sin(axis), -0.6 * np.sin(axis)], wave)
    if spec.f_cycle_variation:
        # Where the sawtooth restarts: each flutter wave's start.
        _conduct(d, d.t[1:][np.diff(np.floor(cycles)) > 0], rng)
        return
    wave_start = cycle - phase % cycle  # where the sawtooth restarts: a flutter wave's start
    conducted = wave_start
    while conducted + FLUTTER_FR_MS <= d.end_ms:
        d.qrs(conducted + FLUTTER_FR_MS, "N")
        ratio = spec.flutter_conduction or int(rng.choice((2, 2, 3, 4)))
        conducted += ratio * cycle


def _conduct(d: _Drawing, starts: np.ndarray, rng: np.random.Generator) -> None:
    """A QRS after every n-th of the flutter waves starting at `starts` (ms)."""
    wave = 0
    while wave < starts.size and starts[wave] + FLUTTER_FR_MS <= d.end_ms:
        d.qrs(starts[wave] + FLUTTER_FR_MS, "N")
        wave += d.spec.flutter_conduction or int(rng.choice((2, 2, 3, 4)))


def _varying_cycles(
    t: np.ndarray, cycle: float, phase: float, variation: float, rng: np.random.Generator
) -> np.ndarray:
    """Flutter cycles elapsed at each time t (ms) where the cycle length swings slowly
    (one swing every 3-8 s) by up to `variation` of `cycle`."""
    swing = rng.uniform(3000, 8000)
    length = cycle * (1 + variation * np.sin(2 * np.pi * t / swing + rng.uniform(0, 2 * np.pi)))
    return phase / cycle + np.concatenate(([0.0], np.cumsum(np.diff(t) / length[1:])))


def ectopic_run(kinds: list[str], every: int) -> int:
    """The most premature beats in a row with every-1 conducted beats before each: a
    bigeminy (every=2) or trigeminy (3) is drawn where it reaches MIN_PATTERN_ECTOPICS,
    whether planned or by chance among random premature beats."""
    best = 0
    for start in range(len(kinds)):
        run, i = 0, start
        while i + every <= len(kinds) and kinds[i : i + every - 1] == ["N"] * (every - 1):
            if kinds[i + every - 1] not in ("A", "J", "V"):
                break
            run, i = run + 1, i + every
        best = max(best, run)
    return best


def sinus_rate_code(rate_bpm: float) -> str:
    """The code of a sinus rhythm drawn at rate_bpm, by the default limits."""
    if rate_bpm < DEFAULT_LIMITS.bradycardia_bpm:
        return "SBRAD"
    if rate_bpm > DEFAULT_LIMITS.tachycardia_bpm:
        return "STACH"
    return "SR"


def truth_of(spec: RhythmSpec, d: _Drawing) -> RhythmTruth:
    kinds = tuple(d.kinds)
    if spec.rhythm == "atrial_fibrillation":
        rhythm = "AFIB"
    elif spec.rhythm == "atrial_flutter":
        rhythm = "AFLT"
    else:
        rhythm = sinus_rate_code(spec.rate_bpm)
    findings = {code for kind, code in (("A", "PAC"), ("J", "PJC"), ("V", "PVC")) if kind in kinds}
    ordered = [kinds[i] for i in np.argsort(d.onsets)]
    for code, every in (("BIGU", 2), ("TRIGU", 3)):
        if spec.rhythm == "sinus" and ectopic_run(ordered, every) >= MIN_PATTERN_ECTOPICS:
            findings.add(code)
            break
    block = {
        "first": "1AVB",
        "mobitz1": "2AVB",
        "mobitz2": "2AVB",
        "two_to_one": "2AVB",
        "third": "3AVB",
    }
    if spec.rhythm == "sinus" and spec.av_block in block:
        findings.add(block[spec.av_block])
    order = np.argsort(d.onsets)
    return RhythmTruth(
        rhythm=rhythm,
        findings=frozenset(findings),
        qrs_onsets_ms=tuple(float(d.onsets[i]) for i in order),
        beats=tuple(kinds[i] for i in order),
    )


def rhythm_ecg(spec: RhythmSpec, sampling_rate: float = 500.0) -> tuple[Ecg, RhythmTruth]:
    """Draw the rhythm; return the 12-lead ECG (mV) and its ground truth."""
    rng = np.random.default_rng(spec.seed)
    m = spec.morphology
    if spec.av_block == "first":
        m = replace(m, pr_ms=max(m.pr_ms, 240.0))
        spec = replace(spec, morphology=m)
    ventricular_rate = spec.rate_bpm
    if spec.rhythm == "atrial_flutter":
        ventricular_rate /= spec.flutter_conduction or 3
    ventricular_rr = 60000.0 / ventricular_rate
    d = _Drawing(drawing_times(spec.duration_s), spec, rate_qt_ms(ventricular_rr, m.qt_ms))
    if spec.rhythm == "atrial_fibrillation":
        draw_fibrillation(d, rng)
    elif spec.rhythm == "atrial_flutter":
        draw_flutter(d, rng)
    else:
        draw_sinus(d, rng)
        if spec.av_block == "third":
            draw_escape_rhythm(d, rng)
    ecg = vector_to_ecg(d.vector, replace(m, noise_mv=spec.noise_mv), sampling_rate, rng)
    if spec.wander_mv > 0:
        ecg = replace(ecg, signal=ecg.signal + baseline_wander(ecg, spec.wander_mv, rng))
    return ecg, truth_of(spec, d)


def baseline_wander(ecg: Ecg, amplitude_mv: float, rng: np.random.Generator) -> np.ndarray:
    """Respiratory baseline wander: per lead, two slow sinusoids (0.1-0.5 Hz)."""
    t = np.arange(ecg.n_samples) / ecg.sampling_rate
    leads = len(ecg.lead_names)
    wander = np.zeros((leads, t.size))
    for _ in range(2):
        freq = rng.uniform(0.1, 0.5, (leads, 1))
        phase = rng.uniform(0, 2 * np.pi, (leads, 1))
        wander += 0.5 * amplitude_mv * np.sin(2 * np.pi * freq * t[None, :] + phase)
    return wander.astype(np.float32)
