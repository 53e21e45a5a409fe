"""Report packages for the routing and delivery tests, built from real files:
the acquisition context of a real DICOM ECG, a real ECG image and a PDF of it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
from example_reports import sinus_report
from PIL import Image

from gateway.alerts import AlertHook
from gateway.delivery import Artefacts, Sender, prepare
from gateway.delivery.base import SendInterrupted
from gateway.delivery.sweeper import DeliverySweeper
from gateway.processing.package import Association, ReportPackage
from gateway.processing.received_pages import metadata_from_dataset
from gateway.routing import Router
from gateway.store import NewJob, SqliteStore, Store
from gateway.store.order_records import OrderReference
from model.ecg import EcgMetadata
from model.report import Report

T0 = 1_800_000_000.0  # the tests' clock starts here
DICOM_ECG = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
ECG_IMAGE = "images/ecg-image-kit/ecg00015.png"

# The order an ECG was matched to, as the order matching hands it to the deliverers.
ORDER = OrderReference(
    placer_order_number="PO-1001",
    placer_authority="EPIC",
    filler_order_number="FO-77",
    filler_authority="ECGGW",
    reconciled=False,  # matched when the ECG arrived, not by a late order
    accession_number="ACC-77",
    procedure_code="93000",
    procedure_text="Electrocardiogram, 12 lead",
    procedure_coding_system="C4",
)


def real_metadata(data: Path) -> EcgMetadata:
    """The patient, study and device modules of the real DICOM ECG."""
    ds = pydicom.dcmread(data / DICOM_ECG, stop_before_pixels=True)
    return metadata_from_dataset(ds).with_updates(source_format="dicom")


def real_image(data: Path) -> tuple[bytes, bytes]:
    """(PNG, PDF) of a real photographed 12-lead ECG."""
    png = (data / ECG_IMAGE).read_bytes()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="PDF")
    return png, buffer.getvalue()


def package(
    data: Path,
    *,
    job_id: int = 1,
    report: Report | None = None,
    uid_suffix: str = "",
    calling_ae: str = "CART1",
    order: OrderReference | None = None,
    **metadata_changes,
) -> ReportPackage:
    meta = real_metadata(data)
    if uid_suffix:
        metadata_changes.setdefault("sop_instance_uid", f"{meta.sop_instance_uid}.{uid_suffix}")
    png, pdf = real_image(data)
    return ReportPackage(
        job_id=job_id,
        kind="ecg-waveform",
        metadata=replace(meta, **metadata_changes),
        report=report or sinus_report(),
        association=Association(calling_ae, "ECGGW", "127.0.0.1"),
        png=png,
        pdf=pdf,
        order=order,
    )


def send_now(sender: Sender, pkg: ReportPackage) -> str:
    """Prepare and send in this thread, as the sweeper does without a formatting process."""
    return sender.send(pkg, prepare(sender.name, sender.destination, pkg))


def enqueue(
    store: Store, router: Router, data_dir: Path, pkg: ReportPackage, now: float = T0
) -> int:
    """What the pipeline does: a job, its saved package, its deliveries in one commit."""
    uid = pkg.metadata.sop_instance_uid
    spool = data_dir / "spool" / f"{uid}.dcm"
    spool.parent.mkdir(exist_ok=True)
    spool.write_bytes(b"received object")
    store.add_job(
        NewJob(
            uid,
            pkg.metadata.sop_class_uid or "",
            hashlib.sha256(uid.encode()).hexdigest(),
            str(spool),
            pkg.kind,
            pkg.association.calling_ae,
            pkg.association.called_ae,
            pkg.association.peer_address,
        ),
        now=now,
    )
    job = store.lease_job("test-worker", 60, 3, now=now)
    pkg.job_id = job.id
    report_dir = data_dir / "reports" / str(job.id)
    pkg.save(report_dir)
    assert store.complete_job(
        job.id, "test-worker", str(report_dir), router.destinations_for(pkg), now=now
    )
    return job.id


def sweep_in_thread(sweeper: DeliverySweeper, destination: str) -> threading.Thread:
    thread = threading.Thread(target=sweeper.sweep_destination, args=(destination,), daemon=True)
    thread.start()
    return thread


# A routes file without the destination under test: what a reload that removed it reads.
ONLY_LOCAL_ROUTES = """\
destinations:
  local: {type: file, directory: out-local}
rules: []
default: [local]
"""


def close_during_send(
    sweeper: DeliverySweeper,
    router: Router,
    closed_by: str,
    sweep: threading.Thread,
    wait_s: float,
) -> None:
    """While `sweep` sends: a routes reload that removed its destination ("reload": the
    routes file rewritten as ONLY_LOCAL_ROUTES) or the gateway's stop ("stop"), from a
    thread of its own as the scheduler's and the signal handler's are; both it and the
    sweep must end within `wait_s`."""
    started = time.monotonic()
    if closed_by == "reload":
        router.path.write_text(ONLY_LOCAL_ROUTES)
        assert router.reload_if_changed()
        closing = threading.Thread(target=sweeper.close_removed_senders, daemon=True)
    else:
        closing = threading.Thread(target=sweeper.stop, daemon=True)
    closing.start()
    closing.join(timeout=wait_s)
    assert not closing.is_alive(), f"the {closed_by} waits for the send in progress"
    sweep.join(timeout=wait_s)
    assert not sweep.is_alive(), "the sweep still waits for the send"
    assert time.monotonic() - started < wait_s


def assert_handed_back_untried(store: Store, job: int) -> None:
    [delivery] = [d for d in store.list_deliveries() if d.job_id == job]
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 0, None)


def send_in_thread(
    sender: Sender, pkg: ReportPackage, artefacts: Artefacts
) -> tuple[threading.Thread, list[BaseException | str]]:
    """The send running in a thread of its own, and what it ended with (once it has)."""
    outcome: list[BaseException | str] = []

    def send() -> None:
        try:
            outcome.append(sender.send(pkg, artefacts))
        except Exception as exc:  # noqa: BLE001 - what the send ended with is the result
            outcome.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, outcome


def assert_the_close_ends_the_send(
    sender: Sender, sending: threading.Thread, outcome: list[BaseException | str], wait_s: float
) -> None:
    """The sender closed (as a reload or a stop does) while `sending` waits: the send ends
    within `wait_s`, handed back (SendInterrupted)."""
    started = time.monotonic()
    sender.close()
    sending.join(timeout=wait_s)
    assert not sending.is_alive(), "the send goes on after its sender's close"
    assert time.monotonic() - started < wait_s
    [ended] = outcome
    assert isinstance(ended, SendInterrupted), ended


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A local port whose listen queue is full: a connection to it waits, as to a host
    that drops the SYN."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = [socket.socket() for _ in range(3)]
    for filler in queued:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    try:
        yield port
    finally:
        for filler in queued:
            filler.close()
        listener.close()


def release_fifo(fifo: Path) -> None:
    """Where a helper process still waits on the FIFO of a hang test (the fault came back),
    let it go, so the test fails instead of leaving a process behind."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader: the process waiting on it was stopped, as it should be
        pass


def recording_alerts(path: Path) -> AlertHook:
    """The site's alert command: a real command appending its event and detail to `path`."""
    record = (
        "import os, sys; e = os.environ;"
        " open(sys.argv[1], 'a').write(e['ECG_GATEWAY_EVENT'] + ' ' + e['ECG_GATEWAY_DETAIL'])"
    )
    return AlertHook((sys.executable, "-c", record, str(path)))


def recorded_alert(path: Path, wait_s: float = 10.0) -> str:
    """What the alert command recorded, once it has run."""
    deadline = time.monotonic() + wait_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.read_text()


def delivery_site(tmp_path: Path, routes: str) -> tuple[Path, Router, SqliteStore]:
    """A data directory with `routes` as its routes file, its router and a SQLite store."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "routes.yaml").write_text(routes)
    router = Router(tmp_path / "routes.yaml", data_dir)
    return data_dir, router, SqliteStore(data_dir / "gateway.sqlite3")


def clocked_sweeper(
    store: Store, router: Router, tmp_path: Path, **options
) -> tuple[DeliverySweeper, list[float], Path]:
    """A sweeper with a formatting process, as the server's; the test's clock (`now[0]`,
    from T0) it runs on; the file its alert command records to."""
    now, alerted = [T0], tmp_path / "alerts"
    sweeper = DeliverySweeper(
        store,
        router,
        clock=lambda: now[0],
        formatting_process=True,
        alerts=recording_alerts(alerted),
        **options,
    )
    return sweeper, now, alerted
