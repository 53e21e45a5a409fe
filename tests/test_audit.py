"""The audit trail with a real collector (Debian's rsyslogd): DICOM audit messages in
RFC 5424 over TCP and TLS, a collector that is down stopping nothing (records queue in
the trail, durably, and are all sent when it returns), and `audit verify` finding a
removed or altered record."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import defusedxml.ElementTree as SafeET
import httpx
import pydicom
import pytest

from gateway.audit import Auditor, Instance
from gateway.audit.auditor import CURSOR_NAME, TRAIL_NAME
from gateway.audit.trail import AuditFile, read_records, verify
from gateway.config import AuditConfig, ConfigError, load_config
from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess, free_port
from tests.peers import make_pki
from tests.syslog_peer import RsyslogCollector, rsyslog_available
from tests.test_admin import samples_of

needs_rsyslog = pytest.mark.skipif(not rsyslog_available(), reason="rsyslog not installed")
needs_dcmtk = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


def audit_xml(received: dict):
    """The DICOM audit message inside one record as rsyslog parsed it (RFC 5424: version
    1, the IHE MSGID, a UTF-8 MSG behind its byte order mark)."""
    assert received["version"] == "1", received
    assert received["app"] == "ecg-gateway" and received["msgid"] == "IHE+RFC-3881"
    assert received["pri"] in ("85", "84")  # authpriv.notice, authpriv.warning
    assert received["msg"].startswith("\ufeff")
    root = SafeET.fromstring(received["msg"][1:])
    assert root.tag == "AuditMessage"
    return root


def event_ids(root) -> tuple[str, str]:
    event = root.find("EventIdentification")
    event_type = event.find("EventTypeCode")
    return event.find("EventID").get("csd-code"), "" if event_type is None else event_type.get(
        "csd-code"
    )


def send(port: int, files: list[Path], aet: str = "CART1") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["storescu", "-aet", aet, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def gateway_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "routes_optional: true\nallowed_calling_aes: [CART1, ECHOSCU]\n"
        f"audit:\n  enterprise_site_id: TEST-HOSPITAL\n  syslog:\n    host: 127.0.0.1\n"
        f"    port: {port}\n    timeout_s: 2\n{extra}"
    )
    return path


def trail_xml(data_dir: Path) -> list[str]:
    records = read_records(data_dir / "audit" / TRAIL_NAME, limit=100_000)
    return [r.msg.split(" - \ufeff", 1)[1] for r in records]


@needs_rsyslog
@needs_dcmtk
def test_gateway_events_reach_rsyslog_as_dicom_audit_messages(tmp_path, shared_data):
    port = free_port()
    collector = RsyslogCollector(tmp_path / "rsyslog", port).start()
    files = [
        samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, tmp_path / f"e{i}.dcm")
        for i in range(2)
    ]
    patient_id = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientID)
    gateway = GatewayProcess(tmp_path / "data", config=gateway_config(tmp_path, port)).start()
    try:
        assert send(gateway.port, files).returncode == 0
        assert send(gateway.port, files[:1], aet="INTRUDER").returncode != 0
        gateway.wait_until_processed(2)
        retry = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "deliveries", "retry", "--all-dead"]
            + ["--data-dir", str(gateway.data_dir)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert retry.returncode == 0, retry.stderr
        # start, 2 received, 1 refused, 1 retry by the CLI, 2 exports
        collector.wait_for(7)
        assert gateway.terminate() == 0
        received = collector.wait_for(8)
    finally:
        gateway.stop_if_running()
        collector.stop()

    messages = [audit_xml(r) for r in received]
    kinds = [event_ids(m) for m in messages]
    assert kinds[0] == ("110100", "110120") and kinds[-1] == ("110100", "110121")
    assert sorted(kinds[1:-1]) == sorted(
        [("110104", "")] * 2 + [("110106", "")] * 2 + [("110113", "110126"), ("110113", "110132")]
    )
    transferred = next(m for m in messages if event_ids(m)[0] == "110104")
    objects = transferred.findall("ParticipantObjectIdentification")
    patient = next(o for o in objects if o.get("ParticipantObjectTypeCodeRole") == "1")
    assert patient.get("ParticipantObjectID") == patient_id  # the format requires it
    study = next(o for o in objects if o.get("ParticipantObjectTypeCodeRole") == "3")
    assert study.find("SOPClass/Instance").get("UID") in {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files
    }
    source = transferred.find("ActiveParticipant")
    assert source.get("UserID") == "CART1" and source.get("NetworkAccessPointID") == "127.0.0.1"
    assert transferred.find("AuditSourceIdentification").get("AuditEnterpriseSiteID") == (
        "TEST-HOSPITAL"
    )
    refused = next(m for m in messages if event_ids(m) == ("110113", "110126"))
    assert refused.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert "calling-ae-not-allowed" in refused.findtext(
        "EventIdentification/EventOutcomeDescription"
    )
    # ... the same records, in the same order, as the local trail holds them
    assert [r["msg"][1:] for r in received] == trail_xml(gateway.data_dir)
    # patient identifiers only in the audit trail, never in the ordinary log
    assert patient_id not in gateway.logs()

    verified = run_cli("audit", "verify", "--data-dir", str(gateway.data_dir))
    assert verified.returncode == 0 and "8 records, chain intact" in verified.stdout


@needs_rsyslog
@needs_dcmtk
def test_a_collector_that_is_down_stops_no_intake_and_gets_every_record_later(
    tmp_path, shared_data
):
    port = free_port()  # nothing listens here yet
    files = [
        samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, tmp_path / f"e{i}.dcm")
        for i in range(3)
    ]
    gateway = GatewayProcess(tmp_path / "data", config=gateway_config(tmp_path, port)).start()
    collector = RsyslogCollector(tmp_path / "rsyslog", port)
    try:
        assert send(gateway.port, files[:2]).returncode == 0  # intake goes on
        gateway.wait_until_processed(2)
        values = _metrics_when(gateway, lambda v: v[("ecg_gateway_audit_queued", ())] >= 5)
        queued_first = values[("ecg_gateway_audit_queued", ())]
        assert values[("ecg_gateway_audit_send_failures_total", ())] >= 1
        assert values[("ecg_gateway_audit_sent_total", ())] == 0
        gateway.kill_hard()  # the queue is the trail on disk: a crash loses none of it
        gateway.start()
        assert send(gateway.port, files[2:]).returncode == 0
        gateway.wait_until_processed(3)
        # the second start, one more object received and exported
        expected = len(wait_for_trail(gateway.data_dir, queued_first + 3))

        collector.start()  # the collector comes back
        received = collector.wait_for(expected, timeout_s=90)
        values = _metrics_when(gateway, lambda v: v[("ecg_gateway_audit_queued", ())] == 0)
        assert values[("ecg_gateway_audit_sent_total", ())] >= expected - queued_first
        assert [r["msg"][1:] for r in received] == trail_xml(gateway.data_dir)[: len(received)]
        assert len(received) == expected  # each record once, none lost
    finally:
        gateway.stop_if_running()
        collector.stop()
    assert "audit collector unreachable" in gateway.logs()
    assert "audit collector reachable again" in gateway.logs()


def wait_for_trail(data_dir: Path, count: int, timeout_s: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while len(records := trail_xml(data_dir)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(records) >= count, records
    return records


def _metrics_when(gateway: GatewayProcess, condition, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        values = samples_of(httpx.get(f"{gateway.admin_url}/metrics").text)
        if condition(values) or time.monotonic() > deadline:
            assert condition(values), values
            return values
        time.sleep(0.3)


@needs_rsyslog
def test_the_forwarder_outlives_a_fault_and_sends_what_comes_after(tmp_path, monkeypatch, caplog):
    """The cursor cannot be saved once (here: the disk is full): logged, and the records
    recorded afterwards still reach the collector (the thread used to die on it)."""
    from gateway.audit import forwarder

    real = forwarder.write_atomic
    failures = []

    def full_once(path, data):
        if not failures:
            failures.append(path)
            raise OSError(28, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(forwarder, "write_atomic", full_once)
    port = free_port()
    collector = RsyslogCollector(tmp_path / "rsyslog", port).start()
    config = AuditConfig(syslog={"host": "127.0.0.1", "port": port})
    auditor = Auditor(tmp_path / "audit", config, "ECGGW", forward=True)
    try:
        auditor.start()
        auditor.application(started=True)
        collector.wait_for(1)
        _until_logged(caplog, "audit forwarding failed")
        auditor.exported(Instance("1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.3.4", "1.2.3"), "ehr")
        received = collector.wait_for(2)
        assert [event_ids(audit_xml(r))[0] for r in received] == ["110100", "110106"]
    finally:
        auditor.close()
        collector.stop()
    assert "OSError (No space left on device) at" in caplog.text and failures


def _until_logged(caplog, text: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.05)


@needs_rsyslog
def test_tls_with_node_certificates_and_an_untrusted_collector(tmp_path):
    if not rsyslog_available(tls=True) or shutil.which("openssl") is None:
        pytest.skip("rsyslog's openssl driver (rsyslog-openssl) or openssl not installed")
    pki = make_pki(tmp_path)
    port = free_port()
    collector = RsyslogCollector(tmp_path / "rsyslog", port, pki).start()
    tls = {"enabled": True, "ca": pki.ca, "cert": pki.client_cert, "key": pki.client_key}
    trusted = AuditConfig(syslog={"host": "localhost", "port": port, "tls": tls})
    untrusted = AuditConfig(
        syslog={"host": "localhost", "port": port, "tls": {**tls, "ca": pki.other_ca}}
    )
    good = Auditor(tmp_path / "good", trusted, "ECGGW", forward=True)
    bad = Auditor(tmp_path / "bad", untrusted, "ECGGW", forward=True)
    try:
        for auditor in (good, bad):
            auditor.start()
            auditor.application(started=True)
            auditor.exported(Instance("1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.3.4", "1.2.3"), "ehr")
        received = collector.wait_for(2)
        time.sleep(2)  # the untrusted side has tried by now
        assert len(collector.received()) == 2
        assert [event_ids(audit_xml(r))[0] for r in received] == ["110100", "110106"]
        assert good.queued() == 0 and bad.queued() == 2  # kept for when the CA is fixed
    finally:
        good.close()
        bad.close()
        collector.stop()


def test_verify_finds_altered_removed_and_reordered_records(tmp_path):
    path = tmp_path / TRAIL_NAME
    first, second = AuditFile(path), AuditFile(path)  # two writers: gateway and CLI
    for index in range(6):
        (first if index % 2 else second).append(f"<85>1 - record {index}")
    first.close()
    second.close()
    assert verify(path).ok and verify(path).records == 6
    lines = path.read_text().splitlines(keepends=True)

    def check(text: str, sent_seq: int = 0) -> list[str]:
        broken = tmp_path / "broken.jsonl"
        broken.write_text(text)
        return verify(broken, sent_seq).problems

    altered = lines[2].replace("record 2", "record X")
    assert check("".join(lines[:2] + [altered] + lines[3:])) == [
        "line 3: record 3 was altered (hash mismatch)"
    ]
    assert check("".join(lines[:3] + lines[4:]))[0] == "line 4: record 5 where 4 was expected"
    assert "does not follow" in check("".join(lines[:2] + [lines[3], lines[2]] + lines[4:]))[1]
    removed_at_end = (
        "the trail ends at record 4 but record 6 was already sent to the collector: "
        "records were removed from the end"
    )
    assert check("".join(lines[:4]), sent_seq=6) == [removed_at_end]
    assert check("".join(lines[:2]) + "garbage\n" + "".join(lines[2:]))[0].startswith(
        "line 3: not an audit record"
    )


def test_audit_verify_command_names_the_line_and_exits_1(tmp_path):
    auditor = Auditor(tmp_path / "audit", AuditConfig(), "ECGGW")
    for started in (True, False, True):
        auditor.application(started=started)
    auditor.close()
    path = tmp_path / "audit" / TRAIL_NAME
    assert run_cli("audit", "verify", str(path)).returncode == 0
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    result = run_cli("audit", "verify", str(path))
    assert result.returncode == 1
    assert "line 2: record 3 where 2 was expected" in result.stdout
    missing = run_cli("audit", "verify", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2 and "no audit trail here" in missing.stderr
    assert not (tmp_path / "audit" / CURSOR_NAME).exists()  # no collector: nothing sent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_bad_audit_and_admin_settings_name_the_key_and_line(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "workers: 1\naudit:\n  syslog:\n    port: 6514\n    tls: {enabled: true}\n"
        "admin:\n  tls: {enabled: true}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    assert any("line 3: audit.syslog.host: Field required" in line for line in lines)
    assert any("line 5: audit.syslog.tls:" in line and "needs 'ca'" in line for line in lines)
    assert any("line 7: admin.tls:" in line and "'cert' and 'key'" in line for line in lines)
