"""`ecg-gateway orders`: the orders the EHR sent (HL7 ORM/OMG), as text for people, and
cancelling one by hand.

`list` shows identifiers and states only (no patient data); `show` adds the patient's
ID, name and birth date, which an operator checks before cancelling; `cancel` records
who cancelled in the audit trail (an Order Record event).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import get_args

from gateway.audit import Auditor, patient_object
from gateway.cli.common import add_config_options, on_existing_store
from gateway.config import GatewayConfig
from gateway.store import Store, StoreError
from gateway.store.order_records import OPEN_ORDER_STATES, Order, OrderState


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("orders", help="list, show or cancel the orders received from the EHR")
    orders = p.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    listing = orders.add_parser("list", help="recent orders, newest first (no patient data)")
    listing.add_argument("--state", action="append", choices=get_args(OrderState))
    listing.add_argument("--limit", type=int, default=50)
    show = orders.add_parser("show", help="one order, with its patient")
    cancel = orders.add_parser("cancel", help="cancel an open order (audited)")
    for action in (show, cancel):
        which = action.add_mutually_exclusive_group(required=True)
        which.add_argument("id", type=int, nargs="?", help="the order's id (orders list)")
        which.add_argument("--placer", help="the placer order number: NUMBER or NUMBER^AUTHORITY")
    for action in (listing, show, cancel):
        add_config_options(action)
    p.set_defaults(func=run)


@on_existing_store
def run(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    if args.orders_command == "list":
        print(format_order_list(store.list_orders(args.state, limit=args.limit)))
        return 0
    order = _find(store, args.id, args.placer)
    if order is None:
        print(f"error: no order {args.placer or args.id}", file=sys.stderr)
        return 1
    if args.orders_command == "show":
        print(format_order(order))
        return 0
    return cancel_order(config, store, order)


def cancel_order(config: GatewayConfig, store: Store, order: Order) -> int:
    """Cancel an open order and audit who did; 1 for an order that is not open."""
    if order.state not in OPEN_ORDER_STATES:
        print(f"error: order {order.id} is {order.state}: only open orders are cancelled")
        return 1
    try:
        cancelled = store.set_order_state(order.id, "cancelled")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        auditor = Auditor.for_config(config)
        if auditor is not None:
            patient = patient_object(order.patient_id, order.patient_id_issuer)
            description = f"order {order.reference.placer_order_number}: cancelled by operator"
            auditor.order_record("U", description, patient, auditor.operator())
            auditor.close()
    except OSError as exc:
        print(f"warning: not audited ({exc}); run as the gateway's user", file=sys.stderr)
    print(f"order {cancelled.id} ({_placer(cancelled)}) cancelled")
    return 0


def format_order_list(orders: list[Order]) -> str:
    header = (
        f"{'ID':>6}  {'STATE':<12} {'PRIORITY':<8} {'SCHEDULED':<16}  {'STATION':<16}"
        f" {'PLACER':<24} {'FILLER':<16} PROCEDURE"
    )
    lines = [header]
    for order in orders:
        ref = order.reference
        lines.append(
            f"{order.id:>6}  {order.state:<12} {ref.priority:<8} {_time(order.scheduled_at):<16}"
            f"  {order.station_ae or '(any)':<16} {_placer(order):<24}"
            f" {ref.filler_order_number:<16} {ref.procedure_code} {ref.procedure_text}".rstrip()
        )
    lines.append("")
    lines.append(f"{len(orders)} order(s)")
    return "\n".join(lines)


def format_order(order: Order) -> str:
    ref = order.reference
    rows = [
        ("placer order", _placer(order)),
        ("filler order", ref.filler_order_number),
        ("accession number", ref.accession_number),
        ("procedure", " ".join(p for p in (ref.procedure_code, ref.procedure_text) if p)),
        ("priority", ref.priority),
        ("scheduled", _time(order.scheduled_at)),
        ("station AE", order.station_ae or "(any)"),
        ("Study Instance UID", order.study_instance_uid),
        ("requested procedure", order.requested_procedure_id),
        ("ordering facility", ref.ordering_facility),
        ("from", f"{order.sending_application}@{order.sending_facility}"),
        ("patient ID", f"{order.patient_id} ({order.patient_id_issuer or 'no issuer'})"),
        ("patient name", order.patient_name),
        ("birth date, sex", f"{order.birth_date or '-'} {order.sex or '-'}"),
        ("referring physician", order.referring_physician),
        ("ECG (job)", "-" if order.job_id is None else str(order.job_id)),
        ("received", _time(order.created_at)),
        ("updated", _time(order.updated_at)),
    ]
    lines = [f"order {order.id}: {order.state}"]
    lines += [f"  {name:<20}{value or '-'}" for name, value in rows]
    return "\n".join(lines)


def _find(store: Store, order_id: int | None, placer: str | None) -> Order | None:
    if placer is None:
        return store.get_order(order_id) if order_id is not None else None
    number, _, authority = placer.partition("^")
    return store.find_order(number, authority)


def _placer(order: Order) -> str:
    ref = order.reference
    return f"{ref.placer_order_number}^{ref.placer_authority}".rstrip("^")


def _time(epoch: float | None) -> str:
    return "asap" if epoch is None else datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")
