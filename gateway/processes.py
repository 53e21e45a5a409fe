"""The gateway's helper processes: the pipeline's workers and the delivery formatter.

They do the CPU work (decoding, measuring, rendering, building FHIR and HL7) so that the
server process, which receives DICOM, never waits behind it for the interpreter lock;
and they run at a lower priority, so a modality waiting for its C-STORE response comes
first when the cores are busy.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pydicom.config

_NICENESS = 10
# How long a new helper process may take to spawn and import its module before its first
# task, apart from that task's own deadline (a start is not the work): a few seconds
# normally, 30 s leaves room for a machine under load.
START_ALLOWANCE_S = 30.0


def new_process_pool(processes: int, preload: str) -> ProcessPoolExecutor:
    """A pool whose processes start now and import `preload` (a module) at once, so the
    first ECG after a restart does not wait seconds for a spawn and its imports."""
    # spawn, not fork: the server runs threads (pynetdicom, sqlite) at fork time.
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker_process,
        initargs=(logging.getLogger().getEffectiveLevel(), os.getpid()),
    )
    for _ in range(processes):  # each submit to a pool with no idle process starts one
        pool.submit(_import, preload)
    return pool


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's processes at once: a job that never returns holds its helper forever.
    ProcessPoolExecutor has no public way to do this before Python 3.14's terminate_workers,
    so its process table is read here, in the one place that knows about it."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()


def _import(module: str) -> None:
    importlib.import_module(module)


def init_worker_process(log_level: int, server_pid: int) -> None:
    """Set up a freshly spawned worker process like the server process.

    `server_pid` comes from the server: by the time a slow import finishes here the
    server may already be gone, and os.getppid() would name init instead.
    """
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s"
    )
    # pydicom's value-validation warnings quote the offending value (a name, an ID).
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    os.nice(_NICENESS)
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()


def _exit_with_server(server_pid: int) -> None:
    """A worker whose server was killed (kill -9) must not live on as an orphan, blocked
    forever writing a result that nobody reads."""
    while os.getppid() == server_pid:
        time.sleep(1.0)
    os._exit(0)
