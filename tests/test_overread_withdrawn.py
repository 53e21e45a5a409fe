"""A finding a physician removes is retracted at the EHR, not left behind: a real ECG is
sent preliminary, confirmed with atrial fibrillation (a critical-result rule in
routes.yaml fires), then corrected without it and with the QRS duration set to null.
The FHIR test server then holds the critical finding's and the QRS duration's
Observations as entered-in-error, referenced by nothing, and one DiagnosticReport; a real
MLLP peer (python-hl7's server) receives the corrected ORU with an OBX-11 D row for every
row an earlier version had and this one has not, valid under hl7apy's strict 2.5.1.
On both store backends (the earlier versions are read from the store)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dicom_samples as samples
import hl7
import pytest
from delivery_support import package
from example_reports import confirmed, critical_afib_report
from hl7_strict import validated_strictly
from overread_support import JONES, SMITH, Site
from peers import FhirTestServer, Hl7TestPeer
from test_prior_comparison import ecg_file

from gateway.config import ComparisonConfig
from gateway.delivery.codes import EKG_IMPRESSION, MEASUREMENT_CODES
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru, control_id, encode
from gateway.metrics import Metrics
from gateway.overread import ReportEdit, StatementEdit
from gateway.processing.revision import withdrawn_findings
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import FhirOptions, Hl7Options
from model.report import CriticalFinding, EngineInfo, Measurements, Report, Statement
from model.rhythm_synthetic import RhythmSpec

QRS_LOINC = next(code.loinc for code in MEASUREMENT_CODES if code.key == "qrs_ms")


def _report(codes: list[str], qrs: float | None = 100.0, critical: bool = False) -> Report:
    return Report(
        statements=[Statement(code=code, text=code.lower()) for code in codes],
        measurements=Measurements(qrs_ms=qrs),
        impression="x" if codes else "",
        critical=[CriticalFinding(rule="af", text="Atrial fibrillation")] if critical else [],
        engine=EngineInfo(name="test", version="0"),
    )


def test_withdrawn_findings_are_those_of_any_earlier_version_absent_now() -> None:
    first = _report(["AFIB", "LVH"], critical=True)
    second = _report(["LVH"])  # AFIB removed; superseded before it was sent, say
    third = _report(["LVH", "RBBB"], qrs=None)
    withdrawn = withdrawn_findings([first, second], third)
    assert {(f.kind, f.key) for f in withdrawn} == {
        ("statement", "AFIB"),
        ("critical", "af"),
        ("measurement", "qrs_ms"),
    }
    assert next(f.text for f in withdrawn if f.key == "AFIB") == "afib"
    emptied = {(f.kind, f.key) for f in withdrawn_findings([first], _report([]))}
    assert ("impression", "") in emptied and ("statement", "LVH") in emptied
    assert withdrawn_findings([first], first) == []
    restored = withdrawn_findings([first, second], _report(["AFIB", "LVH"], critical=True))
    assert restored == []  # put back by a later version: nothing to retract
    older = _report(["SR"]).model_dump_json(exclude={"withdrawn"})  # a report.json before it
    assert "withdrawn" not in older and Report.model_validate_json(older).withdrawn == []


def _corrected_without_afib() -> tuple[Report, Report]:
    """A final critical AFIB report, and its correction: the AFIB statement, both
    critical findings and the impression removed, the QRS duration set to null."""
    final = confirmed(critical_afib_report())
    edited = final.model_copy(
        update={
            "statements": [s for s in final.statements if s.code != "AFIB"],
            "critical": [],
            "impression": "",
            "measurements": final.measurements.model_copy(update={"qrs_ms": None}),
            "null_reasons": {**final.null_reasons, "qrs_ms": "removed by the physician"},
        }
    )
    withdrawn = withdrawn_findings([critical_afib_report(), final], edited)
    return final, confirmed(edited, "corrected", 3).model_copy(update={"withdrawn": withdrawn})


def _observation_keys(bundle: dict) -> dict[str, dict]:
    """The bundle's Observations by the identifier their request creates or updates."""
    keys = {}
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            request = entry["request"]
            keys[request.get("ifNoneExist") or request["url"].partition("?")[2]] = entry
    return keys


def test_every_observation_an_earlier_version_sent_is_updated_or_retracted(
    shared_data: Path,
) -> None:
    final, corrected = _corrected_without_afib()
    sent = _observation_keys(_fhir(shared_data, final))
    bundle = _fhir(shared_data, corrected)
    now = _observation_keys(bundle)
    assert set(sent) <= set(now)  # nothing an earlier version sent is left as it was
    retracted = {key: e for key, e in now.items() if e["resource"]["status"] == "entered-in-error"}
    assert len(retracted) == 4  # two critical findings, the impression, the QRS duration
    assert {e["request"]["method"] for e in retracted.values()} == {"PUT"}
    assert all("valueString" not in e["resource"] for e in retracted.values())
    others = json.dumps([e for key, e in now.items() if key not in retracted])
    others += json.dumps(
        [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Observation"]
    )
    assert not any(e["fullUrl"] in others for e in retracted.values())  # referenced by nothing
    assert {e["resource"]["status"] for key, e in now.items() if key not in retracted} <= {
        "corrected",
        "final",  # the recorded waveform
    }


def _fhir(shared_data: Path, report: Report) -> dict:
    return json.loads(bundle_json(build_bundle(package(shared_data, report=report), FhirOptions())))


def test_every_obx_row_an_earlier_version_sent_is_replaced_or_deleted(shared_data: Path) -> None:
    final, corrected = _corrected_without_afib()
    options = Hl7Options(sending_application="ECGGW", receiving_application="RIS")
    messages = []
    for report in (final, corrected):
        pkg = package(shared_data, report=report)
        er7 = encode(build_oru(pkg, options, control_id(pkg, "ris"))).decode("utf-8")
        validated_strictly(er7)
        messages.append(hl7.parse(er7))
    earlier, later = (_rows(message) for message in messages)
    assert set(earlier) <= set(later)
    deleted = {key for key, (status, _) in later.items() if status == "D"}
    impression = EKG_IMPRESSION[0]
    assert (impression, "1") in deleted and (QRS_LOINC, "") in deleted
    kept = {key: value for key, (status, value) in later.items() if status != "D"}
    assert _merged(messages) == kept
    findings = [value for value in kept.values() if "99ECGCMP" not in value]  # not comparison
    assert not any("fibrillation" in value.lower() for value in findings)


def _routes(ehr: FhirTestServer, ris: Hl7TestPeer) -> str:
    return (
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{ehr.base_url}', timeout_s: 5}}\n"
        f"  ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{ris.port}', timeout_s: 5}}\n"
        "default: [ehr, ris]\n"
        "critical:\n"
        "  rules:\n"
        "    - {name: af, text: Atrial fibrillation, codes: [AFIB]}\n"
    )


def _rows(message: hl7.Message) -> dict[tuple[str, str], tuple[str, str]]:
    """OBX rows by what a merging receiver keys them on (OBX-3.1, OBX-4): (OBX-11, OBX-5)."""
    return {(str(s[3][0][0]), str(s[4])): (str(s[11]), str(s[5])) for s in message.segments("OBX")}


def _merged(messages: list[hl7.Message]) -> dict[tuple[str, str], str]:
    """What a receiver that merges OBX rows by identifier holds after `messages`: each
    row replaces the one with its key, a D row deletes it (HL7 table 0085)."""
    held: dict[tuple[str, str], str] = {}
    for message in messages:
        for key, (status, value) in _rows(message).items():
            if status == "D":
                held.pop(key, None)
            else:
                held[key] = value
    return held


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_removed_finding_is_retracted_at_the_fhir_server_and_the_mllp_peer(
    backend, request, tmp_path, shared_data
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    ehr, ris = FhirTestServer().start(), Hl7TestPeer().start()
    site = Site(tmp_path / "data", url, _routes(ehr, ris))
    try:
        job_id = site.receive(shared_data)
        assert site.sweeper.sweep().sent == 2
        afib = ReportEdit([StatementEdit("AFIB"), StatementEdit("LVH")], "AF. LVH.")
        confirmed = site.service.confirm(job_id, SMITH, afib, base_version=1)
        assert [f.rule for f in confirmed.critical] == ["af"]
        assert site.sweeper.sweep().sent == 2
        [critical] = [
            o
            for o in ehr.resources("Observation")
            if "interpretation" in o
            and "valueString" in o
            and "Atrial fibrillation" in o["valueString"]
        ]
        qrs_before = _observations(ehr, QRS_LOINC)
        assert [o["status"] for o in qrs_before] == ["final"]

        correction = ReportEdit([StatementEdit("LVH")], "LVH.", {"qrs_ms": None})
        corrected = site.service.confirm(job_id, JONES, correction, base_version=2)
        assert site.sweeper.sweep().sent == 2
    finally:
        site.close()
        ris.stop()
        ehr.stop()

    withdrawn = {(f.kind, f.key) for f in corrected.withdrawn}
    assert {("statement", "AFIB"), ("critical", "af"), ("measurement", "qrs_ms")} <= withdrawn
    assert ("statement", "LVH") not in withdrawn

    # FHIR: the same Observations, updated in place to entered-in-error, referenced by nothing
    assert ehr.rejections == []
    [report] = ehr.resources("DiagnosticReport")
    assert report["status"] == "corrected"
    retracted = [
        o for o in ehr.resources("Observation") if o["identifier"] == critical["identifier"]
    ]
    assert [o["status"] for o in retracted] == ["entered-in-error"]
    assert "valueString" not in retracted[0] and "interpretation" not in retracted[0]
    assert [o["status"] for o in _observations(ehr, QRS_LOINC)] == ["entered-in-error"]
    current = [o for o in ehr.resources("Observation") if o["status"] != "entered-in-error"]
    assert current and all(o["status"] == "corrected" for o in current)
    assert not any("Atrial fibrillation" in o.get("valueString", "") for o in current)
    observations = ehr.created["Observation"]
    retracted_ids = {
        f"Observation/{rid}" for rid, o in observations.items() if o["status"] == "entered-in-error"
    }
    references = str([report, *current])
    assert len(retracted_ids) == 2 and not any(f"'{rid}'" in references for rid in retracted_ids)
    assert all(f"'{ref['reference']}'" in references for ref in report["result"])

    # HL7: the corrected ORU deletes every row the earlier versions had and it has not
    assert [str(m.segment("OBR")[25]) for m in ris.received] == ["P", "F", "C"]
    final, corrected_oru = ris.received[1], ris.received[2]
    validated_strictly(str(corrected_oru))
    deleted = {key for key, (status, _) in _rows(corrected_oru).items() if status == "D"}
    assert (QRS_LOINC, "") in deleted
    assert all(value == "" for status, value in _rows(corrected_oru).values() if status == "D")
    impression = EKG_IMPRESSION[0]
    assert any(code == impression for code, _ in deleted)
    kept = {key: value for key, (status, value) in _rows(corrected_oru).items() if status != "D"}
    assert _merged(list(ris.received)) == kept
    assert not any("AFIB" in value or "fibrillation" in value for value in kept.values())
    assert any("AFIB" in value for _, value in _rows(final).values())


def _observations(ehr: FhirTestServer, loinc: str) -> list[dict]:
    return [
        o
        for o in ehr.resources("Observation")
        if any(c.get("code") == loinc for c in o["code"].get("coding", []))
    ]


def test_a_confirmation_compares_the_physicians_reading_with_the_prior_again(tmp_path):
    """The machine's comparison said what the machine read; a physician who changes the
    rhythm gets a comparison of the confirmed reading, and the rows it no longer has are
    withdrawn (a "no change" left standing would contradict the physician's AF)."""
    site = Site(tmp_path / "data", None)
    settings = WorkerSettings(
        reports_dir=site.data_dir / "reports", workers=1, comparison=ComparisonConfig()
    )
    site.workers = Workers(site.store, site.router, settings, Metrics())
    day = datetime(2026, 3, 1, 9, 0)
    try:
        for name, when in (("before", day), ("now", day + timedelta(days=1))):
            path = ecg_file(tmp_path, name, RhythmSpec(rate_bpm=70), "P1", "HOSP", when)
            assert site.intake.accept(samples.received(path)).status == 0
            while site.workers.run_once("test-node:worker"):
                pass
        job_id = max(job.id for job in site.store.list_jobs())
        machine = site.service.view(job_id, SMITH).report
        assert machine.comparison is not None and "AFIB" not in machine.codes
        assert [s.code for s in machine.comparison.statements] == ["NO_CHANGE"]
        afib = ReportEdit(statements=[StatementEdit("AFIB")], impression="Atrial fibrillation.")
        confirmed_report = site.service.confirm(job_id, SMITH, afib, base_version=1)
        again = confirmed_report.comparison
        assert again is not None
        assert any(s.code == "NEW_RHYTHM" and s.current for s in again.statements), again
        assert "NO_CHANGE" not in [s.code for s in again.statements]
        withdrawn = {(f.kind, f.key) for f in confirmed_report.withdrawn}
        assert ("comparison", "1") not in withdrawn  # row 1 is replaced, not deleted
    finally:
        site.close()
