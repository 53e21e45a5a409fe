"""Serving the web application: uvicorn in a thread of its own, as the admin endpoint's
server runs beside the gateway (gateway/admin/http.py), stopped in the reverse order of
the start. The socket is bound here, before the thread starts, so a port in use or a
bad certificate stops `serve` at start with the reason, and port 0 picks a free port.

Over TLS, uvicorn is given no certificate: its HTTP protocol is wrapped in
tls_handshake.TlsFirst (uvicorn's `http` setting takes a protocol class, called with
uvicorn's arguments), so each handshake is the gateway's and a failed one is logged and
counted (`web-tls-handshake-failed`); given `ssl=`, asyncio would drop it unlogged.
The context is the other listeners' (TLS 1.2+, the `ca` verifying client certificates).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from gateway.config import ConfigError, WebConfig
from gateway.intake.dicom_scp import tls_context
from gateway.metrics import Metrics
from gateway.tls_handshake import HandshakeFailures, TlsFirst

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
WEB_TLS_FAILED = "web-tls-handshake-failed"  # rejections_total's reason


@dataclass
class WebServer:
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def start_web(config: WebConfig, app: object, metrics: Metrics) -> WebServer:
    """Serve `app` on web.bind:web.port (TLS when web.tls.enabled) in a background thread;
    failed TLS handshakes are counted in `metrics`."""
    try:
        context = tls_context(config.tls)  # first: a bad certificate binds nothing
    except ConfigError as exc:
        raise ConfigError(f"web.{exc}") from None
    http = AutoHTTPProtocol
    if context is not None:
        failures = HandshakeFailures("web", WEB_TLS_FAILED, metrics)
        http = TlsFirst(AutoHTTPProtocol, context, failures)
    settings = uvicorn.Config(
        app,
        http=http,
        log_config=None,
        access_log=False,  # request lines name report IDs and query filters: not needed
        server_header=False,
        timeout_keep_alive=5,
    )
    sock = _bind(config)
    server = uvicorn.Server(settings)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="web-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise OSError(f"web: the server on {config.bind}:{config.port} did not start")
    return WebServer(server, thread, sock)


def _bind(config: WebConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.bind else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it a keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.bind, config.port))
    except OSError as exc:
        sock.close()
        raise OSError(f"web: cannot listen on {config.bind}:{config.port}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
