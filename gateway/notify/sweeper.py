"""Works through the store's critical alerts on the gateway's scheduler (every few
seconds): each due notice goes to its targets, is retried with backoff when a target
fails, and is given up loudly (ERROR line and the site's alert command) after the retry
policy's limit. The store records each target that took it, so a retry goes only to the
others: a pager that took it is not paged again because a mailbox was down. Delivery to
each target is still at least once: a target whose record the store refused is resent
after a restart, under the same identity (messages.notice_id).

A notice that went out starts the escalation clock: if nobody has opened (acknowledged)
the report `escalate_after` later, the escalation goes to `escalate_to` (or the same
targets again). The web report view acknowledges the alert when a physician opens it
(Store.acknowledge_critical). A notice (or escalation) with several targets stops at the
first target after which the store says the report was opened: a physician has it in
hand, and further pages are noise.
"""

from __future__ import annotations

import logging
import random
import time

from gateway import metrics as m
from gateway.alerts import CRITICAL_NOTICE_DEAD, CRITICAL_NOTICE_UNRECORDED, Alert, AlertHook
from gateway.delivery.sweeper import retry_delay
from gateway.logs import fault
from gateway.metrics import Metrics
from gateway.notify.messages import notice
from gateway.notify.senders import NoticeError, send
from gateway.routing import Router
from gateway.routing.critical_schema import CriticalConfig
from gateway.store import Store, StoreError
from gateway.store.critical_alerts import CriticalAlert

log = logging.getLogger(__name__)


class CriticalNotifier:
    def __init__(
        self,
        store: Store,
        router: Router,
        alerts: AlertHook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._alerts = alerts or AlertHook()
        self._metrics = metrics or Metrics()
        self._rng = random.Random()
        # Notices that went out but the store refused to record as sent, (job, escalation)
        # -> when sent: their record is retried each sweep, the notice is not sent again.
        self._unrecorded: dict[tuple[int, bool], float] = {}
        self._unrecorded_alerted: set[tuple[int, bool]] = set()  # ... and already alerted
        # Targets that took a notice whose record the store refused, (job, escalation) ->
        # target -> when: not sent there again by this process; recorded at its next try.
        self._unrecorded_targets: dict[tuple[int, bool], dict[str, float]] = {}

    def sweep(self, now: float | None = None) -> int:
        """Send every notice due now; how many went out."""
        now = time.time() if now is None else now
        config = self._router.config.critical
        if not config.notify:
            return 0
        for (job_id, escalation), sent_at in list(self._unrecorded.items()):
            self._record_sent(job_id, escalation, sent_at)
            self._alert_if_unrecorded_too_long((job_id, escalation), sent_at, config, now)
        for key in list(self._unrecorded_targets):
            self._settle_targets(key)
        escalate_before = now - config.escalate_after.total_seconds()
        due = self._store.lease_due_critical_alerts(escalate_before, now=now)
        return sum(self._send_apart(alert, config, now) for alert in due)

    def _send_apart(self, alert: CriticalAlert, config: CriticalConfig, now: float) -> bool:
        """`_send`, an unexpected error in it (the store refusing this alert's update, a
        bug) charged to this alert alone: retried, then given up loudly; the alerts
        leased with it still go out now, not after their lease runs out. A notice sent
        whose record failed is not sent again: its record is retried (`_record_sent`)."""
        if (alert.job_id, alert.escalation) in self._unrecorded:
            return False
        try:
            return self._send(alert, config, now)
        except Exception as exc:  # noqa: BLE001 - this alert's fault, not the others'
            error = str(exc) if isinstance(exc, StoreError) else fault(exc)  # no values
            log.error("job %d: critical notice: %s", alert.job_id, fault(exc, stack=True))
            kind = "escalation" if alert.escalation else "notice"
            try:
                self._failed(alert, kind, error, config, now)
            except Exception as again:  # noqa: BLE001 - the store is down: the lease runs out
                log.error("job %d: retried when its lease runs out: %s", alert.job_id, fault(again))
            return False

    def _send(self, alert: CriticalAlert, config: CriticalConfig, now: float) -> bool:
        """Send the notice to each of its targets (today's config) that has not taken it
        yet; marked sent once all of them have. A target removed from the config since is
        not waited for; one added since gets it now (it was named when this try began).
        Before each target after the first, the store is asked whether the report was
        opened meanwhile: the rest are then spared (the alert is closed, nothing to retry)."""
        key = (alert.job_id, alert.escalation)
        names = config.escalation_targets if alert.escalation else config.notify
        kind = "escalation" if alert.escalation else "notice"
        taken = self._taken(key)
        payload = notice(alert, config, now)
        errors, took = [], []
        for at, name in enumerate(names):
            if name in taken:
                continue
            if (errors or took) and self._opened(alert.job_id):
                rest = ", ".join(n for n in names[at:] if n not in taken)
                failed = f" (failed before: {'; '.join(errors)})" if errors else ""
                log.info(
                    "job %d: critical %s not sent to %s: the report was opened%s",
                    alert.job_id,
                    kind,
                    rest,
                    failed,
                )
                return bool(took)
            try:
                send(config.targets[name], payload)
            except NoticeError as exc:
                errors.append(f"{name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug: retried and given up loudly too
                errors.append(f"{name}: {fault(exc)}")
            else:
                self._metrics.inc(m.CRITICAL_TARGET_TOOK, target=name)
                took.append(name)
                taken[name] = now
                self._record_target(key, name, now)
                continue
            self._metrics.inc(m.CRITICAL_TARGET_FAILED, target=name)
        if not errors:
            self._metrics.inc(m.CRITICAL_NOTICES_SENT)
            earlier = ", ".join(name for name in names if name not in took)
            before = f" (taken before by {earlier})" if earlier else ""
            now_by = ", ".join(took) or "none now"
            log.info("job %d: critical %s sent to %s%s", alert.job_id, kind, now_by, before)
            # The escalation clock starts when the last target took it.
            self._record_sent(alert.job_id, alert.escalation, max(taken[n] for n in names))
            return True
        if took:
            log.info("job %d: critical %s taken by %s", alert.job_id, kind, ", ".join(took))
        self._failed(alert, kind, "; ".join(errors), config, now)
        return False

    def _opened(self, job_id: int) -> bool:
        """Whether a physician has opened (acknowledged) the report since the notice was
        leased. A store that cannot say counts as no: a failed read must never hold back
        a critical notice."""
        try:
            alert = self._store.get_critical_alert(job_id)
        except Exception as exc:  # noqa: BLE001 - the store is down: the notice goes on
            error = str(exc) if isinstance(exc, StoreError) else fault(exc)
            log.warning(
                "job %d: whether the report was opened is unknown (%s); sending on", job_id, error
            )
            return False
        return alert is not None and alert.acknowledged_at is not None

    def _taken(self, key: tuple[int, bool]) -> dict[str, float]:
        """The targets that took the notice, and when: the store's record, and those whose
        record it refused (tried again at the start of the sweep, `_settle_targets`)."""
        taken = self._store.critical_targets_taken(*key)
        return {**taken, **self._unrecorded_targets.get(key, {})}

    def _settle_targets(self, key: tuple[int, bool]) -> None:
        """Record again the targets whose record the store refused; those it still
        refuses are forgotten once the notice will not be tried again (a physician opened
        the report, it was sent, an escalation given up): they only kept a retry from
        paging there, and without this they would stay in memory for as long as the
        process runs. A first notice given up keeps them while nobody has opened the
        report: their record, once the store takes it, is what starts the escalation."""
        for name, at in list(self._unrecorded_targets[key].items()):
            self._record_target(key, name, at)
        if key not in self._unrecorded_targets:
            return
        job_id, escalation = key
        try:
            alert = self._store.get_critical_alert(job_id)
        except Exception as exc:  # noqa: BLE001 - the store is down: asked again next sweep
            log.warning("job %d: critical alert unreadable: %s", job_id, fault(exc))
            return
        if alert is not None and alert.state == ("escalating" if escalation else "pending"):
            return  # tried again: the record in memory keeps it from these targets
        if alert is not None and not escalation and _escalates_later(alert):
            return  # given up, nobody opened it: the targets' record starts the escalation
        names = ", ".join(self._unrecorded_targets.pop(key))
        why = "the report was opened" if alert and alert.acknowledged_at else "no more tries"
        log.info("job %d: unrecorded targets %s forgotten: %s", job_id, names, why)

    def _record_target(self, key: tuple[int, bool], name: str, sent_at: float) -> None:
        """Record that `name` took the notice; when the store refuses, remember it so this
        process does not send it there again (a restart forgets, and resends it there
        under the same identity)."""
        job_id, escalation = key
        pending = self._unrecorded_targets.setdefault(key, {})
        try:
            self._store.record_critical_target(job_id, escalation, name, now=sent_at)
        except Exception as exc:  # noqa: BLE001 - the store's fault: recorded later
            if name not in pending:
                log.error(
                    "job %d: critical %s taken by %s but not recorded (%s); not resending it"
                    " there from this process",
                    job_id,
                    "escalation" if escalation else "notice",
                    name,
                    str(exc) if isinstance(exc, StoreError) else fault(exc),
                )
            pending[name] = sent_at
            return
        if pending.pop(name, None) is not None:
            log.info("job %d: critical notice's target %s recorded", job_id, name)
        if not pending:
            del self._unrecorded_targets[key]

    def _record_sent(self, job_id: int, escalation: bool, sent_at: float) -> None:
        """Mark the notice sent (at `sent_at`: the escalation clock starts at the real
        send); when the store refuses, remember it and try again at the next sweep rather
        than page the physician again. A restart forgets: the notice then goes out again,
        under the same identity (messages.notice_id), which the receiver can drop."""
        key = (job_id, escalation)
        try:
            self._store.mark_critical_sent(job_id, escalation, now=sent_at)
        except Exception as exc:  # noqa: BLE001 - the store's fault: recorded later
            if key not in self._unrecorded:
                kind = "escalation" if escalation else "notice"
                log.error(
                    "job %d: critical %s sent but not recorded (%s); recording it again at "
                    "each sweep, not resending it",
                    job_id,
                    kind,
                    str(exc) if isinstance(exc, StoreError) else fault(exc),
                )
            self._unrecorded[key] = sent_at
            return
        self._unrecorded_alerted.discard(key)
        self._unrecorded_targets.pop(key, None)  # sent: no target's record matters now
        if self._unrecorded.pop(key, None) is not None:
            log.info("job %d: critical notice recorded as sent", job_id)

    def _alert_if_unrecorded_too_long(
        self, key: tuple[int, bool], sent_at: float, config: CriticalConfig, now: float
    ) -> None:
        """A notice still unrecorded `escalate_after` after its send (or the retry
        policy's max_age, if shorter) is raised once to the site's alert command: while
        the store does not record it the escalation cannot run (and a restart would page
        again). Its record is still retried at each sweep."""
        waited = now - sent_at
        limit = min(config.escalate_after, config.retry.max_age).total_seconds()
        if key not in self._unrecorded or key in self._unrecorded_alerted or waited < limit:
            return
        if not key[1] and self._targets_recorded(key[0]):
            return  # the escalation runs from the targets' record (store: _START_ESCALATIONS)
        self._unrecorded_alerted.add(key)
        self._metrics.inc(m.CRITICAL_NOTICES_UNRECORDED)
        job_id, escalation = key
        kind = "escalation" if escalation else "notice"
        consequence = "a restart sends it again" if escalation else "escalation cannot run"
        reason = f"critical {kind} sent but not recorded for {waited:.0f} s: {consequence}"
        log.error("job %d: %s; still recording it at each sweep", job_id, reason)
        detail = f"critical {kind} of job {job_id}"
        self._alerts.send(Alert(CRITICAL_NOTICE_UNRECORDED, self._subject(job_id), detail, reason))

    def _targets_recorded(self, job_id: int) -> bool:
        """Whether the store holds a target that took the job's first notice; a store that
        cannot say counts as no."""
        try:
            return bool(self._store.critical_targets_taken(job_id, False))
        except Exception:  # noqa: BLE001 - the store is down: the alert goes out
            return False

    def _subject(self, job_id: int) -> str:
        """The job's SOP Instance UID for an alert; empty when the store cannot say."""
        try:
            job = self._store.get_job(job_id)
        except Exception as exc:  # noqa: BLE001 - the alert goes out without it
            log.warning("job %d: no SOP Instance UID for the alert: %s", job_id, fault(exc))
            return ""
        return job.sop_instance_uid if job is not None else ""

    def _failed(
        self, alert: CriticalAlert, kind: str, error: str, config: CriticalConfig, now: float
    ) -> None:
        """Retry later with backoff, or give up loudly past the retry policy's limits."""
        failures = alert.attempts + 1
        policy = config.retry
        too_old = now - alert.created_at >= policy.max_age.total_seconds()
        give_up = failures >= policy.max_attempts or too_old
        retry_at = None if give_up else now + retry_delay(policy, failures, self._rng)
        self._store.mark_critical_failed(alert.job_id, error, retry_at, now=now)
        if not give_up:
            self._metrics.inc(m.CRITICAL_NOTICES_FAILED)
            log.warning(
                "job %d: critical %s failed (try %d), retrying: %s",
                alert.job_id,
                kind,
                failures,
                error,
            )
            return
        if alert.escalation:  # no more tries; a first notice's targets start the escalation
            self._unrecorded_targets.pop((alert.job_id, alert.escalation), None)
        self._metrics.inc(m.CRITICAL_NOTICES_DEAD)
        log.error(
            "job %d: critical %s given up after %d tries: %s", alert.job_id, kind, failures, error
        )
        detail = f"critical {kind} of job {alert.job_id}"
        self._alerts.send(
            Alert(CRITICAL_NOTICE_DEAD, self._subject(alert.job_id), detail, error[:1000])
        )


def _escalates_later(alert: CriticalAlert) -> bool:
    """A first notice given up that nobody has opened: a target that took it, once
    recorded, still starts the escalation (the store's escalation query)."""
    return alert.state == "dead" and alert.acknowledged_at is None
