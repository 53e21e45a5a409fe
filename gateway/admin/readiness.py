"""/readyz: may this gateway be sent ECGs now? Each check says what it found, so the
JSON body tells an operator why a node was taken out of service.

Ready means: the store takes a write, the spool has room, the DICOM SCP is listening,
the engine is loaded or has fallen back to the measurement engine (not holding jobs),
and the gateway is not draining for a stop. Destinations are reported, not checked: an
EHR that is down must not stop intake (deliveries queue and are retried).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.intake.spool import free_bytes
from gateway.logs import failure_reason
from gateway.store import Store, StoreError

STORE_CHECK_EVERY_S = 10.0
STORE_UNAVAILABLE = "store unavailable"  # why: the gateway's log (workers, intake)
ENGINE_UNAVAILABLE = "the model cannot be loaded; the gateway's log says why"


@dataclass(frozen=True)
class EngineState:
    name: str
    state: str  # "ready" | "fallback" (measurement engine instead) | "held" (jobs wait)
    detail: str = ""  # why, for the log only: it names the model's or adapter's path

    @property
    def ok(self) -> bool:
        return self.state != "held"


@dataclass
class Readiness:
    store: Store
    spool_dir: Path
    min_free_bytes: int
    scp_listening: Callable[[], bool]
    engine: Callable[[], EngineState]
    destinations: Callable[[], list[str]]
    draining: threading.Event
    _store_checked: tuple[float, dict] | None = field(default=None, init=False)

    def report(self) -> tuple[bool, dict]:
        """(ready, body): the body lists every check, passed or not."""
        checks = {
            "store": self._store(),
            "spool": self._spool(),
            "scp": {"ok": bool(self.scp_listening())},
            "engine": self._engine(),
            "draining": {"ok": not self.draining.is_set()},
        }
        ready = all(check["ok"] for check in checks.values())
        return ready, {
            "ready": ready,
            "checks": checks,
            "destinations": self._destinations(),
        }

    def _store(self) -> dict:
        """A real write (an fsync), at most every STORE_CHECK_EVERY_S: probes and scrapes
        come often, and each write holds the store's lock from intake for its fsync."""
        now = time.monotonic()
        if self._store_checked is None or now - self._store_checked[0] >= STORE_CHECK_EVERY_S:
            try:
                self.store.check_writable()
                result = {"ok": True}
            except StoreError:  # its text names the file or database: the log has it
                result = {"ok": False, "error": STORE_UNAVAILABLE}
            self._store_checked = (now, result)
        return self._store_checked[1]

    def _spool(self) -> dict:
        try:
            free = free_bytes(self.spool_dir)
        except OSError as exc:  # not str(exc): it names the spool's path
            return {"ok": False, "error": failure_reason(exc)}
        return {"ok": free > self.min_free_bytes, "free_mb": free // (1024 * 1024)}

    def _engine(self) -> dict:
        engine = self.engine()
        body = {"ok": engine.ok, "name": engine.name, "state": engine.state}
        if engine.state != "ready":  # not engine.detail: a path is not for the network
            body["detail"] = ENGINE_UNAVAILABLE
        return body

    def _destinations(self) -> dict:
        """Per destination: 'ok', 'retrying' (tries failing) or 'dead-letters', with counts."""
        try:
            backlog = self.store.delivery_backlog()
        except StoreError:
            return {"error": STORE_UNAVAILABLE}
        states = {}
        for name in sorted(set(self.destinations()) | set(backlog)):
            entry = backlog.get(name, {"pending": 0, "failed": 0, "dead": 0, "oldest_s": 0.0})
            state = "dead-letters" if entry["dead"] else "retrying" if entry["failed"] else "ok"
            states[name] = {
                "state": state,
                "unsent": int(entry["pending"] + entry["failed"]),
                "dead": int(entry["dead"]),
                "oldest_unsent_s": round(entry["oldest_s"], 1),
            }
        return states
