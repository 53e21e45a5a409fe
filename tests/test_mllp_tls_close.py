"""An MLLP-over-TLS exchange cut by its client's close (a routes reload or the gateway's
stop, from another thread) ends as MllpClosed, whatever step it was in, so the delivery
is handed back untried (test_send_close.py), and nothing of the message ever goes on the
wire in clear text. Before, the close used SSLSocket.shutdown, which drops the TLS state
before shutting the socket down: a close just before the handshake left it to fail with
an AttributeError (recorded as a failed try), and a write starting in between went out
unencrypted. Real parts: the TLS MLLP receiver of tests/peers.py with a private CA, and
in front of it a TCP relay that keeps every byte the client sent."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from peers import Hl7TestPeer, Pki, make_pki

from gateway.delivery.mllp import START_BLOCK, MllpClient, MllpClosed

MESSAGE = b"MSH|^~\\&|ECG|WARD|RIS|HOSP|20260301090000||ORU^R01|7|P|2.5\rPID|||123456||DOE^JOHN"
_PROMPT_S = 3.0


class Relay:
    """A TCP relay to `upstream` (none: it only takes the connection, as a TLS server that
    never answers the handshake) keeping what the client sent, as a tap on the wire."""

    def __init__(self, upstream: int | None) -> None:
        self.sent = bytearray()
        self._upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # stopped
                return
            self._open.append(client)
            if self._upstream is not None:
                peer = socket.create_connection(("127.0.0.1", self._upstream))
                self._open.append(peer)
                threading.Thread(target=self._pump, args=(peer, client, None), daemon=True).start()
            else:
                peer = None
            threading.Thread(target=self._pump, args=(client, peer, self.sent), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket | None, kept: bytearray | None) -> None:
        try:
            while chunk := source.recv(65536):
                if kept is not None:
                    kept.extend(chunk)
                if sink is not None:
                    sink.sendall(chunk)
        except OSError:
            pass
        if sink is not None:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stop(self) -> None:
        self._server.close()
        for sock in self._open:
            sock.close()


def _client(pki: Pki, port: int, at: str, hook: Callable[[ssl.SSLSocket], None]) -> MllpClient:
    """A client trusting the private CA whose TLS socket calls `hook` as its handshake
    (`at` "handshake") or its write of the frame ("write") begins: the point a close
    from another thread is put at."""

    class Hooked(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            if at == "handshake":
                hook(self)
            super().do_handshake(block)

        def sendall(self, data, flags: int = 0) -> None:
            if at == "write":
                hook(self)
            super().sendall(data, flags)

    context = ssl.create_default_context(cafile=str(pki.ca))
    context.sslsocket_class = Hooked
    return MllpClient("localhost", port, timeout=30, ssl_context=context)


@pytest.fixture
def tls_peer(tmp_path: Path):
    pki = make_pki(tmp_path)
    peer = Hl7TestPeer(script=["delay"], tls=pki.server_context(False), delay_s=60).start()
    relay = Relay(peer.port)
    yield pki, peer, relay
    relay.stop()
    peer.stop()


def _assert_no_clear_text(relay: Relay) -> None:
    time.sleep(0.2)  # what the relay was given has reached it
    assert MESSAGE not in relay.sent and START_BLOCK + b"MSH" not in relay.sent


@pytest.mark.parametrize("at", ["handshake", "write"])
def test_a_close_as_a_tls_step_begins_ends_the_exchange_as_closed(tls_peer, at: str) -> None:
    """The close lands as the handshake or the write of the frame begins: the exchange
    ends as closed, and the socket still has its TLS layer, so no write after the close
    can go out unencrypted (SSLSocket.shutdown dropped it: sendall then wrote in clear)."""
    pki, peer, relay = tls_peer
    seen: list[str | None] = []
    client: MllpClient

    def close_from_another_thread(sock: ssl.SSLSocket) -> None:
        closing = threading.Thread(target=client.close)
        closing.start()
        closing.join()
        if at == "write":
            seen.append(sock.version())  # None once the TLS state is gone

    client = _client(pki, relay.port, at, close_from_another_thread)
    with pytest.raises(MllpClosed, match="closed during the exchange"):
        client.exchange(MESSAGE)
    if at == "write":
        assert seen and seen[0] is not None, "the close dropped the socket's TLS layer"
    assert peer.received == []
    _assert_no_clear_text(relay)


@pytest.mark.parametrize("waiting_for", ["handshake", "ack"])
def test_a_close_while_a_tls_exchange_waits_ends_it_at_once(tls_peer, waiting_for: str) -> None:
    """The exchange waits for the server's handshake (one that never answers it) or for
    the ACK (the receiver answers after 60 s): a close ends it at once, as closed."""
    pki, peer, relay = tls_peer
    silent = Relay(None)
    port = silent.port if waiting_for == "handshake" else relay.port
    client = MllpClient(
        "localhost", port, timeout=30, ssl_context=ssl.create_default_context(cafile=str(pki.ca))
    )
    outcome: list[BaseException | bytes] = []

    def exchange() -> None:
        try:
            outcome.append(client.exchange(MESSAGE))
        except Exception as exc:  # noqa: BLE001 - what the exchange ended with is the result
            outcome.append(exc)

    sending = threading.Thread(target=exchange, daemon=True)
    try:
        sending.start()
        deadline = time.monotonic() + 10
        while not (silent.sent if waiting_for == "handshake" else peer.received):
            assert time.monotonic() < deadline, "the exchange did not get as far"
            time.sleep(0.02)
        started = time.monotonic()
        client.close()
        sending.join(_PROMPT_S)
        assert not sending.is_alive() and time.monotonic() - started < _PROMPT_S
        [ended] = outcome
        assert isinstance(ended, MllpClosed), repr(ended)
        _assert_no_clear_text(silent if waiting_for == "handshake" else relay)
    finally:
        client.close()
        silent.stop()
