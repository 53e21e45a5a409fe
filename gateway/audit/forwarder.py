"""Ships the audit trail to the syslog collector, in order, from a durable cursor.

The trail file is the queue: the forwarder remembers (in `sent.json`, replaced
atomically) the last record the collector took and the byte offset after it. While the
collector is down, records simply accumulate in the file and intake goes on; when it
returns they are sent, oldest first. A restart resumes from the cursor, so a record
may be sent twice after a crash between the send and the cursor update, never lost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway import metrics as m
from gateway.audit.syslog import SyslogConnection, frame
from gateway.audit.trail import AuditFile, read_records
from gateway.config import SyslogConfig
from gateway.durable import write_atomic
from gateway.logs import fault
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

_SYNC_EVERY_S = 1.0
_BATCH = 200
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Cursor:
    seq: int = 0
    offset: int = 0


def read_cursor(path: Path) -> Cursor:
    try:
        data = json.loads(path.read_text())
        return Cursor(int(data["seq"]), int(data["offset"]))
    except FileNotFoundError:
        return Cursor()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Starting again from the top resends; skipping would lose records.
        log.error("%s is unreadable (%s): resending the trail from its start", path, exc)
        return Cursor()


class Forwarder:
    """A thread that fsyncs the trail every second and, with a collector configured,
    sends what it has not sent yet."""

    def __init__(
        self,
        trail: AuditFile,
        cursor_path: Path,
        syslog: SyslogConfig | None,
        metrics: Metrics,
    ) -> None:
        self.trail = trail
        self.cursor_path = cursor_path
        self.metrics = metrics
        self._connection = SyslogConnection(syslog) if syslog is not None else None
        self._cursor = read_cursor(cursor_path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-forwarder", daemon=True)
        self._backoff_s = 0.0
        self._next_try = 0.0  # monotonic time of the next try while the collector is down
        self._down_since_seq: int | None = None

    @property
    def has_collector(self) -> bool:
        return self._connection is not None

    @property
    def sent_seq(self) -> int:
        return self._cursor.seq

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace_s: float = 5.0) -> None:
        """One last sync and send (the stop record included), then close."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=grace_s)
        if self._connection is not None:
            self._connection.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(timeout=_SYNC_EVERY_S)
            self._wake.clear()
            try:
                self.trail.sync()
            except OSError as exc:
                log.error("cannot fsync the audit trail %s: %s", self.trail.path, exc)
            if self._connection is not None and (stopping or time.monotonic() >= self._next_try):
                try:
                    self._send_pending()
                except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad pass
                    log.error("audit forwarding failed, tried again: %s", fault(exc, stack=True))
            if stopping:
                return

    def _send_pending(self) -> None:
        if self._cursor.offset > _size(self.trail.path):
            # The trail was archived and a new one begun: its records are all unsent.
            log.warning("the audit trail is shorter than what was sent: sending it from its start")
            self._cursor = Cursor()
        while True:
            records = read_records(self.trail.path, self._cursor.offset, _BATCH)
            if not records:
                return
            try:
                self._connection.send([frame(r.msg) for r in records])
            except OSError as exc:
                self._went_down(exc)
                return
            self._cursor = Cursor(records[-1].seq, records[-1].end)
            write_atomic(self.cursor_path, json.dumps(self._cursor.__dict__).encode())
            self.metrics.inc(m.AUDIT_SENT, len(records))
            self._came_back()

    def _went_down(self, exc: OSError) -> None:
        self.metrics.inc(m.AUDIT_SEND_FAILURES)
        if self._down_since_seq is None:
            self._down_since_seq = self._cursor.seq
            log.warning(
                "audit collector unreachable (%s): records are kept in %s and sent when it is back",
                exc,
                self.trail.path,
            )
        self._backoff_s = min(_MAX_BACKOFF_S, max(1.0, self._backoff_s * 2))
        self._next_try = time.monotonic() + self._backoff_s

    def _came_back(self) -> None:
        if self._down_since_seq is not None:
            log.info(
                "audit collector reachable again: sent the records queued since %d",
                self._down_since_seq,
            )
            self._down_since_seq = None
        self._backoff_s = 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
