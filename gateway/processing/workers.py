"""The workers: lease a job -> process it (decode, interpret, render, save the package)
-> route -> one transaction: job done + deliveries queued.

Nothing is half-processed: the report package is written to `reports/<job id>/` (each
file atomically, rewritten identically if the job is redone) and only the final commit
makes the job done and hands it to delivery. A worker killed at any point leaves a
leased job whose lease expires (or is released at restart), so it is done again.

Each worker is a thread that owns the job's store transitions, paired with a helper
process of its own that does the CPU work in gateway/processing/job.py. Threads alone
would share one interpreter lock with DICOM intake and with each other; one process per
thread, not a shared pool, so a process that dies is known to have died on that
thread's job, and no other job in flight is charged with it.

A job fails only for something about the job, and then loudly (an ERROR line and the
`jobs.failed` counter): a bad object, a transient error `max_attempts` times, a worker
process dying on it `max_worker_deaths` times, or a lease that keeps running out. A
restart or shutdown never uses up an attempt.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gateway import metrics as m
from gateway.alerts import JOB_FAILED, Alert, AlertHook
from gateway.config import ComparisonConfig
from gateway.logs import fault
from gateway.metrics import Metrics
from gateway.processes import kill_pool, new_process_pool
from gateway.processing.findings import Additions, acquired_epoch
from gateway.processing.job import JobResult, process_jobs
from gateway.processing.order_link import Reconciler, link_order
from gateway.processing.order_match import OrderMatching
from gateway.processing.package import ReportPackage
from gateway.processing.report_head import report_head
from gateway.routing import MatchContext, Router
from gateway.store import Job, Store, StoreError
from model.engine import EngineChoice
from model.vlm.settings import VlmSettings

log = logging.getLogger(__name__)

_IDLE_POLL_S = 1.0  # also how soon a retry that became due, or a CLI retry, is picked up


@dataclass(frozen=True)
class WorkerSettings:
    reports_dir: Path
    node: str = field(default_factory=lambda: os.uname().nodename)  # prefix of lease owners
    engine: EngineChoice = field(default_factory=EngineChoice)
    workers: int = 2
    lease_s: float = 300.0
    max_attempts: int = 3
    max_worker_deaths: int = 3  # a helper process that dies on the same job this often
    retry_delay_s: float = 5.0  # times the attempt number: 5 s, 10 s, ...
    hold_retry_s: float = 60.0  # a job held for an unavailable engine tries again after
    vlm: VlmSettings | None = None  # gateway.yaml's vlm section, for rules naming a VLM
    comparison: ComparisonConfig | None = None  # gateway.yaml's; None: no serial comparison
    order_matching: OrderMatching = field(default_factory=OrderMatching)


class Workers:
    """The worker threads and their helper processes; the server starts and stops them."""

    def __init__(
        self,
        store: Store,
        router: Router,
        settings: WorkerSettings,
        metrics: Metrics,
        on_done: Callable[[list[str]], None] = lambda destinations: None,
        alerts: AlertHook | None = None,
    ) -> None:
        """`on_done` hears the destinations of each finished job (delivery sweeps them);
        `alerts` runs the site's command for each job that failed for good."""
        self._on_done = on_done
        self._alerts = alerts or AlertHook()
        self._store = store
        self._router = router
        self._settings = settings
        self._metrics = metrics
        self._stopping = threading.Event()
        # One permit per wake-up, so a job committed while every worker is busy or
        # about to sleep is never missed (an Event could be cleared by the wrong worker).
        self._wakeups = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._current: dict[str, list[int]] = {}  # owner -> the jobs it holds
        self._lock = threading.Lock()
        self._executors: dict[str, ProcessPoolExecutor] = {}  # owner -> its helper process
        # owner -> done when its helper has started and imported the pipeline; a worker
        # leases nothing before, so a slow start never eats into a job's time limit.
        self._starting: dict[str, Future] = {}

    def start(self) -> None:
        """Start the worker processes and threads; until then run_once works in-thread."""
        for index in range(self._settings.workers):
            owner = f"{self._settings.node}:{os.getpid()}:worker-{index}"
            self._start_helper(owner)
            thread = threading.Thread(
                target=self._work, args=(owner,), name=f"pipeline-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Called after a job is committed, so an idle worker starts on it at once."""
        self._wakeups.release()

    def stop(self, grace_s: float = 30.0) -> None:
        """Finish jobs in flight for up to `grace_s`, then give the rest back to the queue."""
        self._stopping.set()
        for _ in self._threads:
            self._wakeups.release()
        deadline = time.monotonic() + grace_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            unfinished = dict(self._current)
            executors, self._executors = self._executors, {}
        for owner, job_ids in unfinished.items():
            for job_id in job_ids:
                if self._store.release_job(job_id, owner):
                    log.warning(
                        "job %d was still running at shutdown: released to the queue", job_id
                    )
        for executor in executors.values():
            executor.shutdown(wait=not unfinished, cancel_futures=True)

    def run_once(self, owner: str) -> bool:
        """Lease and process one job, or a batch for a VLM; False when there was none (or
        this worker's helper process is still starting)."""
        if not self._helper_started(owner):
            return False
        job = self._lease(owner)
        if job is None:
            return False
        choice = self._choice_for(job)
        jobs, later = self._batch(owner, job, choice)
        with self._lock:
            self._current[owner] = [queued.id for queued in jobs + later]
        try:
            self._run_batch(owner, jobs, choice)
            for other in later:  # leased for the batch, but another engine's
                self._run_batch(owner, [other], self._choice_for(other))
        finally:
            with self._lock:
                self._current.pop(owner, None)
        return True

    def _lease(self, owner: str) -> Job | None:
        for job in self._store.fail_overdue_jobs(self._settings.max_attempts):
            self._failed_loudly(job, job.error or "lease ran out")
        return self._store.lease_job(owner, self._settings.lease_s, self._settings.max_attempts)

    def _batch(self, owner: str, first: Job, choice: EngineChoice) -> tuple[list[Job], list[Job]]:
        """Up to vlm.batch_size queued jobs for a VLM engine (the first one's), and the jobs
        leased on the way that another engine must take. A job whose worker process died
        before runs alone, so a death in a batch is soon pinned on the job that causes it."""
        jobs, later = [first], []
        size = choice.vlm.batch_size if choice.vlm is not None and not first.worker_deaths else 1
        while len(jobs) < size:
            try:
                job = self._lease(owner)
            except StoreError as exc:  # the jobs in hand go on; the next lease tries again
                log.warning("store unavailable, a batch of %d goes on: %s", len(jobs), exc)
                break
            if job is None:
                break
            alike = self._choice_for(job) == choice and not job.worker_deaths
            (jobs if alike else later).append(job)
        return jobs, later

    def _run_batch(self, owner: str, jobs: list[Job], choice: EngineChoice) -> None:
        """Process the jobs together, then finish each on its own: whatever goes wrong is
        charged to the jobs it concerns, so no job of the batch (nor one leased after it)
        waits for its lease to run out because of another job's fault."""
        started = time.perf_counter()
        try:
            results = self._process(owner, jobs, choice)
        except Exception as exc:  # noqa: BLE001 - the store, or a bug: each job's, retried
            for job in jobs:
                self._charge(job, owner, exc)
            return
        if results is None:
            for job in jobs:
                self._apart(job, owner, partial(self._worker_died, job, owner))
            return
        if len(jobs) > 1:
            self._metrics.inc(m.VLM_BATCHES)
        seconds = time.perf_counter() - started
        for job, result in zip(jobs, results, strict=True):
            self._apart(job, owner, partial(self._finish, job, owner, result, seconds))

    def _apart(self, job: Job, owner: str, step: Callable[[], None]) -> None:
        """`step` (of `job`), an unexpected error in it charged to this job alone."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a bug or the store: this job's only
            self._charge(job, owner, exc)

    def _charge(self, job: Job, owner: str, exc: Exception) -> None:
        """An unexpected error is the job's: retried, then failed loudly (_retry_or_fail).
        When the store cannot record even that, the job is retaken once its lease runs out."""
        label = _label(job)
        log.error("%s: unexpected error: %s", label, fault(exc, stack=True))
        error = str(exc) if isinstance(exc, StoreError) else fault(exc)  # StoreError: no values
        try:
            self._retry_or_fail(job, owner, label, error)
        except Exception as again:  # noqa: BLE001 - the store is down
            log.error("%s: retaken when its lease runs out: %s", label, fault(again))

    def _work(self, owner: str) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.run_once(owner)
            except StoreError as exc:
                log.error("store unavailable, worker %s waits: %s", owner, exc)
                busy = False
            except Exception as exc:  # noqa: BLE001 - a bug must not end the worker for good
                log.error("unexpected error in worker %s: %s", owner, fault(exc, stack=True))
                busy = False
            if not busy:
                self._wakeups.acquire(timeout=_IDLE_POLL_S)

    def _process(self, owner: str, jobs: list[Job], choice: EngineChoice) -> list[JobResult] | None:
        """The jobs' results from `owner`'s helper process (in this thread before start);
        None when that process died on them (out of memory, a crash in native code) or had
        to be stopped because it never answered: both count as a worker death."""
        args = (jobs, self._settings.reports_dir, choice, self._additions(jobs))
        with self._lock:
            executor = self._executors.get(owner)
        if executor is None:
            return process_jobs(*args)
        try:
            # Given up before the lease runs out, so no other worker retakes the job meanwhile.
            return executor.submit(process_jobs, *args).result(timeout=self._answer_within_s)
        except BrokenProcessPool:
            self._replace_broken_executor(owner, executor)
            return None
        except TimeoutError:
            log.error(
                "%s: no answer from the helper process within %.0f s: it is stopped",
                ", ".join(_label(job) for job in jobs),
                self._answer_within_s,
            )
            kill_pool(executor)
            self._replace_broken_executor(owner, executor)
            return None

    def _additions(self, jobs: list[Job]) -> Additions:
        """The critical rules in force, and each job's patient's recent finished ECGs; a
        history that cannot be read (a report stored by another version of the gateway,
        in a rolling upgrade) leaves that job without a comparison, told on its report."""
        comparison = self._settings.comparison
        priors, unreadable = {}, set()
        if comparison is not None and comparison.enabled:
            for job in jobs:
                try:
                    priors[job.id] = tuple(
                        self._store.prior_ecg_candidates(job.patient_key, job.sop_instance_uid)
                    )
                except StoreError:
                    raise  # the store is down: the worker waits, the job is leased again
                except Exception as exc:  # noqa: BLE001 - a stored report this version cannot read
                    log.warning("%s: earlier reports not readable: %s", _label(job), fault(exc))
                    unreadable.add(job.id)
        rules = tuple(self._router.config.critical.active_rules)
        return Additions(
            rules=rules, comparison=comparison, priors=priors, unreadable=frozenset(unreadable)
        )

    def _record_findings(self, job: Job, package: ReportPackage) -> None:
        """Before the job's completion commits: its report in the patient's history, and
        its critical alert (if the report is critical and someone is to be told), so
        neither is lost to a crash between the two."""
        report = package.report
        acquired = acquired_epoch(package.metadata)
        self._store.record_prior_ecg(
            job.id, job.patient_key, package.sop_instance_uid, acquired, report
        )
        if report.critical and self._router.config.critical.notify:
            self._store.record_critical_alert(job.id, [f.rule for f in report.critical])

    @property
    def _answer_within_s(self) -> float:
        return 0.9 * self._settings.lease_s

    def _choice_for(self, job: Job) -> EngineChoice:
        """gateway.yaml's engine, unless a routes.yaml rule names another for this object.

        Decided from what intake knows (AEs, kind, the header's modality, institution and
        station), so the choice never depends on an interpretation."""
        default = self._settings.engine
        if not self._router.names_engines:
            return default
        name = self._router.engine_for(_intake_context(job))
        if name is None or name == default.name:
            return default
        vlm = self._settings.vlm or default.vlm or VlmSettings()
        settings = None if name == "measure" else vlm.model_copy(update={"mode": name})
        return dataclasses.replace(default, name=name, vlm=settings)

    def _start_helper(self, owner: str) -> None:
        """A new helper process for `owner` (call with the lock held, or before start)."""
        executor = self._executors[owner] = _new_executor()
        self._starting[owner] = executor.submit(int)  # runs after the preload, in order

    def _helper_started(self, owner: str) -> bool:
        """Whether `owner`'s helper is up (waiting at most an idle poll); a helper that
        died while starting is replaced."""
        with self._lock:
            starting, executor = self._starting.get(owner), self._executors.get(owner)
        if starting is None:
            return True
        try:
            starting.result(timeout=_IDLE_POLL_S)
        except TimeoutError:
            return False
        except BrokenProcessPool:
            self._replace_broken_executor(owner, executor)
            return False
        with self._lock:
            if self._starting.get(owner) is starting:
                del self._starting[owner]
        return True

    def _replace_broken_executor(self, owner: str, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executors.get(owner) is broken and not self._stopping.is_set():
                self._start_helper(owner)
        broken.shutdown(wait=False)

    def _finish(self, job: Job, owner: str, result: JobResult, seconds: float) -> None:
        label = _label(job)
        if result.held is not None:
            self._hold(job, owner, label, result.held)
            return
        if result.permanent_error is not None:
            self._fail(job, owner, result.permanent_error)
            return
        if result.transient_error is not None:
            self._retry_or_fail(job, owner, label, result.transient_error)
            return
        try:
            package = link_order(
                self._store, job, result.package, result.report_dir, self._settings.order_matching
            )
        except StoreError as exc:  # its message names the store, never a value
            self._retry_or_fail(job, owner, label, f"order matching: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the disk, or a bug: retried, then failed
            self._retry_or_fail(job, owner, label, f"order matching: {fault(exc)}")
            return
        try:
            destinations = self._router.destinations_for(package)
        except Exception as exc:  # noqa: BLE001 - a routing bug must not lose the job
            self._retry_or_fail(job, owner, label, f"routing: {fault(exc)}")
            return
        self._record_findings(job, package)
        first_version = report_head(job, package)
        if self._store.complete_job(
            job.id, owner, str(result.report_dir), destinations, first_version=first_version
        ):
            self._metrics.inc(m.JOBS_DONE)
            self._metrics.observe_processing(seconds)
            if "engine-fallback" in package.report.source.quality_flags:
                self._metrics.inc(m.ENGINE_FALLBACKS)
            if package.report.critical:
                self._metrics.inc(m.JOBS_CRITICAL)
            self._on_done(sorted({name for name, _ in destinations}))
            self._reconcile(job, package, label)
            log.info(
                "%s done in %.0f ms: %s, codes %s, critical %s, to %s",
                label,
                seconds * 1000,
                job.kind,
                ",".join(package.report.codes) or "-",
                ",".join(f.rule for f in package.report.critical) or "-",
                ",".join(name for name, _ in destinations) or "nowhere",
            )
        else:
            log.warning("%s: lease lost before completion; the new holder completes it", label)

    def _reconcile(self, job: Job, package: ReportPackage, label: str) -> None:
        """An order that came in while this unordered ECG was processed (the listener's
        hook found the job unfinished then): reconciled now, or by nobody."""
        settings = self._settings
        reconciler = Reconciler(
            self._store,
            settings.order_matching,
            settings.reports_dir,
            self._router.destinations_for,
        )
        try:
            again = reconciler.finished(self._store.get_job(job.id) or job, package)
        except Exception as exc:  # noqa: BLE001 - the job is done; the order stays open
            log.error(
                "%s: reconciling an order that arrived meanwhile failed: %s", label, fault(exc)
            )
            return
        if again:
            self._on_done(again)

    def _hold(self, job: Job, owner: str, label: str, reason: str) -> None:
        """Back to the queue without using an attempt: the job is fine, the engine is not
        (it cannot be loaded, or its text for this job named no known statement)."""
        retry_at = time.time() + self._settings.hold_retry_s
        if self._store.hold_job(job.id, owner, f"held: {reason}"[:1000], retry_at):
            self._metrics.inc(m.JOBS_HELD)
            log.warning("%s held until its engine can be used: %s", label, reason)

    def _fail(self, job: Job, owner: str, error: str) -> None:
        if self._store.fail_job(job.id, owner, error[:1000]):
            self._failed_loudly(job, error)

    def _failed_loudly(self, job: Job, error: str) -> None:
        """Every permanent failure is an ERROR line, a `jobs.failed` count (shown by
        `jobs list`, in metrics.json) and an alert: an acknowledged ECG is never dropped
        silently."""
        self._metrics.inc(m.JOBS_FAILED)
        log.error("%s failed permanently, not delivered: %s", _label(job), error)
        self._alerts.send(Alert(JOB_FAILED, job.sop_instance_uid, f"job {job.id}", error[:1000]))

    def _worker_died(self, job: Job, owner: str) -> None:
        """Counted as a worker death, not an attempt: the job is retried (alone, see
        _batch) until its own worker has died `max_worker_deaths` times on it."""
        deaths = job.worker_deaths + 1
        retry_at = time.time() + self._settings.retry_delay_s * deaths
        state = self._store.record_worker_death(
            job.id, owner, self._settings.max_worker_deaths, retry_at
        )
        if state is None:  # released at shutdown, or retaken after its lease ran out
            return
        self._metrics.inc(m.WORKER_DEATHS)
        if state == "failed":
            self._failed_loudly(
                job, f"the worker process died each of the {deaths} times it processed it"
            )
        else:
            log.warning(
                "%s: the worker process died while processing it (%d of %d allowed), retrying",
                _label(job),
                deaths,
                self._settings.max_worker_deaths,
            )

    def _retry_or_fail(self, job: Job, owner: str, label: str, error: str) -> None:
        if job.attempts >= self._settings.max_attempts:
            self._fail(job, owner, f"gave up after {job.attempts} attempts: {error}")
            return
        retry_at = time.time() + self._settings.retry_delay_s * job.attempts
        if self._store.retry_job_later(job.id, owner, error[:1000], retry_at):
            self._metrics.inc(m.JOBS_RETRIED)
            log.warning("%s attempt %d failed, retrying later: %s", label, job.attempts, error)


def _new_executor() -> ProcessPoolExecutor:
    return new_process_pool(1, preload="gateway.processing.job")


def _label(job: Job) -> str:
    """How logs name a job: ids and a content hash, no patient data."""
    return f"job {job.id} ({job.sop_instance_uid} sha256={job.content_sha256[:12]})"


def _intake_context(job: Job) -> MatchContext:
    """The routable facts of a job before interpretation, as intake recorded them."""
    return MatchContext.at_intake(
        job.calling_ae,
        job.called_ae,
        job.kind,
        job.modality,
        job.institution,
        job.station,
        job.source,
    )
