"""Signing in and out. The login form has its own (anonymous) session so that its POST
carries a CSRF token like every other; a successful sign-in starts a new session (a new
ID: a session fixed before login is worth nothing after it)."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.web.context import (
    WebContext,
    check_csrf,
    client_address,
    control_problem,
    render,
    session_of,
    set_session_cookie,
)
from gateway.web.sessions import COOKIE, Session


async def login_form(request: Request) -> Response:
    context: WebContext = request.app.state.web
    session = session_of(request)
    if session is not None and session.user is not None:
        return RedirectResponse(_next_page(request), status_code=303)
    session = session or context.sessions.start()
    return render(request, "login.html", session=session, next=_next_page(request))


async def login_submit(request: Request) -> Response:
    context: WebContext = request.app.state.web
    refusal = await check_csrf(request, session_of(request))
    if refusal is not None:
        return refusal
    form = await request.form()
    user_id, password = str(form.get("user_id", "")).strip(), str(form.get("password", ""))
    address = client_address(request)
    session = session_of(request) or context.sessions.start()
    problem = control_problem("the user ID", user_id)
    if problem is not None:  # no user ID holds one (auth.py): audited without it
        _audit_login(context, "(a control character)", address, problem)
        return _form_again(request, session, "", f"{problem}.", 400)
    blocked = context.limits.blocked_for(user_id, address)
    if blocked is not None:
        kind, seconds = blocked
        who = "this user" if kind == "user" else "this computer"
        minutes = max(1, math.ceil(seconds / 60))
        problem = f"too many wrong passwords for {who}; sign-in paused for {minutes} min"
        _audit_login(context, user_id, address, problem)
        message = f"Too many wrong passwords for {who}. Try again in {minutes} minutes."
        return _form_again(request, session, user_id, message, 429)
    user = context.directory.authenticate(user_id, password) if user_id and password else None
    if user is None:
        context.limits.failed(user_id, address)
        _audit_login(context, user_id or "(empty)", address, "wrong user ID or password")
        return _form_again(request, session, user_id, "Wrong user ID or password.", 401)
    context.limits.succeeded(user_id)
    _audit_login(context, user.user_id, address, "")
    context.sessions.end(session.session_id)
    signed = context.sessions.start(user)
    response = RedirectResponse(_next_page(request, form.get("next")), status_code=303)
    set_session_cookie(request, response, signed)
    return response


async def logout(request: Request, session: Session) -> Response:
    context: WebContext = request.app.state.web
    context.sessions.end(session.session_id)
    if context.audit is not None and session.user is not None:
        context.audit.user_authentication(
            session.user.user_id, client_address(request), login=False, problem=""
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _form_again(
    request: Request, session: Session, user_id: str, message: str, status: int
) -> Response:
    return render(
        request,
        "login.html",
        status_code=status,
        session=session,
        error=message,
        user_id=user_id,
        next=_next_page(request),
    )


def _audit_login(context: WebContext, user_id: str, address: str, problem: str) -> None:
    if context.audit is not None:
        context.audit.user_authentication(user_id, address, login=True, problem=problem)


def _next_page(request: Request, posted: object = None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    wanted = posted if isinstance(posted, str) else request.query_params.get("next", "")
    parts = urlsplit(wanted)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or wanted.startswith("//"):
        return "/worklist"
    return parts.path
