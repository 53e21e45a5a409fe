"""Orders in the store (IHE Resting ECG Workflow): what the EHR ordered over HL7, what
the modality worklist offers carts, and which ECG fulfilled which order.

A mixin of `Store` (queries.py) with the same portable SQL for SQLite and PostgreSQL.
An order is keyed by its placer (ORC-2: authority and number): a repeated new-order
message for an open order updates it, one for a closed order is refused. Patient
updates (ADT^A08) and merges (ADT^A40) change only open orders; merges are kept in a
table of their own, as the record of what was re-keyed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, get_args

from pydicom.uid import generate_uid

from gateway.store.order_records import (
    OPEN_ORDER_STATES,
    NewOrder,
    Order,
    OrderReference,
    OrderState,
)
from gateway.store.records import StoreError

_REFERENCE_FIELDS = (
    "placer_order_number",
    "placer_authority",
    "filler_order_number",
    "filler_authority",
    "accession_number",
    "procedure_code",
    "procedure_text",
    "procedure_coding_system",
    "priority",
    "ordering_facility",
    "reconciled",
)
_ORDER_FIELDS = (
    "patient_id",
    "patient_id_issuer",
    "patient_name",
    "birth_date",
    "sex",
    "referring_physician",
    "scheduled_at",
    "station_ae",
    "study_instance_uid",
    "requested_procedure_id",
    "sending_application",
    "sending_facility",
)
# What a repeated new order (NW for an open order) replaces.
_WRITTEN = _REFERENCE_FIELDS + _ORDER_FIELDS
_COLUMNS = ", ".join(("id", *_WRITTEN, "state", "job_id", "created_at", "updated_at"))
# As orders_schema.py's partial index spells it, so the worklist's query can use it.
_OPEN = f"state IN ({', '.join(repr(state) for state in OPEN_ORDER_STATES)})"
# open_orders' filters, each by the name of its parameter.
_WORKLIST_FILTERS = {
    "scheduled_from": "(scheduled_at IS NULL OR scheduled_at >= :scheduled_from)",
    "scheduled_to": "(scheduled_at IS NULL OR scheduled_at <= :scheduled_to)",
    "station_ae": "station_ae IN (:station_ae, '')",  # "" is an order for any station
    "patient_id": "patient_id = :patient_id",
}
# A filler order number the gateway assigns when the EHR sent none: its prefix, then the id.
FILLER_PREFIX = "ECG"
_STATES: tuple[str, ...] = get_args(OrderState)


class OrdersMixin:
    """The store's order calls, mixed into `Store`, which supplies `_transaction`,
    `_statement`, `_execute`, `_query` and `_serialise_uid`."""

    def add_order(self, new: NewOrder, now: float | None = None) -> Order:
        """Store a new order (scheduled), or update the open order with the same placer
        (the EHR repeating its NW). Assigns a filler order number and a Study Instance
        UID where the EHR sent none. StoreError when that placer's order is closed."""
        now = _clock(now)
        ref = new.reference
        if not ref.placer_order_number:
            raise StoreError("an order needs a placer order number (ORC-2)")
        with self._transaction() as conn:
            # Two nodes receiving one order at once: one inserts, the other then updates.
            self._serialise_uid(conn, f"order {ref.placer_authority}^{ref.placer_order_number}")
            found = self._execute(
                conn,
                f"SELECT {_COLUMNS} FROM orders"
                " WHERE placer_authority = ? AND placer_order_number = ?",
                (ref.placer_authority, ref.placer_order_number),
            ).fetchone()
            if found is None:
                return self._insert_order(conn, new, now)
            existing = _order(found)
            if existing.state not in OPEN_ORDER_STATES:
                raise StoreError(  # by its id: the placer number reaches logs from here
                    f"order {existing.id} is {existing.state}: a new order needs a new"
                    f" placer order number"
                )
            return self._rewrite_order(conn, existing, new, now)

    def _insert_order(self, conn: Any, new: NewOrder, now: float) -> Order:
        values = _values(new)
        values["study_instance_uid"] = new.study_instance_uid or generate_uid()
        names = ", ".join((*_WRITTEN, "state", "created_at", "updated_at"))
        marks = ", ".join(f":{name}" for name in (*_WRITTEN, "state", "now", "now"))
        row = self._execute(
            conn,
            f"INSERT INTO orders ({names}) VALUES ({marks}) RETURNING {_COLUMNS}",
            {**values, "state": "scheduled", "now": now},
        ).fetchone()
        order = _order(row)
        if order.reference.filler_order_number:
            return order
        return self._set_filler(conn, order.id, f"{FILLER_PREFIX}{order.id}")

    def _set_filler(self, conn: Any, order_id: int, filler: str) -> Order:
        row = self._execute(
            conn,
            f"UPDATE orders SET filler_order_number = ? WHERE id = ? RETURNING {_COLUMNS}",
            (filler, order_id),
        ).fetchone()
        return _order(row)

    def _rewrite_order(self, conn: Any, existing: Order, new: NewOrder, now: float) -> Order:
        """A repeated NW: its fields replace the order's, except what the gateway
        assigned (filler number, Study Instance UID) when the repeat leaves them out."""
        ref = new.reference
        kept_ref = replace(
            ref,
            filler_order_number=ref.filler_order_number or existing.reference.filler_order_number,
        )
        new = replace(
            new,
            reference=kept_ref,
            study_instance_uid=new.study_instance_uid or existing.study_instance_uid,
        )
        assignments = ", ".join(f"{name} = :{name}" for name in _WRITTEN)
        row = self._execute(
            conn,
            f"UPDATE orders SET {assignments}, updated_at = :now WHERE id = :id"
            f" RETURNING {_COLUMNS}",
            {**_values(new), "now": now, "id": existing.id},
        ).fetchone()
        return _order(row)

    def get_order(self, order_id: int) -> Order | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        return _order(rows[0]) if rows else None

    def order_for_job(self, job_id: int) -> Order | None:
        """The order the ECG of `job_id` was attached to, if any."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM orders WHERE job_id = ? ORDER BY id LIMIT 1", (job_id,)
        )
        return _order(rows[0]) if rows else None

    def find_order(self, placer_order_number: str, placer_authority: str = "") -> Order | None:
        """The order of this placer (ORC-2.1 and its namespace ORC-2.2)."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM orders WHERE placer_authority = ? AND placer_order_number = ?",
            (placer_authority, placer_order_number),
        )
        return _order(rows[0]) if rows else None

    def set_order_state(self, order_id: int, state: OrderState, now: float | None = None) -> Order:
        if state not in _STATES:
            raise StoreError(f"order {order_id}: unknown state {state!r}")
        return self._change_order(
            order_id, "state = :state, updated_at = :now", {"state": state, "now": _clock(now)}
        )

    def attach_job(self, order_id: int, job_id: int, now: float | None = None) -> Order:
        """The ECG of job `job_id` fulfilled the order: it is completed."""
        return self._change_order(
            order_id,
            "job_id = :job_id, state = 'completed', updated_at = :now",
            {"job_id": job_id, "now": _clock(now)},
        )

    def _change_order(self, order_id: int, assignments: str, params: dict) -> Order:
        with self._statement() as conn:
            row = self._execute(
                conn,
                f"UPDATE orders SET {assignments} WHERE id = :id RETURNING {_COLUMNS}",
                {**params, "id": order_id},
            ).fetchone()
        if row is None:
            raise StoreError(f"order {order_id}: no such order")
        return _order(row)

    def list_orders(
        self, states: Sequence[OrderState] | None = None, limit: int = 100
    ) -> list[Order]:
        """Orders newest first, all or those in `states`."""
        where = ""
        if states:
            unknown = set(states) - set(_STATES)
            if unknown:
                raise StoreError(f"unknown order states {sorted(unknown)}")
            where = f" WHERE state IN ({', '.join(repr(str(s)) for s in states)})"
        rows = self._query(
            f"SELECT {_COLUMNS} FROM orders{where} ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_order(row) for row in rows]

    def open_orders(
        self,
        *,
        scheduled_from: float | None = None,
        scheduled_to: float | None = None,
        station_ae: str | None = None,
        patient_id: str | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Open orders for the worklist, in the order they are due (no time first: as
        soon as possible). Exact values only; the worklist applies wildcards itself. An
        order with no scheduled time is in every range; one for no station ("") is for
        every station."""
        given = {
            "scheduled_from": scheduled_from,
            "scheduled_to": scheduled_to,
            "station_ae": station_ae,
            "patient_id": patient_id,
        }
        params: dict[str, Any] = {name: v for name, v in given.items() if v is not None}
        clauses = [_OPEN, *(_WORKLIST_FILTERS[name] for name in params)]
        tail = ""
        if limit is not None:
            tail, params["limit"] = " LIMIT :limit", limit
        rows = self._query(
            f"SELECT {_COLUMNS} FROM orders WHERE {' AND '.join(clauses)}"
            f" ORDER BY scheduled_at IS NOT NULL, scheduled_at, id{tail}",
            params,
        )
        return [_order(row) for row in rows]

    def orders_for_study(self, study_instance_uid: str) -> list[Order]:
        return self._orders_where("study_instance_uid = ?", study_instance_uid)

    def orders_for_accession(self, accession_number: str) -> list[Order]:
        return self._orders_where("accession_number = ?", accession_number)

    def _orders_where(self, condition: str, value: str) -> list[Order]:
        if not value:  # an empty key identifies nothing
            return []
        rows = self._query(f"SELECT {_COLUMNS} FROM orders WHERE {condition} ORDER BY id", (value,))
        return [_order(row) for row in rows]

    def update_patient(
        self,
        patient_id: str,
        patient_id_issuer: str,
        *,
        patient_name: str,
        birth_date: str,
        sex: str,
        now: float | None = None,
    ) -> int:
        """ADT^A08: the patient's new demographics on their open orders; how many."""
        with self._statement() as conn:
            return self._execute(
                conn,
                "UPDATE orders SET patient_name = ?, birth_date = ?, sex = ?, updated_at = ?"
                f" WHERE patient_id = ? AND patient_id_issuer = ? AND {_OPEN}",
                (patient_name, birth_date, sex, _clock(now), patient_id, patient_id_issuer),
            ).rowcount

    def merge_patient(
        self,
        prior_id: str,
        prior_issuer: str,
        new_id: str,
        new_issuer: str,
        now: float | None = None,
    ) -> int:
        """ADT^A40: the prior patient's open orders now belong to the surviving patient;
        the merge is recorded (patient_merges) in the same transaction. How many moved."""
        now = _clock(now)
        with self._transaction() as conn:
            moved = self._execute(
                conn,
                "UPDATE orders SET patient_id = ?, patient_id_issuer = ?, updated_at = ?"
                f" WHERE patient_id = ? AND patient_id_issuer = ? AND {_OPEN}",
                (new_id, new_issuer, now, prior_id, prior_issuer),
            ).rowcount
            self._execute(
                conn,
                "INSERT INTO patient_merges (prior_id, prior_issuer, new_id, new_issuer,"
                " orders_moved, merged_at) VALUES (?, ?, ?, ?, ?, ?)",
                (prior_id, prior_issuer, new_id, new_issuer, moved, now),
            )
            return moved


def _clock(now: float | None) -> float:
    return time.time() if now is None else now


def _values(new: NewOrder) -> dict[str, Any]:
    ref = new.reference
    values: dict[str, Any] = {name: getattr(ref, name) for name in _REFERENCE_FIELDS}
    values["reconciled"] = int(ref.reconciled)
    values.update({name: getattr(new, name) for name in _ORDER_FIELDS})
    return values


def _order(row: Any) -> Order:
    values = dict(row)
    reference = {name: values.pop(name) for name in _REFERENCE_FIELDS}
    reference["reconciled"] = bool(reference["reconciled"])
    values["id"] = int(values["id"])
    return Order(reference=OrderReference(**reference), **values)
