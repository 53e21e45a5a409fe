"""Server-side TLS handshakes done by the gateway's asyncio listeners themselves, one per
connection, so that a failed one (plain TCP or HTTP on the TLS port, an untrusted or
missing client certificate, a client that goes quiet or hangs up) is logged at WARNING
with the peer and the reason (gateway.logs.failure_reason) and counted among the
rejections under a reason of its own per listener.

A server given `ssl=` (asyncio's create_server, which uvicorn and aiohttp call) does the
handshake in asyncio's SSLProtocol, which drops a failure: it logs an OSError only in
the loop's debug mode and never tells the server's protocol. So these listeners are
served without `ssl=` and each connection is upgraded with asyncio's public start_tls:
the HL7 order listener's stream by StreamWriter.start_tls, the web application's
(uvicorn) and the upload endpoint's (aiohttp) connections by TlsFirst, a protocol
factory that does the handshake, then hands the TLS transport to the server's own
protocol. The DICOM SCP (pynetdicom, threads) logs its own (dicom_scp.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from gateway.logs import failure_reason
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HandshakeFailures:
    """Where one listener's failed handshakes are told: its name in the log line, and its
    reason label of rejections_total (`web-tls-handshake-failed`)."""

    listener: str
    reason: str
    metrics: Metrics

    def failed(self, peer: str, exc: BaseException) -> None:
        """Log first (a test or an operator waiting on the count finds the line), then count."""
        log.warning("%s TLS handshake with %s failed: %s", self.listener, peer, failure_reason(exc))
        self.metrics.reject(self.reason)


def peer_of(transport: asyncio.BaseTransport) -> str:
    """'address:port' of a connection's peer, for the log."""
    address = transport.get_extra_info("peername") or ("?", 0)
    return f"{address[0]}:{address[1]}"


class TlsFirst:
    """A protocol factory for a server started without `ssl=`: each connection's TLS
    handshake first, then `serve(...)`'s protocol (called with the factory's arguments)
    on the TLS transport, as if the server had done the handshake itself."""

    def __init__(
        self,
        serve: Callable[..., asyncio.Protocol],
        context: ssl.SSLContext,
        failures: HandshakeFailures,
    ) -> None:
        self.serve = serve
        self.context = context
        self.failures = failures
        self.handshakes: set[asyncio.Task] = set()  # in progress; cancel() on a stop

    def __call__(self, *args: object, **kwargs: object) -> asyncio.Protocol:
        return _Handshake(self, self.serve(*args, **kwargs))

    def cancel(self) -> None:
        """Give up the handshakes in progress (the listener stops): not failures."""
        for task in list(self.handshakes):
            task.cancel()


class _Handshake(asyncio.Protocol):
    """A connection's protocol until its handshake is done: on the TCP transport it
    starts the handshake; on the TLS one it keeps what arrives before the served protocol
    has its transport (a client's first request comes with its last handshake message,
    and asyncio delivers it before start_tls returns), then hands everything over."""

    def __init__(self, owner: TlsFirst, served: asyncio.Protocol) -> None:
        self.owner = owner
        self.served = served
        self.held: list[bytes] | None = []  # None once handed over
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the client's hello is start_tls's, not this protocol's
        task = asyncio.get_running_loop().create_task(self._upgrade(transport))
        self.owner.handshakes.add(task)
        task.add_done_callback(self.owner.handshakes.discard)

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        peer = peer_of(transport)
        try:
            secure = await asyncio.get_running_loop().start_tls(
                transport,
                self,
                self.owner.context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
            if secure is None:  # the peer closed cleanly before the handshake ended
                raise ConnectionResetError(errno.ECONNRESET, "closed during the handshake")
        except OSError as exc:  # ssl.SSLError, a reset, ConnectionAbortedError: the timeout
            transport.close()
            self.owner.failures.failed(peer, exc)
            return
        secure.set_protocol(self.served)
        self.served.connection_made(secure)
        held, self.held = self.held or [], None
        for data in held:
            self.served.data_received(data)
        if self.eof:
            self.served.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.held is None:
            self.served.data_received(data)
        else:
            self.held.append(data)

    def eof_received(self) -> bool | None:
        if self.held is None:
            return self.served.eof_received()
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.held is None:  # asyncio may have scheduled this before the hand-over
            self.served.connection_lost(exc)
