"""Container and Kubernetes probe: GET the gateway's admin endpoint on this host.

Usage: ecg-gateway-healthcheck /healthz | /readyz. Exit 0 when it answers 200, else 1.
The port is ECG_GATEWAY_ADMIN_PORT (default 8090); where the endpoint is bound beyond
localhost it wants a bearer token, read from ECG_GATEWAY_ADMIN_TOKEN_FILE. Standard
library only, so the probe needs nothing the image does not already hold.
"""

import os
import sys
import urllib.error
import urllib.request


def main(path: str) -> int:
    port = os.environ.get("ECG_GATEWAY_ADMIN_PORT", "8090")
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    token_file = os.environ.get("ECG_GATEWAY_ADMIN_TOKEN_FILE")
    if token_file:
        with open(token_file, encoding="utf-8") as handle:
            request.add_header("Authorization", f"Bearer {handle.read().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/healthz"))
