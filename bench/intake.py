"""Intake and end-to-end benchmark: the gateway against dcmtk's storescp, same run.

1. Burst: dcmtk storescu sends N ECG objects over ONE association to (a) dcmtk storescp
   writing to disk and (b) `ecg-gateway serve`. Objects per second for each, and the
   ratio (goal >= 0.5). The gateway's rate includes what storescp does not do: parsing
   and checking every object, fsync of file and directory, and a committed job row.
   The gateway is warmed up first with one ECG per worker, processed before the burst
   starts: a gateway runs for days, and the one-off start of its worker processes
   (spawn and imports) would otherwise land inside the few seconds of the burst.
   A third row is the ceiling of any pynetdicom SCP here: the gateway's AE policy
   with a C-STORE handler that stores nothing and answers success at once; a fourth
   is the gateway's own intake (checks, fsync'd spool, committed job) with no workers
   processing meanwhile, which separates the cost of durability from that of sharing
   two cores with processing.
2. Throughput: ECGs fully processed per second over that burst (decode, measure,
   render PNG and PDF, save the package, queue the delivery), goal >= 20 on 2 cores;
   and ECGs delivered per second (the shipped outbox destination: FHIR Bundle, HL7
   ORU^R01, PNG and PDF written and fsync'd), which is what the EHR side sees.
3. Latency: ECGs sent one per association at a steady rate below capacity; C-STORE
   (job committed) -> finished report, p50 and p95 (goal p95 <= 1 s); and C-STORE ->
   delivered to the outbox.
4. Channels (bench/intake_channels.py): the same ECGs into a second gateway by C-STORE
   from storescu, by a watched folder and by POST /upload, in bursts (objects/s to
   commit) and paced at the same rate (submission -> job committed, p50 / p95).

    .venv/bin/python bench/intake.py [--objects 200] [--paced 40] [--rate 8]

ECGs are PTB-XL records (500 Hz, 12 leads, 10 s) written as DICOM 12-lead ECG
Waveform objects by model/dicom_write.py, each under its own SOP Instance UID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid
from pynetdicom import evt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intake_channels import CHANNELS, run_channels
from machine import cpu_name

import model
from gateway import metrics as m
from gateway.config import GatewayConfig
from gateway.intake.accept import Intake
from gateway.intake.dicom_scp import handle_store, start_server
from gateway.metrics import Metrics
from gateway.store import SqliteStore
from model.dicom_write import ecg_to_dicom

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
PTBXL = DATA / "ptbxl" / "records500" / "00000"
# Debian's dcmtk leaves Nagle's algorithm on unless TCP_NODELAY=1: each small DIMSE
# message then waits ~40 ms for a delayed ACK and both peers measure only that.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200, help="ECGs in the burst")
    parser.add_argument("--paced", type=int, default=40, help="ECGs in the latency run")
    parser.add_argument("--rate", type=float, default=8.0, help="ECGs/s in the latency run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for tool in ("storescu", "storescp", "echoscu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install dcmtk")
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        work = Path(tmp)
        per_run = args.workers + args.objects + args.paced
        files = make_ecgs(work / "in", per_run + args.workers + 3 * (args.objects + args.paced))
        files, by_channel = files[:per_run], files[per_run:]
        warm_up, files = files[: args.workers], files[args.workers :]
        burst, paced = files[: args.objects], files[args.objects :]
        storescp_rate = run_storescp(work / "storescp", burst)
        ceiling_rate = run_pynetdicom_ceiling(burst)
        intake_only_rate = run_intake_only(work / "intake-only", burst)
        gateway = run_gateway(work, warm_up, burst, paced, args.rate, args.workers)
        channels = run_channels(
            work / "channels",
            by_channel[args.workers :],
            by_channel[: args.workers],
            args.paced,
            args.rate,
            args.workers,
            {
                "free_port": free_port,
                "wait_for_echo": wait_for_echo,
                "send_burst": send_burst,
                "wait_until_done": wait_until_done,
            },
        )
    print_table(args, storescp_rate, ceiling_rate, intake_only_rate, gateway)
    print_channels(args, channels)
    return 0


def make_ecgs(directory: Path, count: int) -> list[Path]:
    """PTB-XL records as DICOM ECGs, reused round-robin, each copy with a new UID."""

    directory.mkdir(parents=True)
    records = sorted(p.with_suffix("") for p in PTBXL.glob("*_hr.hea"))[: min(count, 50)]
    templates = [ecg_to_dicom(model.load(record)) for record in records]
    files = []
    for index in range(count):
        ds = templates[index % len(templates)]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = directory / f"ecg-{index:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_echo(port: int, process: subprocess.Popen) -> None:
    for _ in range(150):
        if process.poll() is not None:
            sys.exit(f"peer on port {port} exited with {process.returncode}")
        echo = subprocess.run(
            ["echoscu", "127.0.0.1", str(port)], capture_output=True, check=False, env=DCMTK_ENV
        )
        if echo.returncode == 0:
            return
        time.sleep(0.2)
    sys.exit(f"nothing answers on port {port}")


def send_burst(port: int, files: list[Path]) -> float:
    """Seconds for storescu to send all files over one association."""
    started = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "BENCH", "127.0.0.1", str(port), *map(str, files)],
        check=True,
        capture_output=True,
        env=DCMTK_ENV,
    )
    return time.perf_counter() - started


def send_paced(port: int, files: list[Path], rate: float) -> None:
    """One association per ECG, started every 1/rate seconds, like carts in a ward."""
    start = time.perf_counter()
    for index, path in enumerate(files):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        subprocess.run(
            ["storescu", "-aet", "BENCH", "127.0.0.1", str(port), str(path)],
            check=True,
            capture_output=True,
            env=DCMTK_ENV,
        )


def run_storescp(directory: Path, files: list[Path]) -> float:
    directory.mkdir()
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "--output-directory", str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    try:
        wait_for_echo(port, process)
        seconds = send_burst(port, files)
    finally:
        process.terminate()
        process.wait(timeout=10)
    stored = len(list(directory.iterdir()))
    if stored != len(files):
        sys.exit(f"storescp stored {stored} of {len(files)} objects")
    return len(files) / seconds


def run_pynetdicom_ceiling(files: list[Path]) -> float:
    """Objects/s into the gateway's AE and server class (same contexts, PDU size and
    TCP_NODELAY) when the C-STORE handler does no work at all."""
    return run_in_process_scp(files, (evt.EVT_C_STORE, lambda event: 0x0000), Metrics())


def run_intake_only(directory: Path, files: list[Path]) -> float:
    """Objects/s into the gateway's C-STORE handler and intake, nothing processing."""
    spool = directory / "spool"
    spool.mkdir(parents=True)
    store = SqliteStore(directory / "gateway.sqlite3")
    metrics = Metrics()
    intake = Intake(store, spool, metrics)
    try:
        rate = run_in_process_scp(
            files, (evt.EVT_C_STORE, handle_store, [intake, metrics]), metrics
        )
    finally:
        store.close()
    if metrics.get(m.OBJECTS_ACCEPTED) != len(files):
        sys.exit(f"intake accepted {metrics.get(m.OBJECTS_ACCEPTED)} of {len(files)} objects")
    return rate


def run_in_process_scp(files: list[Path], store_handler: tuple, metrics: Metrics) -> float:
    scp = start_server(
        GatewayConfig(bind_address="127.0.0.1", port=free_port()), [store_handler], metrics
    )
    try:
        return len(files) / send_burst(scp.port, files)
    finally:
        scp.stop()


def run_gateway(
    work: Path,
    warm_up: list[Path],
    burst: list[Path],
    paced: list[Path],
    rate: float,
    workers: int,
    extra_config: str = "",
) -> dict[str, float]:
    """`extra_config`: more gateway.yaml lines (bench/metrics_overhead.py's admin, audit)."""
    data_dir = work / "gateway"
    config = work / "gateway.yaml"
    config.write_text(
        f"workers: {workers}\nroutes: {REPO / 'config' / 'routes.yaml'}\n{extra_config}"
    )
    port = free_port()
    with open(work / "gateway.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "-c",
                str(config),
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for_echo(port, process)
        send_burst(port, warm_up)
        wait_until_done(data_dir, len(warm_up))
        last_warm_up = max(j.id for j in jobs_done(data_dir))
        burst_s = send_burst(port, burst)
        wait_until_done(data_dir, len(warm_up) + len(burst))
        burst_jobs = [j for j in jobs_done(data_dir) if j.id > last_warm_up]
        send_paced(port, paced, rate)
        wait_until_done(data_dir, len(warm_up) + len(burst) + len(paced))
        all_jobs = jobs_done(data_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    sent = delivered_at(data_dir)
    first_created = min(j.created_at for j in burst_jobs)
    last_done = max(j.updated_at for j in burst_jobs)
    last_sent = max(sent[j.id] for j in burst_jobs)
    paced_jobs = [j for j in all_jobs if j.id > max(b.id for b in burst_jobs)]
    latencies = np.array([j.updated_at - j.created_at for j in paced_jobs])
    to_outbox = np.array([sent[j.id] - j.created_at for j in paced_jobs])
    return {
        "intake_rate": len(burst) / burst_s,
        "processed_rate": len(burst) / (last_done - first_created),
        "delivered_rate": len(burst) / (last_sent - first_created),
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "delivered_p50": float(np.percentile(to_outbox, 50)),
        "delivered_p95": float(np.percentile(to_outbox, 95)),
    }


def wait_until_done(data_dir: Path, expected: int, timeout_s: float = 900.0) -> None:
    """Until `expected` jobs are done and each one's delivery is sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = count_jobs(data_dir)
        if counts.get("failed"):
            sys.exit(f"{counts['failed']} jobs failed; see ecg-gateway jobs list")
        if counts.get("done", 0) >= expected and len(delivered_at(data_dir)) >= expected:
            return
        time.sleep(0.1)
    sys.exit(f"jobs not finished after {timeout_s} s: {count_jobs(data_dir)}")


def delivered_at(data_dir: Path) -> dict[int, float]:
    """Job id -> when its (one, outbox) delivery was sent."""
    store = SqliteStore(data_dir / "gateway.sqlite3")
    try:
        deliveries = store.list_deliveries(limit=100_000)
    finally:
        store.close()
    if any(d.state == "dead" for d in deliveries):
        sys.exit("a delivery is dead; see ecg-gateway deliveries list")
    return {d.job_id: d.sent_at for d in deliveries if d.sent_at is not None}


def count_jobs(data_dir: Path) -> dict[str, int]:
    store = SqliteStore(data_dir / "gateway.sqlite3")
    try:
        return store.count_jobs()
    finally:
        store.close()


def jobs_done(data_dir: Path) -> list:
    store = SqliteStore(data_dir / "gateway.sqlite3")
    try:
        return store.list_jobs(state="done", limit=100_000)
    finally:
        store.close()


def print_table(
    args: argparse.Namespace,
    storescp_rate: float,
    ceiling_rate: float,
    intake_only_rate: float,
    gw: dict[str, float],
) -> None:
    ratio = gw["intake_rate"] / storescp_rate
    print(
        f"\nIntake benchmark, {date.today().isoformat()}, {cpu_name()}, "
        f"{os.cpu_count()} cores, gateway workers {args.workers}\n"
    )
    print("| measure | dcmtk storescp | ECG Gateway | goal |")
    print("|---|---|---|---|")
    print(
        f"| intake, {args.objects} ECGs over one association (objects/s) "
        f"| {storescp_rate:.1f} | {gw['intake_rate']:.1f} (ratio {ratio:.2f}) | ratio >= 0.5 |"
    )
    print(
        f"| ceiling: pynetdicom SCP whose handler stores nothing (objects/s) | - "
        f"| {ceiling_rate:.1f} (ratio {ceiling_rate / storescp_rate:.2f}) | - |"
    )
    print(
        f"| the gateway's intake alone, nothing processing (objects/s) | - "
        f"| {intake_only_rate:.1f} (ratio {intake_only_rate / storescp_rate:.2f}) | - |"
    )
    print(f"| fully processed (ECGs/s) | - | {gw['processed_rate']:.1f} | >= 20 |")
    print(f"| delivered to the outbox (ECGs/s) | - | {gw['delivered_rate']:.1f} | - |")
    print(
        f"| C-STORE -> report latency at {args.rate:g} ECGs/s, p50 / p95 (s) "
        f"| - | {gw['p50']:.2f} / {gw['p95']:.2f} | p95 <= 1 |"
    )
    print(
        f"| C-STORE -> delivered to the outbox at {args.rate:g} ECGs/s, p50 / p95 (s) "
        f"| - | {gw['delivered_p50']:.2f} / {gw['delivered_p95']:.2f} | - |"
    )


def print_channels(args: argparse.Namespace, channels: dict[str, dict[str, float]]) -> None:
    rates = " / ".join(f"{channels[c]['rate']:.1f}" for c in CHANNELS)
    latencies = " / ".join(f"{channels[c]['p50']:.2f}, {channels[c]['p95']:.2f}" for c in CHANNELS)
    print(
        f"| by channel, {args.objects} ECGs in a burst: {' / '.join(CHANNELS)} (objects/s "
        f"to commit) | - | {rates} | - |"
    )
    print(
        f"| by channel at {args.rate:g} ECGs/s, submitted -> job committed, p50, p95 (s): "
        f"{' / '.join(CHANNELS)} | - | {latencies} | - |"
    )


if __name__ == "__main__":
    sys.exit(main())
