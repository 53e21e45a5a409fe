"""Each version a physician makes reaches the EHR as an update of the same report: a
real MLLP peer (python-hl7's server) receives ORU^R01 with OBR-25 P, then F, then C,
and the FHIR test server holds one DiagnosticReport that goes from preliminary to final
to corrected, with the confirming physician as its results interpreter. On both store
backends, through the real store, routing and delivery sweeper."""

from __future__ import annotations

import hl7
import pytest
from overread_support import JONES, SMITH, Site
from peers import FhirTestServer, Hl7TestPeer

from gateway.overread import ReportEdit, StatementEdit


def _results(message: hl7.Message) -> set[str]:
    """OBX-11 of the rows carrying a result (not the X of a value not measured, nor the D
    deleting a row an earlier version sent)."""
    return {str(s[11]) for s in message.segments("OBX") if str(s[11]) not in ("X", "D")}


def _confirm_and_correct(backend, request, tmp_path, shared_data, ehr, ris) -> None:
    """A real ECG sent preliminary, then confirmed by Smith, then corrected by Jones."""
    routes = (
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{ehr.base_url}', timeout_s: 5}}\n"
        f"  ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{ris.port}', timeout_s: 5}}\n"
        "default: [ehr, ris]\n"
    )
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    site = Site(tmp_path / "data", url, routes)
    try:
        job_id = site.receive(shared_data)
        assert site.sweeper.sweep().sent == 2
        edit = ReportEdit(
            [StatementEdit("AFIB"), StatementEdit("LVH")], "Atrial fibrillation. LVH."
        )
        site.service.confirm(job_id, SMITH, edit, base_version=1)
        assert site.sweeper.sweep().sent == 2
        correction = ReportEdit([StatementEdit("AFLT")], "Atrial flutter.")
        site.service.confirm(job_id, JONES, correction, base_version=2)
        assert site.sweeper.sweep().sent == 2
    finally:
        site.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_final_and_corrected_versions_update_the_report_at_the_ehr(
    backend, request, tmp_path, shared_data
):
    ehr, ris = FhirTestServer().start(), Hl7TestPeer().start()
    try:
        _confirm_and_correct(backend, request, tmp_path, shared_data, ehr, ris)
    finally:
        ris.stop()
        ehr.stop()

    assert [str(m.segment("OBR")[25]) for m in ris.received] == ["P", "F", "C"]
    assert [_results(m) for m in ris.received] == [{"P"}, {"F"}, {"C"}]
    final, corrected = ris.received[1], ris.received[2]
    assert "Smith" in str(final.segment("OBR")[32]) and "smith" in str(final.segment("OBR")[32])
    assert "Jones" in str(corrected.segment("OBR")[32])
    placer = {str(m.segment("OBR")[3]) for m in ris.received}
    assert len(placer) == 1  # one report, updated: the same filler number each time
    assert "Atrial flutter." in str(corrected)

    assert ehr.rejections == []
    [report] = ehr.resources("DiagnosticReport")
    assert report["status"] == "corrected"
    assert report["conclusion"].startswith("Atrial flutter.")
    assert report["resultsInterpreter"][0]["reference"].startswith("Practitioner/")
    assert len(ehr.resources("Practitioner")) == 2  # Smith confirmed, Jones corrected
    assert len(ehr.transactions) == 3
