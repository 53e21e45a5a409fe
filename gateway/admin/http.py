"""The admin HTTP endpoint: /healthz, /readyz, /metrics, as a small WSGI app.

/metrics is prometheus_client's own WSGI app (content negotiation, gzip); the server is
the standard library's WSGI server with a thread per request, as prometheus_client's
start_http_server uses, plus what that lacks: a bearer token, compared in constant time,
and TLS with the handshake in the request's thread (a client that stalls holds only its
own thread, and only for `_REQUEST_TIMEOUT_S`). A failed handshake is logged at WARNING
with the peer and the reason and counted (`admin-tls-handshake-failed`), as the other
listeners' are (gateway.tls_handshake.HandshakeFailures).
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from gateway.admin.readiness import Readiness
from gateway.config import AdminConfig, ConfigError
from gateway.logs import failure_reason
from gateway.metrics import Metrics
from gateway.tls_handshake import HandshakeFailures

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT_S = 10.0
ADMIN_TLS_FAILED = "admin-tls-handshake-failed"  # rejections_total's reason
StartResponse = Callable[..., object]


def read_token(path: Path) -> bytes:
    """The bearer token from its file (surrounding whitespace ignored); ConfigError when
    the file is missing or empty, naming the key."""
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"admin.token_file: cannot read {path}: {exc}") from None
    if not token:
        raise ConfigError(f"admin.token_file: {path} is empty")
    return token


def server_tls_context(config: AdminConfig) -> ssl.SSLContext | None:
    if not config.tls.enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=config.tls.cert, keyfile=config.tls.key)
        if config.tls.ca is not None:
            context.load_verify_locations(cafile=config.tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"admin.tls: cannot load cert {config.tls.cert} or key {config.tls.key}: {exc}"
        ) from None
    if config.tls.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class AdminApp:
    """The WSGI application; `token` None means no token is asked (localhost only)."""

    readiness: Readiness
    registry: CollectorRegistry
    token: bytes | None = None

    def __post_init__(self) -> None:
        self._metrics_app = make_wsgi_app(self.registry)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"GET only\n")
        if not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return _reply(
                start_response,
                "401 Unauthorized",
                b"a bearer token is required\n",
                [("WWW-Authenticate", 'Bearer realm="ecg-gateway"')],
            )
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            ready, body = self.readiness.report()
            status = "200 OK" if ready else "503 Service Unavailable"
            data = (json.dumps(body, indent=2) + "\n").encode()
            return _reply(start_response, status, data, content_type="application/json")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)
        return _reply(start_response, "404 Not Found", b"/healthz, /readyz, /metrics\n")

    def _authorized(self, header: str) -> bool:
        if self.token is None:
            return True
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self.token)


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_context: ssl.SSLContext | None = None
    handshake_failures: HandshakeFailures  # set by start_admin

    def get_request(self):
        sock, address = super().get_request()
        sock.settimeout(_REQUEST_TIMEOUT_S)
        if self.ssl_context is not None:
            # The handshake runs on first read, in the request's own thread.
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("admin %s: " + format, self.address_string(), *args)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket) and not self._handshake_done():
            return
        try:
            super().handle()
        except OSError as exc:  # a client gone or stalled mid-request: its problem
            log.debug(
                "admin request from %s failed: %s", self.client_address[0], failure_reason(exc)
            )

    def _handshake_done(self) -> bool:
        """The TLS handshake, before the request is read; a failed one (plain HTTP on the
        TLS port, an untrusted or missing client certificate, a timeout) is told."""
        try:
            self.connection.do_handshake()
        except OSError as exc:  # ssl.SSLError, a reset, TimeoutError
            peer = f"{self.client_address[0]}:{self.client_address[1]}"
            self.server.handshake_failures.failed(peer, exc)
            return False
        return True


@dataclass
class AdminServer:
    server: _ThreadingServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_admin(config: AdminConfig, app: AdminApp, metrics: Metrics) -> AdminServer:
    """Serve `app` on admin.bind:admin.port in a background thread; failed TLS
    handshakes are counted in `metrics`."""
    context = server_tls_context(config)  # first: a bad certificate binds nothing
    server = make_server(
        config.bind, config.port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    server.ssl_context = context
    server.handshake_failures = HandshakeFailures("admin", ADMIN_TLS_FAILED, metrics)
    thread = threading.Thread(target=server.serve_forever, name="admin-http", daemon=True)
    thread.start()
    return AdminServer(server, thread)
