"""Sending one notice to one target: a webhook POST (httpx) or a mail (smtplib).

Each raises NoticeError, with what failed in words, when the target did not take it, so
the sweeper can retry; nothing here logs the notice's content. A try has the target's
`timeout_s` as a whole, its host name lookup (DNS) included: the lookups are the
delivery senders' bounded ones (gateway/delivery/resolve.py), so a DNS server that does
not answer holds the notifier's thread no longer than that, nor piles up threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from typing import Any

import httpx

from gateway.delivery.resolve import LookupLoop, LookupTimeout, lookup
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
        response = _post(target, body, headers)
    except (httpx.HTTPError, OSError, LookupError) as exc:
        raise NoticeError(f"webhook {target.url.host}: {type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise NoticeError(f"webhook {target.url.host}: HTTP {response.status_code}")


def _post(target: WebhookTarget, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """The POST within `timeout_s` as a whole, as FHIR's (delivery/fhir_client.py):
    httpx's own timeouts are per network operation, and its sync client looks the host up
    unbounded, so its async client runs on a loop whose lookups are the bounded ones and
    is cancelled at the deadline."""
    host, timeout = target.url.host, target.timeout_s
    loop = LookupLoop()
    try:
        client = httpx.AsyncClient(timeout=None, verify=_tls_context(target))
        try:
            post = client.post(str(target.url), content=body, headers=headers)
            return loop.run_until_complete(asyncio.wait_for(post, timeout))
        finally:
            loop.run_until_complete(client.aclose())
    except TimeoutError:
        if loop.unanswered():
            raise NoticeError(
                f"webhook {host}: no answer from DNS for {host} within {timeout:g} s (timeout_s)"
            ) from None
        raise NoticeError(
            f"webhook {host}: no complete answer within {timeout:g} s (timeout_s)"
        ) from None
    finally:  # also when the TLS settings or the client's closing failed
        loop.close()


def send_mail(target: SmtpTarget, payload: dict[str, Any]) -> None:
    message = email(payload, target)
    host, timeout = target.host, target.timeout_s
    deadline = time.monotonic() + timeout
    try:
        smtp = _connect(target, deadline)
        try:
            if target.starttls:
                smtp.sock.settimeout(_time_left(deadline))
                smtp.starttls(context=_tls_context(target))
            if target.username is not None and target.password is not None:
                smtp.sock.settimeout(_time_left(deadline))
                smtp.login(target.username, target.password.read())
            smtp.sock.settimeout(_time_left(deadline))
            refused = smtp.send_message(message)
            _quit(smtp, deadline)
        finally:
            smtp.close()
    except LookupTimeout:
        raise NoticeError(
            f"smtp {host}: no answer from DNS for {host} within {timeout:g} s (timeout_s)"
        ) from None
    except TimeoutError:
        raise NoticeError(
            f"smtp {host}: no complete exchange within {timeout:g} s (timeout_s)"
        ) from None
    except (smtplib.SMTPException, OSError, LookupError) as exc:
        raise NoticeError(f"smtp {host}: {type(exc).__name__}: {exc}") from None
    if refused:
        raise NoticeError(f"smtp {host}: refused {', '.join(sorted(refused))}")


def _connect(target: SmtpTarget, deadline: float) -> smtplib.SMTP:
    """An SMTP session with the target's host, looked up within the deadline and dialled
    at each address it has in turn with the time left; its certificate is still checked
    against the host name at STARTTLS."""
    addresses = lookup(target.host, target.port, deadline - time.monotonic())
    # without local_hostname smtplib looks this host's name up (getfqdn), unbounded
    smtp = smtplib.SMTP(local_hostname=socket.gethostname())
    # starttls() checks the certificate against `_host`, which only SMTP(host) sets, and
    # that call would look the host up again, unbounded: smtplib has no public way to
    # dial an address and check the certificate against a name.
    smtp._host = target.host
    failed: OSError | None = None
    for address in addresses:
        smtp.timeout = _time_left(deadline)  # what connect() dials with
        try:
            code, greeting = smtp.connect(address[4][0], target.port)
        except OSError as exc:  # SMTPServerDisconnected too: the next address
            failed = exc
            continue
        if code != 220:  # what SMTP(host) checks; connect() alone does not
            smtp.close()
            raise smtplib.SMTPConnectError(code, greeting)
        smtp.local_hostname = _helo_name(smtp.sock)
        return smtp
    assert failed is not None  # getaddrinfo gives at least one address or raises
    raise failed


def _helo_name(sock: socket.socket) -> str:
    """The name EHLO gives, found without DNS: the host's name where it is a full one
    (dotted), else the address literal of this end of the connection (RFC 5321 4.1.3);
    getfqdn() would give the bare host name after waiting on DNS (operations.md)."""
    name = socket.gethostname()
    if "." in name:
        return name
    address = sock.getsockname()[0]
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def _quit(smtp: smtplib.SMTP, deadline: float) -> None:
    """Say goodbye within the time left; the server took the mail at DATA's reply
    already, so a QUIT unanswered or refused does not fail the notice (which would send
    it again)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return
    smtp.sock.settimeout(left)
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        return


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timeout_s spent")
    return left


def _tls_context(target: Target) -> ssl.SSLContext:
    """The system's CAs, or the site CA named in the target's tls.ca_file."""
    tls = target.tls
    context = ssl.create_default_context(cafile=None if tls.ca_file is None else str(tls.ca_file))
    if tls.client_cert is not None and tls.client_key is not None:
        context.load_cert_chain(tls.client_cert, tls.client_key)
    return context
