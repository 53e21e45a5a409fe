"""What the order listener does with one HL7 message: read it, check who sent it and
what it is, commit it to the store, and only then say so (ACK AA, audit trail, the
`on_order` callbacks).

A message is checked whole before anything is written: every order it carries is
read and looked up first (an unknown order to cancel, a closed one re-ordered), so a
message refused for its content leaves the store as it was. The writes that follow are
each one transaction and each idempotent (a repeated NW updates, a repeated CA changes
nothing), so should the store fail between two orders of one message, the AR asks the
EHR to send it again and the repeat completes it.

Log lines name the message (control ID, type), the sender and the field at fault, never
a value from the message: values are patient data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway import metrics as m
from gateway.audit import SOURCE, Auditor, Participant, patient_object
from gateway.config import OrdersConfig
from gateway.intake.hl7_ack import ack
from gateway.intake.order_messages import (
    APPLICATION_ERROR,
    DUPLICATE_KEY,
    UNKNOWN_KEY,
    AckCode,
    Header,
    MessageProblem,
    OrderControl,
    OrderMessage,
    check_type,
    read_header,
    read_message,
)
from gateway.logs import fault
from gateway.metrics import Metrics
from gateway.store import Store, StoreError
from gateway.store.order_records import OPEN_ORDER_STATES, Order

log = logging.getLogger(__name__)

OrderEvent = Literal["new", "updated", "cancelled", "discontinued", "patient-updated", "merged"]
OrderCallback = Callable[[Order, OrderEvent], None]
_CLOSING: dict[str, Literal["cancelled", "discontinued"]] = {
    "CA": "cancelled",
    "DC": "discontinued",
}


@dataclass(frozen=True)
class Handled:
    """The acknowledgement to send, and what to tell the callbacks once it is sent."""

    ack: bytes
    notices: tuple[tuple[Order, OrderEvent], ...] = ()


class OrderIntake:
    """Turns HL7 messages into committed orders (thread-safe: the store is)."""

    def __init__(
        self,
        store: Store,
        config: OrdersConfig,
        metrics: Metrics,
        audit: Auditor | None = None,
        on_order: list[OrderCallback] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.audit = audit
        # Called with each order a committed message changed (reconciliation hooks in here).
        self.on_order: list[OrderCallback] = on_order if on_order is not None else []

    def handle(self, raw: bytes, peer: str) -> Handled:
        """The ACK for one message (AA only once it is committed) and its notices."""
        header = None
        try:
            message, header = read_header(raw)
            self._check_sender(header, peer)
            check_type(header)
            parsed = read_message(message, header, self.config.default_station_ae or "")
            notices = self._commit(parsed, peer)
        except MessageProblem as problem:
            self._refused(header, problem, peer)
            return Handled(self._ack(header, problem.ack, problem))
        except Exception as exc:  # noqa: BLE001 - a fault of the gateway's: answer, stay up
            log.error(
                "HL7 %s from %s: the gateway failed on it: %s",
                header.control_id if header else "message",
                peer,
                fault(exc, stack=True),
            )
            self.metrics.reject("hl7-failed")
            failed = MessageProblem("AE", "", APPLICATION_ERROR, "the gateway failed on it")
            return Handled(self._ack(header, "AE", failed))
        self.metrics.inc(m.ORDER_MESSAGES)
        log.info(
            "HL7 %s %s from %s (%s): committed, %d order(s) changed",
            header.kind,
            header.control_id,
            header.sending_facility or "-",
            peer,
            len(notices),
        )
        return Handled(self._ack(header, "AA"), tuple(notices))

    def notify(self, notices: tuple[tuple[Order, OrderEvent], ...]) -> None:
        """Each callback with each changed order; a failing callback is logged, not raised
        (the message is committed and acknowledged whatever a callback does)."""
        for order, event in notices:
            for callback in self.on_order:
                try:
                    callback(order, event)
                except Exception as exc:  # noqa: BLE001 - one hook must not stop the others
                    log.error(
                        "on_order callback %s failed for order %d (%s): %s",
                        getattr(callback, "__qualname__", callback),
                        order.id,
                        event,
                        fault(exc, stack=True),
                    )

    # --- checks ------------------------------------------------------------------------

    def _check_sender(self, header: Header, peer: str) -> None:
        allowed = self.config.allowed_facilities
        if allowed and header.sending_facility not in allowed:
            if self.audit is not None:
                self.audit.node_refused(
                    _host(peer), header.sending_facility, "HL7 sending facility not allowed"
                )
            raise MessageProblem(
                "AR", "MSH-4", APPLICATION_ERROR, "sending facility not allowed here"
            )

    def _refused(self, header: Header | None, problem: MessageProblem, peer: str) -> None:
        reason = {"AR": "hl7-rejected", "AE": "hl7-unusable"}.get(problem.ack, "hl7-error")
        self.metrics.reject(reason)
        log.warning(
            "HL7 %s %s from %s: answered %s, %s: %s",
            header.kind if header else "message",
            header.control_id if header else "(no MSH)",
            peer,
            problem.ack,
            problem.location or "-",
            problem.text,
        )

    def _ack(
        self, header: Header | None, code: AckCode, problem: MessageProblem | None = None
    ) -> bytes:
        return ack(
            header,
            code,
            problem,
            application=self.config.application,
            facility=self.config.facility or "",
            now=datetime.now().astimezone(),
        )

    # --- writes --------------------------------------------------------------------------

    def _commit(self, parsed: OrderMessage, peer: str) -> list[tuple[Order, OrderEvent]]:
        sender = Participant(
            parsed.header.sending_application or _host(peer), SOURCE, True, "", _host(peer)
        )
        try:
            planned = [(control, self._existing(control)) for control in parsed.orders]
            notices: list[tuple[Order, OrderEvent]] = []
            for control, existing in planned:
                notices.extend(self._apply(control, existing, sender))
            for update in parsed.updates:
                self.store.update_patient(
                    update.patient_id,
                    update.patient_id_issuer,
                    patient_name=update.patient_name,
                    birth_date=update.birth_date,
                    sex=update.sex,
                )
                notices.extend(
                    self._patients_orders(
                        update.patient_id, update.patient_id_issuer, "patient-updated", sender
                    )
                )
            for merge in parsed.merges:
                moved = self.store.merge_patient(
                    merge.prior_id, merge.prior_issuer, merge.new_id, merge.new_issuer
                )
                notices.extend(
                    self._patients_orders(
                        merge.new_id, merge.new_issuer, "merged", sender, f", {moved} moved"
                    )
                )
        except StoreError as exc:
            log.error("HL7 %s: the store cannot take it: %s", parsed.header.control_id, exc)
            raise MessageProblem(
                "AR", "", APPLICATION_ERROR, "the order store cannot take it now: send it again"
            ) from None
        return notices

    def _existing(self, control: OrderControl) -> Order | None:
        """The order `control` refers to, checked before anything is written."""
        ref = control.order.reference
        existing = self.store.find_order(ref.placer_order_number, ref.placer_authority)
        if control.control == "NW":
            if existing is not None and existing.state not in OPEN_ORDER_STATES:
                raise MessageProblem(
                    "AE",
                    "ORC-2",
                    DUPLICATE_KEY,
                    f"that order is {existing.state}: a new order needs a new placer number",
                )
            return existing
        if existing is None:
            raise MessageProblem("AE", "ORC-2", UNKNOWN_KEY, "no order with that placer number")
        if control.control == "XO" and existing.state not in OPEN_ORDER_STATES:
            raise MessageProblem(
                "AE", "ORC-1", APPLICATION_ERROR, f"that order is {existing.state}: not changed"
            )
        if existing.state == "completed":
            raise MessageProblem(
                "AE", "ORC-1", APPLICATION_ERROR, "that order is completed: its ECG is taken"
            )
        return existing

    def _apply(
        self, control: OrderControl, existing: Order | None, sender: Participant
    ) -> list[tuple[Order, OrderEvent]]:
        if control.control in ("NW", "XO"):  # a change carries the whole order, as NW does
            order = self.store.add_order(control.order)
            event: OrderEvent = "new" if existing is None else "updated"
        else:
            assert existing is not None  # _existing refused a change of an unknown order
            state = _CLOSING[control.control]
            if existing.state not in OPEN_ORDER_STATES:  # cancelled before: nothing to do
                return []
            order = self.store.set_order_state(existing.id, state)
            event = state
        self._audit_order(order, event, sender)
        return [(order, event)]

    def _patients_orders(
        self,
        patient_id: str,
        issuer: str,
        event: OrderEvent,
        sender: Participant,
        detail: str = "",
    ) -> list[tuple[Order, OrderEvent]]:
        """The open orders of the patient an ADT message changed (the surviving patient
        of a merge), the change audited as a patient record."""
        if self.audit is not None:
            self.audit.patient_record(
                f"{event}{detail}", patient_object(patient_id, issuer), sender
            )
        orders = self.store.open_orders(patient_id=patient_id)
        return [(order, event) for order in orders if order.patient_id_issuer == issuer]

    def _audit_order(self, order: Order, event: OrderEvent, sender: Participant) -> None:
        if self.audit is None:
            return
        self.audit.order_record(
            "C" if event == "new" else "U",
            f"order {order.reference.placer_order_number}: {event}",
            patient_object(order.patient_id, order.patient_id_issuer),
            sender,
        )


def _host(peer: str) -> str:
    """The address of a `host:port` peer."""
    return peer.rsplit(":", 1)[0] if ":" in peer else peer
