"""Sending one notice to one target: a webhook POST (httpx) or a mail (smtplib).

Each raises NoticeError, with what failed in words, when the target did not take it, so
the sweeper can retry; nothing here logs the notice's content.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from typing import Any

import httpx

from gateway.notify.messages import email
from gateway.routing.critical_schema import SmtpTarget, Target, WebhookTarget

SIGNATURE_HEADER = "X-ECG-Gateway-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"  # IETF draft-ietf-httpapi-idempotency-key-header


class NoticeError(Exception):
    """A target did not accept the notice."""


def send(target: Target, payload: dict[str, Any]) -> None:
    if isinstance(target, WebhookTarget):
        post_webhook(target, payload)
    else:
        send_mail(target, payload)


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, as GitHub's and Slack's webhooks sign."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(target: WebhookTarget, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    # The notice's identity, the same on every resend, as a structured-field string.
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: f'"{payload["notice_id"]}"'}
    try:
        if target.secret is not None:
            headers[SIGNATURE_HEADER] = signature(target.secret.read(), body)
        with httpx.Client(timeout=target.timeout_s, verify=_tls_context(target)) as client:
            response = client.post(str(target.url), content=body, headers=headers)
    except (httpx.HTTPError, OSError, LookupError) as exc:
        raise NoticeError(f"webhook {target.url.host}: {type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise NoticeError(f"webhook {target.url.host}: HTTP {response.status_code}")


def send_mail(target: SmtpTarget, payload: dict[str, Any]) -> None:
    message = email(payload, target)
    try:
        with smtplib.SMTP(target.host, target.port, timeout=target.timeout_s) as smtp:
            if target.starttls:
                smtp.starttls(context=_tls_context(target))
            if target.username is not None and target.password is not None:
                smtp.login(target.username, target.password.read())
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError, LookupError) as exc:
        raise NoticeError(f"smtp {target.host}: {type(exc).__name__}: {exc}") from None
    if refused:
        raise NoticeError(f"smtp {target.host}: refused {', '.join(sorted(refused))}")


def _tls_context(target: Target) -> ssl.SSLContext:
    """The system's CAs, or the site CA named in the target's tls.ca_file."""
    tls = target.tls
    context = ssl.create_default_context(cafile=None if tls.ca_file is None else str(tls.ca_file))
    if tls.client_cert is not None and tls.client_key is not None:
        context.load_cert_chain(tls.client_cert, tls.client_key)
    return context
