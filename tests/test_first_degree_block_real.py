"""First-degree AV block on LUDB's labelled blocks (docs/measurement.md 3.10)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import model


def _conduction_label(shared_data: Path, record: int) -> str:
    with (shared_data / "ludb" / "ludb.csv").open(newline="") as f:
        return next(r for r in csv.DictReader(f) if int(r["ID"]) == record)[
            "Conduction abnormalities"
        ]


@pytest.mark.parametrize("record", [13, 120, 134])
def test_labelled_block_with_a_long_p_wave_keeps_the_full_statement(
    shared_data: Path, record: int
) -> None:
    """LUDB 13, 120 and 134 are labelled first-degree AV block and their P waves measure
    over 120 ms (148-164): a long P wave is no sign that a PR of 220 ms or more is only
    an early P onset (on LUDB 3 of the 4 true blocks at 220-239 ms have one, as have
    the 3 false ones), so the full statement stays, not the borderline wording."""
    assert "I degree av block" in _conduction_label(shared_data, record)
    report = model.analyze(model.load(shared_data / "ludb" / "data" / str(record)))
    values = report.measurements
    assert values.p_duration_ms > 120 and values.pr_ms >= 220
    assert "1AVB" in report.codes and "LPR" not in report.codes
