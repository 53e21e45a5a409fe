"""The delivery sweeper: takes due deliveries from the store, sends each report
package to its destination, and records sent / failed (with the next try) / dead.

Each destination is swept on its own (the scheduler runs one job per
destination), so an EHR that is down or slow only delays its own deliveries.
Within a destination the store hands out a patient's deliveries in order, and a
sweep stops at the first failure: the destination is probably down, and every
further try in this sweep would only wait for the same timeout.

Delivery is at-least-once towards the wire (a crash between sending and
recording means one resend after restart); every format makes a resend
harmless: FHIR conditional creates, a stable HL7 MSH-10, files replaced whole.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from gateway import metrics as metric_names
from gateway.alerts import DELIVERY_DEAD, Alert, AlertHook
from gateway.audit import Auditor, Instance
from gateway.delivery import (
    AnyDestination,
    Artefacts,
    DeliveryError,
    Sender,
    load_and_prepare,
    open_sender,
)
from gateway.delivery.base import SendInterrupted, redact
from gateway.metrics import Metrics
from gateway.processes import START_ALLOWANCE_S, kill_pool, new_process_pool
from gateway.processing.package import ReportPackage
from gateway.routing import FileDestination, RetryPolicy, Router
from gateway.store import Delivery, Store

log = logging.getLogger(__name__)

DEFAULT_POLICY = RetryPolicy()
MAX_PER_SWEEP = 200
# A delivery in hand is leased for `lease_s` (300 s). What it may spend of it, in turn: a
# wait for the formatting process, that process's start when it was just (re)started
# (START_ALLOWANCE_S), its formatting (format_timeout_s, at most 120) and its send: for a
# file destination its writing process's start (START_ALLOWANCE_S) and write, for the
# others the send itself, each within the destination's timeout_s (at most 120). The
# bounds keep all but the wait within the lease (30 + 120 + 30 + 120 = 300); the wait gets
# what is left (`_turn_wait_s`).
_TURN_SLICE_S = 0.5  # how often a delivery waiting for its turn checks for a stop


def retry_delay(policy: RetryPolicy, failures: int, rng: random.Random) -> float:
    """Seconds until the next try after `failures` failed tries (1 = the first).

    Exponential from `backoff_base`, capped at `backoff_cap`, with "equal jitter":
    half the step is fixed, half random, so a gateway's deliveries that failed
    together (the EHR went down) do not all come back at the same second.
    """
    base = policy.backoff_base.total_seconds()
    cap = policy.backoff_cap.total_seconds()
    step = min(cap, base * 2 ** min(failures - 1, 60))
    return step / 2 + rng.uniform(0, step / 2)


@dataclass(frozen=True)
class SweepResult:
    sent: int = 0
    failed: int = 0
    dead: int = 0

    def __add__(self, other: SweepResult) -> SweepResult:
        return SweepResult(
            self.sent + other.sent, self.failed + other.failed, self.dead + other.dead
        )


class DeliverySweeper:
    """Sends due deliveries; keeps one sender (connection) per destination."""

    def __init__(
        self,
        store: Store,
        router: Router,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lease_s: float = 300.0,
        formatting_process: bool = False,
        format_timeout_s: float = 60.0,
        alerts: AlertHook | None = None,
        audit: Auditor | None = None,
    ):
        """`formatting_process`: build FHIR and HL7 in a helper process (the server does),
        not in the sweeping thread, which shares the interpreter lock with DICOM intake;
        `format_timeout_s`: how long it may take for one delivery (gateway.yaml's
        delivery_format_timeout_s); `alerts` runs the site's command for each delivery
        given up."""
        self.alerts = alerts or AlertHook()
        self.audit = audit  # one ATNA Export record per delivery sent
        self.store = store
        self.router = router
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self.lease_s = lease_s
        self._senders: dict[str, tuple[object, Sender]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._formatter, self._formatter_ready = (
            _new_formatter() if formatting_process else (None, None)
        )
        self._formatting = threading.Lock()  # one delivery at a time in the formatting process
        self.format_timeout_s = format_timeout_s
        self._sweeping: set[str] = set()  # destinations with a sweep running now
        self._woken: set[str] = set()  # ... and woken meanwhile

    def sweep(self) -> SweepResult:
        """Every destination in turn (the server sweeps them in parallel instead)."""
        total = SweepResult()
        for name in self.store.unsent_destinations():
            total += self.sweep_destination(name)
        return total

    def sweep_destination(self, name: str) -> SweepResult:
        """Send this destination's due deliveries until none is due or one fails.

        A wake-up that came while this sweep ran (see `wake`) gets one more pass, so a
        delivery queued just after the last lease is not left for the next interval.
        """
        with self._lock:
            self._sweeping.add(name)
        result = SweepResult()
        again = True
        try:
            while again:
                outcome, drained = self._sweep_pass(name)
                result += outcome
                with self._lock:  # deciding and leaving in one step: no wake-up slips between
                    again = drained and name in self._woken
                    self._woken.discard(name)
                    if not again:
                        self._sweeping.discard(name)
        except BaseException:
            with self._lock:
                self._sweeping.discard(name)
            raise
        return result

    def wake(self, name: str) -> bool:
        """New deliveries for `name` are due: True when the caller should start a sweep,
        False when one is running and will make another pass."""
        with self._lock:
            if name in self._sweeping:
                self._woken.add(name)
                return False
            return True

    def _sweep_pass(self, name: str) -> tuple[SweepResult, bool]:
        """One pass; True when it ended because nothing more was due."""
        result = SweepResult()
        for _ in range(MAX_PER_SWEEP):
            if self._stopping.is_set():
                return result, False
            leased = self.store.lease_due_deliveries(
                now=self.clock(), limit=1, lease_s=self.lease_s, destination=name
            )
            if not leased:
                return result, True
            outcome, destination_works = self._deliver(leased[0])
            result += outcome
            if not destination_works:
                return result, False
        return result, False

    def sweep_unrouted(self) -> SweepResult:
        """Deliveries to destinations no longer in routes.yaml: fail them visibly."""
        configured = set(self.router.config.destinations)
        result = SweepResult()
        for name in self.store.unsent_destinations():
            if name not in configured:
                result += self.sweep_destination(name)
        return result

    def stop(self) -> None:
        """Start no new send (shutdown): a delivery formatted after this is handed back
        (`_sender`). A send in progress is cut and its delivery handed back: a file write
        hung in the kernel (a stalled network share), or a FHIR, HL7 or DICOM peer that does
        not answer, could otherwise hold the stop for its whole timeout_s, past the service
        manager's stop timeout. Every sender's close may come during its send."""
        self._stopping.set()
        with self._lock:
            cut = [sender for _, sender in self._senders.values()]
        for sender in cut:
            sender.close()

    def close_removed_senders(self) -> list[str]:
        """Close the senders of destinations no longer in the routes (a reload dropped
        them), so that no connection or file writing process outlives its destination;
        their names."""
        configured = set(self.router.config.destinations)
        with self._lock:
            gone = sorted(name for name in self._senders if name not in configured)
            senders = [self._senders.pop(name)[1] for name in gone]
        for sender in senders:
            sender.close()
        return gone

    def close(self) -> None:
        with self._lock:
            senders, self._senders = self._senders, {}
            formatter, self._formatter = self._formatter, None
            self._formatter_ready = None
        for _, sender in senders.values():
            sender.close()
        if formatter is not None:
            formatter.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, delivery: Delivery) -> tuple[SweepResult, bool]:
        """The outcome, and whether the destination looked reachable: a report it
        rejected for its content says nothing about the next one."""
        destination = self.router.destination(delivery.destination)
        if destination is None:
            error = DeliveryError(f"destination {delivery.destination!r} is not in the routes file")
            return self._record_failure(delivery, DEFAULT_POLICY, error), True
        try:
            package, artefacts = self._prepare(delivery, destination)
        except DeliveryError as exc:
            return self._record_failure(delivery, destination.retry, exc), True
        except _NoTurn:
            why = "no turn in the formatting process within its lease"
            return self._hand_back(delivery, destination.retry, why), False
        try:
            receipt = self._sender(delivery.destination, destination).send(package, artefacts)
        except SendInterrupted as exc:
            return self._hand_back(delivery, destination.retry, str(exc)), False
        except DeliveryError as exc:
            return self._record_failure(delivery, destination.retry, exc), exc.permanent
        except Exception as exc:  # noqa: BLE001 - a bug in a sender must not stop the others
            log.error("unexpected %s delivering %s", type(exc).__name__, _label(delivery))
            error = DeliveryError(f"{type(exc).__name__}: {redact(str(exc), package)}")
            return self._record_failure(delivery, destination.retry, error), False
        self.store.mark_delivery_sent(delivery.id, now=self.clock(), leased_at=delivery.updated_at)
        self.metrics.inc(metric_names.DELIVERIES_SENT, destination=delivery.destination)
        log.info("delivered %s: %s", _label(delivery), receipt)
        if self.audit is not None:
            self.audit.exported(exported_instance(package), delivery.destination)
        return SweepResult(sent=1), True

    def _prepare(
        self, delivery: Delivery, destination: AnyDestination
    ) -> tuple[ReportPackage, Artefacts]:
        """The package and what to send, built by the formatting process when there is one."""
        if not delivery.report_dir:
            raise DeliveryError("the report files are gone (purged by retention?)", permanent=True)
        replaces = None
        if delivery.replaces_version is not None:
            replaces = (delivery.replaces_version, delivery.replaces_json)
        args = (
            delivery.destination,
            destination,
            Path(delivery.report_dir),
            delivery.report_json,
            replaces,
        )
        try:
            if self._formatter is None:
                return load_and_prepare(*args)
            return self._formatted(args)
        except (DeliveryError, _NoTurn):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in a format must not stop the others
            log.error("unexpected %s preparing %s", type(exc).__name__, _label(delivery))
            raise DeliveryError(f"{type(exc).__name__} preparing the report") from None

    def _formatted(self, args: tuple) -> tuple[ReportPackage, Artefacts]:
        """`load_and_prepare(*args)` in the formatting process, within format_timeout_s.

        One delivery at a time (`_formatting`), so the deadline counts this delivery's own
        formatting, never the time it waited behind another destination's: a slow but
        legitimate formatting costs the others a wait, not an attempt. Past the deadline
        the process is stopped and replaced, so a package that never finishes formatting
        (a hung file system, a runaway build) holds up the others for one deadline at
        most; the delivery is retried by its destination's policy, then given up loudly.
        A delivery that cannot get its turn within its lease is handed back untried."""
        if not self._take_turn(args[1]):
            raise _NoTurn
        try:
            formatter = self._ready_formatter()
            try:
                future = formatter.submit(load_and_prepare, *args)
                return future.result(timeout=self.format_timeout_s)
            except TimeoutError:
                kill_pool(formatter)
                self._replace_formatter(formatter)
                raise DeliveryError(
                    f"formatting took longer than {self.format_timeout_s:g} s: "
                    "the formatting process was stopped; trying again"
                ) from None
            except BrokenProcessPool:
                self._replace_formatter(formatter)
                raise DeliveryError("the formatting process died; trying again") from None
        finally:
            self._formatting.release()

    def _take_turn(self, destination: AnyDestination) -> bool:
        """The formatting process's turn, waited for in slices of _TURN_SLICE_S: a
        stopping gateway hands a waiting delivery back at once, where waiting out its
        turn (up to minutes) could outlast the service manager's stop timeout (systemd's
        TimeoutStopSec, 120 s in deploy/) and end in a kill."""
        deadline = time.monotonic() + self._turn_wait_s(destination)
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if self._formatting.acquire(timeout=max(0.0, min(_TURN_SLICE_S, left))):
                return True
            if left <= _TURN_SLICE_S:
                return False
        return False

    def _turn_wait_s(self, destination: AnyDestination) -> float:
        """How long a delivery may wait for the formatting process: what its lease leaves
        after everything else it may spend (the budget above the module's constants)."""
        send_s = destination.timeout_s
        if isinstance(destination, FileDestination):
            send_s += START_ALLOWANCE_S
        spent_s = START_ALLOWANCE_S + self.format_timeout_s + send_s
        return max(0.0, self.lease_s - spent_s)

    def _ready_formatter(self) -> ProcessPoolExecutor:
        """The formatting process once it has started (a new one spawns and imports for
        seconds: not this delivery's formatting time); one that does not start within
        START_ALLOWANCE_S is this try's failure."""
        formatter, ready = self._formatter, self._formatter_ready
        if formatter is None or ready is None:  # closed: the gateway is stopping
            raise _NoTurn
        try:
            ready.result(timeout=START_ALLOWANCE_S)
        except TimeoutError:
            kill_pool(formatter)
            self._replace_formatter(formatter)
            raise DeliveryError(
                f"the formatting process did not start within {START_ALLOWANCE_S:g} s"
            ) from None
        except BrokenProcessPool:
            self._replace_formatter(formatter)
            raise DeliveryError("the formatting process died; trying again") from None
        return formatter

    def _replace_formatter(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._formatter is broken:
                self._formatter, self._formatter_ready = _new_formatter()
        broken.shutdown(wait=False)

    def _sender(self, name: str, destination: object) -> Sender:
        """The destination's open sender; a changed destination gets a new one. Refused
        once the gateway is stopping: a sender opened after stop() closed the others would
        not be closed, and its write could hold the stop."""
        with self._lock:  # stop() sets the flag, then lists the senders under this lock
            if self._stopping.is_set():
                raise SendInterrupted("the gateway is stopping")
            current = self._senders.get(name)
            if current is not None and current[0] == destination:
                return current[1]
            sender = open_sender(name, destination)
            self._senders[name] = (destination, sender)
        if current is not None:
            current[1].close()
        return sender

    def _hand_back(self, delivery: Delivery, policy: RetryPolicy, why: str) -> SweepResult:
        """A delivery that got no turn in the formatting process, or whose send (a file write,
        a network send) the gateway itself cut, goes back untried, no attempt charged; past its
        policy's max_age it is given up as a dead one is, so a formatting process kept busy for days
        cannot hold a report back unseen (not one handed back because the gateway is
        stopping: the next start may send it)."""
        now = self.clock()
        age = now - delivery.created_at
        if age >= policy.max_age.total_seconds() and not self._stopping.is_set():
            reason = f"gave up after {age / 3600:.1f} h (max_age)"
            self._give_up(delivery, f"{reason}: handed back, {why}", now)
            return SweepResult(dead=1)
        self.store.release_delivery(delivery.id, now=now, leased_at=delivery.updated_at)
        self.metrics.inc(metric_names.DELIVERIES_HANDED_BACK, destination=delivery.destination)
        log.warning("delivery %s handed back untried: %s", _label(delivery), why)
        return SweepResult()

    def _give_up(self, delivery: Delivery, message: str, now: float) -> None:
        """Dead: recorded, counted, an ERROR line and the site's alert command."""
        self.store.mark_delivery_dead(delivery.id, message, now=now, leased_at=delivery.updated_at)
        self.metrics.inc(metric_names.DELIVERIES_DEAD, destination=delivery.destination)
        log.error("delivery %s is dead: %s", _label(delivery), message)
        detail = f"delivery {delivery.id} to {delivery.destination}"
        self.alerts.send(Alert(DELIVERY_DEAD, delivery.sop_instance_uid, detail, message))

    def _record_failure(
        self, delivery: Delivery, policy: RetryPolicy, error: DeliveryError
    ) -> SweepResult:
        now = self.clock()
        failures = delivery.attempts + 1
        age = now - delivery.created_at
        reason = _give_up_reason(policy, failures, age, error)
        if reason is not None:
            self._give_up(delivery, f"{reason}: {error}", now)
            return SweepResult(dead=1)
        delay = self._next_delay(policy, failures, age, error)
        self.store.mark_delivery_failed(
            delivery.id, str(error), now + delay, now=now, leased_at=delivery.updated_at
        )
        self.metrics.inc(metric_names.DELIVERIES_FAILED, destination=delivery.destination)
        log.warning(
            "delivery %s failed (try %d), next try in %.0f s: %s",
            _label(delivery),
            failures,
            delay,
            error,
        )
        return SweepResult(failed=1)

    def _next_delay(
        self, policy: RetryPolicy, failures: int, age_s: float, error: DeliveryError
    ) -> float:
        """The receiver's Retry-After when it gave one (an EHR asking for time should get
        it, not be hit again sooner), kept within backoff_cap and max_age; else the backoff."""
        if error.retry_after_s is None:
            return retry_delay(policy, failures, self.rng)
        age_left = policy.max_age.total_seconds() - age_s
        return max(0.0, min(error.retry_after_s, policy.backoff_cap.total_seconds(), age_left))


def _give_up_reason(
    policy: RetryPolicy, failures: int, age_s: float, error: DeliveryError
) -> str | None:
    if error.permanent:
        return "rejected, resending cannot succeed"
    if failures >= policy.max_attempts:
        return f"gave up after {failures} tries"
    if age_s >= policy.max_age.total_seconds():
        return f"gave up after {age_s / 3600:.1f} h (max_age)"
    return None


def exported_instance(package: ReportPackage) -> Instance:
    """What an Export audit record names: the received object, its study and patient."""
    meta = package.metadata
    return Instance(
        meta.sop_class_uid or "",
        package.sop_instance_uid,
        meta.study_instance_uid or "",
        meta.patient_id or "",
        meta.patient_id_issuer or "",
    )


def _new_formatter() -> tuple[ProcessPoolExecutor, Future]:
    """A formatting process, and a future done once it has started and imported."""
    pool = new_process_pool(1, preload="gateway.delivery")
    return pool, pool.submit(os.getpid)


class _NoTurn(Exception):
    """The formatting process stayed busy with other deliveries for as long as this
    delivery's lease allows it to wait."""


def _label(delivery: Delivery) -> str:
    job = f"job {delivery.job_id}, {delivery.sop_instance_uid}"
    return f"#{delivery.id} ({job}) to {delivery.destination}"
