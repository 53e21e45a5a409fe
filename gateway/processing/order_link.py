"""Putting the order into a finished ECG's report package, and reconciling a late order.

`link_order` runs in the worker thread after the helper process built the package and
before routing (routes may match on the order): the decoded metadata is there, for every
input format, and so is the store. The matched order's reference goes into the package
(the HL7 and FHIR builders carry it to the EHR), the report gets the match's warning, the
package is saved again, and the order is attached to the job (completed).

`Reconciler` is IHE REWF's reconciliation: an order that arrives after its
ECG was reported unordered is attached to it, and the report is sent again, referring
to the order, through the job's delivery rows (Store.replace_report).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.processing.order_match import (
    EcgIdentity,
    OrderMatch,
    OrderMatching,
    is_candidate_for,
    log_match,
    match_order,
)
from gateway.processing.package import ReportPackage
from gateway.routing import key_for_patient
from gateway.store import Job, Store
from gateway.store.order_records import OPEN_ORDER_STATES, Order

log = logging.getLogger(__name__)


def link_order(
    store: Store, job: Job, package: ReportPackage, report_dir: Path, settings: OrderMatching
) -> ReportPackage:
    """The package with its order (or the reason it has none) on it, saved in
    `report_dir`; the order attached to the job. Raises StoreError (the job retries)."""
    match = match_order(store, _identity(job, package), settings, job_id=job.id)
    log_match(job.id, match)
    if match.order is None and match.warning is None:
        return package  # unordered, as most ECGs of a site without orders
    linked = _with_match(package, match, reconciled=False)
    linked.save_report_and_context(report_dir)
    order = match.order
    if order is not None and order.state in OPEN_ORDER_STATES:
        store.attach_job(order.id, job.id)
    return linked


@dataclass(frozen=True)
class Reconciler:
    """IHE REWF reconciliation: the store, the settings, where re-sent packages are
    written, and `route`, where a package goes now (Router.destinations_for)."""

    store: Store
    settings: OrderMatching
    reports_dir: Path
    route: Callable[[ReportPackage], list[tuple[str, str]]]

    def hook(self, on_queued: Callable[[list[str]], None]) -> Callable[[Order, str], None]:
        """An `on_order` callback of the HL7 order listener (gateway/intake/order_intake.py):
        each new or updated order is reconciled; `on_queued` hears the destinations queued
        again (delivery sweeps them now)."""

        def on_order(order: Order, event: str) -> None:
            if event not in ("new", "updated", "patient-updated"):
                return
            destinations = self.late_order(order)
            if destinations:
                on_queued(destinations)

        return on_order

    def late_order(self, order: Order) -> list[str]:
        """Attach a newly arrived open `order` to the one finished, unordered ECG it fits
        (the matching rules, from the ECG's side: an ECG that two orders fit, or an order
        that fits two ECGs, is left for a person) and queue its report again to where it
        is routed now. The destinations queued; none when nothing was reconciled."""
        settings = self.settings
        if not settings.enabled or not settings.reconcile_late_orders:
            return []
        if order.state not in OPEN_ORDER_STATES or not order.patient_id:
            return []
        fits = _unordered_ecgs_fitting(self.store, order, settings)
        if len(fits) > 1:
            log.warning(
                "order %d fits %d unordered ECGs (jobs %s): none reconciled, decide by hand",
                order.id,
                len(fits),
                ", ".join(str(job.id) for job, _, _ in fits),
            )
            return []
        if not fits:
            return []
        job, package, match = fits[0]
        return self._send_again(job, _with_match(package, match, reconciled=True), order)

    def finished(self, job: Job, package: ReportPackage) -> list[str]:
        """After an unordered ECG's job completed: an order that arrived while it was being
        processed (after its match, before its completion, when the listener's hook could
        not see it done yet) is reconciled now. The destinations queued again, if any."""
        if package.order is not None or not self.settings.reconcile_late_orders:
            return []
        ecg = _identity(job, package)
        late = match_order(self.store, ecg, self.settings, job_id=job.id).order
        if late is None or late.state not in OPEN_ORDER_STATES:
            return []
        return self.late_order(late)

    def _send_again(self, job: Job, linked: ReportPackage, order: Order) -> list[str]:
        directory = self.reports_dir / f"{job.id}-order{order.id}"  # never a cached name
        linked.save(directory)
        deliveries = self.route(linked)
        if not self.store.replace_report(job.id, str(directory), deliveries, order_id=order.id):
            log.warning(
                "job %d changed while order %d was reconciled: not re-sent", job.id, order.id
            )
            return []
        log.info(
            "order %d reconciled with job %d, reported unordered before: report sent again to %s",
            order.id,
            job.id,
            ",".join(name for name, _ in deliveries) or "nowhere",
        )
        return sorted({name for name, _ in deliveries})


def _unordered_ecgs_fitting(
    store: Store, order: Order, settings: OrderMatching
) -> list[tuple[Job, ReportPackage, OrderMatch]]:
    """The patient's finished ECGs without an order that the matching rules would give
    this order to (and to no other)."""
    due = order.scheduled_at if order.scheduled_at is not None else order.created_at
    # an ECG the window could give this order was received after due - window
    since = due - settings.patient_window_h * 3600
    # the ECG may name the order's issuer of patient ID, or none (then it is no conflict)
    issuers = dict.fromkeys((order.patient_id_issuer, ""))
    keys = [key_for_patient(order.patient_id, issuer, "") for issuer in issuers]
    jobs = [job for key in keys for job in store.done_jobs_for_patient(key, received_since=since)]
    fits = []
    for job in jobs:
        directory = store.report_files_of(job)
        if directory is None:
            continue  # purged by retention: nothing left to send again
        package = ReportPackage.load(directory)
        ecg = _identity(job, package)
        if package.order is not None or not is_candidate_for(order, ecg, settings):
            continue
        match = match_order(store, ecg, settings, job_id=job.id)
        if match.order is not None and match.order.id == order.id:
            fits.append((job, package, match))
    return fits


def _identity(job: Job, package: ReportPackage) -> EcgIdentity:
    return EcgIdentity.of(package.metadata, received_at=job.created_at)


def _with_match(package: ReportPackage, match: OrderMatch, *, reconciled: bool) -> ReportPackage:
    report = package.report
    if match.warning is not None and match.warning not in report.warnings:
        report = report.model_copy(update={"warnings": [*report.warnings, match.warning]})
    reference = None
    if match.order is not None:
        reference = dataclasses.replace(match.order.reference, reconciled=reconciled)
    return dataclasses.replace(package, report=report, order=reference)
