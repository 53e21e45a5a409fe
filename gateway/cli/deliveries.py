"""`ecg-gateway deliveries`: the delivery table, and sending failed or dead ones again."""

from __future__ import annotations

import argparse
import sys
import time

from gateway.cli.common import add_config_options, audit_action, on_existing_store
from gateway.config import GatewayConfig
from gateway.store import Delivery, Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deliveries", help="list deliveries, or send failed/dead ones again")
    deliveries = p.add_subparsers(dest="deliveries_command", required=True, metavar="ACTION")
    listing = deliveries.add_parser("list", help="deliveries, newest first (no patient data)")
    listing.add_argument("--dead", action="store_true", help="only those that were given up")
    listing.add_argument("--limit", type=_positive, default=100, help="rows per page (100)")
    listing.add_argument(
        "--before", type=_positive, metavar="ID", help="the page of deliveries older than ID"
    )
    retry = deliveries.add_parser("retry", help="send a failed or dead delivery again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="delivery ID (from `deliveries list`)")
    target.add_argument("--all-dead", action="store_true", help="every dead delivery")
    for action in (listing, retry):
        add_config_options(action)
    p.set_defaults(func=run)


@on_existing_store
def run(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    if args.deliveries_command == "list":
        # One row more than shown says whether there is an older page.
        page = store.recent_deliveries(
            dead_only=args.dead, limit=args.limit + 1, before_id=args.before
        )
        counts = store.count_deliveries(dead_only=args.dead)
        print(format_deliveries(page[: args.limit], counts, more=len(page) > args.limit))
        return 0
    if args.all_dead:
        count = store.retry_all_dead()
        audit_action(config, f"deliveries retry --all-dead: {count} requeued")
        print(f"requeued {count} dead deliveries")
        return 0
    if store.retry_delivery(args.id):
        audit_action(config, f"deliveries retry {args.id}")
        print(f"requeued delivery {args.id}")
        return 0
    print(f"error: delivery {args.id} does not exist or is not failed or dead", file=sys.stderr)
    return 1


def format_deliveries(
    deliveries: list[Delivery], counts: dict[str, int], *, more: bool, now: float | None = None
) -> str:
    """The delivery table for `ecg-gateway deliveries list` (UIDs and errors, no patient
    data): one page of rows, then the counts of all deliveries and how to page back."""
    now = time.time() if now is None else now
    header = f"{'ID':>6}  {'STATE':<7} {'DESTINATION':<16} {'TRIES':>5}  {'NEXT TRY':<10}  "
    lines = [header + "SOP INSTANCE UID"]
    for delivery in deliveries:
        lines.append(
            f"{delivery.id:>6}  {delivery.state:<7} {delivery.destination:<16} "
            f"{delivery.attempts:>5}  {_next_try(delivery, now):<10}  {delivery.sop_instance_uid}"
        )
        if delivery.last_error and delivery.state != "sent":
            lines.append(f"{'':>8}error: {' '.join(delivery.last_error.split())}")
    lines.append("")
    lines.append(
        "deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )
    if more:
        lines.append(f"showing {len(deliveries)}; older ones: --before {deliveries[-1].id}")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _next_try(delivery: Delivery, now: float) -> str:
    if delivery.state in ("sent", "dead"):
        return "-"
    wait = delivery.next_attempt_at - now
    return "due" if wait <= 0 else f"in {wait:.0f} s" if wait < 120 else f"in {wait / 60:.0f} min"
