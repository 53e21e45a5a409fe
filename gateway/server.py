"""`ecg-gateway serve`: config -> store -> workers -> DICOM SCP, watched folders, the
upload endpoint and the HL7 order listener -> admin endpoint -> over-read web application
-> wait for a signal.

SIGHUP reloads the routes file and gateway.yaml (gateway/reload.py) between
associations' starts, never cutting one. SIGTERM (or SIGINT) drains, in the reverse
order of the start: /readyz turns 503, no new associations, folder files or uploads
(those in progress may finish), workers finish their leased jobs within
`shutdown_grace_s` and give the rest back to the queue, deliveries in hand are recorded,
the counters and the audit stop record written, the store closed. A `kill -9` skips all
of that and loses nothing: accepted objects are in the spool and the store, and their
leases are released at the next start.
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pydicom.config

from gateway.admin.http import AdminApp, read_token, start_admin
from gateway.admin.prometheus import StoreCollector
from gateway.admin.readiness import EngineState, Readiness
from gateway.alerts import AlertHook
from gateway.audit import Auditor
from gateway.config import GatewayConfig, log_security_posture
from gateway.durable import ensure_dir, remove_unfinished_writes
from gateway.intake.accept import Intake
from gateway.intake.dicom_scp import RunningScp, start_scp
from gateway.intake.folders import start_watching
from gateway.intake.hl7_orders import OrderListener, start_orders
from gateway.intake.order_intake import OrderIntake
from gateway.intake.upload import start_upload
from gateway.logs import use_log_format
from gateway.metrics import Metrics
from gateway.processing.order_link import Reconciler
from gateway.processing.order_match import intake_priority
from gateway.processing.workers import Workers, WorkerSettings
from gateway.reload import Reloader
from gateway.routing import Router as RoutesRouter
from gateway.scheduler import GatewayScheduler, start_delivery
from gateway.store import Store, open_store
from model.engine import EngineChoice
from model.vlm.settings import VlmUnavailable

log = logging.getLogger(__name__)

_METRICS_EVERY_S = 60.0


class GatewayBusy(Exception):
    """Another gateway process already serves this data directory."""


def serve(config: GatewayConfig, read_config: Callable[[], GatewayConfig] | None = None) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit code (0).
    `read_config` reads gateway.yaml again on SIGHUP (with the command line's overrides)."""
    use_log_format(config.log_format)
    _keep_patient_data_out_of_logs()
    log_security_posture(config)
    ensure_dir(config.data_dir)
    with _data_dir_lock(config.data_dir):
        return _run(config, read_config or (lambda: config))


def _run(config: GatewayConfig, read_config: Callable[[], GatewayConfig]) -> int:
    router = make_router(config)  # first: a missing or invalid routes file stops the start
    token = read_token(config.admin.token_file) if config.admin.token_file else None
    _prepare_directories(config)
    signals = _Signals()
    draining = threading.Event()
    scp_up = _ScpListening()
    with ExitStack() as running:  # each part stopped, in reverse order, however we leave
        node = node_name(config.data_dir)
        store = _open_recovered_store(config, node, running)
        metrics = Metrics()
        audit = _start_audit(config, metrics, running)
        choice = engine_choice(config)
        admin = None
        if config.admin.enabled:  # up first, down last: /readyz says 503 through the drain
            readiness = _readiness(config, store, choice, router, scp_up, draining)
            admin = _start_admin(config, token, readiness, metrics, audit, running)
        running.callback(_record_metrics, metrics, config.metrics_path)
        alerts = AlertHook(config.alert_command)
        delivery = start_delivery(
            store,
            router,
            metrics,
            config.retention_days,
            config.outbox_dir,
            alerts,
            audit,
            format_timeout_s=config.delivery_format_timeout_s,
        )
        running.callback(delivery.shutdown)
        if config.web.enabled:  # after delivery: a confirmed report is sent at once
            _start_overread_web(config, store, router, audit, delivery, metrics, running)
        worker_settings = _worker_settings(config, node, choice)
        workers = Workers(
            store, router, worker_settings, metrics, on_done=delivery.deliver_soon, alerts=alerts
        )
        min_free = config.min_free_disk_mb * 1024 * 1024
        prioritise = intake_priority(store, config.order_matching)
        intake = Intake(store, config.spool_dir, metrics, min_free, workers.wake, audit, prioritise)
        workers.start()
        reloader = Reloader(config, read_config, delivery, alerts, audit, admin=admin)
        running.callback(lambda: workers.stop(grace_s=reloader.config.shutdown_grace_s))
        scp = scp_up.scp = reloader.scp = start_scp(config, intake, metrics)
        running.callback(_stop_accepting, scp, draining, lambda: reloader.config.shutdown_grace_s)
        _start_file_intakes(config, intake, running)
        listener = _start_order_listener(config, store, metrics, audit, running)
        if listener is not None:  # IHE REWF: a late order reconciled with its ECG
            reconciler = Reconciler(
                store, config.order_matching, config.reports_dir, router.destinations_for
            )
            listener.on_order.append(reconciler.hook(delivery.deliver_soon))
        _announce_started(config, audit, scp)
        _wait(signals, reloader, metrics, config.metrics_path)
        log.info("stopping: no new associations; finishing work in progress")
    log.info("stopped")
    return 0


def _prepare_directories(config: GatewayConfig) -> None:
    """The spool, reports and outbox directories exist, and the spool holds no file a
    kill -9 left half-copied (never acknowledged, so nothing is lost by removing it)."""
    for directory in (config.spool_dir, config.reports_dir, config.outbox_dir):
        ensure_dir(directory)
    if remove_unfinished_writes(config.spool_dir):
        log.warning("removed unfinished spool writes of a previous run")


def _open_recovered_store(config: GatewayConfig, node: str, running: ExitStack) -> Store:
    """The store, closed last by `running`, with the jobs a previous run left in progress
    back in the queue (one gateway per data directory, so every lease is stale)."""
    store = open_store(config, node=node)
    running.callback(store.close)
    log.info("store: %s; this node: %s", store, node)
    requeued = store.recover_after_restart()
    if requeued:
        log.warning("requeued %d jobs left in progress by a previous run", requeued)
    return store


def _start_audit(config: GatewayConfig, metrics: Metrics, running: ExitStack) -> Auditor | None:
    """The audit trail when configured; `running` writes its stop record and closes it."""
    audit = Auditor.for_config(config, metrics, forward=True)
    if audit is not None:
        audit.start()
        running.callback(_audit_stop, audit)
    return audit


class _ScpListening:
    """Whether the DICOM SCP listens, for /readyz: the admin endpoint starts before the
    SCP exists, so the answer is looked up at each request."""

    def __init__(self) -> None:
        self.scp: RunningScp | None = None

    def __call__(self) -> bool:
        return self.scp is not None and self.scp.listening


def _readiness(
    config: GatewayConfig,
    store: Store,
    choice: EngineChoice,
    router: RoutesRouter,
    scp_up: _ScpListening,
    draining: threading.Event,
) -> Readiness:
    """What /readyz checks; the engine's state is taken once, at the start."""
    engine = engine_state(choice)
    return Readiness(
        store,
        config.spool_dir,
        config.min_free_disk_mb * 1024 * 1024,
        scp_up,
        lambda: engine,
        lambda: list(router.config.destinations),
        draining,
    )


def _start_overread_web(
    config: GatewayConfig,
    store: Store,
    router: RoutesRouter,
    audit: Auditor | None,
    delivery: GatewayScheduler,
    metrics: Metrics,
    running: ExitStack,
) -> None:
    """The over-read web application, stopped by `running`; a report confirmed there is
    handed to delivery at once."""
    from gateway.web.serve import start_overread_web  # starlette only when enabled

    web = start_overread_web(
        config.web,
        store,
        router,
        audit,
        delivery.deliver_soon,
        metrics,
        comparison_limits=config.comparison.thresholds,
    )
    running.callback(web.stop)


def _worker_settings(config: GatewayConfig, node: str, choice: EngineChoice) -> WorkerSettings:
    """The workers' share of the configuration, with a lease long enough for the engine."""
    return WorkerSettings(
        reports_dir=config.reports_dir,
        node=node,
        engine=choice,
        workers=config.workers,
        lease_s=job_lease_s(config),
        max_attempts=config.job_max_attempts,
        max_worker_deaths=config.job_max_worker_deaths,
        hold_retry_s=config.hold_retry_s,
        vlm=config.vlm,
        comparison=config.comparison,
        order_matching=config.order_matching,
    )


def _announce_started(config: GatewayConfig, audit: Auditor | None, scp: RunningScp) -> None:
    """The audit start record and the log line that says where the gateway listens."""
    if audit is not None:
        audit.application(started=True)
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


def _start_file_intakes(config: GatewayConfig, intake: Intake, running: ExitStack) -> None:
    """The watched folders and the upload endpoint, each stopped by `running` (before the
    SCP: the reverse of the start)."""
    watching = start_watching(config.watch_folders, intake, config.data_dir)
    running.callback(watching.stop)
    upload = start_upload(config.upload, intake)
    if upload is not None:
        running.callback(upload.stop)


def _start_order_listener(
    config: GatewayConfig,
    store: Store,
    metrics: Metrics,
    audit: Auditor | None,
    running: ExitStack,
) -> OrderListener | None:
    """The HL7 order listener when `orders.enabled`, stopped by `running`; hooks that act
    on committed orders go into its `on_order` list."""
    intake = OrderIntake(store, config.orders, metrics, audit)
    listener = start_orders(config.orders, intake)
    if listener is not None:
        running.callback(listener.stop, config.shutdown_grace_s)
    return listener


def _start_admin(
    config: GatewayConfig,
    token: bytes | None,
    readiness: Readiness,
    metrics: Metrics,
    audit: Auditor | None,
    running: ExitStack,
) -> AdminApp:
    """The admin endpoint with the store's gauges beside the counters, stopped by `running`."""
    destinations = readiness.destinations
    queued = audit.queued if audit is not None else int
    metrics.registry.register(StoreCollector(readiness.store, destinations, queued))
    app = AdminApp(readiness, metrics.registry, token)
    server = start_admin(config.admin, app, metrics)
    running.callback(server.stop)
    scheme = "https" if config.admin.tls.enabled else "http"
    log.info("admin endpoint on %s:%d (%s)", config.admin.bind, server.port, scheme)
    return app


def _stop_accepting(
    scp: RunningScp, draining: threading.Event, grace_s: Callable[[], float]
) -> None:
    """/readyz says 503 from now on (a balancer sends elsewhere), the port closes, and
    associations in progress have the grace period to finish."""
    draining.set()
    scp.stop(grace_s=grace_s())


def _audit_stop(audit: Auditor) -> None:
    audit.application(started=False)
    audit.close()


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
    state = engine_state(choice)
    if state.state != "ready":
        then = (
            "jobs are held until it is provided"
            if state.state == "held"
            else "the measurement engine runs instead and each report says so"
        )
        log.error(
            "the %s engine cannot be loaded: %s. Until then %s (engine_unavailable: %s)",
            choice.name,
            state.detail,
            then,
            choice.on_unavailable,
        )
    return choice


def engine_state(choice: EngineChoice) -> EngineState:
    """Whether the engine's model files are there (/readyz): ready, or what stands in."""
    if choice.vlm is None:
        return EngineState(choice.name, "ready")
    from model.vlm.loading import check_vlm_files  # torch: only when a VLM is configured

    try:
        check_vlm_files(choice.vlm.load_spec())
    except VlmUnavailable as exc:
        state = "held" if choice.on_unavailable == "hold" else "fallback"
        return EngineState(choice.name, state, str(exc))
    return EngineState(choice.name, "ready")


def make_router(config: GatewayConfig) -> RoutesRouter:
    """The routes file's router; without the file, everything goes to the outbox only when
    the config says `routes_optional: true` (else RoutesError: the gateway does not start)."""
    return RoutesRouter(config.routes, config.data_dir, optional=config.routes_optional)


def _wait(signals: _Signals, reloader: Reloader, metrics: Metrics, metrics_path: Path) -> None:
    """Until a stop is asked; reloads run here, in the main thread, not in the handler."""
    next_report = time.monotonic() + _METRICS_EVERY_S
    while not signals.stop.wait(timeout=0.5):
        if signals.reload.is_set():
            signals.reload.clear()
            reloader.reload()
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


class _Signals:
    """SIGTERM and SIGINT ask for a stop, SIGHUP for a reload; the main loop acts on them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _stop(self, signum: int, _frame: object) -> None:
        if self.stop.is_set():
            log.info("received %s again: still draining", signal.Signals(signum).name)
        else:
            log.info("received %s: draining", signal.Signals(signum).name)
        self.stop.set()

    def _reload(self, _signum: int, _frame: object) -> None:
        log.info("received SIGHUP: reloading routes and configuration")
        self.reload.set()


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
