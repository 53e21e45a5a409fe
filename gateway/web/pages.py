"""The over-read pages: the worklist, a report with its edit form, its ECG as SVG and PDF,
and confirming. The over-read service (gateway/overread) does the work and the checks
(roles, stale versions, valid edits) and records refusals in the history and the audit
trail; these handlers turn requests into its calls, and its answers and refusals into
pages. Its calls touch the store and the disk, so they run in the thread pool.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.overread import (
    Conflict,
    InvalidEdit,
    NotFound,
    OverreadError,
    PermissionDenied,
    ReportEdit,
    ReportView,
    StatementEdit,
    Unavailable,
    WorklistEntry,
)
from gateway.web.context import WebContext, control_problem, error_page, render
from gateway.web.edit_form import FormProblem, SubmittedReading, read_reading, shown_value
from gateway.web.history import change_summary
from gateway.web.sessions import Session
from model.render.page import patient_fields, study_fields
from model.report import Report

WORKLIST_ROWS = 200  # rows shown (the most urgent); the counts cover every match
AGES = (
    ("", "any time"),
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
)
_AGE_S = {"1h": 3600, "4h": 4 * 3600, "24h": 86400, "7d": 7 * 86400}
PRIORITIES = ("stat", "asap", "routine")
MEASUREMENT_FIELDS = (
    ("heart_rate_bpm", "Vent. rate", "bpm"),
    ("pr_ms", "PR", "ms"),
    ("qrs_ms", "QRS", "ms"),
    ("qt_ms", "QT", "ms"),
    ("qtc_bazett_ms", "QTc Bazett", "ms"),
    ("qtc_fridericia_ms", "QTc Fridericia", "ms"),
    ("p_axis_deg", "P axis", "°"),
    ("qrs_axis_deg", "QRS axis", "°"),
    ("t_axis_deg", "T axis", "°"),
)
# Refusals by the service, with the page's status code.
_REFUSALS: tuple[tuple[type[OverreadError], int], ...] = (
    (PermissionDenied, 403),
    (Conflict, 409),
    (InvalidEdit, 422),
    (NotFound, 404),
    (Unavailable, 503),
)


async def home(request: Request) -> Response:
    return RedirectResponse("/worklist", status_code=303)


async def worklist(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    query = request.query_params
    filters = {
        "site": query.get("site", ""),
        "priority": query.get("priority", "") if query.get("priority") in PRIORITIES else "",
        "age": query.get("age", "") if query.get("age") in _AGE_S else "",
        "final": query.get("final") == "1",
    }
    problem = control_problem("the site filter", filters["site"])
    if problem is not None:
        return error_page(request, 400, f"{problem}.")
    now = time.time()
    entries, counts = await run_in_threadpool(_worklist, context, filters, now)
    counts["shown"] = len(entries)
    sites = sorted({entry.site for entry in entries if entry.site} | {filters["site"]} - {""})
    return render(
        request,
        "worklist.html",
        session=session,
        entries=entries,
        ages_of=[age_text(now - entry.received_at) for entry in entries],
        counts=counts,
        filters=filters,
        sites=sites,
        ages=AGES,
    )


def _worklist(
    context: WebContext, filters: dict, now: float
) -> tuple[list[WorklistEntry], dict[str, int]]:
    """The rows shown and the counts of every match (counted by the store, not read)."""
    chosen = {
        "include_final": filters["final"],
        "site": filters["site"] or None,
        "priority": filters["priority"] or None,
    }
    max_age_s = _AGE_S.get(filters["age"])
    entries = context.service.worklist(**chosen, max_age_s=max_age_s, limit=WORKLIST_ROWS, now=now)
    since = now - max_age_s if max_age_s is not None else None
    counts = context.service.store.worklist_counts(**chosen, received_since=since)
    return entries, counts


async def report(request: Request, session: Session) -> Response:
    return await _report_page(request, session, request.path_params["job_id"])


async def _report_page(
    request: Request,
    session: Session,
    job_id: int,
    error: str = "",
    status: int = 200,
    submitted: FormData | None = None,
) -> Response:
    """The report view; with `submitted`, the form shows what the physician typed (a
    refused edit is corrected, not typed again)."""
    context: WebContext = request.app.state.web
    try:
        view: ReportView = await run_in_threadpool(
            context.service.view, job_id, context.physician(session)
        )
    except (NotFound, Unavailable) as exc:
        return _refusal_page(request, exc)
    shown, meta = view.report, view.metadata
    fields = dict(patient_fields(meta))
    name = fields.pop("Name")
    site = [("Site", view.entry.site or "-"), ("Station", view.entry.station or "-")]
    acquired = meta.acquisition_time.strftime("%Y-%m-%d %H:%M") if meta.acquisition_time else ""
    return render(
        request,
        "report.html",
        status_code=status,
        session=session,
        job_id=job_id,
        report=shown,
        error=error,
        patient={"name": name, "fields": [*fields.items(), *study_fields(meta), *site]},
        acquired=acquired,
        priority=view.entry.priority,
        prior=await run_in_threadpool(context.ecgs.prior_job, shown),
        measurements=[
            {
                "key": key,
                "label": label,
                "unit": unit,
                "null_reason": shown.null_reasons.get(key, ""),
            }
            for key, label, unit in MEASUREMENT_FIELDS
        ],
        typed=typed_values(submitted, shown),
        catalogue=context.catalogue,
        may_edit=context.physician(session).may_confirm,
        has_pdf=view.pdf is not None,
        drawn=view.kind == "ecg-waveform",  # samples to draw; else the page as received
        history=[(change, change_summary(change)) for change in reversed(view.history)],
    )


async def confirm(request: Request, session: Session) -> Response:
    """Confirm (or correct) the version the physician saw, with their edits; the service
    refuses a reader, a stale version or an invalid edit, and each refusal is a page."""
    context: WebContext = request.app.state.web
    job_id: int = request.path_params["job_id"]
    user = context.physician(session)
    form = await request.form()
    try:
        current = await run_in_threadpool(context.ecgs.latest_report, job_id)
        reading = read_reading(form, current)
        edit = None if reading.base_version != current.version else _edit_of(reading, current)
        confirmed = await run_in_threadpool(
            context.service.confirm, job_id, user, edit, reading.base_version
        )
    except FormProblem as exc:
        return await _report_page(request, session, job_id, f"Not saved: {exc}.", 422, form)
    except OverreadError as exc:
        if isinstance(exc, NotFound | Unavailable):
            return _refusal_page(request, exc)
        status = next(code for kind, code in _REFUSALS if isinstance(exc, kind))
        typed = form if isinstance(exc, InvalidEdit) else None
        return await _report_page(request, session, job_id, _refusal_text(exc), status, typed)
    verb = "corrected" if confirmed.status == "corrected" else "confirmed"
    if confirmed.confirmation is None or confirmed.confirmation.physician_id != user.user_id:
        session.flash.append(f"Report {job_id} is already {confirmed.status}; nothing changed.")
    else:
        session.flash.append(
            f"Report {job_id} {verb} as {confirmed.status} (version {confirmed.version}); "
            "it is on its way to the EHR."
        )
    return RedirectResponse("/worklist", status_code=303)


async def ecg_svg(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    svg = await run_in_threadpool(context.ecgs.svg, request.path_params["job_id"])
    return _svg_response(request, svg)


async def page_png(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    png = await run_in_threadpool(context.ecgs.page_png, request.path_params["job_id"])
    if png is None:
        return error_page(request, 404, "This report has no page image.")
    return Response(png, media_type="image/png")


async def prior_svg(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    current = await run_in_threadpool(context.ecgs.latest_report, request.path_params["job_id"])
    prior = await run_in_threadpool(context.ecgs.prior_job, current)
    if prior is None:
        return error_page(request, 404, "The prior ECG is not in this gateway's store.")
    return _svg_response(request, await run_in_threadpool(context.ecgs.svg, prior))


async def ecg_pdf(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    job_id = request.path_params["job_id"]
    try:
        view = await run_in_threadpool(context.service.view, job_id, context.physician(session))
    except (NotFound, Unavailable) as exc:
        return _refusal_page(request, exc)
    if view.pdf is None:
        return error_page(request, 404, f"Report {job_id} has no PDF page.")
    headers = {"Content-Disposition": f'inline; filename="ecg-report-{job_id}.pdf"'}
    return Response(view.pdf, media_type="application/pdf", headers=headers)


def typed_values(submitted: FormData | None, report: Report) -> dict:
    """What the form's fields hold: the report's values, or those the physician submitted
    (when the statements are still the ones the form was made for)."""
    statements = report.statements
    if submitted is None or submitted.get("statement_count") != str(len(statements)):
        submitted = None

    def field(name: str, default: str) -> str:
        return str(submitted.get(name, default)) if submitted is not None else default

    adds = [str(v) for v in submitted.getlist("add")] if submitted is not None else []
    return {
        "impression": field("impression", report.impression),
        "texts": [field(f"text_{i}", s.text) for i, s in enumerate(statements)],
        "removed": [bool(field(f"remove_{i}", "")) for i in range(len(statements))],
        "measurements": {
            key: field(f"m_{key}", shown_value(getattr(report.measurements, key)))
            for key, _, _ in MEASUREMENT_FIELDS
        },
        "adds": (adds + ["", "", ""])[:3],
    }


def _svg_response(request: Request, svg: str | None) -> Response:
    if svg is None:
        return error_page(request, 404, "This report has no waveform to draw.")
    return Response(svg, media_type="image/svg+xml")


def _edit_of(reading: SubmittedReading, current: object) -> ReportEdit | None:
    """The service's edit for what the physician submitted; None when nothing changed."""
    if not reading.changes(current):
        return None
    return ReportEdit(
        statements=[StatementEdit(code, text) for code, text in reading.statements],
        impression=reading.impression,
        measurements=reading.measurements,
    )


def _refusal_text(exc: OverreadError) -> str:
    if isinstance(exc, Conflict):
        return f"Not saved: {exc}. Your changes were not applied; this is the current version."
    if isinstance(exc, PermissionDenied):
        return f"Refused: {exc}."
    return f"Not saved: {exc}."


def _refusal_page(request: Request, exc: OverreadError) -> Response:
    status = next(code for kind, code in _REFUSALS if isinstance(exc, kind))
    return error_page(request, status, f"{exc}.")


def age_text(seconds: float) -> str:
    """'12 min', '3 h 5 min', '2 d': how long a report has waited, at a glance."""
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} d"
