"""The file outbox has a deadline of its own: a write that hangs (a network file system
that stalls) is abandoned at the destination's `timeout_s`, its writing process killed,
the delivery retried by its policy and then given up with an alert; meanwhile the other
destinations' deliveries go out.

Real parts: the real store, the real formatting and writing processes, the real files.
The hang is real too: the outbox directory is a FIFO nobody writes, so opening it blocks
in the kernel, as a stalled NFS mount does, until the test's guard releases it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import delivery_support as support
import pytest

from gateway.alerts import DELIVERY_DEAD
from gateway.delivery import open_sender
from gateway.delivery.base import SendInterrupted
from gateway.routing import FileDestination
from gateway.routing.router import check_routes

_TIMEOUT_S = 5.0  # the real write takes 2-20 ms; room for fsyncs on a busy 2-core machine

_ROUTES = f"""\
destinations:
  nfs:
    type: file
    directory: out-nfs
    timeout_s: {_TIMEOUT_S}
    retry: {{max_attempts: 2, backoff_base: 1s, backoff_cap: 1s}}
  local: {{type: file, directory: out-local}}
rules: [{{name: second-cart, match: {{calling_ae: CART2}}, destinations: [local]}}]
default: [nfs]
"""


def test_a_hung_outbox_write_is_abandoned_retried_given_up_and_blocks_no_other(
    shared_data: Path, tmp_path: Path
) -> None:
    data_dir, router, store = support.delivery_site(tmp_path, _ROUTES)
    sweeper, now, alerted = support.clocked_sweeper(store, router, tmp_path)
    outbox = data_dir / "out-nfs"
    os.mkfifo(outbox)  # opening it never returns: nobody writes to it
    try:
        stuck = support.enqueue(
            store, router, data_dir, support.package(shared_data, uid_suffix="1")
        )
        other = support.package(shared_data, uid_suffix="2", calling_ae="CART2", patient_id="P2")
        fine = support.enqueue(store, router, data_dir, other)
        started = time.monotonic()
        hung = support.sweep_in_thread(sweeper, "nfs")
        beside = support.sweep_in_thread(sweeper, "local")
        beside.join(timeout=60)
        assert not beside.is_alive(), "the other destination waits for the hung write"
        hung.join(timeout=60)
        assert not hung.is_alive(), "the sweep still waits for the hung write"
        assert time.monotonic() - started >= _TIMEOUT_S  # it was cut at its deadline

        deliveries = {d.job_id: d for d in store.list_deliveries()}
        assert (deliveries[fine].state, deliveries[fine].last_error) == ("sent", None)
        assert (data_dir / "out-local" / f"{other.sop_instance_uid}.hl7").is_file()
        assert deliveries[stuck].state == "failed"
        assert deliveries[stuck].last_error == (
            f"writing the files took longer than {_TIMEOUT_S:g} s (timeout_s): "
            "the writing process was stopped; trying again"
        )

        now[0] += 3600  # the retry is due: it hangs again, the policy's last try
        sweeper.sweep_destination("nfs")
        [dead] = [d for d in store.list_deliveries() if d.job_id == stuck]
        assert (
            dead.state == "dead" and "gave up after 2 tries: writing the files" in dead.last_error
        )
        assert support.recorded_alert(alerted) == f"{DELIVERY_DEAD} delivery {dead.id} to nfs"

        outbox.unlink()  # the file system is back
        later = support.package(shared_data, uid_suffix="3", patient_id="P3")
        support.enqueue(store, router, data_dir, later, now=now[0])
        assert sweeper.sweep_destination("nfs").sent == 1  # a new writing process
        assert (outbox / f"{later.sop_instance_uid}.pdf").read_bytes() == later.pdf
    finally:
        support.release_fifo(outbox)
        sweeper.close()
        store.close()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0.5", "greater than or equal to 1"),
        ("121", "less than or equal to 120"),  # with the formatting, within the lease
        ("soon", "a valid number"),
    ],
)
def test_an_outbox_timeout_out_of_range_is_refused_naming_the_key_and_line(
    tmp_path: Path, value: str, says: str
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(_ROUTES.replace(f"timeout_s: {_TIMEOUT_S}", f"timeout_s: {value}"))
    [issue] = check_routes(routes)
    assert (issue.line, issue.where) == (5, "destinations.nfs.timeout_s")
    assert says in issue.message


def test_the_writing_process_start_is_not_charged_to_the_write_deadline(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writing process that takes longer to start (spawn and imports, here slowed by a
    real sitecustomize in the new interpreter) than the write's 1 s timeout_s: the start
    has its own allowance, so the files are written at the first try."""
    slow = tmp_path / "slow-start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text("import time\ntime.sleep(2.5)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(slow), os.environ.get("PYTHONPATH", "")]))
    destination = FileDestination.model_validate(
        {"type": "file", "directory": str(tmp_path / "out"), "timeout_s": 1}
    )
    sender = open_sender("drop", destination)
    pkg = support.package(shared_data)
    try:
        started = time.monotonic()
        assert support.send_now(sender, pkg).startswith("wrote ")
        assert time.monotonic() - started >= 2.5  # the start was slow indeed
    finally:
        sender.close()
    assert (tmp_path / "out" / f"{pkg.sop_instance_uid}.pdf").read_bytes() == pkg.pdf


_SLOW_ROUTES = _ROUTES.replace(f"timeout_s: {_TIMEOUT_S}", "timeout_s: 120")  # the most allowed


def _wait_for_a_writer_hung_on(fifo: Path, wait_s: float = 60.0) -> None:
    """Until a process of this test's blocks opening `fifo` (the kernel's wait for a FIFO's
    other end), so the stop or reload below comes during the write, not before it."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                waits = (stat.parent / "wchan").read_text()
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
            if parent == os.getpid() and waits == "wait_for_partner":
                return
        time.sleep(0.1)
    raise AssertionError(f"no writer came to wait on {fifo} within {wait_s:g} s")


def test_a_stop_hands_a_hung_outbox_write_back_instead_of_waiting_for_its_timeout(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write hung on a stalled share, 120 s allowed: the gateway's stop (systemd gives
    it 120 s) ends the sweep within seconds and hands the delivery back untried, for the
    next start to write."""
    data_dir, router, store = support.delivery_site(tmp_path, _SLOW_ROUTES)
    sweeper, _now, _alerted = support.clocked_sweeper(store, router, tmp_path)
    outbox = data_dir / "out-nfs"
    os.mkfifo(outbox)
    caplog.set_level(logging.WARNING, logger="gateway.delivery.sweeper")
    try:
        job = support.enqueue(store, router, data_dir, support.package(shared_data))
        sweep = support.sweep_in_thread(sweeper, "nfs")
        _wait_for_a_writer_hung_on(outbox)
        stopped = time.monotonic()
        sweeper.stop()
        sweep.join(timeout=30)
        assert not sweep.is_alive(), "the stop waits for the hung write"
        assert time.monotonic() - stopped < 30
        support.assert_handed_back_untried(store, job)
        assert any(
            "handed back untried: the outbox was closed during the write" in r.getMessage()
            for r in caplog.records
        )
    finally:
        support.release_fifo(outbox)
        sweeper.close()
        store.close()


def test_a_reload_removing_a_file_destination_does_not_wait_for_its_hung_write(
    shared_data: Path, tmp_path: Path
) -> None:
    """The routes reload (a thread of the scheduler) closes the removed destination's
    writer at once; the sweep in the hung write hands its delivery back, which then fails
    visibly as unrouted."""
    data_dir, router, store = support.delivery_site(tmp_path, _SLOW_ROUTES)
    sweeper, _now, _alerted = support.clocked_sweeper(store, router, tmp_path)
    outbox = data_dir / "out-nfs"
    os.mkfifo(outbox)
    try:
        job = support.enqueue(store, router, data_dir, support.package(shared_data))
        sweep = support.sweep_in_thread(sweeper, "nfs")
        _wait_for_a_writer_hung_on(outbox)
        (tmp_path / "routes.yaml").write_text(support.ONLY_LOCAL_ROUTES)
        assert router.reload_if_changed()
        closing = threading.Thread(target=sweeper.close_removed_senders, daemon=True)
        closing.start()
        closing.join(timeout=30)
        assert not closing.is_alive(), "the reload waits for the removed destination's write"
        sweep.join(timeout=30)
        assert not sweep.is_alive(), "the sweep still waits for the hung write"
        [delivery] = [d for d in store.list_deliveries() if d.job_id == job]
        assert (delivery.state, delivery.attempts) == ("pending", 0)
        assert sweeper.sweep_unrouted().failed == 1
        [delivery] = [d for d in store.list_deliveries() if d.job_id == job]
        assert "is not in the routes file" in (delivery.last_error or "")
    finally:
        support.release_fifo(outbox)
        sweeper.close()
        store.close()


def test_a_closed_outbox_sends_nothing_and_says_so(shared_data: Path, tmp_path: Path) -> None:
    destination = FileDestination.model_validate(
        {"type": "file", "directory": str(tmp_path / "out")}
    )
    sender = open_sender("drop", destination)
    sender.close()
    with pytest.raises(SendInterrupted, match="the outbox was closed"):
        support.send_now(sender, support.package(shared_data))
    assert not (tmp_path / "out").exists()
