"""`ecg-gateway serve`: config -> store -> workers -> DICOM SCP, watched folders and the
upload endpoint -> wait for a signal.

Shutdown order is the reverse: stop taking associations, files and uploads (those in
progress may finish), let the workers finish or release their jobs, record the counters,
close the store. A `kill -9` skips all of that and loses nothing: accepted objects are in the
spool and the store, and their leases are released at the next start.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom.config

from gateway.alerts import AlertHook
from gateway.config import GatewayConfig, log_security_posture
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.intake.dicom_scp import start_scp
from gateway.intake.folders import start_watching
from gateway.intake.upload import start_upload
from gateway.metrics import Metrics
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import Router as RoutesRouter
from gateway.scheduler import start_delivery
from gateway.store import open_store
from model.engine import EngineChoice
from model.vlm.settings import VlmUnavailable

log = logging.getLogger(__name__)

_METRICS_EVERY_S = 60.0


class GatewayBusy(Exception):
    """Another gateway process already serves this data directory."""


def serve(config: GatewayConfig) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit code (0)."""
    _keep_patient_data_out_of_logs()
    log_security_posture(config)
    ensure_dir(config.data_dir)
    with _data_dir_lock(config.data_dir):
        return _run(config)


def _run(config: GatewayConfig) -> int:
    router = make_router(config)  # first: a missing or invalid routes file stops the start
    for directory in (config.spool_dir, config.reports_dir, config.outbox_dir):
        ensure_dir(directory)
    node = node_name(config.data_dir)
    store = open_store(config, node=node)
    log.info("store: %s; this node: %s", store, node)
    requeued = store.recover_after_restart()
    if requeued:
        log.warning("requeued %d jobs left in progress by a previous run", requeued)
    metrics = Metrics()
    alerts = AlertHook(config.alert_command)
    delivery = start_delivery(
        store, router, metrics, config.retention_days, config.outbox_dir, alerts
    )
    workers = Workers(
        store,
        router,
        WorkerSettings(
            reports_dir=config.reports_dir,
            node=node,
            engine=engine_choice(config),
            workers=config.workers,
            lease_s=job_lease_s(config),
            max_attempts=config.job_max_attempts,
            max_worker_deaths=config.job_max_worker_deaths,
            hold_retry_s=config.hold_retry_s,
            vlm=config.vlm,
        ),
        metrics,
        on_done=delivery.deliver_soon,
        alerts=alerts,
    )
    intake = Intake(
        store, config.spool_dir, metrics, config.min_free_disk_mb * 1024 * 1024, workers.wake
    )
    workers.start()
    stop = _stop_on_signals()
    try:
        scp = start_scp(config, intake, metrics)
        intakes = [scp, *_start_file_intakes(config, intake, scp)]
    except BaseException:
        workers.stop(grace_s=5.0)
        delivery.shutdown()
        store.close()
        raise
    log.info(
        "listening on %s:%d as %s (TLS %s), %d workers, engine %s, data in %s",
        config.bind_address,
        scp.port,
        config.ae_title,
        "on" if config.tls.enabled else "off",
        config.workers,
        config.engine,
        config.data_dir,
    )
    _wait(stop, metrics, config.metrics_path)
    log.info("stopping: no new associations; finishing work in progress")
    for started in intakes:
        started.stop()
    workers.stop()
    delivery.shutdown()
    _record_metrics(metrics, config.metrics_path)
    store.close()
    log.info("stopped")
    return 0


def _start_file_intakes(config: GatewayConfig, intake: Intake, scp: object) -> list:
    """The watched folders and the upload endpoint, each with a `stop()`; if one cannot
    start, what has started (the SCP included) is stopped again."""
    started = [scp]
    try:
        started.append(start_watching(config.watch_folders, intake, config.data_dir))
        upload = start_upload(config.upload, intake)
        if upload is not None:
            started.append(upload)
    except BaseException:
        for running in reversed(started):
            running.stop()
        raise
    return started[1:]


def job_lease_s(config: GatewayConfig) -> float:
    """A lease outlasting a slow VLM job: model load plus one generation bounded by
    vlm.timeout_s, so a job in flight is never retaken by a second worker meanwhile."""
    if config.engine == "measure":
        return config.job_lease_s
    return max(config.job_lease_s, 2 * config.vlm.timeout_s + 60.0)


def node_name(data_dir: Path) -> str:
    """This gateway node's name in leases: the host and which data directory (one
    gateway per data directory, see _data_dir_lock), the same across its restarts."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def engine_choice(config: GatewayConfig) -> EngineChoice:
    """The workers' engine, its model checked now so a missing one is reported at start."""
    choice = EngineChoice(
        config.engine, config.vlm_settings, config.engine_unavailable, config.statement_limits
    )
    if choice.vlm is not None:
        from model.vlm.loading import check_vlm_files  # torch: only when a VLM is configured

        try:
            check_vlm_files(choice.vlm.load_spec())
        except VlmUnavailable as exc:
            then = (
                "jobs are held until it is provided"
                if choice.on_unavailable == "hold"
                else "the measurement engine runs instead and each report says so"
            )
            log.error(
                "the %s engine cannot be loaded: %s. Until then %s (engine_unavailable: %s)",
                choice.name,
                exc,
                then,
                choice.on_unavailable,
            )
    return choice


def make_router(config: GatewayConfig) -> RoutesRouter:
    """The routes file's router; without the file, everything goes to the outbox only when
    the config says `routes_optional: true` (else RoutesError: the gateway does not start)."""
    return RoutesRouter(config.routes, config.data_dir, optional=config.routes_optional)


def _wait(stop: threading.Event, metrics: Metrics, metrics_path: Path) -> None:
    next_report = time.monotonic() + _METRICS_EVERY_S
    while not stop.wait(timeout=1.0):
        if time.monotonic() >= next_report:
            _record_metrics(metrics, metrics_path)
            next_report = time.monotonic() + _METRICS_EVERY_S


def _record_metrics(metrics: Metrics, path: Path) -> None:
    counts = metrics.snapshot()
    if counts:
        log.info("counters: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    try:
        metrics.write(path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


@contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One gateway per data directory: what lets a restart treat every lease as stale.

    flock is released by the kernel when the process dies, even by `kill -9`.
    """
    fd = os.open(data_dir / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GatewayBusy(f"{data_dir}: another gateway is already running here") from None
        yield
    finally:
        os.close(fd)


def _keep_patient_data_out_of_logs() -> None:
    """pydicom's value-validation warnings quote the offending value (a name, an ID);
    pynetdicom's INFO lines repeat per association what the gateway already logs."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
