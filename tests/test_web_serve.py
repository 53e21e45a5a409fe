"""`ecg-gateway serve` with the web application on: served on its own port beside the
DICOM port, over TLS when configured (cookies then Secure), stopped with the gateway;
a bind beyond loopback without TLS, or an unreadable users file, stops the start with
the key named."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time

import httpx
import pytest

from tests.gateway_process import GatewayProcess, free_port
from tests.peers import make_pki
from tests.web_support import PASSWORDS, write_users

needs_dcmtk = pytest.mark.skipif(not shutil.which("echoscu"), reason="dcmtk is not installed")


def _sign_in(client: httpx.Client) -> httpx.Response:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post(
        "/login",
        data={"csrf_token": token, "user_id": "drsmith", "password": PASSWORDS["drsmith"]},
    )


@needs_dcmtk
def test_serve_runs_the_web_application_over_tls_on_its_own_port(tmp_path):
    """Over TLS (plain HTTP on loopback is what the browser and login tests use)."""
    users, port, pki = write_users(tmp_path / "users.yaml"), free_port(), make_pki(tmp_path)
    extra = (
        f"web:\n  enabled: true\n  port: {port}\n  users_file: {users}\n"
        f"  tls: {{enabled: true, cert: {pki.server_cert}, key: {pki.server_key}}}\n"
    )
    gateway = GatewayProcess(tmp_path / "data", extra_config=extra).start()
    verify = httpx.create_ssl_context(verify=str(pki.ca))
    try:
        with httpx.Client(base_url=f"https://localhost:{port}", verify=verify) as client:
            signed = _sign_in(client)
            assert signed.status_code == 303, signed.text
            assert "Secure" in signed.headers["set-cookie"]
            page = client.get("/worklist")
            assert page.status_code == 200 and "Nothing awaits over-read" in page.text
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)  # no plain HTTP
    finally:
        assert gateway.terminate(timeout_s=120) == 0  # workers may still be importing
    assert f"over-read web application on https://127.0.0.1:{port}/" in gateway.logs()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{port}/login", verify=verify, timeout=2)  # stopped


@needs_dcmtk
def test_a_failed_tls_handshake_is_logged_with_the_peer_and_counted(tmp_path):
    """asyncio (under uvicorn) drops a failed handshake unlogged; the gateway logs each
    with the peer and OpenSSL's reason, counts it on /metrics, and serves a trusted
    client. Client certificates are required here, from the hospital CA."""
    users, port, pki = write_users(tmp_path / "users.yaml"), free_port(), make_pki(tmp_path)
    extra = (
        f"web:\n  enabled: true\n  port: {port}\n  users_file: {users}\n"
        f"  tls: {{enabled: true, cert: {pki.server_cert}, key: {pki.server_key}, "
        f"ca: {pki.ca}, require_client_cert: true}}\n"
    )
    gateway = GatewayProcess(tmp_path / "data", extra_config=extra).start()
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)  # plain HTTP
        no_certificate = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca)],
            input=b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n", capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert b"HTTP/1.1 200" not in no_certificate.stdout
        verify = ssl.create_default_context(cafile=str(pki.ca))
        verify.load_cert_chain(pki.client_cert, pki.client_key)
        page = httpx.get(f"https://localhost:{port}/login", verify=verify, timeout=10)
        assert page.status_code == 200  # still serving
        rejected = 'ecg_gateway_rejections_total{reason="web-tls-handshake-failed"} 2.0'
        deadline = time.monotonic() + 10
        while rejected not in httpx.get(f"{gateway.admin_url}/metrics").text:
            assert time.monotonic() < deadline, "the failed handshakes were not counted"
            time.sleep(0.1)
    finally:
        assert gateway.terminate(timeout_s=120) == 0
    failed = re.findall(r"WARNING \S+: web TLS handshake with 127\.0\.0\.1:\d+ failed: (.*)",
                        gateway.logs())  # fmt: skip
    assert len(failed) == 2, gateway.logs()[-3000:]
    assert failed[0].startswith("SSLError (HTTP_REQUEST)")
    assert re.match(r"SSL\w*Error \(\w*CERTIFICATE", failed[1]), failed[1]


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ("bind: 0.0.0.0\n", "web.bind 0.0.0.0 is reachable from other machines"),
        ("users_file: /nonexistent/users.yaml\n", "web.users_file: /nonexistent/users.yaml"),
    ],
)
def test_serve_refuses_a_web_section_it_cannot_use(tmp_path, web, message):
    gateway = GatewayProcess(tmp_path / "data", extra_config=f"web:\n  enabled: true\n  {web}")
    with pytest.raises(RuntimeError, match="gateway exited with 2") as refused:
        gateway.start()
    assert message in str(refused.value)
