"""The over-read pages: the worklist, a report with its edit form, its ECG as SVG and PDF,
and confirming. The over-read service (gateway/overread/service.py) does the work and
the checks; these handlers turn requests into its calls and its answers (and refusals)
into pages. Its calls touch the store, so they run in the thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.web.context import WebContext, error_page, render
from gateway.web.edit_form import FormProblem, read_reading, shown_value
from gateway.web.sessions import Session
from model.render.page import patient_fields, study_fields

WORKLIST_ROWS = 1000  # rows shown; the counts cover every match
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
    now = datetime.now(UTC)
    entries = await run_in_threadpool(
        context.service.worklist,
        site=filters["site"] or None,
        priority=filters["priority"] or None,
        max_age_s=_AGE_S.get(filters["age"]),
        include_final=filters["final"],
        limit=None,
        now=now,
    )
    shown = entries[:WORKLIST_ROWS]
    counts = {p: 0 for p in PRIORITIES}
    for entry in entries:
        counts[entry.priority] = counts.get(entry.priority, 0) + 1
    counts |= {
        "total": len(entries),
        "critical": sum(1 for entry in entries if entry.critical),
        "shown": len(shown),
    }
    sites = sorted({entry.site for entry in entries if entry.site} | {filters["site"]} - {""})
    return render(
        request,
        "worklist.html",
        session=session,
        entries=shown,
        ages_of=[age_text(now, entry.received_at) for entry in shown],
        counts=counts,
        filters=filters,
        sites=sites,
        ages=AGES,
    )


async def report(
    request: Request, session: Session, error: str = "", status: int = 200
) -> Response:
    context: WebContext = request.app.state.web
    job_id = request.path_params["job_id"]
    view = await run_in_threadpool(_view, context, job_id, session)
    shown = view.report
    meta = view.metadata
    fields = dict(patient_fields(meta))
    return render(
        request,
        "report.html",
        status_code=status,
        session=session,
        job_id=job_id,
        report=shown,
        error=error,
        patient={
            "name": fields.pop("Name"),
            "fields": [*fields.items(), *study_fields(meta), *_site_fields(view)],
        },
        acquired=meta.acquisition_time and meta.acquisition_time.strftime("%Y-%m-%d %H:%M"),
        prior=view.prior_available,
        measurements=[
            {
                "key": key,
                "label": label,
                "unit": unit,
                "value": shown_value(getattr(shown.measurements, key)),
                "null_reason": shown.null_reasons.get(key, ""),
            }
            for key, label, unit in MEASUREMENT_FIELDS
        ],
        catalogue=context.catalogue,
        may_edit=session.user.may_confirm and shown.status != "amended",
        order=_order_fields(view),
        history=view.history,
    )


async def confirm(request: Request, session: Session) -> Response: ...


async def ecg_svg(request: Request, session: Session) -> Response: ...


async def prior_svg(request: Request, session: Session) -> Response: ...


async def ecg_pdf(request: Request, session: Session) -> Response: ...


def age_text(now: datetime, then: datetime) -> str:
    """'12 min', '3 h 5 min', '2 d': how long a report has waited, at a glance."""
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} d"
