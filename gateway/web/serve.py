"""The web application as `ecg-gateway serve` runs it: the users file read (a bad one
stops the start, naming its line), the over-read service on the gateway's store and
router, uvicorn started on web.bind:web.port; `start` returns what stops it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.audit import Auditor
from gateway.config import ConfigError, WebConfig
from gateway.metrics import Metrics
from gateway.overread import OverreadService
from gateway.routing import Router
from gateway.store import Store
from gateway.web.app import build_app
from gateway.web.auth import Directory
from gateway.web.context import WebContext
from gateway.web.http import WebServer, start_web
from gateway.web.login_limits import LoginLimits
from gateway.web.sessions import Sessions
from model.serial_comparison import ComparisonThresholds

log = logging.getLogger(__name__)


def start_overread_web(
    config: WebConfig,
    store: Store,
    router: Router,
    audit: Auditor | None,
    on_routed: Callable[[list[str]], None],
    metrics: Metrics,
    comparison_limits: ComparisonThresholds | None = None,
) -> WebServer:
    """Serve the over-read pages; ConfigError for a users file or certificate that
    cannot be used, OSError for a port that cannot be had."""
    try:
        directory = Directory.from_file(config.users_file)
    except ConfigError as exc:
        raise ConfigError(f"web.users_file: {exc}") from None
    if not len(directory):
        log.warning("web: %s lists no users: nobody can sign in yet", config.users_file)
    service = OverreadService(
        store, router, audit=audit, on_routed=on_routed, comparison_limits=comparison_limits
    )
    indexed = service.index_existing_reports()
    if indexed:
        log.info("web: %d earlier reports put into the over-read worklist", indexed)
    context = WebContext(
        directory=directory,
        sessions=Sessions(idle_s=config.session_minutes * 60),
        limits=LoginLimits(config.max_failed_logins, config.lockout_minutes * 60),
        service=service,
        audit=audit,
        secure_cookies=config.tls.enabled,
    )
    server = start_web(config, build_app(context), metrics)
    scheme = "https" if config.tls.enabled else "http"
    log.info("over-read web application on %s://%s:%d/", scheme, config.bind, server.port)
    return server
