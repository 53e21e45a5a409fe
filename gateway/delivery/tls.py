"""Client-side TLS for HTTPS and MLLP over TLS: a custom CA and mutual TLS."""

from __future__ import annotations

import ssl

from gateway.delivery.base import DeliveryError
from gateway.routing import TlsOptions


def client_ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """Verification always on; the hospital's CA when given, else the system's."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.client_cert is not None and tls.client_key is not None:
            context.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"loading TLS files: {exc}") from None
    return context
