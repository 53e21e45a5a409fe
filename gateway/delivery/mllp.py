"""MLLP: the framing HL7 v2 travels in over TCP, and a client that sends one
message and reads its reply. It knows nothing about HL7 content.

Frame: 0x0B, the message, 0x1C 0x0D (HL7 v2 Implementation Guide, appendix C).
The client keeps its connection open between messages, as interface engines
expect, and redials when the peer has closed an idle one. Its timeout is one deadline for
a whole exchange (the host's lookup, dialing, TLS, writing, the reply), not one per socket operation: a peer
that trickles its reply a byte at a time cannot keep it past the deadline.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time

from gateway.delivery.resolve import AddrInfo, lookup

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
FRAME_END = END_BLOCK + CARRIAGE_RETURN
MAX_REPLY_BYTES = 1 << 20
_READ_CHUNK = 65536


class MllpError(Exception):
    """A failed exchange; the message says what was being done and with whom."""


class _PeerClosed(MllpError):
    """The peer closed the connection before sending a byte of its reply."""


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + FRAME_END


def read_frame(
    sock: socket.socket, limit: int = MAX_REPLY_BYTES, deadline: float | None = None
) -> bytes:
    """One framed message from the socket, without its framing bytes; past `deadline`
    (time.monotonic()) a TimeoutError, however steadily its bytes come."""
    buffer = bytearray()
    while True:
        end = buffer.find(FRAME_END)
        if end >= 0:
            break
        if len(buffer) > limit:
            raise MllpError(f"reply larger than {limit} bytes without an end block")
        if deadline is not None:
            sock.settimeout(_time_left(deadline))
        chunk = sock.recv(_READ_CHUNK)
        if not chunk:
            if buffer:
                raise MllpError(
                    f"connection closed after {len(buffer)} bytes of an unfinished frame"
                )
            raise _PeerClosed("connection closed before a reply")
        buffer.extend(chunk)
    if not buffer.startswith(START_BLOCK):
        raise MllpError("reply does not start with the MLLP start block 0x0B")
    return bytes(buffer[1:end])


class MllpClient:
    """Sends framed messages to one peer over a reused connection."""

    def __init__(
        self, host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None
    ):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    def exchange(self, message: bytes) -> bytes:
        """Send one message and return the peer's reply.

        A connection reused from an earlier message may have been closed by the
        peer while idle; that shows as a close before any reply byte, and only
        then is the message sent again on a fresh connection. (Should the peer
        have processed it after all, the repeat carries the same MSH-10.) Both tries
        together have `timeout` seconds.
        """
        deadline = time.monotonic() + self.timeout
        reused = self._sock is not None
        try:
            return self._exchange_once(message, deadline)
        except _PeerClosed:
            if not reused:
                raise MllpError(
                    f"reading reply from {self.peer}: connection closed before a reply"
                ) from None
            log.debug("MLLP peer %s closed an idle connection; redialing", self.peer)
        try:
            return self._exchange_once(message, deadline)
        except _PeerClosed:
            raise MllpError(
                f"reading reply from {self.peer}: connection closed before a reply"
            ) from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _exchange_once(self, message: bytes, deadline: float) -> bytes:
        sock = self._connection(deadline)
        try:
            sock.settimeout(_time_left(deadline))  # sendall's timeout is for all of it
            sock.sendall(frame(message))
        except OSError as exc:
            self.close()
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                raise _PeerClosed(str(exc)) from None
            raise MllpError(f"writing message to {self.peer}: {self._reason(exc)}") from None
        try:
            return read_frame(sock, deadline=deadline)
        except _PeerClosed:
            self.close()
            raise
        except ConnectionResetError:
            self.close()
            raise _PeerClosed("connection reset before a reply") from None
        except (OSError, MllpError) as exc:
            self.close()
            raise MllpError(f"reading reply from {self.peer}: {self._reason(exc)}") from None

    def _connection(self, deadline: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            addresses = lookup(self.host, self.port, _time_left(deadline))
        except OSError as exc:
            raise MllpError(
                f"looking up {self.host} for {self.peer}: {self._reason(exc)}"
            ) from None
        try:
            sock = _dial(addresses, deadline)
        except OSError as exc:
            raise MllpError(f"dialing {self.peer}: {self._reason(exc)}") from None
        if self.ssl_context is not None:
            try:  # the socket's timeout bounds the whole handshake (CPython's _ssl)
                sock.settimeout(_time_left(deadline))
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise MllpError(f"TLS handshake with {self.peer}: {self._reason(exc)}") from None
        self._sock = sock
        return sock

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out ({self.timeout:g} s for the whole exchange)"
        return str(exc) or type(exc).__name__


def _dial(addresses: list[AddrInfo], deadline: float) -> socket.socket:
    """A connection to the first of the looked-up addresses that answers, as
    socket.create_connection makes one, without looking the host up again."""
    error: OSError = OSError("no address to dial")
    for family, kind, proto, _, address in addresses:
        sock = None
        try:  # a family the host cannot open (IPv6 disabled) moves on to the next address
            sock = socket.socket(family, kind, proto)
            sock.settimeout(_time_left(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            if sock is not None:
                sock.close()
            error = exc
    raise error


def _time_left(deadline: float) -> float:
    """Seconds until `deadline`; once it has passed, a TimeoutError as a socket's own."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left
