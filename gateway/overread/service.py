"""The over-read service: the worklist, the report view, confirming and correcting a
report, and its history. The web application (gateway/web) calls it; it holds no HTTP.

Confirming writes version N+1 of the report (final; corrected when it changes a report
that was final) and routes it by the same routes as the preliminary one; the version,
its deliveries and its change commit in one transaction (gateway/store/
report_versions.py), which also decides which of two physicians confirming the same
version at once wins: the other is told who and when (Conflict), and nothing is sent
twice. Every confirmation, correction and refused attempt goes to the change history
and the audit trail.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime

from gateway.audit import Auditor, Instance
from gateway.delivery import DeliveryError, load_package
from gateway.delivery.sweeper import exported_instance
from gateway.overread.edits import ReportEdit, apply_edit, content, same_content
from gateway.overread.errors import Conflict, NotFound, PermissionDenied, Unavailable
from gateway.overread.records import Physician, ReportView, VersionInfo
from gateway.processing.package import ReportPackage
from gateway.processing.report_head import report_head
from gateway.processing.revision import revised_package, withdrawn_findings
from gateway.routing import Router, critical_findings
from gateway.store import Job, Store
from gateway.store.report_records import Change, NewVersion, ReportVersion, WorklistEntry
from model.report import Confirmation, CriticalFinding, Report
from model.report_text import physician_display
from model.serial_comparison import ComparisonThresholds, Prior, compare

_FINAL_STATES = ("final", "corrected", "amended")


@dataclass
class OverreadService:
    """Over-read on one store; `on_routed` hears the destinations of each new version
    (the server wakes their delivery sweeps), `audit` records every action, `critical`
    (the routes' critical-result rules) marks each new version's critical findings
    again from what the physician confirmed (default: the rules of routes.yaml's
    `critical:` section in force)."""

    store: Store
    router: Router
    _: KW_ONLY
    audit: Auditor | None = None
    on_routed: Callable[[list[str]], None] = lambda destinations: None
    critical: Callable[[Report], list[CriticalFinding]] | None = None
    comparison_limits: ComparisonThresholds | None = None  # gateway.yaml's comparison
    clock: Callable[[], float] = time.time

    # --- the worklist -------------------------------------------------------------------

    def worklist(
        self,
        *,
        site: str | None = None,
        priority: str | None = None,
        max_age_s: float | None = None,
        include_final: bool = False,
        limit: int = 200,
        now: float | None = None,
    ) -> list[WorklistEntry]:
        """Reports awaiting over-read (with `include_final`, all): critical first, then
        stat, asap, routine, then oldest first; `max_age_s` keeps those received since."""
        since = None if max_age_s is None else (now or self.clock()) - max_age_s
        return self.store.worklist(
            include_final=include_final,
            site=site,
            priority=priority,
            received_since=since,
            limit=limit,
        )

    def index_existing_reports(self, limit: int = 1000) -> int:
        """Put the reports of jobs completed before the store kept versions into the
        worklist (after an upgrade; the web application calls it at start). How many."""
        jobs = self.store.unindexed_reports(limit)
        for job in jobs:
            self._index(job)
        return len(jobs)

    # --- one report ---------------------------------------------------------------------

    def view(self, job_id: int, user: Physician, now: float | None = None) -> ReportView:
        """The report as the report view shows it; records that `user` opened it. Only a
        user who may confirm it acknowledges a critical finding (no escalation, no further
        targets told): an administrator or a reader opening it is nobody who can act on it."""
        now = now or self.clock()
        job, entry, latest = self._current(job_id)
        package = self._package(job, latest)
        self.store.mark_report_opened(job_id, user.user_id, now)
        if user.may_confirm:
            self.store.acknowledge_critical(job_id, user.user_id, now)
        self._audit(user, package, "R", "report opened")
        versions = self.store.report_versions(job_id)
        return ReportView(
            job_id,
            package.report,
            package.metadata,
            package.kind,
            package.pdf,
            package.png,
            versions=[
                VersionInfo(v.version, v.status, v.created_by, v.created_at) for v in versions
            ],
            history=self.store.report_changes(job_id),
            entry=dataclasses.replace(
                entry,
                opened_at=entry.opened_at or now,
                opened_by=entry.opened_by or user.user_id,
            ),
        )

    def history(self, job_id: int) -> list[Change]:
        """Every change and refused attempt, oldest first."""
        self._current(job_id)
        return self.store.report_changes(job_id)

    def confirm(
        self,
        job_id: int,
        user: Physician,
        edited: ReportEdit | None,
        base_version: int,
        now: float | None = None,
    ) -> Report:
        """Confirm version `base_version` as `user` saw it, with `edited` applied (None:
        as it is), and route the new version; returns it. A report that is final already
        and is not changed stays as it is (nothing is sent again).

        Raises PermissionDenied (not a physician), Conflict (`base_version` is not the
        latest: someone else confirmed or corrected it), InvalidEdit, NotFound, Unavailable.
        """
        now = now or self.clock()
        job, _, latest = self._current(job_id)
        self._check_may_confirm(job, latest, user, base_version)
        base = Report.model_validate_json(latest.report_json)
        reviewed = self._reviewed(base, edited)
        final_before = base.status in _FINAL_STATES
        if final_before and same_content(base, reviewed):
            return base
        report = self._confirmed_version(job_id, base, reviewed, user, now)
        package = dataclasses.replace(self._package(job, latest), report=report)
        destinations = self._route(package)
        action = "corrected" if final_before else "confirmed"
        new = _new_version(base, report, user, action, now)
        if not self.store.add_report_version(job_id, base_version, new, destinations, now):
            latest = self.store.latest_report_version(job_id)
            raise self._refused_stale(job, latest, user, base_version)
        self._audit(user, package, "U", f"report {action}: version {report.version}")
        self.on_routed(sorted({name for name, _ in destinations}))
        return report

    # --- confirming, step by step -------------------------------------------------------

    def _check_may_confirm(
        self, job: Job, latest: ReportVersion, user: Physician, base_version: int
    ) -> None:
        """Only a physician confirms, and only the latest version: what they saw must be
        what they confirm. A refusal is recorded before it is raised."""
        if not user.may_confirm:
            self._refuse(job, latest, user, "refused-role", f"role {user.role} may not confirm")
            raise PermissionDenied(f"a {user.role} may not confirm reports; a physician must")
        if latest.version != base_version:
            raise self._refused_stale(job, latest, user, base_version)

    def _refused_stale(
        self, job: Job, latest: ReportVersion, user: Physician, base_version: int
    ) -> Conflict:
        """Records that `base_version` was no longer the latest; the Conflict to raise."""
        self._refuse(job, latest, user, "refused-stale", f"confirmed version {base_version}")
        return _conflict(latest)

    def _reviewed(self, base: Report, edited: ReportEdit | None) -> Report:
        """`base` with the physician's edit applied, its comparison made again from the
        edit, and its critical findings marked again from what is confirmed."""
        reviewed = apply_edit(base, edited)
        if edited is not None:
            reviewed = self._compared_again(reviewed)
        findings = self._critical_findings(reviewed)
        return reviewed.model_copy(update={"critical": findings})

    def _confirmed_version(
        self, job_id: int, base: Report, reviewed: Report, user: Physician, now: float
    ) -> Report:
        """The next version: `reviewed` as `user` confirmed it at `now` (corrected when
        `base` was final already), naming what earlier versions said that it withdraws."""
        earlier = [
            Report.model_validate_json(v.report_json) for v in self.store.report_versions(job_id)
        ]
        final_before = base.status in _FINAL_STATES
        return reviewed.model_copy(
            update={
                "withdrawn": withdrawn_findings(earlier, reviewed),
                "status": "corrected" if final_before else "final",
                "version": base.version + 1,
                "confirmation": Confirmation(
                    physician_id=user.user_id,
                    physician_name=user.name,
                    confirmed_at=datetime.fromtimestamp(now, UTC),
                ),
                "created_at": datetime.fromtimestamp(now, UTC),
            }
        )

    # --- helpers ------------------------------------------------------------------------

    def _current(self, job_id: int) -> tuple[Job, WorklistEntry, ReportVersion]:
        """The job, its worklist row and latest version (indexing an older job's report)."""
        job = self.store.get_job(job_id)
        if job is None or job.state != "done":
            raise NotFound(f"no finished report {job_id}")
        entry = self.store.worklist_entry(job_id)
        if entry is None:
            self._index(job)
            entry = self.store.worklist_entry(job_id)
        latest = self.store.latest_report_version(job_id)
        if entry is None or latest is None:
            raise NotFound(f"report {job_id} has no report files to show")
        return job, entry, latest

    def _index(self, job: Job) -> None:
        """Index a report completed before the store kept versions (its package is
        read once); one whose files are gone stays out of the worklist."""
        try:
            package = self._load(job)
        except Unavailable:
            return
        self.store.index_report(job.id, report_head(job, package), self.clock())

    def _load(self, job: Job) -> ReportPackage:
        directory = self.store.report_files_of(job)
        if directory is None:
            raise Unavailable(f"the files of report {job.id} were removed by retention")
        try:
            return load_package(directory)
        except DeliveryError as exc:
            raise Unavailable(f"report {job.id}: {exc}") from None

    def _package(self, job: Job, version: ReportVersion) -> ReportPackage:
        """The job's package with `version` of its report (its PDF drawn for it)."""
        package = self._load(job)
        if version.version == 1:
            return package
        return revised_package(package, Report.model_validate_json(version.report_json))

    def _compared_again(self, report: Report) -> Report:
        """The comparison with the prior ECG made again from the physician's reading (a
        rhythm the physician removed must not stay "new"), against the prior's latest
        version; a prior not held here (read from an archive) cannot be compared again,
        so its comparison is dropped with a warning rather than sent unchecked."""
        comparison = report.comparison
        if comparison is None:
            return report
        prior = self._latest_report(comparison.prior_sop_instance_uid)
        if prior is None:
            warning = "comparison with the prior ECG withdrawn: the prior is not held here"
            return report.model_copy(
                update={"comparison": None, "warnings": [*report.warnings, warning]}
            )
        again = Prior(prior, comparison.prior_sop_instance_uid, comparison.prior_acquired_at)
        return report.model_copy(
            update={"comparison": compare(report, again, self.comparison_limits)}
        )

    def _latest_report(self, sop_instance_uid: str) -> Report | None:
        """The latest version of the newest done job for that UID, if this store holds it."""
        for job in reversed(self.store.jobs_for_uid(sop_instance_uid)):
            version = self.store.latest_report_version(job.id) if job.state == "done" else None
            if version is not None:
                return Report.model_validate_json(version.report_json)
        return None

    def _critical_findings(self, report: Report) -> list[CriticalFinding]:
        """The critical findings of what the physician confirmed, by the routes' rules."""
        if self.critical is not None:
            return self.critical(report)
        return critical_findings(self.router.config.critical.active_rules, report)

    def _route(self, package: ReportPackage) -> list[tuple[str, str]]:
        try:
            return self.router.destinations_for(package)
        except Exception as exc:  # noqa: BLE001 - a routing bug must not half-confirm
            raise Unavailable(f"the new version cannot be routed: {type(exc).__name__}") from None

    def _refuse(
        self, job: Job, latest: ReportVersion, user: Physician, action: str, why: str
    ) -> None:
        """A refused attempt: in the history and the audit trail."""
        now = self.clock()
        change = Change(at=now, user_id=user.user_id, action=action, version=latest.version)
        self.store.add_report_change(job.id, dataclasses.replace(change, after={"why": why}))
        if self.audit is not None:
            self.audit.report_event(
                user.user_id, self._instance(job), "U", f"{action}: {why}", success=False
            )

    def _instance(self, job: Job) -> Instance:
        """What an audit record names: from the package, or from the job once purged."""
        try:
            return exported_instance(self._load(job))
        except Unavailable:
            return Instance(job.sop_class_uid, job.sop_instance_uid)

    def _audit(self, user: Physician, package: ReportPackage, action: str, what: str) -> None:
        if self.audit is not None:
            self.audit.report_event(user.user_id, exported_instance(package), action, what)


def _new_version(
    base: Report, report: Report, user: Physician, action: str, now: float
) -> NewVersion:
    """What the store writes for `report`: the version row and its change from `base`."""
    return NewVersion(
        version=report.version,
        status=report.status,
        report_json=report.model_dump_json(),
        created_by=user.user_id,
        summary=report.impression,
        critical_texts=tuple(finding.text for finding in report.critical),
        change=Change(
            at=now,
            user_id=user.user_id,
            action=action,
            version=report.version,
            before=content(base),
            after=content(report),
        ),
    )


def _conflict(latest: ReportVersion) -> Conflict:
    report = Report.model_validate_json(latest.report_json)
    who = physician_display(report.confirmation) if report.confirmation else "the gateway"
    return Conflict(latest.job_id, latest.version, latest.created_by, who, latest.created_at)
