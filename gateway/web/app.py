"""The over-read web application: its routes and the headers every response carries. The
pages are in login.py (sign in and out) and pages.py (worklist, report, confirm), what
they share in context.py, their HTML in templates/.

Every POST is checked for its CSRF token before its handler runs (csrf.py); every page
but the login form needs a signed-in user. Refusals are rendered as pages that say what
was refused and why, and are recorded in the audit trail.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import fault
from gateway.store import StoreError
from gateway.web import login, pages
from gateway.web.context import HERE, WebContext, error_page, signed_in

log = logging.getLogger(__name__)

# Pages are the gateway's own: no script, no frames, nothing from elsewhere.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        (
            b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            b"frame-ancestors 'none'; base-uri 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_page(request, exc.status_code, exc.detail)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A store that fails (down, full, a value it cannot hold) is told as such; its text
    names the database and may quote a value, so the page and the log get neither."""
    log.error("web: %s %s: store unavailable: %s", request.method, request.url.path, fault(exc))
    message = "The store is unavailable; try again in a moment. The fault has been logged."
    return error_page(request, 503, message)


_SERVER_ERROR_PAGE = (
    b"<!doctype html><title>Error</title><link rel=stylesheet href=/static/style.css>"
    b"<main><h1>Error 500</h1><p class='notice refused' role=alert>Something went wrong on "
    b"the server; it has been logged.</p><p><a href=/worklist>Back to the worklist</a></main>"
)


class PageGuard:
    """Every response gets the security headers (and no-store, but for static files), and
    a failure in a page becomes a plain 500 page. The log names the exception's type and
    where it happened, not its message (it might quote patient data), and the exception
    is not re-raised, so the server never logs the message either (Starlette's error
    middleware re-raises what its handler has answered). Plain ASGI: Starlette's
    BaseHTTPMiddleware costs a task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), *_SECURITY_HEADERS]
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception as exc:  # noqa: BLE001 - every failure ends as this page
            log.error(
                "web: %s %s failed with %s", scope["method"], scope["path"], fault(exc, stack=True)
            )
            if not started:
                page = Response(_SERVER_ERROR_PAGE, status_code=500, media_type="text/html")
                await page(scope, receive, with_headers)


def build_app(context: WebContext) -> Starlette:
    routes = [
        Route("/", pages.home),
        Route("/login", login.login_form, methods=["GET"]),
        Route("/login", login.login_submit, methods=["POST"]),
        Route("/logout", signed_in(login.logout), methods=["POST"]),
        Route("/worklist", signed_in(pages.worklist)),
        Route("/reports/{job_id:int}", signed_in(pages.report)),
        Route("/reports/{job_id:int}/ecg.svg", signed_in(pages.ecg_svg)),
        Route("/reports/{job_id:int}/prior.svg", signed_in(pages.prior_svg)),
        Route("/reports/{job_id:int}/page.png", signed_in(pages.page_png)),
        Route("/reports/{job_id:int}/ecg.pdf", signed_in(pages.ecg_pdf)),
        Route("/reports/{job_id:int}/confirm", signed_in(pages.confirm), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, StoreError: _store_unavailable},
    )
    app.state.web = context
    app.add_middleware(PageGuard)
    # The SVG page and a long worklist shrink 3-10x; level 5: most of level 9's saving
    # for a fraction of its time (bench/web.py).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    return app
