"""The formatting process has a deadline: a delivery whose message never finishes
building is stopped at `delivery_format_timeout_s`, its process replaced, the delivery
retried by its destination's policy and then given up loudly; meanwhile no other
delivery, of any destination, waits behind it.

Real parts: the real store, the real formatting process, the real file destinations. The
hang is real too: the package's page is a FIFO nobody writes, so reading it blocks
forever, as a report folder on a hung network file system does.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from delivery_support import (
    T0,
    clocked_sweeper,
    delivery_site,
    enqueue,
    package,
    recorded_alert,
    release_fifo,
    sweep_in_thread,
)
from peers import Hl7TestPeer

from gateway import metrics as m
from gateway.alerts import DELIVERY_DEAD
from gateway.delivery.sweeper import DeliverySweeper, SweepResult
from gateway.metrics import Metrics
from gateway.processes import START_ALLOWANCE_S
from gateway.store import Delivery, SqliteStore

_TIMEOUT_S = 10.0  # generous for a formatting process started on a busy test machine

_ROUTES = """\
destinations:
  a: {type: file, directory: out-a, retry: {max_attempts: 2, backoff_base: 1s, backoff_cap: 1s}}
  b: {type: file, directory: out-b}
rules: [{name: second-cart, match: {calling_ae: CART2}, destinations: [b]}]
default: [a]
"""


def _leased(store: SqliteStore, job_id: int) -> bool:
    """Whether the job's delivery is in a sweep's hands (the lease is not on Delivery)."""
    with sqlite3.connect(store.path) as conn:
        [(until,)] = conn.execute(
            "SELECT lease_expires_at FROM deliveries WHERE job_id = ?", (job_id,)
        )
    return until is not None


def test_a_formatting_that_never_ends_is_stopped_retried_given_up_and_blocks_no_other(
    shared_data: Path, tmp_path: Path
) -> None:
    data_dir, router, store = delivery_site(tmp_path, _ROUTES)
    sweeper, now, alerted = clocked_sweeper(store, router, tmp_path, format_timeout_s=_TIMEOUT_S)
    page = data_dir / "reports" / "2" / "ecg.png"  # of the second job, `stuck`
    try:
        warm = package(shared_data, uid_suffix="0", patient_id="P0")
        enqueue(store, router, data_dir, warm)
        assert sweeper.sweep_destination("a").sent == 1  # the formatting process is up
        stuck = enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
        assert page.parent.name == str(stuck)
        page.unlink()
        os.mkfifo(page)  # reading it never ends: no writer ever opens it
        other = package(shared_data, uid_suffix="2", calling_ae="CART2", patient_id="P2")
        fine = enqueue(store, router, data_dir, other)

        first = sweep_in_thread(sweeper, "a")
        deadline = time.monotonic() + 30
        while not _leased(store, stuck):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the formatting process is reading the FIFO now
        second = sweep_in_thread(sweeper, "b")  # queued behind it in the same process
        for thread in (first, second):
            thread.join(timeout=4 * _TIMEOUT_S)
            assert not thread.is_alive(), "a sweep still waits for the formatting process"

        deliveries = {d.job_id: d for d in store.list_deliveries()}
        assert (deliveries[fine].state, deliveries[fine].last_error) == ("sent", None)
        assert (data_dir / "out-b" / f"{other.sop_instance_uid}.hl7").is_file()
        assert deliveries[stuck].state == "failed"
        assert deliveries[stuck].last_error == (
            "formatting took longer than 10 s: the formatting process was stopped; trying again"
        )

        now[0] += 3600  # the retry is due: it overruns again, the policy's last try
        sweeper.sweep_destination("a")
        [dead] = [d for d in store.list_deliveries() if d.job_id == stuck]
        assert dead.state == "dead" and "gave up after 2 tries: formatting took" in dead.last_error
        assert recorded_alert(alerted) == f"{DELIVERY_DEAD} delivery {dead.id} to a"

        later = package(shared_data, uid_suffix="3", patient_id="P3")
        enqueue(store, router, data_dir, later, now=now[0])
        assert sweeper.sweep_destination("a").sent == 1  # the new formatting process works
    finally:
        release_fifo(page)
        sweeper.close()
        store.close()


class _SlowPage:
    """A package page that is a FIFO: its formatting reads it and waits until this writes
    the page's bytes, `after_s` after `since` began to be read (None: this page), like a
    report folder on a slow file system. Gives up when `stop` is set, so a test that
    fails leaves no thread behind."""

    def __init__(
        self, page: Path, after_s: float, stop: threading.Event, since: _SlowPage | None = None
    ):
        self.data = page.read_bytes()
        page.unlink()
        os.mkfifo(page)
        self.page, self.after_s, self.stop, self.since = page, after_s, stop, since or self
        self.read_from = threading.Event()  # a formatting process opened the page
        self.began = 0.0  # ... then (time.monotonic())
        threading.Thread(target=self._write, daemon=True).start()

    def _write(self) -> None:
        fd = None
        while fd is None and not self.stop.is_set():
            try:
                fd = os.open(self.page, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reads it yet
                time.sleep(0.02)
        if fd is None:
            return
        self.began = time.monotonic()
        self.read_from.set()
        try:
            self.since.read_from.wait()
            delay = self.since.began + self.after_s - time.monotonic()
            if not self.stop.wait(max(0.0, delay)):
                os.set_blocking(fd, True)
                os.write(fd, self.data)
        except BrokenPipeError:  # its reader was stopped
            pass
        finally:
            os.close(fd)


def test_a_delivery_queued_behind_a_slow_formatting_is_not_charged_its_wait(
    shared_data: Path, tmp_path: Path
) -> None:
    """Destination a's report takes 0.6 of the deadline to format (slow, not hung); b's,
    queued behind it, takes until 1.2 deadlines after a's began. b's own formatting is
    well within its deadline: it is sent at its first try, and a's too."""
    data_dir, router, store = delivery_site(tmp_path, _ROUTES)
    sweeper = DeliverySweeper(
        store, router, clock=lambda: T0, formatting_process=True, format_timeout_s=_TIMEOUT_S
    )
    stop = threading.Event()
    try:
        warm = package(shared_data, uid_suffix="0", patient_id="P0")
        enqueue(store, router, data_dir, warm)
        assert sweeper.sweep_destination("a").sent == 1  # the formatting process is up
        slow = enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
        other = package(shared_data, uid_suffix="2", calling_ae="CART2", patient_id="P2")
        queued = enqueue(store, router, data_dir, other)
        reports = data_dir / "reports"
        a_page = _SlowPage(reports / str(slow) / "ecg.png", 0.6 * _TIMEOUT_S, stop)
        b_page = _SlowPage(reports / str(queued) / "ecg.png", 1.2 * _TIMEOUT_S, stop, a_page)

        first = sweep_in_thread(sweeper, "a")
        assert a_page.read_from.wait(30), "a's formatting never began"
        second = sweep_in_thread(sweeper, "b")  # queued behind a's formatting
        for thread in (first, second):
            thread.join(timeout=4 * _TIMEOUT_S)
            assert not thread.is_alive(), "a sweep still waits for the formatting process"

        deliveries = {d.job_id: d for d in store.list_deliveries()}
        for job in (slow, queued):
            delivery = deliveries[job]
            assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 1, None)
        assert (data_dir / "out-b" / f"{other.sop_instance_uid}.png").read_bytes() == b_page.data
    finally:
        stop.set()
        sweeper.close()
        store.close()


# A lease that leaves no time to wait for the formatting process: it covers the process's
# start, the formatting deadline and a minute, but b's writing process start and write
# (START_ALLOWANCE_S + its timeout_s, 60 s) need more, and count too.
_NO_WAIT = {"lease_s": START_ALLOWANCE_S + _TIMEOUT_S + 60, "format_timeout_s": _TIMEOUT_S}


@dataclass
class _Queue:
    """b's delivery (`queued`) waiting while a's formats slowly in a sweep in a thread."""

    store: SqliteStore
    sweeper: DeliverySweeper
    queued: int
    first: threading.Thread
    now: list[float]
    alerted: Path

    def a_done(self) -> None:
        self.first.join(timeout=4 * _TIMEOUT_S)
        assert not self.first.is_alive(), "a's slow formatting never ended"

    def b_delivery(self) -> Delivery:
        [delivery] = [d for d in self.store.list_deliveries() if d.job_id == self.queued]
        return delivery


@contextmanager
def _queued_behind_a_slow_formatting(
    shared_data: Path, tmp_path: Path, routes: str = _ROUTES, **options
) -> Iterator[_Queue]:
    """A delivery to b queued while a's formats slowly (0.8 deadline) in a sweep running
    in a thread, on a sweeper made with `options`; afterwards a's sweep has ended and the
    site is closed."""
    data_dir, router, store = delivery_site(tmp_path, routes)
    sweeper, now, alerted = clocked_sweeper(store, router, tmp_path, **options)
    stop = threading.Event()
    try:
        slow = enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
        other = package(shared_data, uid_suffix="2", calling_ae="CART2", patient_id="P2")
        queued = enqueue(store, router, data_dir, other)
        page = _SlowPage(data_dir / "reports" / str(slow) / "ecg.png", 0.8 * _TIMEOUT_S, stop)
        first = sweep_in_thread(sweeper, "a")
        assert page.read_from.wait(60), "a's formatting never began"
        queue = _Queue(store, sweeper, queued, first, now, alerted)
        yield queue
        queue.a_done()
    finally:
        stop.set()
        sweeper.close()
        store.close()


def test_a_delivery_that_cannot_get_its_turn_within_its_lease_is_handed_back_untried(
    shared_data: Path, tmp_path: Path
) -> None:
    """A lease that leaves no time to wait (_NO_WAIT): b's delivery, due while a's
    formats, is handed back with no attempt charged, and the next sweep sends it
    (release_delivery on both backends: tests/test_store.py)."""
    with _queued_behind_a_slow_formatting(shared_data, tmp_path, **_NO_WAIT) as q:
        assert q.sweeper.sweep_destination("b") == SweepResult()  # no turn: handed back
        waiting = q.b_delivery()
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 0, None)
        q.a_done()
        assert q.sweeper.sweep_destination("b") == SweepResult(sent=1)


def test_a_network_send_is_budgeted_at_its_timeout_s_within_the_lease(
    shared_data: Path, tmp_path: Path
) -> None:
    """b is an HL7 receiver with timeout_s 120: a lease covering the formatting process's
    start, the formatting deadline and those 120 s leaves b's delivery no time to wait for
    its turn behind a's slow formatting, so it is handed back untried, not sent so late in
    its lease that another sweep could retake it mid-send."""
    peer = Hl7TestPeer().start()
    hl7 = f"{{type: hl7, endpoint: 'mllp://127.0.0.1:{peer.port}', timeout_s: 120}}"
    routes = _ROUTES.replace("{type: file, directory: out-b}", hl7)
    lease = {"lease_s": START_ALLOWANCE_S + _TIMEOUT_S + 120, "format_timeout_s": _TIMEOUT_S}
    try:
        with _queued_behind_a_slow_formatting(shared_data, tmp_path, routes, **lease) as q:
            assert q.sweeper.sweep_destination("b") == SweepResult()  # no turn: handed back
            q.a_done()
            assert q.sweeper.sweep_destination("b") == SweepResult(sent=1)
    finally:
        peer.stop()
    assert len(peer.received) == 1


def test_a_delivery_handed_back_until_its_max_age_is_given_up_loudly(
    shared_data: Path, tmp_path: Path, caplog
) -> None:
    """Each handback is a WARNING and a counted metric, no attempt charged; one handed
    back past its destination's max_age is dead, with the site's alert, as one given up
    after failed tries: a formatting process kept busy cannot hold a report back unseen."""
    metrics = Metrics()
    with _queued_behind_a_slow_formatting(shared_data, tmp_path, **_NO_WAIT, metrics=metrics) as q:
        assert q.sweeper.sweep_destination("b") == SweepResult()  # handed back
        warnings = [r for r in caplog.records if "handed back untried" in r.getMessage()]
        assert [r.levelname for r in warnings] == ["WARNING"]
        assert metrics.get(m.DELIVERIES_HANDED_BACK) == 1
        q.now[0] = T0 + 3 * 86400  # the default retry policy's max_age
        assert q.sweeper.sweep_destination("b") == SweepResult(dead=1)
        dead = q.b_delivery()
        assert dead.state == "dead"
        assert dead.last_error.startswith("gave up after 72.0 h (max_age)")
        assert recorded_alert(q.alerted) == f"{DELIVERY_DEAD} delivery {dead.id} to b"
        assert metrics.get(m.DELIVERIES_DEAD) == 1


def test_a_delivery_waiting_for_its_turn_is_handed_back_when_the_gateway_stops(
    shared_data: Path, tmp_path: Path
) -> None:
    """b's delivery waits for a's slow formatting (a lease with minutes to wait); the
    gateway stops: b's sweep hands it back untried at once instead of waiting out its
    turn, so a stop is not held past the service manager's timeout."""
    with _queued_behind_a_slow_formatting(shared_data, tmp_path, format_timeout_s=_TIMEOUT_S) as q:
        second = sweep_in_thread(q.sweeper, "b")
        time.sleep(0.5)  # b waits for its turn
        q.sweeper.stop()
        second.join(timeout=3)
        assert not second.is_alive(), "b still waits for the formatting process after stop"
        waiting = q.b_delivery()
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 0, None)


def test_a_delivery_formatted_after_the_stop_is_handed_back_not_sent(
    shared_data: Path, tmp_path: Path
) -> None:
    """The gateway stops while a's delivery formats (its first since the start, so a's
    file writer is not open yet): no sender is opened after the stop, whose writes could
    hang on a stalled share past the service manager's timeout; the delivery goes back
    untried for the next start (on the base it was written)."""
    with _queued_behind_a_slow_formatting(shared_data, tmp_path, format_timeout_s=_TIMEOUT_S) as q:
        q.sweeper.stop()
        q.a_done()
        [a] = [d for d in q.store.list_deliveries() if d.destination == "a"]
        assert (a.state, a.attempts, a.last_error) == ("pending", 0, None)
        assert not list((tmp_path / "data" / "out-a").glob("*"))
