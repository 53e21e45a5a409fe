"""What a measurement returns: the global fiducials, each lead's amplitudes, and the
EcgMeasurement that the statements (model.statements) and the report are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from model.beats import Beats
from model.measure.rhythm import RhythmAnalysis
from model.report import Measurements

if TYPE_CHECKING:
    from model.measure.atrial import FibrillatoryWaves
    from model.measure.av_conduction import AtrialActivity

# Atrial flutter waves (model.measure.atrial) count from this RMS in II, III and aVF.
FLUTTER_MIN_MV = 0.045


@dataclass(frozen=True)
class Fiducials:
    """Sample indices in the median beat (at FS); None where the wave was not found.
    p_on_clear is False where no isoelectric TP segment was seen before the P wave
    (it starts on, at or just after the end of a T wave, or the T end was not
    located or is hidden): p_on is then where the P wave could be told apart from
    what precedes it, not necessarily its onset. t_off is the T end that the QT rests
    on; t_end_found is where the T wave found ends even where no QT rests on it (it may
    be a P wave's end, T_END_MAY_BE_P_END): the ventricular complex's extent, which
    atrial_residual cancels, and no more, so that flutter waves after it stay."""

    qrs_on: int
    qrs_off: int
    t_peak: int | None = None
    t_off: int | None = None
    p_on: int | None = None
    p_off: int | None = None
    p_on_clear: bool = True
    t_end_found: int | None = None


@dataclass(frozen=True)
class PWaveOnT:
    """A P wave on the previous T wave (model.measure.p_on_t), seen where locate_p saw
    none: its frontal axis (degrees), its rise in lead II above the T wave's trough
    (mV), its peak's distance before the QRS (ms) and its beat-to-beat correlation."""

    axis_deg: float
    rise_mv: float
    peak_to_qrs_ms: float
    consistency: float


@dataclass(frozen=True)
class LeadAmplitudes:
    """One lead's median-beat amplitudes in mV, against the level at QRS onset.

    q, s are <= 0; r, r_prime >= 0. r_prime is a second positive wave after an S
    (rsR'); r_peak_ms is the time from QRS onset to the peak of the last positive
    wave (R' where there is one: the AHA's R peak time); terminal_40ms is
    the mean level of the last 40 ms of the QRS (its sign says where the late
    forces point, which is what bundle branch blocks change). upright_fraction is
    the share of the QRS during which the lead stands above the smallest wave
    (model.measure.amplitudes.wave_limit): how broad its R is, whatever the scale.
    """

    q: float
    r: float
    s: float
    r_prime: float
    qrs_max: float
    qrs_min: float
    r_peak_ms: float
    terminal_40ms: float
    upright_fraction: float

    @property
    def qrs_peak_to_peak(self) -> float:
        return self.qrs_max - self.qrs_min


@dataclass
class EcgMeasurement:
    """Everything measured on one ECG; the statements and the report are built from it."""

    values: Measurements = field(default_factory=Measurements)
    null_reasons: dict[str, str] = field(default_factory=dict)
    quality_flags: list[str] = field(default_factory=list)
    lead_problems: dict[str, str] = field(default_factory=dict)
    beats: Beats | None = None
    fiducials: Fiducials | None = None
    amplitudes: dict[str, LeadAmplitudes] = field(default_factory=dict)
    flutter_hz: float | None = None
    atrial_residual_mv: float = 0.0
    # Flutter waves locked at a fixed 2:1-4:1 conduction (model.measure.conducted_flutter):
    # atrial waves per QRS; their size is not held to FLUTTER_MIN_MV.
    flutter_ratio: int | None = None
    # Those copies found only taking the QRS as narrower than measured: a flutter wave
    # fuses with its end, and the QRS width measured includes it.
    flutter_fused_qrs: bool = False
    # The cancelled residual's wave regular whatever its size (model.measure.atrial
    # ORGANISED_SHARE, or the RRs whole numbers of its cycle).
    flutter_organised: bool = False
    # Organised by its RRs alone: every RR a whole number of cycles of the atrial rate,
    # where the four leads' residual peaks did not agree (model.measure.atrial
    # flutter_in_rr_cycles).
    flutter_by_rr: bool = False
    # Where the RR is irregular and no flutter was found above: the atrial rate (Hz) of
    # flutter at variable conduction whose cycle drifts (model.measure.atrial
    # drifting_flutter_hz), which withholds atrial fibrillation.
    drifting_flutter_hz: float | None = None
    p_wave_on_t: PWaveOnT | None = None
    # Fibrillatory-wave evidence, where the RR is irregular and neither a P wave nor
    # flutter waves were found.
    fibrillatory: FibrillatoryWaves | None = None
    paced_beats: int = 0
    # Per beat (model.beats.Beats.positions), whether a stimulus drove it.
    paced_mask: np.ndarray | None = None
    # Whether the stimuli show a pacemaker (model.measure.paced.pacemaker_paces),
    # judged on the beats among which they were found, before they were blanked:
    # blanked, the paced beats can become the dominant ones and the shape rule no
    # longer holds (synthetic VVI over sinus rhythm at 100 Hz, 5 of 10 beats paced).
    pacemaker: bool = False
    # The pacemaker stimuli blanked before the beats were measured (samples at FS).
    stimuli: np.ndarray | None = None
    rhythm: RhythmAnalysis | None = None
    # Every P wave of the recording and its relation to the QRS (AV conduction).
    atrial: AtrialActivity | None = None
    # On a strip paced MIN_PACED_FRACTION or more, the P waves found with each beat
    # class cancelled with its own median beat (model.measure.paced_atrial).
    paced_atrial: AtrialActivity | None = None
    # There, where those P waves keep no atrial cycle: the share of that residual's
    # 1-40 Hz power at 4-9 Hz (model.measure.paced_atrial.fibrillatory_share).
    paced_fibrillatory_share: float | None = None
    # Why, in a few words for the report, intervals, axes and amplitudes were not
    # measured where the rhythm still was; None where they were measured.
    rhythm_only: str | None = None
    median: np.ndarray | None = None
    amplitudes_calibrated: bool = True
    # The P wave's net area in each usable limb lead (the P axis was fitted to them):
    # where the leads were rescaled one by one only their signs still mean something.
    p_areas: dict[str, float] = field(default_factory=dict)

    @property
    def has_flutter_waves(self) -> bool:
        if self.flutter_hz is None:
            return False
        if self.flutter_ratio is not None or self.flutter_organised:
            return True
        return self.atrial_residual_mv >= FLUTTER_MIN_MV

    def set_null(self, keys: tuple[str, ...] | list[str], reason: str) -> None:
        for key in keys:
            if getattr(self.values, key) is None and key not in self.null_reasons:
                self.null_reasons[key] = reason
