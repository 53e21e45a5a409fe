"""The LUDB reference intervals: each beat's global edges from the cardiologists'
per-lead annotations, and the record's P duration, PR, QRS and QT (bench/measure_accuracy.py
scores the engine against them; tests/test_measure_real.py uses the same definition).

The decided references (issue 24): P, PR and QT global (second-earliest onset, second-
latest offset over the leads); the QRS per beat the median over the annotated leads of
each lead's QRS duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


@dataclass
class Wave:
    kind: str  # 'p', 'N' (QRS) or 't'
    onset: int | None
    peak: int
    offset: int | None


def ludb_waves(record: Path, lead: str) -> list[Wave]:
    """One lead's annotated waves: '(' onset, the peak symbol, ')' offset."""
    ann = wfdb.rdann(str(record), lead)
    symbols, at = ann.symbol, ann.sample
    waves = []
    for k, symbol in enumerate(symbols):
        if symbol in ("p", "N", "t"):
            onset = int(at[k - 1]) if k > 0 and symbols[k - 1] == "(" else None
            offset = int(at[k + 1]) if k + 1 < len(symbols) and symbols[k + 1] == ")" else None
            waves.append(Wave(symbol, onset, int(at[k]), offset))
    return waves


def _second_earliest(values: list[int]) -> int | None:
    """Earliest over the leads after dropping the single most extreme lead."""
    return sorted(values)[1] if len(values) >= 2 else None


def _second_latest(values: list[int]) -> int | None:
    return sorted(values)[-2] if len(values) >= 2 else None


@dataclass(frozen=True)
class ReferenceBeat:
    """One annotated beat's global edges (samples): second-earliest onset and
    second-latest offset over the leads; None where too few leads annotated it.
    qrs_median_lead: the median over the annotated leads of each lead's QRS duration,
    the decided LUDB QRS reference (issue 24): no single lead's extreme moves it."""

    centre: int
    qrs_on: int | None
    qrs_off: int | None
    p_on: int | None
    p_off: int | None
    t_off: int | None
    qrs_median_lead: float | None


def ludb_reference_beats(record: Path) -> list[ReferenceBeat]:
    """The global edges of each beat of one LUDB record.

    Beats are QRS annotations grouped across leads by their peak (within 150 ms);
    a beat counts when at least half the leads annotated it. A P wave belongs to
    the beat whose QRS follows it, a T wave to the beat whose QRS precedes it.
    """
    per_lead = {lead: ludb_waves(record, lead) for lead in LUDB_LEADS}
    qrs = sorted(
        ((w.peak, w) for waves in per_lead.values() for w in waves if w.kind == "N"),
        key=lambda item: item[0],
    )
    groups: list[list[Wave]] = []
    for peak, wave in qrs:
        if groups and peak - groups[-1][-1].peak <= 75:
            groups[-1].append(wave)
        else:
            groups.append([wave])
    beats = [g for g in groups if len(g) >= len(LUDB_LEADS) // 2]
    centres = [int(np.median([w.peak for w in g])) for g in beats]
    found = []
    for i, group in enumerate(beats):
        previous = centres[i - 1] if i > 0 else -(10**9)
        following = centres[i + 1] if i + 1 < len(centres) else 10**9

        def edges(kind: str, lo: int, hi: int) -> list[Wave]:
            waves = (w for lead_waves in per_lead.values() for w in lead_waves)
            return [w for w in waves if w.kind == kind and lo < w.peak < hi]

        p_waves = edges("p", previous, centres[i])
        found.append(
            ReferenceBeat(
                centre=centres[i],
                qrs_on=_second_earliest([w.onset for w in group if w.onset is not None]),
                qrs_median_lead=_median_lead_duration(group),
                qrs_off=_second_latest([w.offset for w in group if w.offset is not None]),
                p_on=_second_earliest([w.onset for w in p_waves if w.onset is not None]),
                p_off=_second_latest([w.offset for w in p_waves if w.offset is not None]),
                t_off=_second_latest(
                    [w.offset for w in edges("t", centres[i], following) if w.offset is not None]
                ),
            )
        )
    return found


def _median_lead_duration(group: list[Wave]) -> float | None:
    """The median over the annotated leads of each lead's QRS duration (samples)."""
    durations = [w.offset - w.onset for w in group if w.onset is not None and w.offset is not None]
    return float(np.median(durations)) if durations else None


def ludb_reference(record: Path, fs: float = 500.0) -> dict[str, float | None]:
    """Global P duration, PR, QRS, QT (ms) of one LUDB record: the median over its
    annotated beats."""
    return reference_intervals(ludb_reference_beats(record), fs)


def reference_intervals(beats: list[ReferenceBeat], fs: float = 500.0) -> dict[str, float | None]:
    """Median over the beats of P duration, PR and QT (global: earliest onset, latest
    offset) and of the QRS (per beat the median lead's; qrs_extreme: the global one,
    which the edge rows split into onset and offset)."""
    p_d, pr, qrs_d, qrs_extreme, qt = [], [], [], [], []
    for beat in beats:
        if beat.p_on is not None and beat.p_off is not None:
            p_d.append(beat.p_off - beat.p_on)
        if beat.qrs_median_lead is not None:
            qrs_d.append(beat.qrs_median_lead)
        if beat.qrs_on is None or beat.qrs_off is None:
            continue
        qrs_extreme.append(beat.qrs_off - beat.qrs_on)
        if beat.p_on is not None:
            pr.append(beat.qrs_on - beat.p_on)
        if beat.t_off is not None:
            qt.append(beat.t_off - beat.qrs_on)

    def median_ms(values: list[int]) -> float | None:
        return float(np.median(values)) * 1000.0 / fs if values else None

    return {
        "p": median_ms(p_d),
        "pr": median_ms(pr),
        "qrs": median_ms(qrs_d),
        "qt": median_ms(qt),
        "qrs_extreme": median_ms(qrs_extreme),
    }


def ludb_is_paced(record: Path) -> bool:
    header = record.with_suffix(".hea").read_text().lower()
    return "pacing" in header or "p-synchrony" in header
