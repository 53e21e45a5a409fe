"""Container and Kubernetes probe: GET the gateway's admin endpoint on this host.

Usage: ecg-gateway-healthcheck /healthz | /readyz. Exit 0 when it answers 200, else 1.
The port is ECG_GATEWAY_ADMIN_PORT (default 8090). Where the endpoint is bound beyond
localhost it wants a bearer token, read from ECG_GATEWAY_ADMIN_TOKEN_FILE, and speaks TLS
(ECG_GATEWAY_ADMIN_TLS=1): the probe then talks HTTPS to 127.0.0.1 without checking the
certificate's name, which is the pod's or host's, never "127.0.0.1". Standard library only,
so the probe needs nothing the image does not already hold.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request


def main(path: str) -> int:
    port = os.environ.get("ECG_GATEWAY_ADMIN_PORT", "8090")
    tls = os.environ.get("ECG_GATEWAY_ADMIN_TLS") == "1"
    request = urllib.request.Request(f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}")
    token_file = os.environ.get("ECG_GATEWAY_ADMIN_TOKEN_FILE")
    if token_file:
        with open(token_file, encoding="utf-8") as handle:
            request.add_header("Authorization", f"Bearer {handle.read().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=4, context=_loopback_tls(tls)) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1


def _loopback_tls(tls: bool) -> ssl.SSLContext | None:
    if not tls:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback only: the name on the certificate is not ours
    return context


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/healthz"))
