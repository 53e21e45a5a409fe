"""The gateway's counters, kept in a prometheus_client registry (served on the admin
endpoint's /metrics) and summed by name for `<data-dir>/metrics.json`, which
`ecg-gateway jobs list` shows after a run.

Callers count by name (`inc(JOBS_DONE)`, `reject("truncated")`); the table below says
which Prometheus series each name feeds, so writers never spell a metric twice. The
durable truth about jobs and deliveries is the store: gauges of its state (queue depth,
oldest job, dead letters) are read from it at scrape time by gateway/admin/prometheus.py.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from gateway.durable import write_atomic

# The `*_created` series double the exposition and no alert uses them.
prometheus_client.disable_created_metrics()

PREFIX = "ecg_gateway_"

# Counter names, so that writers and readers agree on spelling.
ASSOCIATIONS_ACCEPTED = "associations.accepted"
OBJECTS_ACCEPTED = "objects.accepted"
OBJECTS_DUPLICATE = "objects.duplicate"
OBJECTS_CORRECTION = "objects.correction"
JOBS_DONE = "jobs.done"
JOBS_FAILED = "jobs.failed"
JOBS_RETRIED = "jobs.retried"
JOBS_HELD = "jobs.held"
WORKER_DEATHS = "jobs.worker_deaths"  # helper processes that died on a job
ENGINE_FALLBACKS = "jobs.engine_fallbacks"  # reports made by the measurement engine instead
VLM_BATCHES = "vlm.batches"  # generation batches of more than one ECG
DELIVERIES_SENT = "deliveries.sent"
DELIVERIES_FAILED = "deliveries.failed"  # a try failed, another is scheduled (a retry)
DELIVERIES_DEAD = "deliveries.dead"  # given up: a dead letter
DELIVERIES_HANDED_BACK = "deliveries.handed_back"  # untried: no turn in the formatting process
AUDIT_RECORDS = "audit.records"
JOBS_CRITICAL = "jobs.critical"  # reports that met a critical-result rule
CRITICAL_NOTICES_SENT = "critical.sent"  # first notices and escalations that went out
CRITICAL_NOTICES_FAILED = "critical.failed"  # a try failed, another is scheduled
CRITICAL_NOTICES_DEAD = "critical.dead"  # given up: nobody could be told
CRITICAL_NOTICES_UNRECORDED = "critical.unrecorded"  # sent, its record refused too long
CRITICAL_TARGET_TOOK = "critical.target_took"  # one target took a notice (label: target)
CRITICAL_TARGET_FAILED = "critical.target_failed"  # one target did not (label: target)
ORDER_MESSAGES = "orders.messages"  # HL7 order and patient messages committed (AA)
AUDIT_SENT = "audit.sent"
AUDIT_SEND_FAILURES = "audit.send_failures"
WORKLIST_QUERIES = "worklist.queries"
REJECTED_PREFIX = "rejected."

# Rejections that refuse a whole association (or connection), not one object.
ASSOCIATION_REJECTIONS = frozenset(
    {"calling-ae-not-allowed", "busy", "address-not-allowed", "tls-handshake-failed"}
)

# name -> (Prometheus counter, help, label names, fixed labels for this name)
_SERIES: dict[str, tuple[str, str, tuple[str, ...], dict[str, str]]] = {
    ASSOCIATIONS_ACCEPTED: (
        "associations",
        "DICOM associations by outcome",
        ("outcome",),
        {"outcome": "accepted"},
    ),
    OBJECTS_ACCEPTED: ("objects", "objects by intake outcome", ("outcome",), {"outcome": "new"}),
    OBJECTS_DUPLICATE: (
        "objects",
        "objects by intake outcome",
        ("outcome",),
        {"outcome": "duplicate"},
    ),
    OBJECTS_CORRECTION: (
        "corrections",
        "accepted objects that correct an earlier one",
        (),
        {},
    ),
    JOBS_DONE: ("job_events", "job transitions", ("event",), {"event": "done"}),
    JOBS_FAILED: ("job_events", "job transitions", ("event",), {"event": "failed"}),
    JOBS_RETRIED: ("job_events", "job transitions", ("event",), {"event": "retried"}),
    JOBS_HELD: ("job_events", "job transitions", ("event",), {"event": "held"}),
    WORKER_DEATHS: ("worker_deaths", "helper processes that died on a job", (), {}),
    ENGINE_FALLBACKS: (
        "engine_fallbacks",
        "reports made by the measurement engine because the configured VLM was unavailable",
        (),
        {},
    ),
    VLM_BATCHES: ("vlm_batches", "VLM generation batches of more than one ECG", (), {}),
    DELIVERIES_SENT: (
        "deliveries",
        "delivery tries by destination and outcome",
        ("destination", "outcome"),
        {"outcome": "sent"},
    ),
    DELIVERIES_FAILED: (
        "delivery_retries",
        "failed delivery tries with another try scheduled",
        ("destination",),
        {},
    ),
    DELIVERIES_DEAD: (
        "dead_letters",
        "deliveries given up (dead letters)",
        ("destination",),
        {},
    ),
    DELIVERIES_HANDED_BACK: (
        "delivery_handbacks",
        (
            "deliveries handed back untried: no formatting turn within their lease, or a file "
            "write or FHIR POST stopped by a gateway stop or a routes reload"
        ),
        ("destination",),
        {},
    ),
    ORDER_MESSAGES: (
        "hl7_messages",
        "HL7 order and patient messages committed and acknowledged AA",
        (),
        {},
    ),
    JOBS_CRITICAL: ("critical_reports", "reports that met a critical-result rule", (), {}),
    CRITICAL_NOTICES_SENT: (
        "critical_notices",
        "critical-result notice tries by outcome",
        ("outcome",),
        {"outcome": "sent"},
    ),
    CRITICAL_NOTICES_FAILED: (
        "critical_notices",
        "critical-result notice tries by outcome",
        ("outcome",),
        {"outcome": "failed"},
    ),
    CRITICAL_NOTICES_DEAD: (
        "critical_notices",
        "critical-result notice tries by outcome",
        ("outcome",),
        {"outcome": "dead"},
    ),
    CRITICAL_NOTICES_UNRECORDED: (
        "critical_notices_unrecorded",
        "critical-result notices sent whose record the store refused past the escalation wait",
        (),
        {},
    ),
    CRITICAL_TARGET_TOOK: (
        "critical_notice_targets",
        "critical-result notice sends to one target by target and outcome",
        ("target", "outcome"),
        {"outcome": "took"},
    ),
    CRITICAL_TARGET_FAILED: (
        "critical_notice_targets",
        "critical-result notice sends to one target by target and outcome",
        ("target", "outcome"),
        {"outcome": "failed"},
    ),
    WORKLIST_QUERIES: (
        "worklist_queries",
        "worklist C-FIND queries by final status",
        ("status",),
        {},
    ),
    AUDIT_RECORDS: ("audit_records", "audit records written to the local trail", (), {}),
    AUDIT_SENT: ("audit_sent", "audit records accepted by the syslog collector", (), {}),
    AUDIT_SEND_FAILURES: (
        "audit_send_failures",
        "failed attempts to reach the syslog collector",
        (),
        {},
    ),
}
# Failed and dead deliveries also count as delivery outcomes.
_ALSO = {
    DELIVERIES_FAILED: ("deliveries", {"outcome": "failed"}),
    DELIVERIES_DEAD: ("deliveries", {"outcome": "dead"}),
}
# Seconds from lease to report saved: one ECG by the measurement engine takes ~0.1-1 s,
# a VLM on a CPU tens of seconds.
_PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf"))


class Metrics:
    """Thread-safe named counters (association threads and workers share one instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._child_cache: dict[tuple, tuple] = {}
        self._counters: dict[str, PromCounter] = {}
        for prom, doc, labels, _ in _SERIES.values():
            if prom not in self._counters:
                self._counters[prom] = self._counter(prom, doc, labels)
        self._rejections = self._counter("rejections", "refusals by reason", ("reason",))
        self._received = self._counter(
            "objects_received",
            "C-STORE requests by SOP class and the DIMSE status answered",
            ("sop_class", "status"),
        )
        self._processing = Histogram(
            PREFIX + "processing_seconds",
            "time to process one job (decode, interpret, render, save)",
            buckets=_PROCESSING_BUCKETS,
            registry=self.registry,
        )

    def _counter(self, name: str, doc: str, labels: tuple[str, ...]) -> PromCounter:
        return PromCounter(PREFIX + name, doc, labels, registry=self.registry)

    def inc(self, name: str, by: int = 1, **labels: str) -> None:
        """Count `name`; `labels` fill the series' label names (destination=...)."""
        with self._lock:
            self._counts[name] += by
        if name not in _SERIES:
            return
        for child in self._children(name, labels):
            child.inc(by)

    def _children(self, name: str, labels: dict[str, str]) -> tuple:
        """The labelled series that `name` with `labels` feeds, looked up once and kept:
        prometheus_client's labels() costs microseconds, a dict lookup a fraction."""
        key = (name, *sorted(labels.items()))
        children = self._child_cache.get(key)
        if children is None:
            prom, _, label_names, fixed = _SERIES[name]
            children = (self._labelled(prom, label_names, {**labels, **fixed}),)
            also = _ALSO.get(name)
            if also is not None:
                names = ("destination", "outcome")
                children += (self._labelled(also[0], names, {**labels, **also[1]}),)
            self._child_cache[key] = children
        return children

    def _labelled(self, prom: str, label_names: tuple[str, ...], values: dict[str, str]):
        counter = self._counters[prom]
        if not label_names:
            return counter
        return counter.labels(*(values.get(label, "") for label in label_names))

    def reject(self, reason: str) -> None:
        """Count one rejection; `reason` is a short slug such as 'truncated'."""
        with self._lock:
            self._counts[REJECTED_PREFIX + reason] += 1
        self._rejections.labels(reason).inc()
        if reason in ASSOCIATION_REJECTIONS:
            self._counters["associations"].labels("rejected").inc()

    def received(self, sop_class: str, status: int) -> None:
        """One C-STORE answered: its SOP class (a keyword) and the status sent back."""
        self._received.labels(sop_class, f"0x{status:04X}").inc()

    def observe_processing(self, seconds: float) -> None:
        self._processing.observe(seconds)

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def rejections(self) -> dict[str, int]:
        return {
            name.removeprefix(REJECTED_PREFIX): count
            for name, count in self.snapshot().items()
            if name.startswith(REJECTED_PREFIX)
        }

    def write(self, path: Path) -> None:
        """Replace `path` with the current counters (temp file + rename: readers never see half)."""
        write_atomic(path, json.dumps(self.snapshot(), indent=2).encode())


def read_metrics(path: Path) -> dict[str, int]:
    """Counters last written by a running (or stopped) server; empty if none yet."""
    try:
        return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}
