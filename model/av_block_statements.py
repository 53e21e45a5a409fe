"""Second- and third-degree AV block, from the P waves found along the whole recording
(model.measure.av_conduction), with the underlying sinus rhythm named by its atrial rate.

A false complete heart block raises a critical alert, so every call needs clear
evidence and anything unclear states nothing: a regular atrial rhythm of sinus P waves
(axis -30..105 degrees), at least MIN_BLOCKED P waves not conducted (one where the PRs
lengthen before or after it), and one of the patterns below; never on a paced rhythm,
flutter, or a signal too noisy for intervals.

- 2:1 AV block: every interval between QRS complexes holds two P waves, the conducted
  one at a constant PR (the Mobitz type cannot be told).
- Mobitz I (Wenckebach): the PR after each dropped beat is shorter than the PR before it.
- Mobitz II: dropped beats with a constant PR.
- Third degree: P waves and QRS complexes independent: a regular escape rhythm of at
  most MAX_ESCAPE_BPM, slower than the atrial rhythm, and the PRs spread widely
  without the Wenckebach pattern.

For the second-degree patterns premature atrial beats (their own P waves, of another
axis, not found) are taken out of the beat sequence and sinus P waves the search missed
put back from the atrial cycle (without_premature_atrial; docs/measurement.md 3.34).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from model.beats import FS
from model.measure import SINUS_P_AXIS, EcgMeasurement
from model.measure.av_conduction import (
    ATRIAL_FIT,
    MAX_ATRIAL_RATE,
    PR_RANGE_MS,
    AtrialActivity,
)
from model.measure.leads import PRE
from model.paced_statements import is_paced
from model.report import Statement
from model.rhythm_statements import sinus_rate_code
from model.statement_limits import StatementLimits
from model.statement_text import make_statement

AV_BLOCK_CODES = frozenset({"2AVB", "3AVB"})
# At least this many P waves not conducted (one may be a blocked premature atrial
# beat; none that fell into a junctional beat, refractory: _refractory_p_waves); a
# single one only with the Wenckebach sequence before it: the PR lengthening
# over at least MIN_WENCKEBACH_PRS conducted beats and shorter after the dropped beat.
MIN_BLOCKED = 2
MIN_WENCKEBACH_PRS = 3
# A PR is constant where the conducted PRs span at most this (ms); a Wenckebach's PR
# after the dropped beat is at least MOBITZ_I_STEP_MS shorter than the PR before it.
CONSTANT_PR_MS = 40
MOBITZ_I_STEP_MS = 40
# 2:1 block: this share of the judged intervals between QRS complexes holds 2 P waves,
# with at least MIN_INTERVALS judged.
TWO_TO_ONE_SHARE = 0.8
MIN_INTERVALS = 3
# Complete heart block: an escape rhythm of at most this rate whose RR varies by at
# most ESCAPE_RR_SPREAD (coefficient of variation), at most ESCAPE_TO_ATRIAL of the
# atrial rate, and PRs (QRS onset minus the last P onset) spreading over at least
# COMPLETE_PR_SPREAD_MS, from MIN_ESCAPE_BEATS beats.
MAX_ESCAPE_BPM = 60
ESCAPE_RR_SPREAD = 0.1
ESCAPE_TO_ATRIAL = 0.8
COMPLETE_PR_SPREAD_MS = 120
MIN_ESCAPE_BEATS = 4
# No complete block where this share of the PRs lies within CONSTANT_PR_MS / 2 of
# their median: most beats are conducted at one PR.
LOCKED_PR_SHARE = 0.5
# Second-degree block: at least this share of the QRS complexes follow a P wave at a
# PR of 80-420 ms, and between dropped beats a Wenckebach's PR never shortens by more
# than PR_JITTER_MS (the P onset is found to 4 ms).
MIN_CONDUCTED_SHARE = 0.8
PR_JITTER_MS = 10
# SNOMED CT concepts of the Mobitz types (CinC 2021's mapping); SCP's 2AVB carries the
# second-degree block of unknown type.
MOBITZ_SNOMED = {"I": "54016002", "II": "426183003"}


@dataclass(frozen=True)
class AvBlock:
    """A block found: its code, words, criterion and the PRs it rests on (ms)."""

    code: str
    text: str
    criterion: str
    snomed: str | None
    prs_ms: list[float]
    inferred_prs_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SinusSequence:
    """The P waves against the beats left once premature atrial beats are taken out
    (without_premature_atrial). interrupted: per interval, whether a premature beat
    stood in it; inferred_pr: per beat, whether its PR rests on a P wave put back, not
    found; inferred_p_waves: how many were put back; refractory_p_waves: P waves found
    within half a cycle after a premature beat kept (a junctional one: the P wave fell
    into it, not conducted for refractoriness, not block)."""

    atrial: AtrialActivity
    interrupted: tuple[bool, ...]
    inferred_pr: tuple[bool, ...]
    inferred_p_waves: int = 0
    refractory_p_waves: int = 0


def av_block_statements(m: EcgMeasurement, limits: StatementLimits) -> list[Statement]:
    """The sinus rhythm (by its atrial rate) and the AV block, or nothing where the
    P waves do not show one clearly."""
    atrial = m.atrial
    if atrial is None or m.rhythm_only or m.beats is None or is_paced(m) or m.has_flutter_waves:
        return []
    axis, atrial_rate = atrial.p_axis_deg, atrial.atrial_rate_per_min
    if axis is None or not SINUS_P_AXIS[0] <= axis <= SINUS_P_AXIS[1] or atrial_rate is None:
        return []
    if atrial_rate > MAX_ATRIAL_RATE:
        return []
    if atrial.blocked < 1:
        return []
    sinus = without_premature_atrial(m, atrial)
    blocked = atrial.blocked - sinus.refractory_p_waves
    if blocked < 1:
        return []
    block = complete_block(m, atrial) or second_degree_block(
        sinus.atrial, sinus.interrupted, sinus.inferred_pr
    )
    if block is None or (
        blocked < MIN_BLOCKED and not wenckebach_sequence(sinus.atrial, sinus.interrupted)
    ):
        return []
    evidence = {
        "atrial_rate_per_min": round(atrial_rate),
        "ventricular_rate_bpm": m.values.heart_rate_bpm,
        "p_axis_deg": axis,
    }
    rate = sinus_rate_code(atrial_rate, limits)
    code, limit = rate or ("SR", f"{limits.bradycardia_bpm}-{limits.tachycardia_bpm}")
    rhythm = make_statement(
        code,
        f"P waves at a regular atrial rate of {limit}/min with P axis "
        f"{SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} degrees, found along the whole recording",
        p_waves=len(atrial.p_onsets),
        **evidence,
    )
    statement = make_statement(
        block.code,
        block.criterion,
        text=block.text,
        snomed=block.snomed,
        pr_ms=", ".join(f"{pr:.0f}" for pr in block.prs_ms),
        **_inferred_evidence(block, sinus),
        non_conducted_p_waves=blocked,
        **evidence,
    )
    return [rhythm, statement]


def _inferred_evidence(block: AvBlock, sinus: SinusSequence) -> dict[str, object]:
    """For a second-degree block, the P waves put back and the PRs measured from them,
    apart from pr_ms (from P waves found), so that the report says what was seen and
    what was inferred. The complete block rests on the P waves found alone."""
    if block.code != "2AVB":
        return {}
    evidence: dict[str, object] = {"inferred_p_waves": sinus.inferred_p_waves}
    if block.inferred_prs_ms:
        prs = ", ".join(f"{pr:.0f}" for pr in block.inferred_prs_ms)
        evidence["pr_ms_from_inferred_p_waves"] = prs
    return evidence


def without_premature_atrial(m: EcgMeasurement, atrial: AtrialActivity) -> SinusSequence:
    """The P waves against the QRS complexes with the premature atrial beats
    (premature_atrial_beats) and their own P waves taken out, the sinus P waves the
    search missed put back (missed_p_waves), and per interval between the beats left
    whether a premature beat stood in it. Its "PR" is none of the block's, and a P
    wave of the sinus rhythm in such an interval that is not conducted is a dropped
    beat like any other; the premature beat ends a Wenckebach run, so the PRs either
    side are not compared. A drop needs a P wave found, not conducted: an interval
    whose P wave not conducted was put back is not judged (a sinus pause with no P wave
    in it is no AV block; docs/measurement.md 3.34)."""
    ectopic, own_p = premature_atrial_beats(m, atrial)
    qrs = _qrs_onsets(m)
    refractory = _refractory_p_waves(m, atrial, ectopic, qrs)
    found = np.delete(np.array(atrial.p_onsets), own_p)
    onsets = missed_p_waves(found, atrial.atrial_cycle_ms, qrs[ectopic])
    if not ectopic.any() and onsets.size == found.size:
        n = len(atrial.pr_ms)
        return SinusSequence(
            atrial, (False,) * len(atrial.p_per_interval), (False,) * n, 0, refractory
        )
    inferred = ~np.isin(onsets, found)
    kept = np.flatnonzero(~ectopic)
    last = np.searchsorted(onsets, qrs[kept]) - 1
    pr = [(q - onsets[k]) * 1000.0 / FS if k >= 0 else None for q, k in zip(qrs[kept], last)]
    conducted = [p is not None and PR_RANGE_MS[0] <= p <= PR_RANGE_MS[1] for p in pr]
    counts, interrupted = [], []
    for n, (j, k) in enumerate(pairwise(kept)):
        inside = np.flatnonzero((onsets >= qrs[j]) & (onsets < qrs[k]))
        not_conducted = inside[:-1] if conducted[n + 1] else inside
        if min(atrial.p_per_interval[j:k]) < 0 or inferred[not_conducted].any():
            counts.append(-1)
        else:
            counts.append(int(inside.size))
        interrupted.append(bool(k > j + 1))
    judged = replace(
        atrial, pr_ms=tuple(pr), conducted=tuple(conducted), p_per_interval=tuple(counts)
    )
    inferred_pr = tuple(bool(k >= 0 and inferred[k]) for k in last)
    return SinusSequence(judged, tuple(interrupted), inferred_pr, int(inferred.sum()), refractory)


def missed_p_waves(onsets: np.ndarray, cycle_ms: float | None, resets: np.ndarray) -> np.ndarray:
    """The P waves found with those the search missed (hidden in a QRS or T wave, or
    under noise) put back: where two found lie a whole number of atrial cycles apart
    (ATRIAL_FIT), evenly between them; not across a premature atrial beat (resets),
    which resets the sinus node. Such a P wave may give its beat a PR; it is never a
    P wave not conducted (without_premature_atrial)."""
    if cycle_ms is None or onsets.size < 2:
        return onsets
    cycle = cycle_ms * FS / 1000.0
    added = []
    for a, b in pairwise(onsets):
        k = round((b - a) / cycle)
        if k < 2 or abs(b - a - k * cycle) > ATRIAL_FIT * cycle:
            continue
        if np.any((resets > a) & (resets < b)):
            continue
        added += [a + j * (b - a) // k for j in range(1, k)]
    return np.sort(np.concatenate([onsets, np.array(added, dtype=onsets.dtype)]))


def _refractory_p_waves(
    m: EcgMeasurement, atrial: AtrialActivity, ectopic: np.ndarray, qrs: np.ndarray
) -> int:
    """Of the P waves counted not conducted (AtrialActivity.blocked), those within half
    an atrial cycle after the QRS onset of a premature beat kept (labelled 'S', not
    conducted, not a premature atrial beat): the sinus P wave due fell into a
    junctional beat; refractory, not blocked."""
    cycle_ms, conducted = atrial.atrial_cycle_ms, atrial.conducted
    if cycle_ms is None or len(m.beats.labels) != len(conducted):
        return 0
    half = cycle_ms * FS / 2000.0
    onsets = np.array(atrial.p_onsets)
    junctional = (m.beats.labels == "S") & ~ectopic & ~np.array(conducted)
    count = 0
    for i in np.flatnonzero(junctional[:-1]):
        if atrial.p_per_interval[i] < 0:
            continue
        inside = np.flatnonzero((onsets > qrs[i]) & (onsets < min(qrs[i] + half, qrs[i + 1])))
        # The last P wave before the next QRS conducts it where its PR is conducted.
        conducting = inside.size and conducted[i + 1] and onsets[inside[-1]] < qrs[i + 1]
        last_before_next = np.searchsorted(onsets, qrs[i + 1]) - 1
        count += int(inside.size) - int(bool(conducting) and inside[-1] == last_before_next)
    return count


def premature_atrial_beats(
    m: EcgMeasurement, atrial: AtrialActivity
) -> tuple[np.ndarray, list[int]]:
    """Per beat, whether it is a premature atrial beat: of the dominant shape, early
    (labelled 'S'), no P wave on the atrial cycle conducting it (none at a conducted
    PR: its own, of another axis, not found; or one earlier than the cycle allows,
    ATRIAL_FIT), and the sinus node reset: no sinus P wave within half a cycle after
    its QRS onset. And the indices of those early P waves.

    A junctional premature beat leaves the sinus node on time: the P wave due falls
    into it (not conducted for refractoriness, not block). The early beats of a 3:2
    Wenckebach follow a sinus P wave on the cycle at a conducted PR and are kept."""
    n = len(atrial.pr_ms)
    labels, cycle_ms = m.beats.labels, atrial.atrial_cycle_ms
    ectopic = np.zeros(n, dtype=bool)
    if cycle_ms is None or len(labels) != n:
        return ectopic, []
    cycle = cycle_ms * FS / 1000.0
    onsets = np.array(atrial.p_onsets)
    qrs = _qrs_onsets(m)
    last = np.searchsorted(onsets, qrs) - 1
    own_p = []
    for i in np.flatnonzero(labels == "S"):
        k = int(last[i])
        early = (
            atrial.conducted[i] and k >= 1 and onsets[k] - onsets[k - 1] < (1 - ATRIAL_FIT) * cycle
        )
        if atrial.conducted[i] and not early:
            continue
        if k + 1 < onsets.size and onsets[k + 1] - qrs[i] < cycle / 2:
            continue
        ectopic[i] = True
        if early:
            own_p.append(k)
    return ectopic, own_p


def _qrs_onsets(m: EcgMeasurement) -> np.ndarray:
    """Each beat's QRS onset (samples), as model.measure.av_conduction relates them."""
    return m.beats.positions - PRE + m.fiducials.qrs_on


def second_degree_block(
    atrial: AtrialActivity,
    interrupted: tuple[bool, ...],
    inferred_pr: tuple[bool, ...] | None = None,
) -> AvBlock | None:
    """2:1, Mobitz I or Mobitz II from the P waves per interval and the PRs around the
    dropped beats; None where the pattern is none of them. interrupted: per interval,
    whether a premature atrial beat taken out stood in it (without_premature_atrial):
    its P waves count for the drops, not for the conduction ratio. inferred_pr: per
    beat, whether its PR rests on a P wave put back: the block's PRs keep those apart."""
    # The conduction ratio from the intervals without a premature beat: one taken out
    # leaves its interval one P wave more or fewer than the ratio's.
    counts = np.array(
        [c for c, cut in zip(atrial.p_per_interval, interrupted) if c >= 0 and not cut]
    )
    if counts.size < MIN_INTERVALS or counts.max() > 2:
        return None
    # Every QRS of a second-degree block follows its P wave (the first may not show it).
    if np.mean(atrial.conducted[1:]) < MIN_CONDUCTED_SHARE:
        return None
    pr = atrial.pr_ms
    conducted = [p for p, c in zip(pr, atrial.conducted) if c and p is not None]
    constant = max(conducted) - min(conducted) <= CONSTANT_PR_MS
    put_back = inferred_pr or (False,) * len(pr)
    seen = [p for p, c, x in zip(pr, atrial.conducted, put_back) if c and p is not None and not x]
    inferred = [p for p, c, x in zip(pr, atrial.conducted, put_back) if c and p is not None and x]
    if np.mean(counts == 2) >= TWO_TO_ONE_SHARE:
        if not constant:
            return None
        return AvBlock(
            "2AVB",
            "Second degree AV block, 2:1 conduction",
            f"two P waves in at least {TWO_TO_ONE_SHARE:.0%} of the RR intervals, the "
            f"conducted one at a constant PR (range <= {CONSTANT_PR_MS} ms); the Mobitz "
            "type cannot be told at 2:1",
            None,
            seen,
            inferred,
        )
    steps = mobitz_steps(atrial, interrupted)
    if not steps or not np.any(counts == 1):
        return None
    if constant:
        return AvBlock(
            "2AVB",
            "Second degree AV block, Mobitz II",
            f"P waves not conducted between conducted beats whose PR is constant "
            f"(range <= {CONSTANT_PR_MS} ms)",
            MOBITZ_SNOMED["II"],
            seen,
            inferred,
        )
    if min(steps) >= MOBITZ_I_STEP_MS and lengthening_within_groups(atrial, interrupted):
        return AvBlock(
            "2AVB",
            "Second degree AV block, Mobitz I (Wenckebach)",
            f"the PR lengthens until a P wave is not conducted; after each dropped beat "
            f"the PR is at least {MOBITZ_I_STEP_MS} ms shorter than before it",
            MOBITZ_SNOMED["I"],
            seen,
            inferred,
        )
    return None


def lengthening_within_groups(atrial: AtrialActivity, interrupted: tuple[bool, ...]) -> bool:
    """Between dropped beats the PR never shortens (by more than PR_JITTER_MS): a
    Wenckebach's PR lengthens beat by beat; P waves taken from fibrillatory waves
    would give PRs at random. Not across a premature atrial beat taken out
    (interrupted): it ends the run."""
    for i, count in enumerate(atrial.p_per_interval):
        before, after = atrial.pr_ms[i], atrial.pr_ms[i + 1]
        if (
            count == 1
            and not interrupted[i]
            and before is not None
            and after is not None
            and after < before - PR_JITTER_MS
        ):
            return False
    return True


def mobitz_steps(atrial: AtrialActivity, interrupted: tuple[bool, ...]) -> list[float]:
    """Per dropped beat (an interval with two P waves between conducted beats): the PR
    before it minus the PR after it, in ms. Across a premature atrial beat taken out
    (interrupted) the PR before may be any of its group's (the beat taken out may have
    been the group's next): there a step only where it shows the Wenckebach shortening."""
    steps = []
    for i, count in enumerate(atrial.p_per_interval):
        before, after = atrial.pr_ms[i], atrial.pr_ms[i + 1]
        if count != 2 or before is None or after is None:
            continue
        shows = not interrupted[i] or before - after >= MOBITZ_I_STEP_MS
        if atrial.conducted[i] and atrial.conducted[i + 1] and shows:
            steps.append(before - after)
    return steps


def wenckebach_sequence(atrial: AtrialActivity, interrupted: tuple[bool, ...]) -> bool:
    """A Wenckebach sequence around a dropped beat: the PR after it MOBITZ_I_STEP_MS
    shorter than before it, and MIN_WENCKEBACH_PRS conducted PRs in a row that lengthen
    before it, or from it on (the group after the drop repeats the lengthening: a
    premature atrial beat may have cut the one before). No run passes a premature
    atrial beat taken out (interrupted)."""
    pr, conducted = atrial.pr_ms, atrial.conducted
    for i, count in enumerate(atrial.p_per_interval):
        after = pr[i + 1]
        if count != 2 or pr[i] is None or after is None or pr[i] - after < MOBITZ_I_STEP_MS:
            continue
        for first in (i + 1 - MIN_WENCKEBACH_PRS, i + 1):
            last = first + MIN_WENCKEBACH_PRS - 1
            if first < 0 or last >= len(pr) or any(interrupted[first:last]):
                continue
            if first > i and any(c != 1 for c in atrial.p_per_interval[first:last]):
                continue
            run = pr[first : last + 1]
            if not all(conducted[first : last + 1]) or not conducted[i + 1]:
                continue
            if all(a is not None and b is not None and b > a for a, b in pairwise(run)):
                return True
    return False


def complete_block(m: EcgMeasurement, atrial: AtrialActivity) -> AvBlock | None:
    """Third-degree AV block (COMPLETE_* and ESCAPE_* limits), or None."""
    beats = m.beats
    # A premature ventricular beat is conducted or ectopic; an escape beat whose shape
    # the P waves riding on it change ('X', synthetic ventricular escapes) is neither.
    if beats is None or np.any(beats.labels == "V"):
        return None
    rr_ms = beats.rr * 1000.0 / FS
    escape_rate = 60000.0 / float(rr_ms.mean())
    cycle = atrial.atrial_cycle_ms or 0.0
    # A "PR" longer than an atrial cycle means the P wave just before was not found.
    prs = [p for p in atrial.pr_ms if p is not None and p <= (1 + ATRIAL_FIT) * cycle]
    if len(prs) < MIN_ESCAPE_BEATS or rr_ms.std() > ESCAPE_RR_SPREAD * rr_ms.mean():
        return None
    if escape_rate > MAX_ESCAPE_BPM or escape_rate > ESCAPE_TO_ATRIAL * 60000.0 / cycle:
        return None
    if max(prs) - min(prs) < COMPLETE_PR_SPREAD_MS:
        return None
    # A PR that most beats share is conduction (2:1 block with a P wave missed).
    locked = np.abs(np.array(prs) - np.median(prs)) <= CONSTANT_PR_MS / 2
    if locked.mean() >= LOCKED_PR_SHARE:
        return None
    return AvBlock(
        "3AVB",
        "Third degree AV block (complete heart block)",
        f"P waves and QRS complexes independent: a regular escape rhythm (RR varying by "
        f"<= {ESCAPE_RR_SPREAD:.0%}) at <= {MAX_ESCAPE_BPM}/min, slower than the atrial "
        f"rhythm, and PRs spreading over >= {COMPLETE_PR_SPREAD_MS} ms",
        None,
        prs,
    )
