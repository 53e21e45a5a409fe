"""The store's part of order matching, on both backends: a STAT order's ECG is leased
first without starving the others, and a finished report can be sent again with a new
package (reconciling a late order) through the same delivery rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.order_records import NewOrder, OrderReference
from tests.test_store import OBJECT, T0, _job


@pytest.fixture
def store(store_each_backend):
    return store_each_backend


def _lease_order(store, count: int) -> list[str]:
    leased = [store.lease_job("w", 60, 3, now=T0 + 100) for _ in range(count)]
    return [job.sop_instance_uid for job in leased]


def test_a_stat_ecg_is_leased_before_routine_ones_received_earlier(store):
    store.add_job(_job("1.1", "1" * 64), now=T0, content=OBJECT)
    store.add_job(_job("1.2", "2" * 64), now=T0 + 1, content=OBJECT)
    store.add_job(
        _job("1.3", "3" * 64, priority="stat", head_start_s=3600.0), now=T0 + 2, content=OBJECT
    )
    assert _lease_order(store, 3) == ["1.3", "1.1", "1.2"]
    assert store.get_job(3).priority == "stat"


def test_a_routine_ecg_waiting_longer_than_the_head_start_still_goes_first(store):
    """No starvation: the head start is bounded, so an old routine job is not overtaken."""
    store.add_job(_job("1.1", "1" * 64), now=T0 - 7200, content=OBJECT)
    store.add_job(
        _job("1.2", "2" * 64, priority="stat", head_start_s=3600.0), now=T0, content=OBJECT
    )
    store.add_job(_job("1.3", "3" * 64), now=T0 - 1800, content=OBJECT)
    assert _lease_order(store, 3) == ["1.1", "1.2", "1.3"]


def _done_job(store, tmp_path: Path, uid: str, key: str) -> tuple[int, Path]:
    job_id = store.add_job(_job(uid, uid[-1] * 64, patient_key=key), now=T0, content=OBJECT).job_id
    leased = store.lease_job("w", 60, 3, now=T0)
    report = tmp_path / "reports" / str(job_id)
    report.mkdir(parents=True)
    (report / "context.json").write_text('{"order": null}')
    assert store.complete_job(leased.id, "w", str(report), [("ehr", key)], now=T0)
    return job_id, report


def test_a_report_replaced_is_sent_again_from_the_same_delivery_row(store, tmp_path):
    job_id, _ = _done_job(store, tmp_path, "1.7", "p:one")
    [first] = store.lease_due_deliveries(now=T0 + 1)
    store.mark_delivery_sent(first.id, now=T0 + 1)
    assert store.lease_due_deliveries(now=T0 + 2) == []

    replaced = tmp_path / "reports" / f"{job_id}-order5"
    replaced.mkdir()
    (replaced / "context.json").write_text('{"order": {"placer_order_number": "P1"}}')
    deliveries = [("ehr", "p:one"), ("ehr-status", "p:one")]
    assert store.replace_report(job_id, str(replaced), deliveries, now=T0 + 3)

    again = store.lease_due_deliveries(now=T0 + 4)
    assert sorted(d.destination for d in again) == ["ehr", "ehr-status"]
    resent = next(d for d in again if d.destination == "ehr")
    assert (resent.id, resent.state, resent.attempts, resent.sent_at) == (
        first.id,
        "pending",
        0,
        None,
    )
    # what the sweeper reads is the new package, on this node's copy too (PostgreSQL)
    assert "P1" in (Path(resent.report_dir) / "context.json").read_text()
    assert store.get_job(job_id).report_dir == str(replaced)


def test_only_a_done_job_has_its_report_replaced(store, tmp_path):
    queued = store.add_job(_job("1.8", "8" * 64), now=T0, content=OBJECT).job_id
    assert not store.replace_report(queued, str(tmp_path / "x"), [("ehr", "k")], now=T0)
    assert store.list_deliveries() == []


def test_a_patients_done_jobs_and_their_report_files(store, tmp_path):
    mine, _ = _done_job(store, tmp_path, "1.5", "p:mine")
    _done_job(store, tmp_path, "1.6", "p:other")
    store.add_job(_job("1.9", "9" * 64, patient_key="p:mine"), now=T0, content=OBJECT)
    [job] = store.done_jobs_for_patient("p:mine")
    assert job.id == mine
    files = store.report_files_of(job)
    assert (files / "context.json").read_text() == '{"order": null}'


def _open_order(store, placer: str):
    reference = OrderReference(placer_order_number=placer, placer_authority="HIS")
    return store.add_order(NewOrder(reference=reference, patient_id="MRN1"), now=T0)


def test_a_late_order_is_attached_with_the_resend_or_not_at_all(store, tmp_path):
    job_id, _ = _done_job(store, tmp_path, "1.7", "p:one")
    cancelled = _open_order(store, "C1")
    store.set_order_state(cancelled.id, "cancelled")
    replaced = str(tmp_path / "reports" / f"{job_id}-order{cancelled.id}")
    deliveries = [("ehr", "p:one")]
    assert not store.replace_report(job_id, replaced, deliveries, now=T0 + 1, order_id=cancelled.id)
    assert store.get_job(job_id).report_dir != replaced  # nothing changed

    queued = store.add_job(_job("1.8", "8" * 64), now=T0, content=OBJECT).job_id
    late = _open_order(store, "L1")
    assert not store.replace_report(queued, replaced, deliveries, now=T0 + 1, order_id=late.id)
    assert store.get_order(late.id).state == "scheduled"  # rolled back with the job's refusal

    Path(replaced).mkdir()
    (Path(replaced) / "context.json").write_text("{}")
    assert store.replace_report(job_id, replaced, deliveries, now=T0 + 2, order_id=late.id)
    assert (store.get_order(late.id).state, store.get_order(late.id).job_id) == (
        "completed",
        job_id,
    )
    assert store.order_for_job(job_id).id == late.id


def test_a_report_replaced_while_its_delivery_is_on_the_wire_is_sent_again(store, tmp_path):
    """The sweeper's mark of the old package must not swallow the re-send queued while it
    was sending (the late order's package would never have gone out)."""
    job_id, _ = _done_job(store, tmp_path, "1.8", "p:two")
    [in_flight] = store.lease_due_deliveries(now=T0 + 1)
    replaced = tmp_path / "reports" / f"{job_id}-order6"
    replaced.mkdir()
    (replaced / "context.json").write_text('{"order": {"placer_order_number": "P2"}}')
    assert store.replace_report(job_id, str(replaced), [("ehr", "p:two")], now=T0 + 2)
    store.mark_delivery_sent(in_flight.id, now=T0 + 3, leased_at=in_flight.updated_at)
    [again] = store.lease_due_deliveries(now=T0 + 4)
    assert (again.id, again.state) == (in_flight.id, "pending")
    assert Path(again.report_dir).name == replaced.name  # the new package
    store.mark_delivery_sent(again.id, now=T0 + 5, leased_at=again.updated_at)
    assert [d.state for d in store.recent_deliveries() if d.id == again.id] == ["sent"]
