"""`ecg-gateway deliveries`: the delivery table, and sending failed or dead ones again."""

from __future__ import annotations

import argparse
import sys
import time

from gateway.cli.common import add_config_options, on_existing_store
from gateway.config import GatewayConfig
from gateway.store import Delivery, Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deliveries", help="list deliveries, or send failed/dead ones again")
    deliveries = p.add_subparsers(dest="deliveries_command", required=True, metavar="ACTION")
    listing = deliveries.add_parser("list", help="deliveries, oldest first (no patient data)")
    listing.add_argument("--dead", action="store_true", help="only those that were given up")
    listing.add_argument("--limit", type=int, default=1000)
    retry = deliveries.add_parser("retry", help="send a failed or dead delivery again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="delivery ID (from `deliveries list`)")
    target.add_argument("--all-dead", action="store_true", help="every dead delivery")
    for action in (listing, retry):
        add_config_options(action)
    p.set_defaults(func=run)


@on_existing_store
def run(args: argparse.Namespace, _config: GatewayConfig, store: Store) -> int:
    if args.deliveries_command == "list":
        print(format_deliveries(store.list_deliveries(dead_only=args.dead, limit=args.limit)))
        return 0
    if args.all_dead:
        print(f"requeued {store.retry_all_dead()} dead deliveries")
        return 0
    if store.retry_delivery(args.id):
        print(f"requeued delivery {args.id}")
        return 0
    print(f"error: delivery {args.id} does not exist or is not failed or dead", file=sys.stderr)
    return 1


def format_deliveries(deliveries: list[Delivery], now: float | None = None) -> str:
    """The delivery table for `ecg-gateway deliveries list` (UIDs and errors, no patient data)."""
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
    counts: dict[str, int] = {}
    for delivery in deliveries:
        counts[delivery.state] = counts.get(delivery.state, 0) + 1
    lines.append("")
    lines.append(
        "deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )
    return "\n".join(lines)


def _next_try(delivery: Delivery, now: float) -> str:
    if delivery.state in ("sent", "dead"):
        return "-"
    wait = delivery.next_attempt_at - now
    return "due" if wait <= 0 else f"in {wait:.0f} s" if wait < 120 else f"in {wait / 60:.0f} min"
