"""The gateway's timed work, run by apscheduler (3.x) in background threads:
one delivery sweep per destination, the routes-file reload check, the
retention purge, and the critical-result notices and their escalation.

apscheduler only triggers; what is due lives in the store, so nothing is lost
when the process stops (apscheduler's own job store would lose it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from gateway import retention
from gateway.alerts import AlertHook
from gateway.audit import CONFIGURATION, Auditor
from gateway.delivery.sweeper import DeliverySweeper
from gateway.metrics import Metrics
from gateway.notify import CriticalNotifier
from gateway.routing import FileDestination, Router
from gateway.store import Store

log = logging.getLogger(__name__)

_DELIVERY_JOB_PREFIX = "deliver:"
_UNROUTED_JOB = "deliver-unrouted"
_RELOAD_JOB = "routes-reload"
_PURGE_JOB = "retention-purge"
_CRITICAL_JOB = "critical-notices"
_NOTIFY_EXECUTOR = "notify"
_MAX_THREADS = 16


class GatewayScheduler:
    """Owns the BackgroundScheduler; keeps one sweep job per configured destination."""

    def __init__(
        self,
        store: Store,
        router: Router,
        sweeper: DeliverySweeper,
        *,
        retention_days: int,
        extra_purge_dirs: tuple[Path, ...] = (),
        sweep_interval_s: float = 2.0,
        reload_interval_s: float = 5.0,
        purge_interval_s: float = 3600.0,
        on_routes_reloaded: Callable[[], None] = lambda: None,
        notifier: CriticalNotifier | None = None,
        notify_interval_s: float = 5.0,
    ):
        self.store = store
        self.router = router
        self.sweeper = sweeper
        self.retention_days = retention_days
        self.extra_purge_dirs = extra_purge_dirs
        self.sweep_interval_s = sweep_interval_s
        self.reload_interval_s = reload_interval_s
        self.purge_interval_s = purge_interval_s
        self.on_routes_reloaded = on_routes_reloaded  # the audit trail's record of it
        self.notifier = notifier
        self.notify_interval_s = notify_interval_s
        # apscheduler logs every run at INFO: one line per destination every few seconds
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(
            # Critical-result notices run on a thread of their own: delivery sweeps may
            # each wait minutes (a formatting turn, a hung share) and must not hold a page.
            executors={
                "default": ThreadPoolExecutor(_MAX_THREADS),
                _NOTIFY_EXECUTOR: ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        self._scheduler.add_job(
            self.reload_routes, "interval", seconds=self.reload_interval_s, id=_RELOAD_JOB
        )
        self._scheduler.add_job(
            self.purge,
            "interval",
            seconds=self.purge_interval_s,
            id=_PURGE_JOB,
            next_run_time=datetime.now().astimezone(),
        )
        self._scheduler.add_job(
            self.sweeper.sweep_unrouted,
            "interval",
            seconds=self.sweep_interval_s * 5,
            id=_UNROUTED_JOB,
        )
        if self.notifier is not None:
            self._scheduler.add_job(
                self.notifier.sweep,
                "interval",
                seconds=self.notify_interval_s,
                id=_CRITICAL_JOB,
                executor=_NOTIFY_EXECUTOR,
            )
        self.sync_delivery_jobs()
        self._scheduler.start()

    def shutdown(self) -> None:
        """Waits for the deliveries in hand, so none is left half-recorded."""
        self.sweeper.stop()
        self._scheduler.shutdown(wait=True)
        self.sweeper.close()

    def reload_routes(self) -> bool:
        """Take a changed, valid routes file (every few seconds, and on SIGHUP)."""
        if not self.router.reload_if_changed():
            return False
        self.sync_delivery_jobs()
        self.on_routes_reloaded()
        return True

    def purge(self) -> retention.PurgeResult:
        return retention.purge(self.store, self.outbox_dirs(), self.retention_days)

    def outbox_dirs(self) -> list[Path]:
        dirs = {
            Path(dest.directory)
            for dest in self.router.config.destinations.values()
            if isinstance(dest, FileDestination)
        }
        return sorted(dirs | set(self.extra_purge_dirs))

    def deliver_soon(self, destinations: list[str]) -> None:
        """Sweep these destinations now rather than at their next interval: a finished
        report should reach the EHR in a moment, not in up to `sweep_interval_s`."""
        now = datetime.now().astimezone()
        for name in destinations:
            if not self.sweeper.wake(name):
                continue
            try:
                self._scheduler.modify_job(_DELIVERY_JOB_PREFIX + name, next_run_time=now)
            except JobLookupError:
                pass  # not routed any more: the unrouted sweep fails it visibly

    def sync_delivery_jobs(self) -> None:
        """One interval job per destination in the routes now in force; the senders
        (connections, writing processes) of those removed are closed."""
        wanted = {_DELIVERY_JOB_PREFIX + name: name for name in self.router.config.destinations}
        existing = {
            job.id for job in self._scheduler.get_jobs() if job.id.startswith(_DELIVERY_JOB_PREFIX)
        }
        for job_id in existing - wanted.keys():
            self._scheduler.remove_job(job_id)
        closed = self.sweeper.close_removed_senders()
        if closed:
            log.info("closed the senders of removed destinations: %s", ", ".join(closed))
        for job_id in wanted.keys() - existing:
            self._scheduler.add_job(
                self.sweeper.sweep_destination,
                "interval",
                seconds=self.sweep_interval_s,
                args=[wanted[job_id]],
                id=job_id,
            )
        log.debug("delivery sweeps for: %s", ", ".join(sorted(wanted.values())))


def start_delivery(
    store: Store,
    router: Router,
    metrics: Metrics,
    retention_days: int,
    outbox_dir: Path,
    alerts: AlertHook,
    audit: Auditor | None = None,
    format_timeout_s: float = 60.0,
) -> GatewayScheduler:
    """The server's delivery side: sweeps, routes reload and retention, running."""
    sweeper = DeliverySweeper(
        store, router, metrics=metrics, formatting_process=True, alerts=alerts, audit=audit
    )
    sweeper.format_timeout_s = format_timeout_s  # gateway.yaml's delivery_format_timeout_s
    scheduler = GatewayScheduler(
        store,
        router,
        sweeper,
        retention_days=retention_days,
        extra_purge_dirs=(outbox_dir,),
        on_routes_reloaded=lambda: audit_routes_reload(audit),
        notifier=CriticalNotifier(store, router, alerts, metrics),
    )
    scheduler.start()
    return scheduler


def audit_routes_reload(audit: Auditor | None) -> None:
    if audit is not None:
        audit.admin_action(CONFIGURATION, "routes reloaded")
