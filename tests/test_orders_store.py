"""Orders in the store, on both backends (SQLite file, throwaway PostgreSQL): a repeated
new order updates the open one and is refused for a closed one, the gateway numbers what
the EHR left unnumbered, the worklist's prefilter, patient updates and merges touch only
open orders, and the worklist's query runs on an index."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace

import pytest
from pydicom.uid import UID

from gateway.store import SqliteStore, StoreError
from gateway.store.order_records import NewOrder, OrderReference
from gateway.store.orders import FILLER_PREFIX
from tests.test_store import OBJECT, _job, open_backend

T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    s = open_backend(request.param, request, tmp_path)
    yield s
    s.close()


def _order(placer: str = "P1", **changes) -> NewOrder:
    """Order `placer` of the HIS for MRN1; OrderReference's fields and NewOrder's by name."""
    names = set(OrderReference.__dataclass_fields__)
    reference = {name: changes.pop(name) for name in list(changes) if name in names}
    demographics = {"patient_name": "Doe^Jane", "birth_date": "19600102", "sex": "F"}
    return NewOrder(
        reference=OrderReference(placer_order_number=placer, placer_authority="HIS", **reference),
        **{"patient_id": "MRN1", "patient_id_issuer": "HOSP", "scheduled_at": T0, **demographics,
           **changes},
    )  # fmt: skip


def _job_id(store) -> int:
    return store.add_job(_job(), now=T0, content=OBJECT).job_id


def test_a_new_order_is_scheduled_numbered_and_reads_back_whole(store):
    full = _order(
        accession_number="ACC1", priority="stat", procedure_code="93000", station_ae="CART7",
        referring_physician="Who^Doctor", requested_procedure_id="RP1",
        sending_application="EPIC", sending_facility="NORTH",
    )  # fmt: skip
    order = store.add_order(full, now=T0)
    assert (order.state, order.job_id, order.created_at, order.updated_at) == (
        "scheduled", None, T0, T0,
    )  # fmt: skip
    assert order.reference.filler_order_number == f"{FILLER_PREFIX}{order.id}"
    UID(order.study_instance_uid).is_valid or pytest.fail(order.study_instance_uid)
    assert replace(order.reference, filler_order_number="") == full.reference
    assert order.station_ae == "CART7" and order.patient_name == "Doe^Jane"
    assert store.get_order(order.id) == order
    assert store.find_order("P1", "HIS") == order
    assert store.find_order("P1") is None  # another namespace
    assert store.get_order(order.id + 1) is None


def test_the_ehrs_filler_number_and_study_uid_are_kept(store):
    order = store.add_order(_order(filler_order_number="F9", study_instance_uid="1.2.9"), now=T0)
    assert (order.reference.filler_order_number, order.study_instance_uid) == ("F9", "1.2.9")


def test_a_repeated_new_order_updates_the_open_one(store):
    first = store.add_order(_order(station_ae="CART1"), now=T0)
    store.set_order_state(first.id, "in_progress", now=T0 + 1)
    again = store.add_order(_order(station_ae="CART2", priority="stat"), now=T0 + 2)
    assert again.id == first.id and again.state == "in_progress"
    assert (again.station_ae, again.reference.priority, again.updated_at) == (
        "CART2", "stat", T0 + 2,
    )  # fmt: skip
    # What the gateway assigned stays when the repeat leaves it out.
    assert again.study_instance_uid == first.study_instance_uid
    assert again.reference.filler_order_number == first.reference.filler_order_number
    assert len(store.list_orders()) == 1


def test_a_new_order_for_a_closed_placer_is_refused_and_changes_nothing(store):
    first = store.add_order(_order(), now=T0)
    store.set_order_state(first.id, "cancelled", now=T0 + 1)
    with pytest.raises(StoreError, match=rf"order {first.id} is cancelled") as refused:
        store.add_order(_order(station_ae="CART9"), now=T0 + 2)
    assert "P1" not in str(refused.value)  # the placer number is the patient's visit: not logged
    assert store.get_order(first.id) == replace(first, state="cancelled", updated_at=T0 + 1)


def test_one_order_when_two_nodes_take_the_same_new_order_at_once(store, request, tmp_path):
    """Two stores on one database (PostgreSQL: two nodes; SQLite: two processes' files)."""
    other = open_backend(request.node.callspec.params["store"], request, tmp_path, "node-b")
    if isinstance(store, SqliteStore):
        other.close()
        other = SqliteStore(store.path)
    results = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.add_order(_order(), now=T0)))
        for s in (store, other) * 5
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert len(results) == 10 and len({order.id for order in results}) == 1
    assert len(store.list_orders()) == 1


def test_the_same_number_from_another_placer_is_another_order(store):
    a = store.add_order(_order(), now=T0)
    b = store.add_order(replace(_order(), reference=OrderReference(placer_order_number="P1")))
    assert a.id != b.id and a.reference.filler_order_number != b.reference.filler_order_number


def test_an_order_without_placer_number_or_an_unknown_one_is_a_store_error(store):
    with pytest.raises(StoreError, match="placer order number"):
        store.add_order(_order(placer=""))
    with pytest.raises(StoreError, match="order 99: no such order"):
        store.set_order_state(99, "cancelled")
    with pytest.raises(StoreError, match="order 99: no such order"):
        store.attach_job(99, 1)
    order = store.add_order(_order())
    with pytest.raises(StoreError, match="unknown state 'lost'"):
        store.set_order_state(order.id, "lost")


def test_list_orders_newest_first_by_state(store):
    ids = [store.add_order(_order(f"P{i}"), now=T0 + i).id for i in range(4)]
    store.set_order_state(ids[1], "cancelled")
    assert [o.id for o in store.list_orders()] == ids[::-1]
    assert [o.id for o in store.list_orders(limit=2)] == ids[:1:-1]
    assert [o.id for o in store.list_orders(["cancelled"])] == [ids[1]]
    assert [o.id for o in store.list_orders(["scheduled", "cancelled"], limit=2)] == [
        ids[3], ids[2],
    ]  # fmt: skip


def test_open_orders_prefilter_for_the_worklist(store):
    late = store.add_order(_order("late", scheduled_at=T0 + 3600, station_ae="CART1"))
    early = store.add_order(_order("early", scheduled_at=T0, patient_id="MRN2"))
    asap = store.add_order(_order("asap", scheduled_at=None, station_ae="CART2"))
    done = store.add_order(_order("done", scheduled_at=T0 + 10))
    store.set_order_state(done.id, "discontinued")

    def ids(**filters) -> list[int]:
        return [o.id for o in store.open_orders(**filters)]

    assert ids() == [asap.id, early.id, late.id]  # no time first: as soon as possible
    assert ids(scheduled_from=T0 + 1) == [asap.id, late.id]
    assert ids(scheduled_to=T0 + 1) == [asap.id, early.id]
    assert ids(scheduled_from=T0 + 1, scheduled_to=T0 + 2) == [asap.id]
    assert ids(station_ae="CART1") == [early.id, late.id]  # early is for any cart
    assert ids(patient_id="MRN2") == [early.id]
    assert ids(limit=2) == [asap.id, early.id]
    store.attach_job(early.id, _job_id(store), now=T0 + 5)
    assert ids() == [asap.id, late.id]


def test_attach_job_completes_the_order(store):
    order = store.add_order(_order(), now=T0)
    job_id = _job_id(store)
    done = store.attach_job(order.id, job_id, now=T0 + 9)
    assert (done.job_id, done.state, done.updated_at) == (job_id, "completed", T0 + 9)
    assert store.get_order(order.id) == done


def test_orders_by_study_and_accession(store):
    a = store.add_order(_order("A", study_instance_uid="1.2.7", accession_number="ACC7"))
    store.add_order(_order("B", accession_number="ACC8"))
    assert [o.id for o in store.orders_for_study("1.2.7")] == [a.id]
    assert [o.id for o in store.orders_for_accession("ACC7")] == [a.id]
    assert store.orders_for_study("1.2.99") == [] and store.orders_for_accession("") == []


def test_a_patient_update_changes_only_that_patients_open_orders(store):
    open_ = store.add_order(_order("O"))
    closed = store.add_order(_order("C"))
    store.set_order_state(closed.id, "completed")
    other = store.add_order(_order("X", patient_id_issuer="OTHER"))
    changed = store.update_patient(
        "MRN1", "HOSP", patient_name="Doe^Janet", birth_date="19600103", sex="F", now=T0 + 5
    )
    assert changed == 1
    updated = store.get_order(open_.id)
    assert (updated.patient_name, updated.birth_date, updated.updated_at) == (
        "Doe^Janet", "19600103", T0 + 5,
    )  # fmt: skip
    assert store.get_order(closed.id).patient_name == "Doe^Jane"
    assert store.get_order(other.id).patient_name == "Doe^Jane"


def test_a_merge_rekeys_open_orders_and_is_recorded(store):
    open_ = store.add_order(_order("O", patient_id="OLD"))
    closed = store.add_order(_order("C", patient_id="OLD"))
    store.set_order_state(closed.id, "cancelled")
    assert store.merge_patient("OLD", "HOSP", "NEW", "HOSP2", now=T0 + 7) == 1
    moved = store.get_order(open_.id)
    assert (moved.patient_id, moved.patient_id_issuer) == ("NEW", "HOSP2")
    assert store.get_order(closed.id).patient_id == "OLD"
    assert [o.id for o in store.open_orders(patient_id="NEW")] == [open_.id]
    [merge] = store._query("SELECT * FROM patient_merges")
    assert (merge["prior_id"], merge["new_id"], merge["orders_moved"], merge["merged_at"]) == (
        "OLD", "NEW", 1, T0 + 7,
    )  # fmt: skip


def test_the_worklist_query_uses_the_open_orders_index(store, monkeypatch):
    """10,000 open orders must not mean a scan of every order ever received: the query
    open_orders sends is explained by the database itself."""
    sent = []
    query = store._query
    monkeypatch.setattr(store, "_query", lambda sql, params=(): sent.append((sql, params)) or [])
    store.open_orders(scheduled_from=T0, scheduled_to=T0 + 3600, station_ae="CART1")
    [(sql, params)] = sent
    if isinstance(store, SqliteStore):
        plan = " ".join(str(tuple(row)) for row in query("EXPLAIN QUERY PLAN " + sql, params))
    else:
        with store._transaction() as conn:
            conn.execute("SET LOCAL enable_seqscan = off")
            rows = store._execute(conn, "EXPLAIN " + sql, params).fetchall()
            plan = " ".join(row["QUERY PLAN"] for row in rows)
    assert "orders_open_by_time" in plan, plan


def test_a_store_of_schema_4_gets_the_orders_tables(tmp_path):
    path = tmp_path / "v4.sqlite3"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE orders")
        conn.execute("DROP TABLE patient_merges")
        conn.execute("DROP INDEX jobs_by_rank")  # and what schema 6 adds (job priority)
        conn.execute("ALTER TABLE jobs DROP COLUMN lease_rank")
        conn.execute("ALTER TABLE jobs DROP COLUMN priority")
        conn.execute("PRAGMA user_version = 4")
    store = SqliteStore(path)
    try:
        assert store.add_order(_order(), now=T0).state == "scheduled"
        assert store.merge_patient("A", "", "B", "") == 0
    finally:
        store.close()
