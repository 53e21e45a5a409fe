"""The over-read pages over HTTP on a real store with real ECGs through the real pipeline
(tests/overread_support.py): the worklist, the report view, confirming with edits, and
each refusal the issue lists (a reader confirming, a forged or missing CSRF token, two
physicians confirming at once, an edit to a report corrected meanwhile, a bad edit),
each told on the page and found in the history and the audit trail."""

from __future__ import annotations

import re
import threading

import pytest

from tests.overread_support import RECORDS, Site
from tests.web_support import audit_messages, client_for, sign_in, web_context


@pytest.fixture
def site(tmp_path):
    gateway = Site(tmp_path / "data", None)
    yield gateway
    gateway.close()


@pytest.fixture
def web(site, tmp_path):
    return web_context(tmp_path, site.service, audit=site.audit)


def signed_in(web, user_id):
    client = client_for(web)
    assert sign_in(client, user_id).status_code == 303
    return client


def reading_form(page: str) -> dict[str, str]:
    """The report form's fields as the browser would submit them untouched."""
    form = re.search(
        r'<form method="post" action="/reports/\d+/confirm".*?</form>', page, re.DOTALL
    )
    assert form, "no confirm form on the page"
    fields = {}
    for tag in re.findall(r"<input [^>]*>", form.group(0)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="checkbox"' not in tag and name.group(1) != "add":
            fields[name.group(1)] = value.group(1) if value else ""
    impression = re.search(
        r'<textarea id="impression" name="impression"[^>]*>(.*?)</textarea>',
        form.group(0),
        re.DOTALL,
    )
    fields["impression"] = impression.group(1)
    return fields


def _versions(site, job_id):
    return sorted(
        (d.destination, d.report_version, d.state)
        for d in site.store.list_deliveries()
        if d.job_id == job_id
    )


def test_worklist_lists_the_report_with_patient_counts_and_filters(site, web, shared_data):
    job_id = site.receive(shared_data)
    client = signed_in(web, "drsmith")
    page = client.get("/worklist")
    assert page.status_code == 200
    assert f'href="/reports/{job_id}"' in page.text and "Doe, Jane" in page.text
    assert "PAT-0042" in page.text
    assert re.search(r"<strong>1</strong> report\s", page.text)
    filtered = client.get("/worklist?priority=stat")
    assert f'href="/reports/{job_id}"' not in filtered.text
    assert "Nothing awaits over-read with these filters" in filtered.text


def test_report_view_shows_the_reading_the_ecg_and_what_made_it(site, web, shared_data):
    job_id = site.receive(shared_data)
    client = signed_in(web, "drsmith")
    page = client.get(f"/reports/{job_id}").text
    report = site.service.view(job_id, web.physician(_session(web, client))).report
    for statement in report.statements:
        assert f'value="{statement.code}"' in page
        if statement.evidence:
            assert statement.evidence.criterion.replace("'", "&#39;")[:30] in page
    assert f"Engine <strong>{report.engine.name} {report.engine.version}</strong>" in page
    assert f'value="{round(report.measurements.heart_rate_bpm)}"' in page
    assert 'id="confirm"' in page and "Doe, Jane" in page
    svg = client.get(f"/reports/{job_id}/ecg.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and ">V6</text>" in svg.text
    assert "Doe" not in svg.text and "PAT-0042" not in svg.text  # no patient data
    pdf = client.get(f"/reports/{job_id}/ecg.pdf")
    assert pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"


def _session(web, client):
    from gateway.web.sessions import COOKIE

    return web.sessions.get(client.cookies[COOKIE])


def test_confirming_with_edits_makes_a_final_version_and_routes_it(site, web, shared_data):
    job_id = site.receive(shared_data)
    client = signed_in(web, "drsmith")
    form = reading_form(client.get(f"/reports/{job_id}").text)
    form |= {"remove_0": "1", "impression": "Atrial fibrillation. Confirmed.", "m_qrs_ms": "104"}
    response = client.post(
        f"/reports/{job_id}/confirm",
        data={**form, "add": ["AFIB — Atrial fibrillation", "left ventricular hypertrophy"]},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/worklist"
    worklist = client.get("/worklist").text
    assert f"Report {job_id} confirmed as final (version 2)" in worklist
    assert f'href="/reports/{job_id}"' not in worklist  # no longer awaiting over-read
    [change] = site.service.history(job_id)
    assert (change.action, change.user_id, change.version) == ("confirmed", "drsmith", 2)
    assert change.after["impression"] == "Atrial fibrillation. Confirmed."
    assert ["AFIB", "Atrial fibrillation"] in change.after["statements"]
    assert ["LVH", "Left ventricular hypertrophy"] in change.after["statements"]
    assert change.after["measurements"]["qrs_ms"] == 104.0
    assert _versions(site, job_id)[-1] == ("outbox", 2, "pending")
    page = client.get(f"/reports/{job_id}").text
    assert 'id="report-status">final<' in page and "Smith, Anna" in page
    assert "added AFIB, LVH" in page and "qrs_ms" in page  # the history, in words


def test_a_reader_is_refused_confirming_and_it_is_recorded(site, web, shared_data):
    job_id = site.receive(shared_data)
    client = signed_in(web, "house")
    page = client.get(f"/reports/{job_id}").text
    assert "can read reports but not confirm them" in page and 'id="confirm"' not in page
    form = reading_form(page)
    response = client.post(f"/reports/{job_id}/confirm", data=form)
    assert response.status_code == 403
    assert "Refused: a reader may not confirm reports; a physician must." in response.text
    assert [c.action for c in site.service.history(job_id)] == ["refused-role"]
    assert _versions(site, job_id) == [("outbox", 1, "pending")]
    assert "refused-role" in site.audit_text()


@pytest.mark.parametrize("token", [None, "forged-token-forged-token-forged-token-00"])
def test_confirm_without_a_valid_csrf_token_changes_nothing(site, web, shared_data, token):
    job_id = site.receive(shared_data)
    client = signed_in(web, "drsmith")
    form = reading_form(client.get(f"/reports/{job_id}").text)
    form.pop("csrf_token")
    if token:
        form["csrf_token"] = token
    response = client.post(f"/reports/{job_id}/confirm", data=form)
    assert response.status_code == 403
    assert "CSRF token" in response.text
    assert site.service.history(job_id) == []
    assert any(
        f"CSRF check failed on POST /reports/{job_id}/confirm" in m for m in audit_messages(web)
    )


def test_two_physicians_confirming_at_once_one_wins_the_other_is_told(site, web, shared_data):
    job_id = site.receive(shared_data)
    smith, jones = signed_in(web, "drsmith"), signed_in(web, "drjones")
    forms = {
        "drsmith": (smith, reading_form(smith.get(f"/reports/{job_id}").text)),
        "drjones": (jones, reading_form(jones.get(f"/reports/{job_id}").text)),
    }
    start, results = threading.Barrier(2), {}

    def submit(user_id):
        client, form = forms[user_id]
        start.wait()
        results[user_id] = client.post(f"/reports/{job_id}/confirm", data=form)

    threads = [threading.Thread(target=submit, args=(u,)) for u in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [303, 409], codes
    loser = next(u for u, r in results.items() if r.status_code == 409)
    winner = "drjones" if loser == "drsmith" else "drsmith"
    text = results[loser].text
    assert "was changed meanwhile: version 2 by" in text and f"({winner})" in text
    assert "Your changes were not applied" in text
    assert _versions(site, job_id) == [("outbox", 1, "superseded"), ("outbox", 2, "pending")]
    actions = sorted(c.action for c in site.service.history(job_id))
    assert actions == ["confirmed", "refused-stale"]
    assert "refused-stale" in site.audit_text()


def test_an_edit_to_a_report_corrected_elsewhere_is_refused(site, web, shared_data):
    job_id = site.receive(shared_data)
    smith, jones = signed_in(web, "drsmith"), signed_in(web, "drjones")
    assert (
        smith.post(
            f"/reports/{job_id}/confirm", data=reading_form(smith.get(f"/reports/{job_id}").text)
        ).status_code
        == 303
    )
    stale = reading_form(jones.get(f"/reports/{job_id}").text)  # jones opens version 2
    corrected = reading_form(smith.get(f"/reports/{job_id}").text)
    corrected["impression"] = "Corrected by Smith."
    assert smith.post(f"/reports/{job_id}/confirm", data=corrected).status_code == 303
    stale["impression"] = "Jones's edit of version 2"
    response = jones.post(f"/reports/{job_id}/confirm", data=stale)
    assert response.status_code == 409
    assert "version 3 by Anna Smith (drsmith)" in response.text
    assert 'id="report-status">corrected<' in response.text  # the current version shown
    assert [c.action for c in site.service.history(job_id)] == [
        "confirmed",
        "corrected",
        "refused-stale",
    ]
    assert site.audit_text().count("refused-stale") == 1  # drjones's attempt, audited


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"add": "no such finding xyz"}, "no statement matches; pick one from the list"),
        ({"m_qrs_ms": "wide"}, "measurement qrs_ms: &#39;wide&#39; is not a number"),
        ({"m_qrs_ms": "1100"}, "measurement qrs_ms: 1100 is outside 20..300"),
    ],
)
def test_a_bad_edit_is_refused_naming_the_field(site, web, shared_data, change, message):
    job_id = site.receive(shared_data)
    client = signed_in(web, "drsmith")
    form = reading_form(client.get(f"/reports/{job_id}").text) | change
    form["impression"] = "Typed before the mistake."
    response = client.post(f"/reports/{job_id}/confirm", data=form)
    assert response.status_code == 422
    assert message in response.text
    # what was typed is still in the form, to be corrected rather than typed again
    assert ">Typed before the mistake.</textarea>" in response.text
    typed = change.get("m_qrs_ms") or change["add"]
    assert f'value="{typed}"' in response.text
    assert _versions(site, job_id) == [("outbox", 1, "pending")]


def test_an_unknown_report_is_a_plain_404(web):
    client = signed_in(web, "drsmith")
    response = client.get("/reports/999")
    assert response.status_code == 404 and "no finished report 999" in response.text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_worklist_counts_every_match_and_puts_critical_first(request, tmp_path, backend):
    """Rows indexed as the pipeline indexes them (synthetic heads, no ECG needed): the
    page counts all matches though it shows a page of them, critical rows first with
    their texts."""
    from gateway.store import NewJob
    from gateway.store.report_records import ReportHead

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    site = Site(tmp_path / "data", url)
    try:
        for index in range(12):
            job = site.store.add_job(
                NewJob(
                    f"2.25.{index + 1}",
                    "1.2.840.10008.5.1.4.1.1.9.1.1",
                    f"{index:064x}",
                    f"x/{index}",
                    "ecg-waveform",
                    "CART1",
                    "ECGGW",
                    "127.0.0.1",
                ),
                content=b"ecg",
            ).job_id
            head = ReportHead(
                report_json="{}",
                status="preliminary",
                received_at=1000.0 + index,
                priority=("stat", "asap", "routine")[index % 3],
                site=("A", "B")[index % 2],
                critical_texts=("QTc 512 ms",) if index == 7 else (),
                patient_name=f"Test^Row{index}",
                patient_id=f"R{index}",
                summary="Sinus rhythm.",
            )
            site.store.index_report(job, head, 2000.0)
        web = web_context(tmp_path, site.service, audit=site.audit)
        client = signed_in(web, "drjones")
        page = client.get("/worklist").text
        assert re.search(r"<strong>12</strong> reports\s", page)
        assert "1 critical" in page and "4 stat · 4 asap · 4 routine" in page
        first_row = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
        assert 'class="critical p-asap"' in first_row and "QTc 512 ms" in first_row
        assert "Row7" in first_row
        site_b = client.get("/worklist?site=B&priority=asap").text
        assert re.search(r"<strong>2</strong> reports\s", site_b)  # rows 1 and 7
    finally:
        site.close()


def test_report_view_shows_the_prior_ecg_and_the_comparison(site, web, shared_data):
    """A report whose serial comparison names a prior ECG this store holds: both pages
    side by side, and each change with its two values. (The comparison is written into
    the report's version here as the pipeline writes it once serial comparison runs.)"""
    from gateway.store.report_records import Change, NewVersion
    from model.report import Comparison, ComparisonStatement, Report

    prior_job = site.receive(shared_data, RECORDS[0])
    job_id = site.receive(shared_data, RECORDS[1])
    prior_uid = site.store.get_job(prior_job).sop_instance_uid
    base = Report.model_validate_json(site.store.latest_report_version(job_id).report_json)
    compared = base.model_copy(
        update={
            "version": 2,
            "comparison": Comparison(
                prior_sop_instance_uid=prior_uid,
                statements=[
                    ComparisonStatement(
                        code="HR_CHANGE", text="Heart rate increased", current=81, prior=64
                    )
                ],
            ),
        }
    )
    new = NewVersion(
        version=2,
        status="preliminary",
        report_json=compared.model_dump_json(),
        created_by="",
        summary=compared.impression,
        critical_texts=(),
        change=Change(at=1.0, user_id="", action="compared", version=2),
    )
    assert site.store.add_report_version(job_id, 1, new, [], 1.0)
    client = signed_in(web, "drsmith")
    page = client.get(f"/reports/{job_id}").text
    assert 'id="prior-page"' in page and "Compared with the prior ECG" in page
    assert re.search(r"Heart rate increased.*?<td>81</td><td>64</td>", page, re.DOTALL)
    prior = client.get(f"/reports/{job_id}/prior.svg")
    assert prior.status_code == 200 and prior.text.startswith("<svg")
    assert prior.text != client.get(f"/reports/{job_id}/ecg.svg").text  # the other ECG
    alone = client.get(f"/reports/{prior_job}").text
    assert 'id="prior-page"' not in alone  # no comparison: one page, full width
    assert client.get(f"/reports/{prior_job}/prior.svg").status_code == 404


def test_a_failure_shows_no_patient_data_on_the_page_or_in_the_log(
    site, web, shared_data, monkeypatch, caplog
):
    job_id = site.receive(shared_data)

    patient = "Doe^Jane PAT-0042"  # (a source line the traceback does not show)

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot read {patient}")  # a message quoting a patient

    monkeypatch.setattr(site.service, "view", broken)
    client = signed_in(web, "drsmith")
    with caplog.at_level("DEBUG"):
        response = client.get(f"/reports/{job_id}")
    assert response.status_code == 500
    assert "Something went wrong on the server; it has been logged." in response.text
    assert "Doe" not in response.text and "PAT-0042" not in response.text
    assert "failed with RuntimeError" in caplog.text
    assert "Doe" not in caplog.text and "PAT-0042" not in caplog.text


def test_a_received_picture_is_shown_as_the_page_it_is(site, web, shared_data, tmp_path):
    """A Secondary Capture (a photographed ECG: no samples to draw) shows its page as
    received, not an empty 12-lead drawing."""
    from tests import dicom_samples as samples

    path = samples.secondary_capture_jpeg(shared_data, tmp_path / "sc.dcm")
    assert site.intake.accept(samples.received(path)).status == 0
    while site.workers.run_once("test-node:worker"):
        pass
    job_id = site.store.list_jobs(limit=1)[0].id
    client = signed_in(web, "drsmith")
    page = client.get(f"/reports/{job_id}").text
    assert f'src="/reports/{job_id}/page.png"' in page and "ecg.svg" not in page
    png = client.get(f"/reports/{job_id}/page.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert client.get(f"/reports/{job_id}/ecg.svg").status_code == 404
