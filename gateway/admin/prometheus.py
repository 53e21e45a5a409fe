"""Gauges read from the store when Prometheus scrapes, beside the counters of
gateway/metrics.py: the store is the truth about jobs and deliveries, so a gauge never
drifts from it (and a restarted gateway reports its backlog at once)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.metrics import PREFIX
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)

JOB_STATES = ("queued", "leased", "done", "failed")


class StoreCollector(Collector):
    """Jobs by state, queue depth and age, unsent and dead deliveries by destination,
    and the audit records waiting for the collector."""

    def __init__(
        self,
        store: Store,
        destinations: Callable[[], list[str]],
        audit_queued: Callable[[], int] = lambda: 0,
    ) -> None:
        """`destinations`: the routes' destinations, reported even with nothing to send."""
        self.store = store
        self.destinations = destinations
        self.audit_queued = audit_queued

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            jobs = self.store.count_jobs()
            depth, oldest_s = self.store.queue_stats()
            backlog = self.store.delivery_backlog()
        except StoreError as exc:
            log.warning("metrics: the store cannot be read: %s", exc)
            return
        by_state = GaugeMetricFamily(
            PREFIX + "jobs", "jobs in the store by state", labels=["state"]
        )
        for state in JOB_STATES:
            by_state.add_metric([state], jobs.get(state, 0))
        yield by_state
        yield GaugeMetricFamily(PREFIX + "queue_depth", "jobs waiting to be processed", depth)
        yield GaugeMetricFamily(
            PREFIX + "queue_oldest_age_seconds", "age of the oldest queued job", oldest_s
        )
        unsent = GaugeMetricFamily(
            PREFIX + "deliveries_unsent",
            "deliveries still to send (pending or failed and retrying)",
            labels=["destination"],
        )
        dead = GaugeMetricFamily(
            PREFIX + "deliveries_dead", "dead letters awaiting an operator", labels=["destination"]
        )
        age = GaugeMetricFamily(
            PREFIX + "deliveries_oldest_unsent_age_seconds",
            "age of the oldest delivery still to send",
            labels=["destination"],
        )
        empty = {"pending": 0, "failed": 0, "dead": 0, "oldest_s": 0.0}
        for name in sorted(set(self.destinations()) | set(backlog)):
            entry = backlog.get(name, empty)
            unsent.add_metric([name], entry["pending"] + entry["failed"])
            dead.add_metric([name], entry["dead"])
            age.add_metric([name], entry["oldest_s"])
        yield from (unsent, dead, age)
        yield GaugeMetricFamily(
            PREFIX + "audit_queued",
            "audit records not yet taken by the syslog collector",
            self.audit_queued(),
        )
