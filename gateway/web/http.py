"""Serving the web application: uvicorn in a thread of its own, as the admin endpoint's
server runs beside the gateway (gateway/admin/http.py), stopped in the reverse order of
the start. The socket is bound here, before the thread starts, so a port in use or a
bad certificate stops `serve` at start with the reason, and port 0 picks a free port.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import uvicorn

from gateway.config import ConfigError, WebConfig

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0


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


def start_web(config: WebConfig, app: object) -> WebServer:
    """Serve `app` on web.bind:web.port (TLS when web.tls.enabled) in a background thread."""
    settings = uvicorn.Config(
        app,
        ssl_certfile=str(config.tls.cert) if config.tls.enabled else None,
        ssl_keyfile=str(config.tls.key) if config.tls.enabled else None,
        ssl_ca_certs=str(config.tls.ca) if config.tls.ca is not None else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls.require_client_cert else ssl.CERT_NONE,
        log_config=None,
        access_log=False,  # request lines name report IDs and query filters: not needed
        server_header=False,
        timeout_keep_alive=5,
    )
    try:
        settings.load()  # the certificate and key: a bad one binds nothing
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"web.tls: cannot load cert {config.tls.cert} or key {config.tls.key}: {exc}"
        ) from None
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
