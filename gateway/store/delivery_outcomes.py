"""What became of a leased delivery, as the sweeper records it: sent, failed with its
next try, or dead. Apart from queries.py (the leases and the rest of the deliveries'
SQL) to keep that module readable; the same portable SQL for both backends.

A mark names the lease it ends (`leased_at`, the leased row's `updated_at`): a row queued
again while it was on the wire (its report re-sent with a late order) is left pending, so
the new package goes out as well instead of being recorded as sent.
"""

from __future__ import annotations

from gateway.store.records import clock

# A delivery superseded while in flight stays superseded when its try fails.
_UNLESS_SUPERSEDED = "CASE WHEN state = 'superseded' THEN state ELSE '{}' END"


class DeliveryOutcomes:
    """Mixin for Store (queries.py): its `_update`."""

    def mark_delivery_sent(
        self, delivery_id: int, now: float | None = None, leased_at: float | None = None
    ) -> None:
        """Sent. With `leased_at` (the leased delivery's `updated_at`), only if that lease
        still holds: a row queued again meanwhile (its report re-sent with a late order)
        stays pending, and the new package goes out too. The same for failed and dead."""
        now = clock(now)
        self._update_delivery(
            "state = 'sent', sent_at = :at, attempts = attempts + 1, last_error = NULL",
            {"at": now},
            delivery_id,
            now,
            leased_at,
        )

    def mark_delivery_failed(
        self,
        delivery_id: int,
        error: str,
        next_attempt_at: float,
        now: float | None = None,
        leased_at: float | None = None,
    ) -> None:
        self._update_delivery(
            f"state = {_UNLESS_SUPERSEDED.format('failed')}, attempts = attempts + 1,"
            " last_error = :error,"
            " next_attempt_at = :next",
            {"error": error, "next": next_attempt_at},
            delivery_id,
            clock(now),
            leased_at,
        )

    def mark_delivery_dead(
        self,
        delivery_id: int,
        error: str,
        now: float | None = None,
        leased_at: float | None = None,
    ) -> None:
        self._update_delivery(
            f"state = {_UNLESS_SUPERSEDED.format('dead')}, attempts = attempts + 1,"
            " last_error = :error",
            {"error": error},
            delivery_id,
            clock(now),
            leased_at,
        )

    def release_delivery(
        self, delivery_id: int, now: float | None = None, leased_at: float | None = None
    ) -> None:
        """Hand a leased delivery back untried, no attempt charged: it waited its turn for
        the formatting process longer than its lease allows (the next sweep takes it)."""
        self._update_delivery("", {}, delivery_id, clock(now), leased_at)

    def _update_delivery(
        self,
        assignments: str,
        params: dict,
        delivery_id: int,
        now: float,
        leased_at: float | None = None,
    ) -> None:
        still_leased = ""
        if leased_at is not None:
            still_leased = " AND lease_expires_at IS NOT NULL AND updated_at = :leased_at"
        self._update(
            f"UPDATE deliveries SET {assignments}{', ' if assignments else ''}"
            "lease_expires_at = NULL, updated_at = :now"
            f" WHERE id = :id{still_leased}",
            {**params, "now": now, "id": delivery_id, "leased_at": leased_at},
        )
