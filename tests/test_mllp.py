"""MLLP framing and the client: byte-level behaviour over real sockets, timeouts,
and TLS against the `hl7` package's MLLP server."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from delivery_support import package, send_now
from peers import Hl7TestPeer, make_pki

from gateway.delivery import DeliveryError
from gateway.delivery.hl7 import Hl7Sender
from gateway.delivery.mllp import MllpClient, MllpError, frame, read_frame
from gateway.routing import Hl7Destination


def test_frame_is_vt_message_fs_cr() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_read_frame_reassembles_a_reply_split_across_packets() -> None:
    left, right = socket.socketpair()
    with left, right:
        for piece in (b"\x0bMSA|A", b"A|1", b"23\x1c", b"\x0d"):
            right.sendall(piece)
        assert read_frame(left) == b"MSA|AA|123"


@pytest.mark.parametrize(
    "wire, message",
    [
        (b"MSA|AA|1\x1c\x0d", "does not start with the MLLP start block"),
        (b"\x0bMSA|AA", "closed after 7 bytes of an unfinished frame"),
    ],
)
def test_malformed_replies_are_named(wire: bytes, message: str) -> None:
    left, right = socket.socketpair()
    with left:
        right.sendall(wire)
        right.close()
        with pytest.raises(MllpError, match=message):
            read_frame(left)


def test_a_reply_without_end_is_cut_off_at_the_limit() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"\x0b" + b"x" * 5000)
        with pytest.raises(MllpError, match="larger than 1024 bytes"):
            read_frame(left, limit=1024)


def _silent_server() -> tuple[socket.socket, list[bytes]]:
    """Accepts and reads, never answers: a receiver that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    threading.Thread(target=serve, daemon=True).start()
    return listener, received


def test_no_reply_within_the_timeout_is_an_error_naming_the_peer() -> None:
    listener, received = _silent_server()
    port = listener.getsockname()[1]
    client = MllpClient("127.0.0.1", port, timeout=0.3)
    try:
        with pytest.raises(
            MllpError,
            match=rf"reading reply from 127.0.0.1:{port}: timed out \(0.3 s for the whole",
        ):
            client.exchange(b"MSH|^~\\&|A")
    finally:
        client.close()
        listener.close()
    assert b"".join(received) == b"\x0bMSH|^~\\&|A\x1c\x0d"


def test_mllp_over_tls_with_a_client_certificate(shared_data: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    peer = Hl7TestPeer(tls=pki.server_context(require_client_cert=True)).start()
    try:
        destination = Hl7Destination.model_validate(
            {
                "type": "hl7",
                "endpoint": f"mllps://localhost:{peer.port}",
                "timeout_s": 2,
                "tls": {
                    "ca_file": str(pki.ca),
                    "client_cert": str(pki.client_cert),
                    "client_key": str(pki.client_key),
                },
            }
        )
        sender = Hl7Sender(destination, "ris")
        try:
            assert send_now(sender, package(shared_data)).startswith("AA")
        finally:
            sender.close()
        untrusted = destination.model_copy(
            update={"tls": destination.tls.model_copy(update={"ca_file": pki.other_ca})}
        )
        with pytest.raises(DeliveryError, match="TLS handshake with localhost"):
            send_now(Hl7Sender(untrusted, "ris"), package(shared_data))
    finally:
        peer.stop()
    assert len(peer.received) == 1
