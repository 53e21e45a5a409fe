"""The three ways in, on one `ecg-gateway serve` in one run (bench/intake.py's last rows):
DICOM C-STORE from dcmtk storescu, a watched folder, and POST /upload from httpx.

The same DICOM ECGs (each under its own UID) go in by each channel, so what differs is
the channel: a burst (storescu over one association; all files renamed into the folder at
once; POSTs one after another on one keep-alive connection), objects/s from the first
submission to the last committed job; then a paced run at a steady rate, time from
submission (storescu started, file renamed into place, POST sent) to the job's commit,
p50 and p95. Each phase starts with the previous one's jobs processed. The folder is
polled every 0.1 s and a file is taken on the second poll that sees it unchanged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pydicom

from gateway.store import SqliteStore

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"
POLL_S = 0.1
CHANNELS = ("C-STORE (storescu)", "watched folder", "HTTP upload")


def run_channels(
    work: Path,
    files: list[Path],
    warm_up: list[Path],
    paced: int,
    rate: float,
    workers: int,
    helpers: dict[str, Callable],
) -> dict[str, dict[str, float]]:
    """Per channel: burst objects/s and paced p50/p95 to commit. `files` holds 3 bursts
    and 3 paced runs; `helpers` are intake.py's free_port, wait_for_echo, send_burst,
    and wait_until_done (one implementation of each)."""
    work.mkdir()
    folder, stage = work / "drop", work / "stage"
    folder.mkdir()
    stage.mkdir()
    data_dir = work / "gateway"
    port, upload_port = helpers["free_port"](), helpers["free_port"]()
    process = _start(work, data_dir, folder, port, upload_port, workers)
    per_channel = (len(files) - 3 * paced) // 3
    results = {}
    try:
        helpers["wait_for_echo"](port, process)
        helpers["send_burst"](port, warm_up)
        helpers["wait_until_done"](data_dir, len(warm_up))
        done = len(warm_up)
        client = httpx.Client(base_url=f"http://127.0.0.1:{upload_port}", timeout=60)
        submitters = {
            CHANNELS[0]: lambda batch: helpers["send_burst"](port, batch),
            CHANNELS[1]: lambda batch: _drop(batch, stage, folder),
            CHANNELS[2]: lambda batch: _post_all(client, batch),
        }
        for index, channel in enumerate(CHANNELS):
            chunk = files[index * (per_channel + paced) : (index + 1) * (per_channel + paced)]
            burst, steady = chunk[:per_channel], chunk[per_channel:]
            submit = submitters[channel]
            started = time.time()
            submit(burst)
            committed = _committed_at(data_dir, _uids(burst))
            done += len(burst)
            helpers["wait_until_done"](data_dir, done)
            submitted = _paced(steady, rate, submit)
            latency = np.array(
                [at - submitted[uid] for uid, at in _committed_at(data_dir, submitted).items()]
            )
            done += len(steady)
            helpers["wait_until_done"](data_dir, done)
            results[channel] = {
                "rate": len(burst) / (max(committed.values()) - started),
                "p50": float(np.percentile(latency, 50)),
                "p95": float(np.percentile(latency, 95)),
            }
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return results


def _start(
    work: Path, data_dir: Path, folder: Path, port: int, upload_port: int, workers: int
) -> subprocess.Popen:
    (work / "token").write_text(TOKEN)
    config = work / "gateway.yaml"
    config.write_text(
        f"workers: {workers}\nroutes: {REPO / 'config' / 'routes.yaml'}\n"
        f"watch_folders:\n  - {{path: {folder}, source: bench, after: delete, "
        f"poll_interval_s: {POLL_S}}}\n"
        f"upload:\n  enabled: true\n  port: {upload_port}\n"
        f"  tokens: [{{source: bench, token_file: {work / 'token'}}}]\n"
    )
    with open(work / "gateway.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "-c", str(config)]
            + ["--data-dir", str(data_dir), "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _drop(batch: list[Path], stage: Path, folder: Path) -> None:
    """Copied beside the folder first, then renamed in: each file appears complete."""
    staged = [shutil.copyfile(path, stage / path.name) for path in batch]
    for path in staged:
        os.rename(path, folder / Path(path).name)


def _post_all(client: httpx.Client, batch: list[Path]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/dicom"}
    for path in batch:
        response = client.post("/upload", content=path.read_bytes(), headers=headers)
        if response.status_code != 201:
            sys.exit(f"upload answered {response.status_code}: {response.text}")


def _paced(files: list[Path], rate: float, submit: Callable) -> dict[str, float]:
    """Submit one file every 1/rate seconds; UID -> when it was submitted."""
    submitted = {}
    start = time.perf_counter()
    for index, path in enumerate(files):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        submitted[_uids([path])[0]] = time.time()
        submit([path])
    return submitted


def _uids(files: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files]


def _committed_at(data_dir: Path, uids, timeout_s: float = 300.0) -> dict[str, float]:
    """UID -> when its job was committed, once every one of `uids` has one."""
    wanted = set(uids)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = SqliteStore(data_dir / "gateway.sqlite3")
        try:
            jobs = store.list_jobs(limit=100_000)
        finally:
            store.close()
        found = {j.sop_instance_uid: j.created_at for j in jobs if j.sop_instance_uid in wanted}
        if len(found) == len(wanted):
            return found
        time.sleep(0.05)
    sys.exit(f"only {len(found)} of {len(wanted)} objects were committed")
