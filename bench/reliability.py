"""Reliability campaign: nothing acknowledged is ever lost or garbled.

Malformed objects from the real files, SIGKILLs of the gateway and its helpers under a
load of concurrent senders, and destination faults (MLLP AE / AR / close / delay / down,
FHIR 4xx / 5xx / 429 with Retry-After / down), against the real gateway process with
dcmtk storescu and pynetdicom as senders and the strict FHIR / MLLP test peers as
destinations; then every log and CLI output is searched for the patients' strings.
What counts as lost and as duplicated: bench/reliability/audit.py.

    .venv/bin/python bench/reliability.py [--malformed 320] [--kills 20] [--faults all]

Exits 1 unless lost, duplicated, crashes and patient strings in logs are all zero.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name
from reliability.campaign import Result, Sizes, run_campaign
from reliability.faults import FAULTS

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--malformed", type=int, default=320)
    parser.add_argument("--empty", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--faults", default="all", help="comma-separated, or all: " + ",".join(FAULTS)
    )
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--keep", type=Path, help="work here and keep it (logs, store)")
    args = parser.parse_args()
    for tool in ("storescu", "echoscu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install dcmtk")
    faults = tuple(FAULTS) if args.faults == "all" else tuple(args.faults.split(","))
    sizes = Sizes(args.malformed, args.empty, args.kills, faults, seed=args.seed)
    if args.keep:
        result = run_campaign(args.keep, DATA, sizes)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
            result = run_campaign(Path(tmp), DATA, sizes)
    print_table(result, sizes)
    return 0 if passed(result) else 1


def passed(result: Result) -> bool:
    total = result.total
    return not (total.lost or total.duplicated or result.crashes or result.phi)


def table(result: Result) -> list[str]:
    """The campaign's table as Markdown lines."""
    lines = [
        (
            "| phase | tried | refused | of which 0xC211 internal error | no answer "
            "| accepted, failed with a reason "
            "| reported | lost | duplicated | crashes | PHI strings in logs |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.rows:
        lines.append(
            f"| {row.name} | {row.tried} | {row.refused} | {row.internal_errors} "
            f"| {row.unanswered} "
            f"| {row.failed_with_reason} | {row.reported} | {row.lost} | {row.duplicated} | | |"
        )
    t = result.total
    lines.append(
        f"| **total** | {t.tried} | {t.refused} | {t.internal_errors} | {t.unanswered} "
        f"| {t.failed_with_reason} "
        f"| {t.reported} | {t.lost} | {t.duplicated} | {len(result.crashes)} "
        f"| {len(result.phi)} |"
    )
    return lines


def print_table(result: Result, sizes: Sizes) -> None:
    print(
        f"\nReliability campaign, {date.today().isoformat()}, {cpu_name()}, "
        f"{os.cpu_count()} cores, {result.seconds:.0f} s; kills: {result.kills['gateway']} "
        f"gateway, {result.kills['helper']} helper; seed {sizes.seed}\n"
    )
    print("\n".join(table(result)))
    print(f"\nall finished before the end: {result.settled}")
    print(f"empty datasets took {result.empty_seconds:.1f} s (dataset wait 2 s)")
    print(f"tracebacks in the gateway log: {result.log_tracebacks}")
    for crash in result.crashes:
        print(f"CRASH: {crash}")
    for finding in result.phi:
        print(f"PHI: {finding}")
    for row in result.rows:
        for column, examples in row.examples.items():
            for example in examples:
                print(f"{row.name} / {column}: {example}")


if __name__ == "__main__":
    sys.exit(main())
