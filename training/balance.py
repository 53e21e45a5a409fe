"""Class balance for stage 2: oversample records of rare classes up to a share of the largest.

The classes are PTB-XL's diagnostic superclasses (NORM, MI, STTC, CD, HYP, from the
`diagnostic_class` column of scp_statements.csv) and the rhythm codes other than the
common ones named in the config (sinus rhythm by default). PTB-XL is multi-label, so a
copy of a record counts for every class it carries; the loop therefore always tops up
the class furthest below its target, and spreads the copies of a class evenly over its
records (round robin) so no single record is repeated far more than its peers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.targets import SUPERCLASSES, ScpStatement


class BalanceConfig(BaseModel):
    """`balance:` in config/training/dataset.yaml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    ratio: float = Field(0.5, gt=0.0, le=1.0, description="each class >= ratio x largest class")
    max_copies_per_record: int = Field(
        10, ge=0, description="extra copies one record may get; caps singletons' repetition"
    )
    common_rhythms: list[str] = Field(
        default_factory=lambda: ["SR"], description="rhythm codes not balanced"
    )


def record_classes(
    scp_codes: Iterable[str],
    statements: Mapping[str, ScpStatement],
    common_rhythms: Iterable[str] = ("SR",),
) -> frozenset[str]:
    """The balanced classes a record belongs to: its superclasses and its rare rhythm codes."""
    common = set(common_rhythms)
    classes = set()
    for code in scp_codes:
        statement = statements.get(code)
        if statement is None:
            continue
        if statement.superclass in SUPERCLASSES:
            classes.add(statement.superclass)
        if statement.is_rhythm and code not in common:
            classes.add(code)
    return frozenset(classes)


def superclasses(scp_codes: Iterable[str], statements: Mapping[str, ScpStatement]) -> list[str]:
    """PTB-XL's superclass labels of a record, in the fixed order NORM, MI, STTC, CD, HYP."""
    present = {statements[c].superclass for c in scp_codes if c in statements}
    return [s for s in SUPERCLASSES if s in present]


def class_counts(
    labels: Mapping[str, frozenset[str]], copies: Mapping[str, int] | None = None
) -> Counter[str]:
    """Samples per class; a record with n extra copies counts 1 + n times."""
    counts: Counter[str] = Counter()
    for key, classes in labels.items():
        weight = 1 + (copies.get(key, 0) if copies else 0)
        for cls in classes:
            counts[cls] += weight
    return counts


def oversample(
    labels: Mapping[str, frozenset[str]], config: BalanceConfig, seed: int
) -> dict[str, int]:
    """Extra copies per record so each class reaches ratio x the largest class (or its cap)."""
    counts = class_counts(labels)
    target = balance_target(labels, config)
    full = {cls for cls, n in counts.items() if n >= target}
    rng = np.random.default_rng(seed)
    pools = {cls: _member_tiers(labels, cls, full, rng) for cls in sorted(counts)}
    copies: dict[str, int] = {}
    open_classes = {cls for cls, n in counts.items() if n < target}
    while open_classes:
        cls = min(open_classes, key=lambda c: (counts[c] / target, c))
        record = _next_with_room(pools[cls], copies, config.max_copies_per_record)
        if record is None:
            open_classes.discard(cls)
            continue
        copies[record] = copies.get(record, 0) + 1
        for member_class in labels[record]:
            counts[member_class] += 1
        open_classes = {c for c in open_classes if counts[c] < target}
    return copies


def _member_tiers(
    labels: Mapping[str, frozenset[str]], cls: str, full: set[str], rng: np.random.Generator
) -> list[_RoundRobin]:
    """The class's records, shuffled, grouped by how many already-full classes they also carry.

    Copying a sinus-bradycardia record that is also NORM inflates NORM; records with
    fewer such passengers are used first.
    """
    members = sorted(key for key, classes in labels.items() if cls in classes)
    shuffled = [members[i] for i in rng.permutation(len(members))]
    tiers: dict[int, list[str]] = {}
    for key in shuffled:
        tiers.setdefault(len(labels[key] & full), []).append(key)
    return [_RoundRobin(tiers[n]) for n in sorted(tiers)]


class _RoundRobin:
    """Cycles through records so the copies of a class spread evenly over them."""

    def __init__(self, records: list[str]) -> None:
        self.records = records
        self.position = 0

    def next_with_room(self, copies: Mapping[str, int], cap: int) -> str | None:
        for _ in range(len(self.records)):
            record = self.records[self.position % len(self.records)]
            self.position += 1
            if copies.get(record, 0) < cap:
                return record
        return None


def _next_with_room(tiers: list[_RoundRobin], copies: Mapping[str, int], cap: int) -> str | None:
    """A record from the first tier that still has one below the cap; spent tiers are dropped."""
    while tiers:
        record = tiers[0].next_with_room(copies, cap)
        if record is not None:
            return record
        tiers.pop(0)
    return None


def counts_table(before: Mapping[str, int], after: Mapping[str, int], target: int) -> str:
    """Markdown table of class counts before and after oversampling."""
    rows = ["| class | before | after | target |", "|---|---:|---:|---:|"]
    for cls in sorted(set(before) | set(after), key=lambda c: (-before.get(c, 0), c)):
        rows.append(f"| {cls} | {before.get(cls, 0)} | {after.get(cls, 0)} | {target} |")
    return "\n".join(rows)


def balance_target(labels: Mapping[str, frozenset[str]], config: BalanceConfig) -> int:
    counts = class_counts(labels)
    return math.ceil(config.ratio * max(counts.values())) if counts else 0
