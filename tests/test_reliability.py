"""A reduced reliability campaign (bench/reliability.py) through the same code: malformed
objects from the real files, SIGKILLs of the gateway and its helpers under 4 senders,
two destination faults; nothing acknowledged may be lost or duplicated, the gateway may
not crash, and no patient string may reach a log or the CLI. The full campaign's numbers
live in bench/README.md, not here."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))

from reliability import audit
from reliability.campaign import Sizes, run_campaign
from reliability.corpus import PATIENTS, Case
from reliability.senders import Sent

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

REDUCED = Sizes(malformed=40, empty=1, kills=3, faults=("mllp-AR", "fhir-429-retry-after"))


@pytest.mark.slow
def test_reduced_campaign_loses_duplicates_crashes_and_leaks_nothing(shared_data, tmp_path):
    result = run_campaign(tmp_path, shared_data, REDUCED)
    total = result.total
    examples = {row.name: dict(row.examples) for row in result.rows}
    assert (total.lost, total.duplicated) == (0, 0), examples
    assert result.crashes == []
    assert result.phi == []
    assert result.settled
    # the campaign really ran: every kill happened, objects were refused, failed with a
    # reason (the MLLP peer's AR) and reported, and every sender had an answer
    assert sum(result.kills.values()) == REDUCED.kills
    assert total.refused > 0 and total.failed_with_reason > 0 and total.reported > 0
    assert total.unanswered == 0, examples


def test_the_audit_sees_a_lost_object_and_patient_strings():
    """The campaign's judge can fail: an acknowledged object with no job is lost, and
    a patient's name or birth date in a log is found however it is written."""
    case = Case(Path("x.dcm"), "valid", "storescu", "1.2.3.4")
    row = audit.tally("check", [Sent(case, True, False, "Success", "storescu")], audit.Evidence())
    assert (row.lost, row.reported) == (1, 0)
    patient = PATIENTS[0]
    log = f"job 7 done for {patient.family.upper()}, born {patient.phi_strings()[-1]}\n"
    assert len(audit.phi_findings({"server.log": log})) == 2
    assert audit.phi_findings({"server.log": "job 7 done\n"}) == []
