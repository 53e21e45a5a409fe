"""Whether a pacemaker drives the rhythm, and which intervals its stimuli leave
unmeasurable (model.measure.pipeline finds and blanks the stimuli; model.pacing_stimuli
searches for them).
"""

from __future__ import annotations

import numpy as np

from model.beats import FS, Beats, blanked_after
from model.measure.leads import PRE
from model.measure.result import EcgMeasurement
from model.pacing_stimuli import (
    OTHER_SHAPE,
    blank_reach,
    other_beat_stimuli,
    shortest_other_shape_train,
    stimulated,
    weak_stimuli,
)

# A pacemaker drives the rhythm when at least this share of beats follows a stimulus
# (fewer are as likely to be QRS-locked artefacts, and too few to change a measurement).
MIN_PACED_FRACTION = 0.4
MIN_PACED_BEATS = 3
# Or, intermittently, between conducted beats (VVI pacing in atrial fibrillation fills
# the long pauses: synthetic tuning seeds, 2-6 of 10-13 beats paced), where at least
# this many and this share follow a stimulus: LUDB 43 and 109, not paced, show 3
# QRS-locked one-sample artefacts (3 of 10, 3 of 16).
MIN_INTERMITTENT_PACED_BEATS = 4
MIN_INTERMITTENT_PACED_FRACTION = 0.25


def pacemaker_drives(paced: int, beats: int) -> bool:
    """Whether enough beats follow a stimulus for a pacemaker to drive the rhythm."""
    if paced >= max(MIN_PACED_BEATS, MIN_PACED_FRACTION * beats):
        return True
    return paced >= max(MIN_INTERMITTENT_PACED_BEATS, MIN_INTERMITTENT_PACED_FRACTION * beats)


def pacemaker_paces(
    mask: np.ndarray | None, labels: np.ndarray, source_fs: float | None = None
) -> bool:
    """Whether the beats after a stimulus (`mask`) show a pacemaker: enough of them
    (pacemaker_drives), or MIN_PACED_BEATS or more every one of which is of another
    shape than the dominant beats, the QRS the stimulus captured (ventricular pacing
    taking over from a sinus rhythm now and then). A strip with three such beats among
    ten is not plain sinus rhythm: synthetic VVI over sinus rhythm, tuning seeds 1 and
    3-7, read "SR" with 3 of 10-12 beats paced. LUDB 43 and 109 (not paced), with 3
    QRS-locked artefacts among 10 and 16 beats, stay unpaced. With `source_fs` (the
    beat-locked search's stimuli) at 250 Hz and more, 2 such beats
    (model.pacing_stimuli.shortest_other_shape_train)."""
    if mask is None:
        return False
    paced = int(mask.sum())
    if pacemaker_drives(paced, mask.size):
        return True
    fewest = MIN_PACED_BEATS if source_fs is None else shortest_other_shape_train(source_fs)
    return paced >= fewest and bool(np.isin(labels[mask], OTHER_SHAPE).all())


def null_onsets_at_stimuli(result: EcgMeasurement, stimuli: np.ndarray, source_fs: float) -> None:
    """Null the intervals of a wave that its blanked stimulus overlaps, in a record
    whose stimuli are smeared wider than a 500 Hz record's (blanked_after over its 24
    ms: under about 230 Hz). There the smear reaches past the blanked span on both
    sides (a 100 Hz record's anti-alias filter rings for about 50 ms) and the onset found
    is the smear's, before the stimulus (synthetic DDD at 100 Hz: QRS 194-204 ms, 148
    without the stimuli; AAI PR 200 against 142): a clinician would rather see no
    value than that. The fiducials stay, so the rhythm analysis keeps its P wave."""
    before = blank_reach(source_fs)
    after = blanked_after(before)
    if after <= blanked_after(blank_reach(FS)):
        return
    fid = result.fiducials
    starts = result.beats.dominant - PRE
    reason = (
        f"{{}} onset not measurable in this {source_fs:.0f} Hz record: a pacemaker stimulus, "
        f"smeared over {(before + after) * 1000 / FS:.0f} ms or more at this rate, overlaps it"
    )
    qrs_keys = ("qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms", "pr_ms")
    for onset, offset, keys, name in (
        (fid.qrs_on, fid.qrs_off, qrs_keys, "QRS"),
        (fid.p_on, fid.p_off, ("p_duration_ms", "pr_ms"), "P wave"),
    ):
        if onset is None or offset is None:
            continue
        gap = stimuli[None, :] - starts[:, None]
        overlaps = ((gap >= onset - after) & (gap <= offset)).any(axis=1)
        # Half the beats: where the search found the stimuli before only some beats
        # of a wholly paced rhythm (synthetic VVI at 100 Hz: 5 of 10), the others
        # hold theirs too, unblanked.
        if overlaps.mean() < 0.5:
            continue
        for key in keys:
            if getattr(result.values, key) is not None:
                setattr(result.values, key, None)
                result.null_reasons[key] = reason.format(name)


def weak_pacemaker_stimuli(
    result: EcgMeasurement, raw: np.ndarray, beats: Beats, leads: np.ndarray, source_fs: float
) -> np.ndarray:
    """Pacemaker stimuli the one-sample search missed (low-passed, small, in a few
    leads: model.pacing_stimuli), where they show a pacemaker; else empty."""
    qrs_on = PRE - result.fiducials.qrs_on
    spikes = weak_stimuli(raw, leads, beats, qrs_on, result.values.qrs_ms, source_fs)
    paced = stimulated(spikes, beats.positions)
    return spikes if pacemaker_paces(paced, beats.labels, source_fs) else spikes[:0]


def pacemaker_before_other_beats(
    first: EcgMeasurement, raw: np.ndarray, source_fs: float
) -> np.ndarray:
    """Stimuli before the first pass's beats of another shape alone
    (model.pacing_stimuli.other_beat_stimuli; `raw`: the leads searched, at FS), where
    they show a pacemaker; else empty."""
    beats = first.beats
    found = other_beat_stimuli(raw, np.arange(raw.shape[0]), beats, source_fs)
    paced = stimulated(found, beats.positions)
    return found if found.size and pacemaker_paces(paced, beats.labels, source_fs) else found[:0]
