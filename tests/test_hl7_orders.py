"""The HL7 order listener with python-hl7's MLLP client as the EHR, in-process on both
store backends: orders in from ORM^O01 (v2.3.1, v2.5.1) and OMG^O19, cancel and
discontinue, patient updates and merges; each bad input answered with the right ACK
and a log line naming the field and never a patient; an ACK AA only for what is
committed; the listener up after each."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import struct
import subprocess
import time
from datetime import UTC, datetime

import pytest
from hl7.client import MLLPClient

from gateway.config import ConfigError, load_config
from gateway.store import SqliteStore
from tests.hl7_orders_support import (
    PATIENT_ID,
    PATIENT_NAME,
    ack_code,
    adt_a08,
    adt_a40,
    msh,
    omg,
    orm,
    parse_ack,
    pid,
    send,
    start_listener,
)
from tests.hl7_strict import validated_strictly
from tests.peers import make_pki
from tests.test_store import open_backend


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    s = open_backend(request.param, request, tmp_path)
    yield s
    s.close()


@pytest.fixture
def listener(store, tmp_path):
    running, _ = start_listener(
        store, tmp_path / "audit", allowed_facilities=["NORTH"], default_station_ae="CART1"
    )
    yield running
    running.stop()


def _err(reply) -> tuple[str, str]:
    """(location, HL7 error code) of the ERR segment, either version's layout."""
    fields = str(reply.segment("ERR")).split("|")
    if len(fields) > 3:  # v2.5.1: ERR-2 segment^sequence^field, ERR-3 code^text^table
        where, code = fields[2].split("^"), fields[3].split("^")[0]
    else:  # v2.3.1: ERR-1 segment^sequence^field^code&text&table
        where = fields[1].split("^")
        code = where[3].split("&")[0]
    field = where[2] if len(where) > 2 else ""
    return f"{where[0]}-{field}".rstrip("-"), code


def test_orm_v231_new_order_is_committed_then_acknowledged(listener, store):
    reply = send(listener.port, orm())
    assert ack_code(reply) == "AA" and str(reply.segment("MSA")[2]) == "MSG1"
    msh_ = reply.segment("MSH")
    assert (str(msh_[9]), str(msh_[5]), str(msh_[6]), str(msh_[12])) == (
        "ACK^O01^ACK", "EPIC", "NORTH", "2.3.1",
    )  # fmt: skip
    order = store.find_order("P1", "HIS")
    assert order.state == "scheduled" and order.station_ae == "CART1"
    assert (order.patient_id, order.patient_id_issuer, order.patient_name) == (
        PATIENT_ID, "HOSP", PATIENT_NAME,
    )  # fmt: skip
    assert (order.birth_date, order.sex, order.referring_physician) == (
        "19600102", "F", "Who^Doctor",
    )  # fmt: skip
    ref = order.reference
    assert (ref.priority, ref.accession_number, order.requested_procedure_id) == (
        "stat", "ACCP1", "RPP1",
    )  # fmt: skip
    assert (ref.procedure_code, ref.procedure_text, ref.procedure_coding_system) == (
        "93000", "ECG 12 lead", "C4",
    )  # fmt: skip
    assert ref.ordering_facility == "Cardiology" and ref.filler_order_number.startswith("ECG")
    local = datetime(2026, 1, 2, 8, 30).astimezone()  # no offset: the gateway's local time
    assert order.scheduled_at == local.timestamp()


def test_omg_v251_takes_timing_from_tq1_and_the_study_uid_from_zds(listener, store):
    reply = send(listener.port, omg())
    assert ack_code(reply) == "AA"
    validated_strictly(str(reply))  # the ACK is valid v2.5.1
    order = store.find_order("P2", "HIS")
    assert order.reference.priority == "asap"
    assert order.study_instance_uid == "1.2.826.0.1.3680043.8.498.1"
    assert order.scheduled_at == datetime(2026, 1, 2, 8, 0, tzinfo=UTC).timestamp()


def test_orm_v251_and_a_repeated_new_order_updates_it(listener, store):
    events = []
    listener.on_order.append(lambda order, event: events.append((order.id, event)))
    assert ack_code(send(listener.port, orm(version="2.5.1", priority="R"))) == "AA"
    assert ack_code(send(listener.port, orm(version="2.5.1", priority="S"))) == "AA"
    [order] = store.list_orders()
    assert order.reference.priority == "stat"
    _until(lambda: len(events) == 2)
    assert events == [(order.id, "new"), (order.id, "updated")]


def test_a_change_order_updates_an_open_order_and_not_a_closed_one(listener, store):
    events = []
    listener.on_order.append(lambda order, event: events.append((order.id, event)))
    assert ack_code(send(listener.port, orm(priority="R"))) == "AA"
    assert ack_code(send(listener.port, orm("XO", priority="S", start="20260102100000"))) == "AA"
    [order] = store.list_orders()
    assert (order.reference.priority, order.state) == ("stat", "scheduled")
    assert order.scheduled_at == datetime(2026, 1, 2, 10, 0).astimezone().timestamp()
    _until(lambda: len(events) == 2)
    assert events == [(order.id, "new"), (order.id, "updated")]
    send(listener.port, orm("CA"))
    reply = send(listener.port, orm("XO", priority="R"))
    assert (ack_code(reply), *_err(reply)) == ("AE", "ORC-1", "207")
    assert store.get_order(order.id).reference.priority == "stat"


def test_cancel_and_discontinue_close_orders_and_tell_the_callbacks(listener, store):
    events = []
    listener.on_order.append(lambda order, event: events.append((order.id, event)))
    send(listener.port, orm(placer="A"))
    send(listener.port, omg(placer="B", study_uid=""))
    assert ack_code(send(listener.port, orm("CA", placer="A"))) == "AA"
    assert ack_code(send(listener.port, omg("DC", placer="B"))) == "AA"
    assert ack_code(send(listener.port, orm("CA", placer="A"))) == "AA"  # again: no change
    assert store.find_order("A", "HIS").state == "cancelled"
    assert store.find_order("B", "HIS").state == "discontinued"
    _until(lambda: len(events) == 4)
    assert [event for _, event in events] == ["new", "new", "cancelled", "discontinued"]


def test_a_sender_gone_before_its_ack_still_has_its_order_told_to_the_callbacks(
    listener, store, monkeypatch
):
    """The order is committed before the ACK: an EHR that resets the connection while
    the commit runs loses its ACK (it sends again: a repeat), but the callbacks
    (late-order reconciliation) still hear of the order."""
    events = []
    listener.on_order.append(lambda order, event: events.append(event))
    committing = listener.intake.handle

    def slow_commit(raw, peer):
        time.sleep(0.3)  # the reset arrives meanwhile
        return committing(raw, peer)

    monkeypatch.setattr(listener.intake, "handle", slow_commit)
    with socket.create_connection(("127.0.0.1", listener.port)) as sock:
        sock.sendall(b"\x0b" + orm().encode() + b"\x1c\r")
        time.sleep(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _until(lambda: store.find_order("P1", "HIS") is not None)
    _until(lambda: events == ["new"])


def test_a_failing_callback_does_not_stop_the_others_or_the_ack(listener, store, caplog):
    seen = []

    def broken(order, event):
        raise RuntimeError(PATIENT_NAME)

    listener.on_order.extend([broken, lambda order, event: seen.append(event)])
    assert ack_code(send(listener.port, orm())) == "AA"
    _until(lambda: seen == ["new"])
    assert "on_order callback" in caplog.text and PATIENT_NAME not in caplog.text


def test_patient_update_and_merge_change_open_orders(listener, store, tmp_path):
    send(listener.port, orm(placer="A"))
    assert ack_code(send(listener.port, adt_a08(name="Doe^Janet"))) == "AA"
    order = store.find_order("A", "HIS")
    assert (order.patient_name, order.birth_date) == ("Doe^Janet", "19600103")
    assert ack_code(send(listener.port, adt_a40(new="MRN9"))) == "AA"
    assert store.find_order("A", "HIS").patient_id == "MRN9"
    [merge] = store._query("SELECT prior_id, new_id, orders_moved FROM patient_merges")
    assert tuple(merge.values() if isinstance(merge, dict) else merge) == (PATIENT_ID, "MRN9", 1)
    trail = (tmp_path / "audit" / "audit-trail.jsonl").read_text()
    assert trail.count('originalText=\\"Patient Record\\"') == 2
    assert "merged, 1 moved" in trail and "MRN9^^^HOSP" in trail


def _replace_segment(message: str, name: str, new: str) -> str:
    return "\r".join(new if s.startswith(name + "|") else s for s in message.split("\r"))


BAD_INPUT = {
    "no PID-3": (orm(patient="PID|1||"), "AE", "PID-3", "101"),
    "no ORC-2": (
        _replace_segment(orm(), "OBR", "OBR|1").replace("ORC|NW|P1^HIS|", "ORC|NW||"),
        "AE", "ORC-2", "101",
    ),
    "order control not taken": (orm("SC"), "AE", "ORC-1", "103"),
    "cancel of an unknown order": (orm("CA", placer="NOPE"), "AE", "ORC-2", "204"),
    "change of an unknown order": (orm("XO", placer="NOPE"), "AE", "ORC-2", "204"),
    "change without PID-3": (orm("XO", patient="PID|1||"), "AE", "PID-3", "101"),
    "no ORC at all": (msh("ORM^O01", "M9", "2.3.1") + "\r" + pid(), "AE", "ORC", "100"),
    "bad start time": (omg(start="2026-01-02"), "AE", "TQ1-7", "102"),
    "merge without MRG": (adt_a40().rsplit("\r", 1)[0], "AE", "MRG", "100"),
    "message type not taken": (msh("ORU^R01", "M1", "2.5.1") + "\r" + pid(), "AR", "MSH-9", "200"),
    "event not taken": (msh("ADT^A01", "M2", "2.5.1") + "\r" + pid(), "AR", "MSH-9", "201"),
    "version not taken": (orm(version="2.7"), "AR", "MSH-12", "203"),
    "facility not allowed": (orm(facility="SOUTH"), "AR", "MSH-4", "207"),
    "not HL7 at all": ("hello " + PATIENT_NAME, "AE", "MSH", "100"),
    "truncated MSH": ("MSH|", "AE", "MSH", "100"),
    "no control ID": (orm(control_id=""), "AE", "MSH-10", "101"),
    "not UTF-8": (orm().encode("utf-8").replace(b"Jane", b"J\xe4ne"), "AE", "MSH-18", "102"),
    "NUL in a value": (orm().replace("Jane", "Ja\x00ne"), "AE", "PID-5", "102"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_gets_the_right_ack_a_clean_log_and_no_write(listener, store, caplog, case):
    message, code, location, error = BAD_INPUT[case]
    caplog.set_level(logging.INFO)
    with MLLPClient("127.0.0.1", listener.port) as client:
        reply = parse_ack(client.send_message(message))
        assert (ack_code(reply), *_err(reply)) == (code, location, error)
        assert store.list_orders() == []  # nothing written
        # the same connection, and the listener, still take a good message
        assert ack_code(parse_ack(client.send_message(omg()))) == "AA"
    assert location in caplog.text
    assert PATIENT_NAME.split("^")[0] not in caplog.text and PATIENT_ID not in caplog.text


def test_a_new_order_for_a_cancelled_placer_is_refused(listener, store):
    send(listener.port, orm())
    send(listener.port, orm("CA"))
    reply = send(listener.port, orm())
    assert (ack_code(reply), *_err(reply)) == ("AE", "ORC-2", "205")
    assert store.find_order("P1", "HIS").state == "cancelled"


def test_a_completed_order_cannot_be_cancelled(listener, store):
    send(listener.port, orm())
    order = store.find_order("P1", "HIS")
    store.set_order_state(order.id, "completed")
    reply = send(listener.port, orm("CA"))
    assert (ack_code(reply), *_err(reply)) == ("AE", "ORC-1", "207")
    assert store.get_order(order.id).state == "completed"


def test_a_truncated_frame_is_logged_and_the_listener_stays_up(listener, store, caplog):
    with socket.create_connection(("127.0.0.1", listener.port)) as raw:
        raw.sendall(b"\x0b" + orm().encode()[:80])
    _until(lambda: "connection closed within a message" in caplog.text)
    assert store.list_orders() == []
    assert ack_code(send(listener.port, orm())) == "AA"
    assert PATIENT_ID not in caplog.text


def test_a_frame_without_start_block_is_answered_and_the_connection_goes_on(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
        raw.sendall(orm().encode() + b"\x1c\r")
        assert ack_code(parse_ack(_read_frame(raw))) == "AE"
        raw.sendall(b"\x0b" + orm().encode() + b"\x1c\r")
        assert ack_code(parse_ack(_read_frame(raw))) == "AA"


def test_an_oversized_message_is_refused_and_the_connection_closed(store, tmp_path):
    small, _ = start_listener(store, tmp_path / "audit", max_message_kb=1)
    try:
        with socket.create_connection(("127.0.0.1", small.port), timeout=10) as raw:
            raw.sendall(b"\x0b" + orm().encode() + b"\rNTE|1||" + b"x" * 2000 + b"\x1c\r")
            reply = parse_ack(_read_frame(raw))
            assert ack_code(reply) == "AE" and "over the limit" in str(reply)
            assert raw.recv(10) == b""  # closed
        assert store.list_orders() == []
        assert ack_code(send(small.port, orm())) == "AA"
    finally:
        small.stop()


def test_no_aa_unless_committed_when_the_store_refuses_writes(listener, store):
    """A store that cannot write (here a trigger refuses every insert and update): AR,
    the EHR is asked to send again, and nothing is half-written; once the store takes
    writes again, the repeat is committed."""
    if isinstance(store, SqliteStore):
        refuse = [
            f"CREATE TRIGGER refuse_{op} BEFORE {op} ON orders BEGIN"
            f" SELECT RAISE(ABORT, 'store refuses writes'); END"
            for op in ("INSERT", "UPDATE")
        ]
        allow = ["DROP TRIGGER refuse_INSERT", "DROP TRIGGER refuse_UPDATE"]
    else:
        refuse = [
            (
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN RAISE EXCEPTION 'store refuses writes'; END$$"
            ),
            (
                "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON orders"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            ),
        ]
        allow = ["DROP TRIGGER refuse ON orders"]
    send(listener.port, orm(placer="A"))
    with store._transaction() as conn:
        for statement in refuse:
            conn.execute(statement)
    for message in (orm(placer="B"), orm("CA", placer="A"), adt_a08(), adt_a40()):
        reply = send(listener.port, message)
        assert ack_code(reply) == "AR", str(reply)
    assert [o.reference.placer_order_number for o in store.list_orders()] == ["A"]
    order = store.find_order("A", "HIS")
    assert (order.state, order.patient_name, order.patient_id) == (
        "scheduled", PATIENT_NAME, PATIENT_ID,
    )  # fmt: skip
    with store._transaction() as conn:
        for statement in allow:
            conn.execute(statement)
    assert ack_code(send(listener.port, orm(placer="B"))) == "AA"
    assert store.find_order("B", "HIS").state == "scheduled"


def test_a_fault_of_the_gateways_is_answered_ae_and_the_listener_stays_up(
    listener, store, caplog, monkeypatch
):
    """A bug (here find_order raising what no store raises) must not cost the sender its
    answer, the log a patient's name, or the listener its life."""
    real = store.find_order

    def broken(*args):
        raise KeyError(PATIENT_NAME)

    monkeypatch.setattr(store, "find_order", broken)
    reply = send(listener.port, orm())
    assert ack_code(reply) == "AE" and str(reply.segment("MSA")[2]) == "MSG1"
    assert "failed on it: KeyError" in caplog.text and "Doe" not in caplog.text
    monkeypatch.setattr(store, "find_order", real)
    assert ack_code(send(listener.port, orm())) == "AA"


def test_a_port_in_use_is_named_at_start(listener, store, tmp_path):
    with pytest.raises(OSError, match=f"orders: cannot listen on 127.0.0.1:{listener.port}"):
        start_listener(store, tmp_path / "audit", port=listener.port)


def test_mllp_over_tls(store, tmp_path):
    pki = make_pki(tmp_path)
    tls = {"enabled": True, "cert": str(pki.server_cert), "key": str(pki.server_key)}
    secure, _ = start_listener(store, tmp_path / "audit", tls=tls)
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        plain = socket.create_connection(("127.0.0.1", secure.port), timeout=10)
        with context.wrap_socket(plain, server_hostname="localhost") as raw:
            raw.sendall(b"\x0b" + orm().encode() + b"\x1c\r")
            assert ack_code(parse_ack(_read_frame(raw))) == "AA"
        assert store.find_order("P1", "HIS") is not None
    finally:
        secure.stop()


def test_a_failed_tls_handshake_is_logged_and_counted(tmp_path, caplog):
    """asyncio drops a failed server-side handshake unlogged; the listener logs each with
    the peer and the reason (nothing the peer sent) and counts it, and stays up."""
    pki = make_pki(tmp_path)
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    tls = {
        "enabled": True,
        "cert": str(pki.server_cert),
        "key": str(pki.server_key),
        "ca": str(pki.other_ca),  # the client's certificate is not from this CA
        "require_client_cert": True,
    }
    secure, metrics = start_listener(store, tmp_path / "audit", tls=tls)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.intake.hl7_orders"):
            with socket.create_connection(("127.0.0.1", secure.port), timeout=10) as plain:
                plain.sendall(b"\x0b" + orm().encode() + b"\x1c\r")  # MLLP in clear
                try:
                    answer = plain.recv(65536)
                except ConnectionResetError:
                    answer = b""
                assert b"MSA" not in answer  # closed: no ACK
            untrusted = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{secure.port}",
                 "-CAfile", str(pki.ca), "-cert", str(pki.client_cert),
                 "-key", str(pki.client_key)],
                input=b"\x0b" + orm().encode() + b"\x1c\r", capture_output=True, timeout=30,
                check=False,
            )  # fmt: skip
            assert b"MSA|AA" not in untrusted.stdout
            _until(lambda: metrics.rejections().get("hl7-tls-handshake-failed") == 2)
        failed = [r for r in caplog.records if "TLS handshake" in r.getMessage()]  # logged first
        assert [r.levelname for r in failed] == ["WARNING", "WARNING"], caplog.text
        assert all(re.search(r"with 127\.0\.0\.1:\d+ failed: SSL\w*Error \(", r.getMessage())
                   for r in failed)  # fmt: skip
        assert "CERTIFICATE_VERIFY_FAILED" in failed[1].getMessage()
        assert PATIENT_NAME.split("^")[0] not in caplog.text and "MSH" not in caplog.text
        assert store.find_order("P1", "HIS") is None
    finally:
        secure.stop()
        store.close()


def _read_frame(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def test_bad_orders_config_names_the_key_and_line(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("orders:\n  enabled: true\n  allowed_facilities: ['A|B']\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"line 3: orders\.allowed_facilities\.0") as raised:
        load_config(path)
    assert "line 4: orders.prot: Extra inputs are not permitted" in str(raised.value)
