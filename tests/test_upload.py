"""POST /upload: httpx pushes real cart files (GE MUSE XML, a DICOM ECG) to a running
`ecg-gateway serve`; 201 with a job id only once the job is committed, and 401, 413, 415,
422 with messages that name the problem and carry no patient data."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gateway.config import ConfigError, UploadConfig, UploadToken, load_config
from gateway.intake.accept import Intake
from gateway.intake.upload import UploadEndpoint, read_tokens, source_for
from gateway.metrics import Metrics
from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess, free_port
from tests.peers import make_pki
from tests.test_scp import assert_plain_then_no_certificate_logged, settled_rejections

MUSE = "vendor/muse/muse-sinus.xml"  # patient DOE^JOHN, ID 081486213
PATIENT_STRINGS = ("DOE", "JOHN", "081486213")
CART_TOKEN = "cart-token-0123456789abcdef"
HOLTER_TOKEN = "holter-token-fedcba9876543210"
XML = {"Content-Type": "application/xml"}

pytestmark = pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk not installed")


class Upload:
    """A running gateway with the upload endpoint, and an httpx client for it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "cart.token").write_text(CART_TOKEN + "\n")
        (root / "holter.token").write_text(HOLTER_TOKEN)
        self.port = free_port()
        config = root / "gateway.yaml"
        config.write_text(
            "workers: 1\nroutes_optional: true\n"
            f"upload:\n  enabled: true\n  port: {self.port}\n  max_mb: 0.25\n"
            f"  tokens:\n    - {{source: carts, token_file: {root / 'cart.token'}}}\n"
            f"    - {{source: holters, token_file: {root / 'holter.token'}}}\n"
        )
        self.gateway = GatewayProcess(root / "data", config=config).start()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def post(self, data: bytes, token: str | None = CART_TOKEN, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post("/upload", content=data, headers={**XML, **auth, **headers})

    def jobs(self) -> list:
        return self.gateway.store_contents()[0]


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    running = Upload(tmp_path_factory.mktemp("upload"))
    yield running
    running.client.close()
    try:  # SIGTERM stops the endpoint with the rest, cleanly
        assert running.gateway.terminate() == 0, running.gateway.logs()[-2000:]
    finally:
        running.gateway.stop_if_running()


def test_a_pushed_file_gets_201_with_its_committed_job_and_is_routed_by_its_token(
    upload, shared_data
):
    response = upload.post((shared_data / MUSE).read_bytes(), HOLTER_TOKEN)
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    [job] = [j for j in upload.jobs() if j.id == job_id]  # committed before the answer
    assert (job.source, job.kind) == ("holters", "ecg-waveform")
    assert job.peer.startswith("http 127.0.0.1")
    assert Path(job.spool_path).read_bytes() == (shared_data / MUSE).read_bytes()
    upload.gateway.wait_until_processed(len(upload.jobs()))

    again = upload.post((shared_data / MUSE).read_bytes(), HOLTER_TOKEN)
    assert again.status_code == 200
    assert again.json() == {"job_id": job_id, "duplicate": True}


def test_a_dicom_file_keeps_its_own_uid(upload, shared_data, tmp_path):
    path = samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, tmp_path / "ecg.dcm")
    response = upload.post(path.read_bytes(), **{"Content-Type": "application/dicom"})
    assert response.status_code == 201, response.text
    [job] = [j for j in upload.jobs() if j.id == response.json()["job_id"]]
    import pydicom

    assert job.sop_instance_uid == pydicom.dcmread(path).SOPInstanceUID
    assert job.source == "carts"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {CART_TOKEN}", f"Bearer {CART_TOKEN}x"],
)
def test_without_a_valid_token_401_and_nothing_is_kept(upload, shared_data, authorization):
    before = len(upload.jobs())
    headers = {**XML, **({"Authorization": authorization} if authorization else {})}
    response = upload.client.post(
        "/upload", content=(shared_data / MUSE).read_bytes(), headers=headers
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "a valid bearer token is required"}
    assert len(upload.jobs()) == before
    assert "upload from 127.0.0.1 refused: unauthorized" in upload.gateway.logs()
    assert CART_TOKEN not in upload.gateway.logs()


def test_a_body_over_the_limit_is_413_announced_or_streamed(upload, shared_data):
    big = (shared_data / "vendor/muse/guangxi_teaching_sinus_rhythm.xml").read_bytes() * 2
    assert len(big) > 0.25 * 1024 * 1024
    announced = upload.post(big)
    assert announced.status_code == 413
    assert "larger than the limit of 0.25 MB" in announced.json()["error"]
    streamed = upload.client.post(  # chunked: no Content-Length to refuse it by
        "/upload",
        content=iter([big[:100_000], big[100_000:]]),
        headers={**XML, "Authorization": f"Bearer {CART_TOKEN}"},
    )
    assert streamed.status_code == 413


def test_a_form_or_multipart_body_is_415_with_what_to_send(upload, shared_data):
    response = upload.client.post(
        "/upload",
        files={"file": ("ecg.xml", (shared_data / MUSE).read_bytes())},
        headers={"Authorization": f"Bearer {CART_TOKEN}"},
    )
    assert response.status_code == 415
    message = response.json()["error"]
    assert "application/octet-stream" in message and "multipart/form-data" in message


def test_a_file_that_is_no_readable_ecg_is_422_without_patient_data(upload, shared_data):
    before = len(upload.jobs())
    data = (shared_data / MUSE).read_bytes()
    for body in (data[: len(data) // 2], b"%PDF-1.4 not an ECG", b"\x00" * 300):
        response = upload.post(body, **{"Content-Type": "application/octet-stream"})
        assert response.status_code == 422, response.text
        message = response.json()["error"]
        assert message.startswith("undecodable: cannot decode:")
        assert not any(s in message for s in PATIENT_STRINGS)
    assert upload.post(b"").json() == {"error": "the body is empty"}
    assert len(upload.jobs()) == before
    spooled = {Path(job.spool_path).name for job in upload.jobs()}
    assert {p.name for p in (upload.gateway.data_dir / "spool").iterdir()} == spooled
    assert not any(s in upload.gateway.logs() for s in PATIENT_STRINGS)


def test_a_body_that_stops_coming_is_408_and_frees_the_connection(tmp_path, shared_data):
    """A client that announces more than it sends (a stalled cart, or a slow-loris) does
    not hold its connection past read_timeout_s."""
    (tmp_path / "token").write_text(CART_TOKEN)
    config = UploadConfig(
        enabled=True,
        port=free_port(),
        read_timeout_s=1.0,
        tokens=[UploadToken(source="carts", token_file=tmp_path / "token")],
    )
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    endpoint = UploadEndpoint(config, Intake(store, _made(tmp_path / "spool"), Metrics()))
    endpoint.start()
    try:
        with socket.create_connection(("127.0.0.1", config.port), timeout=10) as sock:
            sock.sendall(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                + f"Authorization: Bearer {CART_TOKEN}\r\n".encode()
                + b"Content-Length: 5000\r\n\r\n<?xml"
            )
            started = time.monotonic()
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"did not arrive within 1 s" in reply
        assert 0.9 < time.monotonic() - started < 5
        assert store.list_jobs() == []
    finally:
        endpoint.stop()
        store.close()


def test_a_fault_of_the_gateways_is_500_logged_by_type_and_the_endpoint_stays_up(
    tmp_path, shared_data, caplog, monkeypatch
):
    """A bug (here find_job raising what no store raises) must not reach the client or
    the log with its message (it may quote a patient), nor take the endpoint down."""
    (tmp_path / "token").write_text(CART_TOKEN)
    config = UploadConfig(
        enabled=True,
        port=free_port(),
        tokens=[UploadToken(source="carts", token_file=tmp_path / "token")],
    )
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    metrics = Metrics()
    endpoint = UploadEndpoint(config, Intake(store, _made(tmp_path / "spool"), metrics))
    endpoint.start()
    real = store.find_job

    def broken(*args):
        raise KeyError(PATIENT_STRINGS[2])

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=30) as client:
            headers = {**XML, "Authorization": f"Bearer {CART_TOKEN}"}
            monkeypatch.setattr(store, "find_job", broken)
            failed = client.post(
                "/upload", content=(shared_data / MUSE).read_bytes(), headers=headers
            )
            assert failed.status_code == 500
            assert failed.json() == {
                "error": "the gateway failed on this file: send it again later"
            }
            assert "failed on it: KeyError" in caplog.text
            assert not any(value in caplog.text for value in PATIENT_STRINGS)
            assert metrics.rejections() == {"internal-error": 1}
            monkeypatch.setattr(store, "find_job", real)
            again = client.post(
                "/upload", content=(shared_data / MUSE).read_bytes(), headers=headers
            )
            assert again.status_code == 201, again.text
    finally:
        endpoint.stop()
        store.close()


def test_tokens_map_to_their_sources_and_short_or_missing_token_files_are_refused(tmp_path):
    (tmp_path / "a").write_text(CART_TOKEN)
    (tmp_path / "b").write_text(HOLTER_TOKEN)
    (tmp_path / "short").write_text("12345")
    tokens = read_tokens(
        UploadConfig(
            tokens=[
                UploadToken(source="carts", token_file=tmp_path / "a"),
                UploadToken(source="holters", token_file=tmp_path / "b"),
            ]
        )
    )
    assert source_for(f"Bearer {HOLTER_TOKEN}", tokens) == "holters"
    assert source_for(f"bearer  {CART_TOKEN} ", tokens) == "carts"
    assert source_for(f"Bearer {CART_TOKEN[:-1]}", tokens) is None
    for name, problem in (("short", "shorter than 16"), ("missing", "cannot read")):
        config = UploadConfig(tokens=[UploadToken(source="x", token_file=tmp_path / name)])
        with pytest.raises(ConfigError, match=problem):
            read_tokens(config)


def test_binding_beyond_loopback_needs_tls_and_an_enabled_endpoint_a_token(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "upload:\n  enabled: true\n  bind_address: 0.0.0.0\n"
        f"  tokens: [{{source: a, token_file: {tmp_path / 't'}}}]\n"
    )
    with pytest.raises(
        ConfigError, match=r"line 3: upload.bind_address: .*upload.tls.enabled must be true"
    ):
        load_config(config)
    config.write_text("upload:\n  enabled: true\n")
    with pytest.raises(ConfigError, match="at least one entry in 'tokens'"):
        load_config(config)


def test_over_tls_on_every_address_with_the_hospital_ca(tmp_path, shared_data):
    pki = make_pki(_made(tmp_path / "pki"))
    (tmp_path / "token").write_text(CART_TOKEN)
    config = UploadConfig.model_validate(
        {
            "enabled": True,
            "bind_address": "0.0.0.0",
            "port": free_port(),
            "tls": {"enabled": True, "cert": pki.server_cert, "key": pki.server_key},
            "tokens": [{"source": "carts", "token_file": tmp_path / "token"}],
        }
    )
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    endpoint = UploadEndpoint(config, Intake(store, _made(tmp_path / "spool"), Metrics()))
    endpoint.start()
    try:
        url = f"https://localhost:{config.port}/upload"
        headers = {**XML, "Authorization": f"Bearer {CART_TOKEN}"}
        data = (shared_data / MUSE).read_bytes()
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        response = httpx.post(url, content=data, headers=headers, verify=trusted)
        assert response.status_code == 201
        assert store.get_job(response.json()["job_id"]).source == "carts"
        with pytest.raises(httpx.TransportError):  # plain HTTP is not answered
            httpx.post(url.replace("https", "http"), content=data, headers=headers)
        untrusted = ssl.create_default_context(cafile=str(pki.other_ca))
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.post(url, content=data, headers=headers, verify=untrusted)
    finally:
        endpoint.stop()
        store.close()


def test_a_failed_tls_handshake_is_logged_with_the_peer_and_counted(tmp_path, shared_data, caplog):
    """asyncio (under aiohttp) drops a failed handshake unlogged; the endpoint logs each
    with the peer and OpenSSL's reason and counts it, and still takes a trusted client's
    upload. Client certificates are required here, from the hospital CA."""
    pki = make_pki(_made(tmp_path / "pki"))
    (tmp_path / "token").write_text(CART_TOKEN)
    tls = {"enabled": True, "cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca,
           "require_client_cert": True}  # fmt: skip
    config = UploadConfig.model_validate(
        {
            "enabled": True,
            "port": free_port(),
            "tls": tls,
            "tokens": [{"source": "carts", "token_file": tmp_path / "token"}],
        }
    )
    store, metrics = SqliteStore(tmp_path / "gateway.sqlite3"), Metrics()
    endpoint = UploadEndpoint(config, Intake(store, _made(tmp_path / "spool"), metrics)).start()
    url = f"https://localhost:{config.port}/upload"
    headers = {**XML, "Authorization": f"Bearer {CART_TOKEN}"}
    data = (shared_data / MUSE).read_bytes()
    try:
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.post(url.replace("https", "http"), content=data, headers=headers)
        no_certificate = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{config.port}", "-CAfile", pki.ca],
            input=b"POST /upload HTTP/1.1\r\n\r\n", capture_output=True, timeout=30,
            check=False,
        )  # fmt: skip
        assert b"HTTP/1.1 2" not in no_certificate.stdout
        assert settled_rejections(metrics, {"upload-tls-handshake-failed": 2})
        with_certificate = ssl.create_default_context(cafile=str(pki.ca))
        with_certificate.load_cert_chain(pki.client_cert, pki.client_key)
        response = httpx.post(url, content=data, headers=headers, verify=with_certificate)
        assert response.status_code == 201  # the endpoint stayed up
    finally:
        endpoint.stop()
        store.close()
    assert_plain_then_no_certificate_logged(caplog, "upload")


def _made(directory: Path) -> Path:
    directory.mkdir(parents=True)
    return directory
