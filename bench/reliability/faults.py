"""What goes wrong around the gateway: its destinations misbehave (the strict FHIR and
MLLP test peers, scripted), and it or its helper processes are killed with SIGKILL.

The Supervisor owns the gateway process and counts crashes: any exit that is not one
of its own SIGKILLs or the final SIGTERM (which must return 0).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.store import SqliteStore
from tests.gateway_process import GatewayProcess
from tests.peers import FhirTestServer, Hl7TestPeer

RETRY = "{max_attempts: 200, max_age: 1h, backoff_base: 1s, backoff_cap: 2s}"


@dataclass
class Destinations:
    """A FHIR server and an MLLP receiver, both strict, both able to go down and come back
    at the same address with what they had received."""

    fhir: FhirTestServer = field(default_factory=FhirTestServer)
    hl7: Hl7TestPeer = field(default_factory=Hl7TestPeer)

    def start(self) -> Destinations:
        self.fhir.start()
        self.fhir.port = self.fhir._httpd.server_address[1]
        self.hl7.start()
        return self

    def stop(self) -> None:
        self.fhir.stop()
        self.hl7.stop()

    def routes(self) -> str:
        """Every report to both: a FHIR transaction and an ORU^R01, short timeouts and
        fast retries so a campaign ends in minutes."""
        return (
            "destinations:\n"
            f"  ehr: {{type: fhir, endpoint: '{self.fhir.base_url}', timeout_s: 2,"
            f" retry: {RETRY}}}\n"
            f"  ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{self.hl7.port}', timeout_s: 2,"
            f" retry: {RETRY}}}\n"
            "default: [ehr, ris]\n"
        )


def _script(code: str, count: int) -> Callable[[Destinations], None]:
    def apply(d: Destinations) -> None:
        d.hl7.script = [code] * count

    return apply


def _fhir_failing(status: int, retry_after: str | None = None) -> Callable[[Destinations], None]:
    def apply(d: Destinations) -> None:
        d.fhir.retry_after = retry_after
        d.fhir.fail_status = status

    return apply


def _fhir_trickling(d: Destinations) -> None:
    d.fhir.trickle_for_s = 10  # its status line a byte a second: past the 2 s timeout_s


def _clear(d: Destinations) -> None:
    d.hl7.script = []
    d.fhir.fail_status = None
    d.fhir.retry_after = None
    d.fhir.trickle_for_s = 0


def _hl7_back(d: Destinations) -> None:
    _clear(d)
    d.hl7.start()


def _fhir_back(d: Destinations) -> None:
    _clear(d)
    d.fhir.start()


# name -> (start the fault, end it). A fault lasts while a few ECGs are sent and delivered.
FAULTS: dict[str, tuple[Callable[[Destinations], None], Callable[[Destinations], None]]] = {
    "mllp-AE": (_script("AE", 3), _clear),
    "mllp-AR": (_script("AR", 2), _clear),
    "mllp-close": (_script("drop", 3), _clear),
    "mllp-delay": (_script("delay", 2), _clear),
    "mllp-trickle": (_script("trickle", 2), _clear),
    "mllp-down": (lambda d: d.hl7.stop(), _hl7_back),
    "fhir-400": (_fhir_failing(400), _clear),
    "fhir-503": (_fhir_failing(503), _clear),
    "fhir-429-retry-after": (_fhir_failing(429, "1"), _clear),
    "fhir-trickle": (_fhir_trickling, _clear),
    "fhir-down": (lambda d: d.fhir.stop(), _fhir_back),
}


@dataclass
class Supervisor:
    """Starts, kills and restarts the gateway; counts the exits nobody asked for."""

    gateway: GatewayProcess
    rng: random.Random
    crashes: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=lambda: {"gateway": 0, "helper": 0})

    def check(self) -> None:
        """A gateway that exited by itself is a crash: note it and start it again."""
        code = self.gateway.process.poll()
        if code is not None:
            self.crashes.append(f"exited with {code}")
            self.gateway.start()

    def kill_random(self) -> str:
        """SIGKILL the gateway or one of its helper processes (found via /proc)."""
        self.check()
        helpers = self._helpers()
        if helpers and self.rng.random() < 0.5:
            pid = self.rng.choice(helpers)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return "helper already gone"
            self.kills["helper"] += 1
            time.sleep(0.5)
            self.check()  # the gateway must outlive its helpers
            return f"helper {pid}"
        self.gateway.kill_hard()
        self.kills["gateway"] += 1
        self.gateway.start()
        return "gateway"

    def _helpers(self) -> list[int]:
        try:
            return self.gateway.children()
        except OSError:
            return []

    def stop(self) -> None:
        """SIGTERM: a clean stop returns 0; anything else is a crash."""
        self.check()
        code = self.gateway.terminate(timeout_s=60)
        if code != 0:
            self.crashes.append(f"SIGTERM ended with {code}")


def settled(data_dir: Path) -> bool:
    """No job waiting or in progress, no delivery still to try."""
    store = SqliteStore(data_dir / "gateway.sqlite3")
    try:
        jobs = store.count_jobs()
        pending = [d for d in store.list_deliveries(limit=1_000_000) if d.state not in _FINAL]
    finally:
        store.close()
    unfinished = [state for state, n in jobs.items() if n and state not in ("done", "failed")]
    return not (unfinished or pending)


_FINAL = {"sent", "dead"}


def wait_settled(supervisor: Supervisor, timeout_s: float) -> bool:
    """Until everything acknowledged is finished one way or another, or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.check()
        if settled(supervisor.gateway.data_dir):
            return True
        time.sleep(0.5)
    return False
