"""LUDB's conduction labels against the engine's statements (rows of
bench/measure_accuracy.py, through bench/measure_rhythm.py's ludb_rows).

Precision and recall per code (1AVB, IRBBB, CRBBB, CLBBB, IVCD) against the
cardiologists' `Conduction abnormalities` column, paced records left out (the pacemaker
shapes their QRS, and the engine makes no conduction statement on them); each false
positive's evidence class: the engine's interval, LUDB's own (bench/ludb_reference.py:
QRS per beat the median lead's, PR global) and what the record is labelled instead. LUDB
also labels incomplete LBBB; the engine has no such statement (docs/measurement.md 3.7),
so those records count only where another code names them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from ludb_reference import ludb_reference
from scores import Counts

LUDB_CONDUCTION = {
    "I degree av block": "1AVB",
    "Incomplete right bundle branch block": "IRBBB",
    "Complete right bundle branch block": "CRBBB",
    "Complete left bundle branch block": "CLBBB",
    "Incomplete left bundle branch block": "ILBBB",
    "Non-specific intravintricular conduction delay": "IVCD",
}
SCORED = ("1AVB", "IRBBB", "CRBBB", "CLBBB", "IVCD")


@dataclass(frozen=True)
class LabelledRecord:
    """One unpaced LUDB record: its number, its conduction codes, whether it is labelled
    left ventricular hypertrophy, the engine's codes and its PR and QRS (ms)."""

    number: int
    truth: frozenset[str]
    lvh: bool
    codes: frozenset[str]
    pr_ms: float | None
    qrs_ms: float | None


def labelled_record(
    number: int, label: dict[str, str], codes: list[str], pr: float | None, qrs: float | None
) -> LabelledRecord:
    """A LabelledRecord from ludb.csv's row and the engine's codes and intervals."""
    named = (x.strip() for x in label["Conduction abnormalities"].split("\n"))
    return LabelledRecord(
        number,
        frozenset(LUDB_CONDUCTION[x] for x in named if x in LUDB_CONDUCTION),
        "Left ventricular hypertrophy" in label["Hypertrophies"],
        frozenset(codes),
        pr,
        qrs,
    )


def _band(value: float | None, limits: tuple[int, ...]) -> str:
    """'< a', 'a-b', ... '≥ z' (ms) for the band a value falls in."""
    if value is None:
        return "not measured"
    if value < limits[0]:
        return f"< {limits[0]}"
    for low, high in pairwise(limits):
        if value < high:
            return f"{low}-{high - 1}"
    return f"≥ {limits[-1]}"


def _evidence(code: str, record: LabelledRecord, reference: dict[str, float | None]) -> str:
    """Why a false positive was called: the interval the criterion reads, the engine's
    and LUDB's, and what the cardiologists labelled instead."""
    other = sorted(record.truth) or (["LVH"] if record.lvh else ["nothing"])
    if code == "1AVB":
        interval = f"PR {_band(record.pr_ms, (220, 240))}, LUDB PR {_band(reference['pr'], (201,))}"
    else:
        limits = (110, 120)
        interval = f"QRS {_band(record.qrs_ms, limits)}, LUDB QRS {_band(reference['qrs'], limits)}"
    return f"{interval}, labelled {'+'.join(other)}"


def conduction_rows(records: list[LabelledRecord], data: Path) -> list[tuple[str, int, str]]:
    """(quantity, n, result) rows: precision/recall per code, then each code's false
    positives by evidence class."""
    rows = []
    for code in SCORED:
        pairs = [(code in r.codes, code in r.truth) for r in records]
        rows.append(
            (f"{code} vs conduction labels (unpaced)", len(pairs), Counts.of(pairs).summary())
        )
    for code in SCORED:
        false = [r for r in records if code in r.codes and code not in r.truth]
        classes = Counter(
            _evidence(code, r, ludb_reference(data / "ludb" / "data" / str(r.number)))
            for r in false
        )
        text = ", ".join(f"{c} {n}" for c, n in classes.most_common()) or "none"
        rows.append((f"{code} false positives by evidence", len(false), text))
    return rows
