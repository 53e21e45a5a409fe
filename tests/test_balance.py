"""Class balance on PTB-XL's real labels: targets reached, caps kept, reproducible."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from training.balance import (
    BalanceConfig,
    balance_target,
    class_counts,
    counts_table,
    oversample,
    record_classes,
    superclasses,
)
from training.dataset import DatasetConfig, read_ptbxl_index
from training.targets import load_scp_statements


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path):
    directory = shared_data / "ptbxl"
    statements = load_scp_statements(directory / "scp_statements.csv")
    records, _ = read_ptbxl_index(DatasetConfig(ptbxl_dir=directory))
    return records, statements


def _train_labels(ptbxl, common=("SR",)):
    records, statements = ptbxl
    return {
        str(r.ecg_id): record_classes(r.scp_codes, statements, common)
        for r in records
        if r.split == "train"
    }


def test_classes_are_superclasses_and_rare_rhythms(ptbxl) -> None:
    _, statements = ptbxl
    codes = {"IMI": 35.0, "ABQRS": 0.0, "AFIB": 0.0, "SR": 0.0, "LVH": 100.0}
    assert record_classes(codes, statements) == {"MI", "HYP", "AFIB"}
    assert record_classes(codes, statements, common_rhythms=()) == {"MI", "HYP", "AFIB", "SR"}
    assert superclasses(codes, statements) == ["MI", "HYP"]


def test_every_class_reaches_the_target_unless_its_records_hit_the_cap(ptbxl) -> None:
    labels = _train_labels(ptbxl)
    config = BalanceConfig(ratio=0.3, max_copies_per_record=10)
    before = class_counts(labels)
    copies = oversample(labels, config, seed=0)
    after = class_counts(labels, copies)
    target = balance_target(labels, config)
    assert target == math.ceil(0.3 * max(before.values()))
    assert max(copies.values()) <= 10
    for cls, n in after.items():
        members = [k for k, c in labels.items() if cls in c]
        capped = all(copies.get(k, 0) == 10 for k in members)
        assert n >= target or capped, (cls, n, target)
    # PACE has one record in these 400: it can only reach 1 + 10 copies.
    assert before["PACE"] == 1 and after["PACE"] == 11
    assert before["AFIB"] < target <= after["AFIB"]
    # A copy counts for every class of its record, so nothing is ever lost.
    assert all(after[c] >= before[c] for c in before)
    assert sum(copies.values()) > 0


def test_copies_prefer_records_without_already_large_classes(ptbxl) -> None:
    labels = _train_labels(ptbxl)
    copies = oversample(labels, BalanceConfig(ratio=0.3, max_copies_per_record=10), seed=0)
    sbrad = [k for k, c in labels.items() if "SBRAD" in c]
    without_norm = [k for k in sbrad if "NORM" not in labels[k]]
    assert without_norm, "the excerpt has sinus bradycardia records without NORM"
    assert all(copies.get(k, 0) == 10 for k in without_norm)


def test_same_seed_same_copies_and_ratio_one_balances_fully(ptbxl) -> None:
    labels = _train_labels(ptbxl)
    config = BalanceConfig(ratio=1.0, max_copies_per_record=200)
    first = oversample(labels, config, seed=3)
    assert first == oversample(labels, config, seed=3)
    after = class_counts(labels, first)
    largest_before = max(class_counts(labels).values())
    assert min(after.values()) >= largest_before


def test_counts_table_lists_before_after_and_target(ptbxl) -> None:
    labels = _train_labels(ptbxl)
    config = BalanceConfig(ratio=0.3)
    copies = oversample(labels, config, seed=0)
    table = counts_table(
        class_counts(labels), class_counts(labels, copies), balance_target(labels, config)
    )
    lines = table.splitlines()
    assert lines[0] == "| class | before | after | target |"
    norm = next(line for line in lines if line.startswith("| NORM |"))
    assert norm.split("|")[2].strip() == str(class_counts(labels)["NORM"])
    assert len(lines) == 2 + len(class_counts(labels))


def test_disabled_classes_and_empty_input(ptbxl) -> None:
    assert oversample({}, BalanceConfig(), seed=0) == {}
    labels = _train_labels(ptbxl)
    assert oversample(labels, BalanceConfig(max_copies_per_record=0), seed=0) == {}
