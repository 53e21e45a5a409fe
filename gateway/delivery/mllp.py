"""MLLP: the framing HL7 v2 travels in over TCP, and a client that sends one
message and reads its reply. It knows nothing about HL7 content.

Frame: 0x0B, the message, 0x1C 0x0D (HL7 v2 Implementation Guide, appendix C).
The client keeps its connection open between messages, as interface engines
expect, and redials when the peer has closed an idle one. Its timeout is one deadline for
a whole exchange (the host's lookup, dialing, TLS, writing, the reply), not one per socket operation: a peer
that trickles its reply a byte at a time cannot keep it past the deadline.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import ssl
import threading
import time
from concurrent.futures import Future

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


class MllpClosed(MllpError):
    """The client was closed, by another thread, before or during the exchange."""


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
    """Sends framed messages to one peer over a reused connection, one exchange at a time.

    `close` may come from another thread during an exchange (a routes reload that removed
    the destination, the gateway's stop): it shuts the connection down, which ends the
    exchange's dialing, TLS handshake, write or read at once, and its wait for DNS; the
    exchange then raises MllpClosed. `_state` guards, across those threads, the socket
    (from its dialing on: what a close shuts down) and whether an exchange is using it."""

    def __init__(
        self, host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None
    ):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._state = threading.Lock()
        self._exchanging = False
        self._closed: Future[None] = Future()  # done once closed; ends a wait for DNS too

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    def exchange(self, message: bytes) -> bytes:
        """Send one message and return the peer's reply; MllpClosed when the client was
        closed before or during it (whatever the peer has taken of it by then).

        A connection reused from an earlier message may have been closed by the
        peer while idle; that shows as a close before any reply byte, and only
        then is the message sent again on a fresh connection. (Should the peer
        have processed it after all, the repeat carries the same MSH-10.) Both tries
        together have `timeout` seconds.
        """
        deadline = time.monotonic() + self.timeout
        with self._state:
            if self._closed.done():
                raise MllpClosed(f"{self.peer}: the client was closed")
            self._exchanging = True
        try:
            return self._exchange(message, deadline)
        except Exception as exc:  # whatever a cut socket raised (ssl's, the OS's): the close's
            if self._closed.done():
                log.debug("exchange with %s cut by the close: %s", self.peer, type(exc).__name__)
                raise MllpClosed(
                    f"{self.peer}: the client was closed during the exchange"
                ) from None
            raise
        finally:
            with self._state:
                self._exchanging = False
            if self._closed.done():  # the close left the socket to this thread
                self.disconnect()

    def disconnect(self) -> None:
        """Drop the connection; the next exchange dials again."""
        with self._state:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Close for good: no exchange starts after it. During an exchange the socket is
        only shut down (that wakes a blocked connect or recv, where closing it would not)
        and the exchange closes it itself, so that no descriptor is closed under a call
        still using it."""
        with self._state:
            if not self._closed.done():
                self._closed.set_result(None)
            sock = self._sock
            if sock is None:
                return
            if self._exchanging:
                _shut_down(sock)
                return
            self._sock = None
        sock.close()

    def _exchange(self, message: bytes, deadline: float) -> bytes:
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

    def _exchange_once(self, message: bytes, deadline: float) -> bytes:
        sock = self._connection(deadline)
        try:
            sock.settimeout(_time_left(deadline))  # sendall's timeout is for all of it
            sock.sendall(frame(message))
        except OSError as exc:
            self.disconnect()
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                raise _PeerClosed(str(exc)) from None
            raise MllpError(f"writing message to {self.peer}: {self._reason(exc)}") from None
        try:
            return read_frame(sock, deadline=deadline)
        except _PeerClosed:
            self.disconnect()
            raise
        except ConnectionResetError:
            self.disconnect()
            raise _PeerClosed("connection reset before a reply") from None
        except (OSError, MllpError) as exc:
            self.disconnect()
            raise MllpError(f"reading reply from {self.peer}: {self._reason(exc)}") from None

    def _connection(self, deadline: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            addresses = lookup(self.host, self.port, _time_left(deadline), self._closed)
        except OSError as exc:
            raise MllpError(
                f"looking up {self.host} for {self.peer}: {self._reason(exc)}"
            ) from None
        try:
            sock = self._dial(addresses, deadline)
        except OSError as exc:
            raise MllpError(f"dialing {self.peer}: {self._reason(exc)}") from None
        if self.ssl_context is not None:
            try:
                with self._state:  # the wrapped socket takes the descriptor over
                    sock = self.ssl_context.wrap_socket(
                        sock, server_hostname=self.host, do_handshake_on_connect=False
                    )
                    self._sock = sock
                sock.settimeout(_time_left(deadline))  # bounds the whole handshake (CPython's _ssl)
                sock.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                self.disconnect()
                raise MllpError(f"TLS handshake with {self.peer}: {self._reason(exc)}") from None
        return sock

    def _dial(self, addresses: list[AddrInfo], deadline: float) -> socket.socket:
        """A connection to the first of the looked-up addresses that answers, as
        socket.create_connection makes one, without looking the host up again."""
        error: OSError = OSError("no address to dial")
        for family, kind, proto, _, address in addresses:
            try:  # a family the host cannot open (IPv6 disabled) moves on to the next address
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                error = exc
                continue
            try:
                self._connect(sock, address, deadline)
                return sock
            except OSError as exc:
                self.disconnect()
                error = exc
        raise error

    def _connect(self, sock: socket.socket, address: tuple, deadline: float) -> None:
        """Connect `sock` within the deadline. The connecting is begun under `_state`, as the
        client's socket: a close before it refuses it, one after it finds a socket that is
        connecting already, whose shutdown ends the wait (that of one not yet connecting
        would not, and its connect would go on)."""
        with self._state:
            if self._closed.done():
                sock.close()
                raise MllpClosed(f"{self.peer}: the client was closed")
            self._sock = sock
            sock.setblocking(False)
            code = sock.connect_ex(address)
        if code == errno.EINPROGRESS:
            waiting = select.poll()
            waiting.register(sock, select.POLLOUT)
            if not waiting.poll(_time_left(deadline) * 1000):
                raise TimeoutError
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out ({self.timeout:g} s for the whole exchange)"
        return str(exc) or type(exc).__name__


def _shut_down(sock: socket.socket) -> None:
    """Both directions: a connect, handshake or recv blocked on it in another thread ends.
    The OS socket's shutdown, not SSLSocket's: that one drops the TLS state first, and a
    sendall starting in between would write the frame in clear text (operations.md)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # closed already
        pass


def _time_left(deadline: float) -> float:
    """Seconds until `deadline`; once it has passed, a TimeoutError as a socket's own."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left
