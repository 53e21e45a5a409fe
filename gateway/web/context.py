"""What every page handler shares: the WebContext (users, sessions, limits, the over-read
service, the audit trail), the request's session, rendering a template with the user and
CSRF token, the signed-in guard with its CSRF check, and error pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from gateway.audit import Auditor
from gateway.overread import OverreadService, Physician, control_character, statement_catalogue
from gateway.web import csrf
from gateway.web.auth import Directory, User
from gateway.web.ecg_pages import EcgPages
from gateway.web.login_limits import LoginLimits
from gateway.web.sessions import COOKIE, Session, Sessions

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")


def person_name(value: str | None) -> str:
    """'Doe, Jane' from the DICOM PN 'Doe^Jane' ('-' when there is none)."""
    if not value:
        return "-"
    family, _, rest = value.partition("^")
    given = " ".join(part for part in rest.split("^") if part)
    return f"{family}, {given}" if given else family


def when(value: datetime | float | None) -> str:
    """A time (datetime or epoch seconds) as the ward reads it: server-local, to the minute."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def number(value: object) -> str:
    """81 for 81.0, 12.5 for 12.5, the text for text, '–' for nothing."""
    if value is None:
        return "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


TEMPLATES.env.filters["pn"] = person_name
TEMPLATES.env.filters["num"] = number
TEMPLATES.env.filters["when"] = when


@dataclass
class WebContext:
    """What the handlers share: users, sessions, limits, the over-read service, the audit."""

    directory: Directory
    sessions: Sessions
    limits: LoginLimits
    service: OverreadService
    audit: Auditor | None = None
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        self.ecgs = EcgPages(self.service.store) if self.service is not None else None
        # the datalist of the edit form: every statement a physician may add
        self.catalogue = [tuple(entry) for entry in statement_catalogue(limit=10_000)]

    def physician(self, session: Session) -> Physician:
        """The signed-in user as the over-read service knows them."""
        user = session.user
        assert user is not None
        return Physician(user.user_id, user.name, user.role)

    def refused(self, request: Request, user: User | None, reason: str) -> None:
        """A refused request in the audit trail (who, from where, why; no patient data)."""
        if self.audit is not None:
            user_id = user.user_id if user is not None else "(not signed in)"
            self.audit.user_refused(user_id, client_address(request), reason)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def session_of(request: Request) -> Session | None:
    context: WebContext = request.app.state.web
    return context.sessions.get(request.cookies.get(COOKIE))


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    context: WebContext = request.app.state.web
    response.set_cookie(
        COOKIE,
        session.session_id,
        httponly=True,
        samesite="strict",
        secure=context.secure_cookies,
        path="/",
    )


def render(request: Request, template: str, status_code: int = 200, **values: object) -> Response:
    """A page from templates/, with the session's user, CSRF token and flash messages."""
    session: Session | None = values.pop("session", None) or session_of(request)
    flash = session.flash[:] if session is not None else []
    if session is not None:
        session.flash.clear()
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "user": session.user if session is not None else None,
            "csrf_token": session.csrf_token if session is not None else "",
            "csrf_field": csrf.FIELD,
            "flash": flash,
            **values,
        },
        status_code=status_code,
    )
    if session is not None:
        set_session_cookie(request, response, session)
    return response


Handler = Callable[[Request, Session], Awaitable[Response]]


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The handler for a signed-in user only (others go to the login page), with every
    POST's CSRF token checked first."""

    async def endpoint(request: Request) -> Response:
        session = session_of(request)
        if request.method == "POST":
            refusal = await check_csrf(request, session)
            if refusal is not None:
                return refusal
        if session is None or session.user is None:
            if request.method != "GET":
                return error_page(request, 401, "Please sign in again: your session has ended.")
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return await handler(request, session)

    return endpoint


async def check_csrf(request: Request, session: Session | None) -> Response | None:
    """None when the form's token is its session's; else the 403 page, audited."""
    form = await request.form()
    presented = form.get(csrf.FIELD)
    problem = csrf.csrf_problem(session, presented if isinstance(presented, str) else None)
    if problem is None:
        return None
    context: WebContext = request.app.state.web
    user = session.user if session is not None else None
    context.refused(request, user, f"CSRF check failed on POST {request.url.path}: {problem}")
    return error_page(request, 403, f"Refused: {problem}.")


def control_problem(what: str, value: str) -> str | None:
    """Why `value`, typed into the field a user knows as `what`, cannot be taken: it
    holds a control character (a NUL cannot even be stored by PostgreSQL); None when it
    may. The message names the field and the character's code, never the value."""
    found = control_character(value.replace("\r\n", "\n"))
    if found is None:
        return None
    return f"{what}: a control character (U+{ord(found):04X}) cannot be saved; remove it"


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status_code=status, status=status, message=message)
