"""In-process counters: what the gateway accepted, rejected (by reason) and processed.

Counters live in memory and are logged periodically by the server and written to
`<data-dir>/metrics.json`, so `ecg-gateway jobs list` can show them; the durable truth
about jobs is the store, these only explain what never became a job (rejections).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

from gateway.durable import write_atomic

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
VLM_BATCHES = "vlm.batches"  # generation batches of more than one ECG
DELIVERIES_SENT = "deliveries.sent"
DELIVERIES_FAILED = "deliveries.failed"
DELIVERIES_DEAD = "deliveries.dead"
REJECTED_PREFIX = "rejected."


class Metrics:
    """Thread-safe named counters (association threads and workers share one instance)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] += by

    def reject(self, reason: str) -> None:
        """Count one rejection; `reason` is a short slug such as 'truncated'."""
        self.inc(REJECTED_PREFIX + reason)

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
