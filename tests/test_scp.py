"""The DICOM SCP against real peers (dcmtk echoscu/storescu, and the pynetdicom client
of `ecg-gateway send` for statuses): what it accepts, what it refuses and with which
status, and that it keeps serving after bad input.

The SCP runs in-process here (with the real store and spool, without workers) so the
tests can look at the store and counters directly; test_durability.py runs the whole
`ecg-gateway serve` process.
"""

from __future__ import annotations

import random
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom.sop_class import TwelveLeadECGWaveformStorage as ECG_12_LEAD

from gateway import metrics as m
from gateway.cli.send import client_tls_context, send_files
from gateway.config import GatewayConfig
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.intake.dicom_scp import start_scp, tls_context
from gateway.metrics import Metrics
from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests.gateway_process import free_port
from tests.peers import Pki, announce_a_dataset_and_send_none, make_pki

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


class RunningGateway:
    """An in-process SCP with its store, spool and counters."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.config = GatewayConfig(
            data_dir=tmp_path / "data", port=free_port(), bind_address="127.0.0.1", **settings
        )
        ensure_dir(self.config.spool_dir)
        self.store = SqliteStore(self.config.store_path)
        self.metrics = Metrics()
        self.woken = 0
        intake = Intake(
            self.store,
            self.config.spool_dir,
            self.metrics,
            self.config.min_free_disk_mb * 1024 * 1024,
            self._wake,
        )
        self.scp = start_scp(self.config, intake, self.metrics)

    def _wake(self) -> None:
        self.woken += 1

    @property
    def port(self) -> int:
        return self.config.port

    def jobs(self) -> list:
        return list(reversed(self.store.list_jobs()))

    def stop(self) -> None:
        self.scp.stop(grace_s=2)
        self.store.close()


@pytest.fixture
def gateway(tmp_path):
    running = RunningGateway(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def vendor(shared_data):
    return shared_data / samples.VENDOR_ECG


def dcmtk(
    tool: str, *options: str, port: int, aet: str = "CART1", files: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool, "-aet", aet, "-aec", "ECGGW", *options, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settled_rejections(metrics: Metrics, expected: dict[str, int], wait_s: float = 5) -> bool:
    """Connection-level rejections are counted on the server's thread, which may finish
    a moment after the refused client has exited."""
    deadline = time.monotonic() + wait_s
    while metrics.rejections() != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return metrics.rejections() == expected


def assert_plain_then_no_certificate_logged(caplog, listener: str) -> None:
    """An HTTPS listener's two failed handshakes, plain HTTP on its port, then a client
    without the certificate it requires: each a WARNING with the peer and OpenSSL's reason."""
    records = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert [r.levelname for r in records] == ["WARNING", "WARNING"], caplog.text
    failed = [r.getMessage() for r in records]
    pattern = rf"^{listener} TLS handshake with 127\.0\.0\.1:\d+ failed: SSL\w*Error \("
    assert all(re.search(pattern, message) for message in failed), failed
    assert "HTTP_REQUEST" in failed[0]
    assert "CERTIFICATE" in failed[1]  # PEER_DID_NOT_RETURN_A_CERTIFICATE


def storescu(port: int, *files: Path, options: tuple[str, ...] = (), aet: str = "CART1"):
    return dcmtk("storescu", *options, port=port, aet=aet, files=files)


# --- accepted objects -------------------------------------------------------------------


def test_echoscu_gets_success(gateway):
    result = dcmtk("echoscu", port=gateway.port)
    assert result.returncode == 0, result.stderr


def test_storescu_vendor_ecg_is_spooled_and_queued_before_success(gateway, vendor):
    result = storescu(gateway.port, vendor)
    assert result.returncode == 0, result.stderr
    # What another process sees once storescu has its success: the committed job ...
    other = SqliteStore(gateway.config.store_path)
    [job] = other.list_jobs()
    other.close()
    original = pydicom.dcmread(vendor)
    assert (job.state, job.kind, job.sop_instance_uid) == (
        "queued",
        "ecg-waveform",
        original.SOPInstanceUID,
    )
    assert (job.calling_ae, job.called_ae) == ("CART1", "ECGGW")
    # ... and the spooled object, identical to what was sent.
    spooled = pydicom.dcmread(job.spool_path)
    assert spooled.WaveformSequence[0].WaveformData == original.WaveformSequence[0].WaveformData
    assert spooled.PatientID == original.PatientID
    assert gateway.woken == 1 and gateway.metrics.get(m.OBJECTS_ACCEPTED) == 1


def test_same_object_twice_is_acknowledged_once_and_new_content_is_a_correction(
    gateway, vendor, tmp_path
):
    assert storescu(gateway.port, vendor).returncode == 0
    assert storescu(gateway.port, vendor).returncode == 0
    changed = samples.changed_copy(
        vendor, tmp_path / "changed.dcm", StudyDescription="amended by the cart"
    )
    assert storescu(gateway.port, changed).returncode == 0
    jobs = gateway.jobs()
    assert [j.is_correction for j in jobs] == [False, True]
    assert len({j.sop_instance_uid for j in jobs}) == 1
    assert gateway.metrics.get(m.OBJECTS_DUPLICATE) == 1


@pytest.mark.parametrize(
    "options, expected_syntax",
    [
        (("-xi",), "1.2.840.10008.1.2"),  # implicit VR little endian
        (("-xe",), "1.2.840.10008.1.2.1"),  # explicit VR little endian
        (("-xd",), "1.2.840.10008.1.2.1.99"),  # deflated explicit VR little endian
    ],
)
def test_waveform_transfer_syntaxes(gateway, vendor, tmp_path, options, expected_syntax):
    sample = samples.copy_with_new_uid(vendor, tmp_path / "ecg.dcm")
    result = storescu(gateway.port, sample, options=options)
    assert result.returncode == 0, result.stderr
    [job] = gateway.jobs()
    spooled = pydicom.dcmread(job.spool_path)
    assert spooled.file_meta.TransferSyntaxUID == expected_syntax
    assert len(spooled.WaveformSequence) == len(pydicom.dcmread(sample).WaveformSequence)


def test_wfdb_records_converted_to_dicom_are_accepted(gateway, shared_data, tmp_path):
    files = [
        samples.wfdb_ecg(shared_data, record, tmp_path / f"{i}.dcm")
        for i, record in enumerate(("ptbxl/records500/00000/00001_hr", "ludb/data/1"))
    ]
    result = storescu(gateway.port, *files)
    assert result.returncode == 0, result.stderr
    assert [j.kind for j in gateway.jobs()] == ["ecg-waveform", "ecg-waveform"]


def test_secondary_capture_jpeg_and_native_and_pdf_are_accepted(gateway, shared_data, tmp_path):
    jpeg = samples.secondary_capture_jpeg(shared_data, tmp_path / "sc-jpeg.dcm")
    native = samples.secondary_capture_native(shared_data, tmp_path / "sc-native.dcm")
    pdf = samples.encapsulated_pdf(shared_data, tmp_path / "pdf.dcm")
    # -xy proposes JPEG baseline too, so storescu sends the JPEG object as it is.
    result = storescu(gateway.port, jpeg, native, pdf, options=("-xy",))
    assert result.returncode == 0, result.stderr
    jobs = gateway.jobs()
    assert [j.kind for j in jobs] == ["secondary-capture", "secondary-capture", "pdf"]
    assert (
        pydicom.dcmread(jobs[0].spool_path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    )


# --- refused objects: the status, the counter, nothing queued, still serving -------------


def _send_one(port: int, path: Path, aet: str = "CART1"):
    [result] = send_files([path], "127.0.0.1", port, calling_aet=aet)
    return result


def _assert_refused(gateway, result, status_high_nibble: int, reason: str) -> None:
    assert result.status is not None and result.status >> 12 == status_high_nibble, result
    assert gateway.metrics.rejections().get(reason) == 1, gateway.metrics.snapshot()
    assert gateway.jobs() == []
    assert list(gateway.config.spool_dir.glob("*.dcm")) == []
    assert dcmtk("echoscu", port=gateway.port).returncode == 0  # still serving


def test_random_bytes_get_cannot_understand(gateway, tmp_path):
    garbage = samples.random_bytes_dicom(tmp_path / "garbage.dcm", "1.2.840.10008.5.1.4.1.1.9.1.1")
    result = _send_one(gateway.port, garbage)
    _assert_refused(gateway, result, 0xC, "undecodable")


def test_truncated_ecg_gets_cannot_understand(gateway, vendor, tmp_path):
    cut = samples.truncated(vendor, tmp_path / "cut.dcm", keep=0.6)
    result = _send_one(gateway.port, cut)
    _assert_refused(gateway, result, 0xC, "truncated")
    assert "truncated" in result.message


def test_ecg_without_waveform_does_not_match_its_sop_class(gateway, vendor, tmp_path):
    no_waveform = samples.copy_with_new_uid(vendor, tmp_path / "x.dcm", WaveformSequence=None)
    result = storescu(gateway.port, no_waveform)
    assert result.returncode != 0
    assert gateway.metrics.rejections() == {"missing-waveform": 1}
    sent = _send_one(gateway.port, no_waveform)
    assert sent.status == 0xA900 and "WaveformSequence" in sent.message
    assert gateway.jobs() == []


@pytest.mark.parametrize("keyword", ["InstitutionName", "AccessionNumber", "PatientName"])
def test_a_nul_inside_a_header_value_is_refused_naming_the_element(
    gateway, vendor, tmp_path, keyword
):
    """PostgreSQL text cannot hold a NUL: refused for what it is (0xC000, the element
    named), not answered "out of resources" on every retry of the cart."""
    nul = samples.copy_with_new_uid(vendor, tmp_path / "nul.dcm", **{keyword: "CARDIO\x00LOGY"})
    result = _send_one(gateway.port, nul)
    _assert_refused(gateway, result, 0xC, "nul-in-text")
    assert result.status == 0xC000 and f"{keyword} holds a NUL" in result.message


def test_secondary_capture_without_pixels_does_not_match(gateway, shared_data, tmp_path):
    native = samples.secondary_capture_native(shared_data, tmp_path / "sc.dcm")
    no_pixels = samples.copy_with_new_uid(native, tmp_path / "np.dcm", PixelData=None)
    result = _send_one(gateway.port, no_pixels)
    assert result.status == 0xA900
    _assert_refused(gateway, result, 0xA, "missing-pixel-data")


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_a_pdf_that_does_not_open_is_refused(gateway, shared_data, tmp_path, damage):
    """Only `%PDF-` at the start was checked: such a document reached the EHR as the report."""
    good = samples.encapsulated_pdf(shared_data, tmp_path / "pdf.dcm")
    document = bytes(pydicom.dcmread(good).EncapsulatedDocument)
    if damage == "truncated":
        document = document[: len(document) * 6 // 10]
    else:
        document = b"%PDF-1.4\n" + random.Random(7).randbytes(20_000)
    bad = samples.copy_with_new_uid(good, tmp_path / "bad.dcm", EncapsulatedDocument=document)
    result = _send_one(gateway.port, bad)
    assert (
        result.status == 0xA900 and result.message == "EncapsulatedDocument is not a readable PDF"
    )
    _assert_refused(gateway, result, 0xA, "unreadable-pdf")


def test_ct_image_is_refused_in_negotiation(gateway, tmp_path):
    ct = samples.ct_image(tmp_path / "ct.dcm")
    result = storescu(gateway.port, ct, options=("-R",))  # propose only the file's class
    assert result.returncode != 0
    assert "no acceptable presentation contexts" in result.stderr.lower()
    assert settled_rejections(gateway.metrics, {"sop-class-not-supported": 1})
    assert gateway.jobs() == []
    sent = _send_one(gateway.port, ct)
    assert not sent.ok and "not accepted" in sent.message


def test_no_disk_space_gets_out_of_resources(tmp_path, vendor):
    full = RunningGateway(tmp_path, min_free_disk_mb=10**9)
    try:
        result = _send_one(full.port, vendor)
        assert result.status == 0xA700
        _assert_refused(full, result, 0xA, "no-disk-space")
    finally:
        full.stop()


def test_store_unavailable_gets_out_of_resources(gateway, vendor, caplog):
    gateway.store.close()
    result = _send_one(gateway.port, vendor)
    assert result.status == 0xA700
    # where the store lives is the log's to say, not the network's
    assert result.message == "store unavailable"
    assert str(gateway.config.store_path) in caplog.text
    assert gateway.metrics.rejections() == {"store-unavailable": 1}
    gateway.store = SqliteStore(gateway.config.store_path)
    assert gateway.jobs() == []


def test_a_fault_of_the_gateways_is_answered_0xc211_logged_by_type_and_line(
    gateway, vendor, monkeypatch, caplog
):
    """A bug (here find_job raising what no store raises, quoting the patient) costs the
    cart a failure status, never the log a patient's value, nor the SCP its life."""
    patient = "DOE^JOHN " + pydicom.dcmread(vendor, stop_before_pixels=True).PatientID

    def broken(*args):
        raise KeyError(patient)

    monkeypatch.setattr(gateway.store, "find_job", broken)
    result = _send_one(gateway.port, vendor)
    assert result.status == 0xC211
    assert "KeyError at test_scp.py:" in caplog.text and patient not in caplog.text
    assert gateway.metrics.rejections() == {"internal-error": 1}
    monkeypatch.undo()
    assert _send_one(gateway.port, vendor).status == 0x0000


def test_a_dataset_announced_and_never_sent_is_answered_within_the_wait(tmp_path):
    """It waited for the network timeout (a minute) with no answer before."""
    running = RunningGateway(tmp_path, dicom={"dataset_wait_s": 0.5, "network_timeout_s": 60})
    try:
        started = time.monotonic()
        response = announce_a_dataset_and_send_none(running.port, ECG_12_LEAD, timeout_s=10)
        assert time.monotonic() - started < 5
        assert response is not None and response.Status == 0xC000
        assert response.MessageIDBeingRespondedTo == 7
        assert "no dataset" in response.ErrorComment
        assert running.metrics.rejections() == {"no-dataset": 1}
        assert running.jobs() == []
        assert dcmtk("echoscu", port=running.port).returncode == 0  # still serving
    finally:
        running.stop()


def test_a_short_dataset_wait_does_not_disturb_senders_that_send(tmp_path, vendor):
    running = RunningGateway(tmp_path, dicom={"dataset_wait_s": 0.05})
    try:
        copies = [samples.copy_with_new_uid(vendor, tmp_path / f"{i}.dcm") for i in range(5)]
        assert storescu(running.port, *copies).returncode == 0
        time.sleep(0.2)  # past the wait: no late failure answer or abort
        assert len(running.jobs()) == 5
        assert "no-dataset" not in running.metrics.rejections()
    finally:
        running.stop()


# --- who may connect ----------------------------------------------------------------------


def test_unknown_calling_ae_is_rejected(tmp_path, vendor):
    running = RunningGateway(tmp_path, allowed_calling_aes=["CART1", "MUSE"])
    try:
        assert dcmtk("echoscu", port=running.port, aet="INTRUDER").returncode != 0
        assert storescu(running.port, vendor, aet="INTRUDER").returncode != 0
        assert settled_rejections(running.metrics, {"calling-ae-not-allowed": 2})
        assert storescu(running.port, vendor, aet="MUSE").returncode == 0
        assert len(running.jobs()) == 1
    finally:
        running.stop()


def test_source_address_outside_the_allow_list_is_refused(tmp_path):
    running = RunningGateway(tmp_path, allowed_addresses=["10.0.0.0/8"])
    try:
        assert dcmtk("echoscu", port=running.port).returncode != 0
        assert settled_rejections(running.metrics, {"address-not-allowed": 1})
    finally:
        running.stop()
    allowed = RunningGateway(tmp_path / "b", allowed_addresses=["127.0.0.0/8", "10.0.0.0/8"])
    try:
        assert dcmtk("echoscu", port=allowed.port).returncode == 0
    finally:
        allowed.stop()


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client_cert_required(pki: Pki, ca: Path) -> dict[str, object]:
    """The gateway's TLS settings: its server certificate, and client certificates required
    and trusted when `ca` signed them."""
    return {
        "enabled": True,
        "cert": pki.server_cert,
        "key": pki.server_key,
        "ca": ca,
        "require_client_cert": True,
    }


@pytest.fixture
def tls_gateway(tmp_path, pki):
    running = RunningGateway(tmp_path, tls=_client_cert_required(pki, pki.ca))
    yield running
    running.stop()


def test_tls_server_context_refuses_anything_older_than_tls_1_2(pki):
    from gateway.config import TlsConfig

    context = tls_context(TlsConfig(enabled=True, cert=pki.server_cert, key=pki.server_key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE


def _dcmtk_tls(pki: Pki) -> tuple[str, ...]:
    return ("+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca))


def test_tls_with_client_certificate_stores(tls_gateway, pki, vendor):
    assert dcmtk("echoscu", *_dcmtk_tls(pki), port=tls_gateway.port).returncode == 0
    result = storescu(tls_gateway.port, vendor, options=_dcmtk_tls(pki))
    assert result.returncode == 0, result.stderr
    assert len(tls_gateway.jobs()) == 1
    context = client_tls_context(pki.ca, pki.client_cert, pki.client_key)
    [sent] = send_files([vendor], "127.0.0.1", tls_gateway.port, "CART1", tls=context)
    assert sent.status == 0x0000  # a duplicate by now, acknowledged


def test_tls_client_without_certificate_is_refused_when_one_is_required(tls_gateway, pki, vendor):
    anonymous = ("+tla", "+cf", str(pki.ca))
    assert storescu(tls_gateway.port, vendor, options=anonymous).returncode != 0
    assert storescu(tls_gateway.port, vendor).returncode != 0  # no TLS at all
    [sent] = send_files(
        [vendor], "127.0.0.1", tls_gateway.port, "CART1", tls=client_tls_context(pki.ca)
    )
    assert not sent.ok
    assert settled_rejections(tls_gateway.metrics, {"tls-handshake-failed": 3})
    assert tls_gateway.jobs() == []


def test_tls_client_certificate_from_another_ca_is_refused(tmp_path, pki):
    running = RunningGateway(tmp_path, tls=_client_cert_required(pki, pki.other_ca))
    try:
        assert dcmtk("echoscu", *_dcmtk_tls(pki), port=running.port).returncode != 0
        assert settled_rejections(running.metrics, {"tls-handshake-failed": 1})
    finally:
        running.stop()
