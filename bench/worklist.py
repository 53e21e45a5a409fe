"""Worklist C-FIND latency with 10,000 open orders: the gateway against dcmtk's wlmscpfs.

The same orders are served twice: by the gateway's Modality Worklist SCP (its own
process, orders in its SQLite store, put there through the store API as the HL7 listener
does) and, as the baseline, by dcmtk's `wlmscpfs` (single-process mode) reading one `.wl`
file per order, written with pydicom from the gateway's own worklist items, so both hold
the same attributes. One pynetdicom client asks both the same queries over one
association each, with the keys a cart asks for, and times each C-FIND from the request
to the final response, the two servers asked in turn: median and p95 per query shape,
and the number of matches (which must agree between the two).

    .venv/bin/python bench/worklist.py [--orders 10000] [--repeat 20]

The orders: 10 days of schedule around today, 20 carts (CART01..CART20), one patient
each, family names from 50, so a day at one cart is ~50 orders and a family name ~200.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

from gateway.intake.worklist_record import ITEM_KEYS, response, worklist_item
from gateway.store import SqliteStore
from gateway.store.order_records import NewOrder, Order, OrderReference
from tests.worklist_support import CART_KEYS, CART_SPS_KEYS

CALLED_AE = "ECGGW"
FAMILIES = [f"FAM{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(50)]
GIVEN = ["ANNA", "BEN", "CARLA", "DAVID", "EVA", "FELIX", "GRETA", "HANS", "IDA", "JONAS"]


def make_orders(count: int, today: date, seed: int = 7) -> list[NewOrder]:
    rng = random.Random(seed)
    first = datetime.combine(today - timedelta(days=4), datetime.min.time())
    orders = []
    for number in range(count):
        when = first + timedelta(days=number % 10, minutes=rng.randrange(7 * 60, 19 * 60))
        reference = OrderReference(
            placer_order_number=f"PL{number:06d}",
            placer_authority="EHR",
            accession_number=f"A{number:07d}",
            procedure_code="ECG12",
            procedure_text="12-lead resting ECG",
        )
        orders.append(
            NewOrder(
                reference=reference,
                patient_id=f"P{number:06d}",
                patient_id_issuer="HOSP",
                patient_name=f"{rng.choice(FAMILIES)}^{rng.choice(GIVEN)}",
                birth_date=f"19{rng.randrange(30, 99)}0{rng.randrange(1, 9)}1{rng.randrange(0, 9)}",
                sex=rng.choice("MF"),
                referring_physician="WHO^DOCTOR",
                scheduled_at=when.timestamp(),
                station_ae=f"CART{1 + number // 10 % 20:02d}",
            )
        )
    return orders


def write_wl_files(orders: list[Order], folder: Path, now: float) -> None:
    """One dcmtk worklist file per order, holding the gateway's whole worklist item."""
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for order in orders:
        dataset = response(worklist_item(order, now), ITEM_KEYS)
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
        dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.save_as(folder / f"order{order.id:06d}.wl", enforce_file_format=True)


def serve_gateway(data_dir: Path, port: int, ready, stop) -> None:
    """The gateway's SCP (worklist on) in its own process, as `ecg-gateway serve` runs it."""
    import pydicom.config

    from gateway.config import GatewayConfig
    from gateway.intake.accept import Intake
    from gateway.intake.dicom_scp import start_scp
    from gateway.metrics import Metrics

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.basicConfig(level=logging.WARNING)
    config = GatewayConfig(
        data_dir=data_dir,
        port=port,
        bind_address="127.0.0.1",
        worklist={"enabled": True, "max_results": 100_000},
    )
    store = SqliteStore(config.store_path)
    metrics = Metrics()
    scp = start_scp(config, Intake(store, config.spool_dir, metrics, 0, lambda: None), metrics)
    ready.set()
    stop.wait()
    scp.stop(grace_s=1)
    store.close()


def query(today: str, sps: dict[str, str], **keys: str) -> Dataset:
    """A cart's query: its return keys, with `keys` and `sps` as matching values."""
    identifier = Dataset()
    for keyword in CART_KEYS:
        setattr(identifier, keyword, keys.get(keyword, ""))
    step = Dataset()
    for keyword in CART_SPS_KEYS:
        setattr(step, keyword, sps.get(keyword, ""))
    identifier.ScheduledProcedureStepSequence = Sequence([step])
    return identifier


def shapes(today: str) -> list[tuple[str, Dataset]]:
    return [
        (
            "station AE + today",
            query(
                today,
                {"ScheduledStationAETitle": "CART07", "ScheduledProcedureStepStartDate": today},
            ),
        ),
        ("patient ID", query(today, {}, PatientID="P004242")),
        ("patient name wildcard (FAMAB*)", query(today, {}, PatientName="FAMAB*")),
        # Both match Patient's Name case-sensitively (the gateway unless
        # worklist.names_ignore_case): no match, and the counts must agree.
        ("patient name wildcard, lower case (famab*)", query(today, {}, PatientName="famab*")),
        ("today, every station", query(today, {"ScheduledProcedureStepStartDate": today})),
    ]


def associate(port: int):
    ae = AE(ae_title="CART07")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.dimse_timeout = 300
    assoc = ae.associate("127.0.0.1", port, ae_title=CALLED_AE)
    if not assoc.is_established:
        raise RuntimeError(f"no association with port {port}")
    # The request goes out in several small writes: with Nagle on, each C-FIND would wait
    # for the server's delayed ACK (~40 ms), whichever server it is.
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def timed_find(assoc, identifier: Dataset) -> tuple[float, int]:
    """Seconds for one C-FIND (request to final response), and its matches."""
    started = time.perf_counter()
    answers = list(assoc.send_c_find(identifier, ModalityWorklistInformationFind))
    seconds = time.perf_counter() - started
    final = answers[-1][0].get("Status")
    if final != 0x0000:
        raise RuntimeError(f"final status {final!r}")
    return seconds, len(answers) - 1


def compare(gateway_port: int, dcmtk_port: int, identifier: Dataset, repeat: int) -> tuple:
    """(dcmtk seconds, matches, gateway seconds, matches): the two asked in turn, one
    association each, so that a change in the machine's load falls on both alike."""
    ours_assoc, theirs_assoc = associate(gateway_port), associate(dcmtk_port)
    ours, theirs = [], []
    try:
        for _ in range(repeat):
            seconds, ours_n = timed_find(ours_assoc, identifier)
            ours.append(seconds)
            seconds, theirs_n = timed_find(theirs_assoc, identifier)
            theirs.append(seconds)
    finally:
        ours_assoc.release()
        theirs_assoc.release()
    return theirs, theirs_n, ours, ours_n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wlmscpfs") is None:
        sys.exit("dcmtk's wlmscpfs is not installed (Debian package dcmtk)")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-worklist-"))
    today = date.today()
    try:
        started = time.perf_counter()
        store = SqliteStore(work / "data" / "gateway.sqlite3")
        for new in make_orders(args.orders, today):
            store.add_order(new)
        orders = store.open_orders()
        store.close()
        stored_s = time.perf_counter() - started
        write_wl_files(orders, work / "wlist" / CALLED_AE, time.time())
        print(f"{len(orders)} open orders stored in {stored_s:.1f} s, .wl files written")

        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        gateway_port, dcmtk_port = free_port(), free_port()
        gateway = context.Process(
            target=serve_gateway, args=(work / "data", gateway_port, ready, stop)
        )
        gateway.start()
        dcmtk = subprocess.Popen(
            ["wlmscpfs", "-s", "-dfr", "-dfp", str(work / "wlist"), str(dcmtk_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not ready.wait(60):
                sys.exit("the gateway's SCP did not start")
            time.sleep(0.5)  # wlmscpfs listening
            rows = []
            for name, identifier in shapes(today.strftime("%Y%m%d")):
                rows.append((name, *compare(gateway_port, dcmtk_port, identifier, args.repeat)))
        finally:
            stop.set()
            gateway.join(10)
            dcmtk.terminate()
            dcmtk.wait(10)
        print_table(rows, args, today)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_table(rows: list, args: argparse.Namespace, today: date) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{today.isoformat()}, `.venv/bin/python bench/worklist.py --orders {args.orders}"
        f" --repeat {args.repeat}`, {cpu_name()}, {os.cpu_count()} cores, load average {load}\n"
    )
    print("| query | matches (dcmtk / gateway) | dcmtk wlmscpfs, median / p95 (ms) "
          "| ECG Gateway, median / p95 (ms) | gateway / dcmtk (median) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, theirs, theirs_n, ours, ours_n in rows:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(
            f"| {name} | {theirs_n} / {ours_n} "
            f"| {statistics.median(theirs) * 1000:.1f} / {p95(theirs) * 1000:.1f} "
            f"| {statistics.median(ours) * 1000:.1f} / {p95(ours) * 1000:.1f} | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
