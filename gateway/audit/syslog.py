"""RFC 5424 syslog messages and their transport to a collector over TCP or TLS, framed by
octet counting (RFC 5425 section 4.3, which RFC 6587 also uses for plain TCP).

Written here rather than taken from PyPI: rfc5424-logging-handler (last release 2019) and
the like are logging handlers that drop a message the collector cannot take, while an
audit trail must keep it until the collector has it; the format itself is one line.
"""

from __future__ import annotations

import select
import socket
import ssl
from datetime import UTC, datetime

from gateway.config import SyslogConfig

# IHE ATNA (ITI-20): facility 10, security/authorization; the MSGID names the payload.
_FACILITY_AUTHPRIV = 10
NOTICE, WARNING = 5, 4
APP_NAME = "ecg-gateway"
MSG_ID = "IHE+RFC-3881"
_BOM = "\ufeff"  # RFC 5424 6.4: a UTF-8 MSG starts with the byte order mark


def format_message(
    xml: str, *, hostname: str, procid: int, severity: int, time: datetime | None = None
) -> str:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG`, without framing."""
    stamp = (time or datetime.now(UTC)).isoformat(timespec="milliseconds")
    pri = _FACILITY_AUTHPRIV * 8 + severity
    host = _printable(hostname, 255) or "-"
    return f"<{pri}>1 {stamp} {host} {APP_NAME} {procid} {MSG_ID} - {_BOM}{xml}"


def frame(message: str) -> bytes:
    """RFC 5425 octet counting: the message's length in bytes, a space, the message."""
    data = message.encode("utf-8")
    return str(len(data)).encode("ascii") + b" " + data


def _printable(value: str, limit: int) -> str:
    """RFC 5424 header fields are PRINTUSASCII (33-126)."""
    return "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]


class SyslogConnection:
    """One TCP or TLS connection to the collector; `send` raises OSError when it is gone."""

    def __init__(self, config: SyslogConfig) -> None:
        self.config = config
        self._context = _client_context(config) if config.tls.enabled else None
        self._sock: socket.socket | None = None

    def send(self, framed: list[bytes]) -> None:
        """Write the framed messages; reconnects first when the collector closed the line
        (a write into a closed TCP connection would seem to succeed and be lost)."""
        if self._sock is not None and _peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        try:
            self._sock.sendall(b"".join(framed))
        except (OSError, ssl.SSLError):
            self.close()
            raise

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(
            (self.config.host, self.config.port), timeout=self.config.timeout_s
        )
        if self._context is None:
            return sock
        try:
            tls = self._context.wrap_socket(sock, server_hostname=self.config.host)
            _refused_after_handshake(tls)
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        return tls

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


def _client_context(config: SyslogConfig) -> ssl.SSLContext:
    """TLS 1.2 or newer, the collector verified against `ca` (its name too), and this
    node's certificate offered when given (ATNA's mutual node authentication)."""
    context = ssl.create_default_context(cafile=str(config.tls.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.tls.cert is not None and config.tls.key is not None:
        context.load_cert_chain(certfile=config.tls.cert, keyfile=config.tls.key)
    return context


def _refused_after_handshake(tls: ssl.SSLSocket, wait_s: float = 0.3) -> None:
    """Under TLS 1.3 a collector rejects our certificate only after the handshake: its
    alert comes back on the first read. Waiting for it here keeps the first batch of
    records from being written into a connection that is already refused."""
    timeout = tls.gettimeout()
    tls.settimeout(wait_s)
    try:
        data = tls.recv(1)
    except TimeoutError:
        return  # no alert: accepted
    finally:
        tls.settimeout(timeout)
    if not data:
        raise ConnectionError("the collector closed the TLS connection after the handshake")


def _peer_closed(sock: socket.socket) -> bool:
    """A syslog collector never writes to us: anything readable means it closed or failed."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
