"""The store's prior-ECG index and critical alerts, on both backends (SQLite file and a
throwaway PostgreSQL): only done jobs count, a patient is a Patient ID + issuer key,
alerts are sent once, retried, escalated when nobody acknowledges them, and leased so
two nodes never send the same notice."""

from __future__ import annotations

import pytest
from example_reports import afib_report
from test_store import OBJECT, T0, _job, open_backend

from gateway.routing import key_for_patient
from gateway.store import Store

PATIENT = key_for_patient("12345", "HOSP-A", "1.9")
SAME_ID_OTHER_ISSUER = key_for_patient("12345", "HOSP-B", "1.9")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    s = open_backend(request.param, request, tmp_path)
    yield s
    s.close()


def _done(store: Store, uid: str, key: str, acquired: float | None, sha: str = "a") -> int:
    job_id = store.add_job(_job(uid=uid, sha=sha * 64, patient_key=key), T0, OBJECT).job_id
    store.lease_job("w", 60, 3, now=T0)
    store.record_prior_ecg(job_id, key, uid, acquired, afib_report(), now=T0)
    assert store.complete_job(job_id, "w", f"/nonexistent/{job_id}", [], now=T0)
    return job_id


def test_prior_candidates_are_the_patients_done_ecgs_newest_acquisition_first(store):
    first = _done(store, "1.1", PATIENT, T0 - 7200)
    second = _done(store, "1.2", PATIENT, T0 - 3600)
    _done(store, "1.3", SAME_ID_OTHER_ISSUER, T0 - 60)  # another patient
    unfinished = store.add_job(_job(uid="1.4", sha="d" * 64, patient_key=PATIENT), T0, OBJECT)
    store.record_prior_ecg(unfinished.job_id, PATIENT, "1.4", T0 - 10, afib_report(), now=T0)
    found = store.prior_ecg_candidates(PATIENT, "1.5")
    assert [(p.job_id, p.sop_instance_uid, p.acquired_at) for p in found] == [
        (second, "1.2", T0 - 3600),
        (first, "1.1", T0 - 7200),
    ]
    assert found[0].report.codes == afib_report().codes
    # the ECG itself (a correction of it) is never its own prior
    assert [p.sop_instance_uid for p in store.prior_ecg_candidates(PATIENT, "1.2")] == ["1.1"]
    # without a Patient ID the key is per object: no prior
    assert store.prior_ecg_candidates(key_for_patient(None, None, "1.1"), "1.5") == []


def test_alert_sent_once_then_escalated_unless_acknowledged(store):
    job_id = _done(store, "2.1", PATIENT, None)
    acknowledged = _done(store, "2.2", PATIENT, None, sha="b")
    for job in (job_id, acknowledged):
        store.record_critical_alert(job, ["qtc-500", "afib-flutter-rapid"], now=T0)
        store.record_critical_alert(job, ["other"], now=T0 + 1)  # a redo keeps the alert
    (alert_a, alert_b) = store.lease_due_critical_alerts(escalate_before=T0 - 900, now=T0)
    assert alert_a.rules == alert_b.rules == ("qtc-500", "afib-flutter-rapid")
    assert not alert_a.escalation
    assert store.lease_due_critical_alerts(escalate_before=T0 - 900, now=T0 + 1) == []  # leased
    store.mark_critical_sent(job_id, escalation=False, now=T0 + 2)
    store.mark_critical_sent(acknowledged, escalation=False, now=T0 + 2)
    assert store.acknowledge_critical(acknowledged, "dr.house", now=T0 + 100)
    assert not store.acknowledge_critical(acknowledged, "dr.who", now=T0 + 101)
    assert store.lease_due_critical_alerts(escalate_before=T0 + 1, now=T0 + 500) == []
    (due,) = store.lease_due_critical_alerts(escalate_before=T0 + 2, now=T0 + 902)
    assert due.job_id == job_id and due.escalation
    store.mark_critical_sent(job_id, escalation=True, now=T0 + 903)
    done = store.get_critical_alert(job_id)
    assert (done.state, done.notified_at, done.escalated_at) == ("closed", T0 + 2, T0 + 903)
    seen = store.get_critical_alert(acknowledged)
    assert (seen.state, seen.acknowledged_by, seen.escalated_at) == ("closed", "dr.house", None)


def test_failed_notice_is_retried_then_given_up(store):
    job_id = _done(store, "3.1", PATIENT, None)
    store.record_critical_alert(job_id, ["st-elevation"], now=T0)
    (alert,) = store.lease_due_critical_alerts(escalate_before=T0, now=T0)
    assert alert.attempts == 0
    store.mark_critical_failed(job_id, "connection refused", T0 + 30, now=T0)
    assert store.lease_due_critical_alerts(escalate_before=T0, now=T0 + 29) == []
    (again,) = store.lease_due_critical_alerts(escalate_before=T0, now=T0 + 30)
    assert (again.attempts, again.last_error) == (1, "connection refused")
    store.mark_critical_failed(job_id, "still refused", None, now=T0 + 31)
    assert store.get_critical_alert(job_id).state == "dead"
    assert store.lease_due_critical_alerts(escalate_before=T0 + 10_000, now=T0 + 10_000) == []


def test_alert_of_an_unfinished_job_waits(store):
    job_id = store.add_job(_job(uid="4.1", patient_key=PATIENT), T0, OBJECT).job_id
    store.record_critical_alert(job_id, ["qtc-500"], now=T0)
    assert store.lease_due_critical_alerts(escalate_before=T0, now=T0 + 10) == []
