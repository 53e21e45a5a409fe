"""A critical-notice target's host name lookup is part of its try's timeout_s: a DNS
server that does not answer (the `slow_dns` stand-in, dns_support.py) fails the try
within about timeout_s, naming the host, instead of holding the notifier's thread (and
every other notice) for as long as the system resolver waits. Everything after the
lookup is real: a local webhook server and aiosmtpd (with STARTTLS and a private CA),
reached at the address the lookup gave. And a webhook's timeout_s bounds its whole
POST, as FHIR's does, a server trickling its answer included."""

from __future__ import annotations

import gc
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from dns_support import SlowDns
from peers import make_pki
from test_critical_notify import SECRET, MailPeer, WebhookPeer, routes

from gateway.delivery.resolve import MAX_PENDING, lookup
from gateway.notify import CriticalNotifier
from gateway.notify.senders import NoticeError, post_webhook, send_mail
from gateway.routing import Router
from gateway.routing.critical_schema import SmtpTarget, WebhookTarget

TIMEOUT_S = 1
SLACK_S = 1.5  # a busy two-core machine; the base waited the stand-in resolver out (60 s)


def _payload() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "event": "critical-ecg",
        "notice_id": str(uuid.uuid4()),
        "job_id": 7,
        "report_url": "https://ecg.example.org/reports/7",
        "rules": [{"name": "stemi", "text": "ST elevation myocardial infarction"}],
        "flagged_at": now,
        "first_notice_at": None,
        "sent_at": now,
    }


def _webhook(url: str) -> WebhookTarget:
    return WebhookTarget.model_validate(
        {"type": "webhook", "url": url, "secret": {"env": "CRITICAL_HMAC"}, "timeout_s": TIMEOUT_S}
    )


def _mail(host: str, port: int, **extra: Any) -> SmtpTarget:
    return SmtpTarget.model_validate(
        {
            "type": "smtp",
            "host": host,
            "port": port,
            "starttls": False,
            "sender": "ecg-gateway@example.org",
            "to": ["cardiology@example.org"],
            "timeout_s": TIMEOUT_S,
            **extra,
        }
    )


def _try(send: Callable[[Any, dict[str, Any]], None], target: Any) -> tuple[str | None, float]:
    """The error of one try (None when the target took it), and how long it took."""
    started = time.monotonic()
    try:
        send(target, _payload())
    except NoticeError as exc:
        return str(exc), time.monotonic() - started
    return None, time.monotonic() - started


@pytest.fixture
def webhook(request, monkeypatch) -> WebhookPeer:
    monkeypatch.setenv("CRITICAL_HMAC", SECRET)
    peer = WebhookPeer()
    request.addfinalizer(peer.close)
    return peer


def test_a_webhook_lookup_past_timeout_s_fails_the_try_naming_the_host(
    slow_dns: SlowDns, webhook: WebhookPeer
) -> None:
    port = webhook.server.server_port
    target = _webhook(f"http://pager.slow-dns.test:{port}/critical")
    for _again in range(2):  # the second try waits on the same lookup, not a new one
        error, took = _try(post_webhook, target)
        assert error == (
            "webhook pager.slow-dns.test: no answer from DNS for pager.slow-dns.test"
            " within 1 s (timeout_s)"
        )
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
    assert len(slow_dns.waiting) == 1 and slow_dns.waiting[0].daemon
    assert webhook.received == []

    slow_dns.answer(0.3)  # slow, but in time: the POST goes to the address found
    error, _ = _try(post_webhook, target)
    assert error is None
    assert webhook.problems == [] and len(webhook.received) == 1


def test_a_mail_lookup_past_timeout_s_fails_the_try_and_starttls_checks_the_name(
    slow_dns: SlowDns, tmp_path
) -> None:
    """The mail server's certificate names mail.slow-dns.test only (not 127.0.0.1, the
    address dialled): STARTTLS checks it against the host name, so a lookup answered in
    time delivers, and the same server under a name its certificate lacks is refused."""
    pki = make_pki(tmp_path, server_names="DNS:mail.slow-dns.test")
    peer = MailPeer(tls=pki.server_context(require_client_cert=False))
    try:
        tls = {"starttls": True, "tls": {"ca_file": str(pki.ca)}}
        target = _mail("mail.slow-dns.test", peer.port, **tls)
        error, took = _try(send_mail, target)
        assert error == (
            "smtp mail.slow-dns.test: no answer from DNS for mail.slow-dns.test"
            " within 1 s (timeout_s)"
        )
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S

        slow_dns.answer(0.3)
        error, _ = _try(send_mail, target)
        assert error is None
        ((envelope, _),) = peer.messages
        assert envelope.rcpt_tos == ["cardiology@example.org"]

        error, _ = _try(send_mail, _mail("other.slow-dns.test", peer.port, **tls))
        assert error is not None and error.startswith("smtp other.slow-dns.test: SSLCert")
        assert "Hostname mismatch" in error and len(peer.messages) == 1
    finally:
        peer.close()


def test_targets_given_by_address_are_not_held_by_silent_dns(
    slow_dns: SlowDns, webhook: WebhookPeer
) -> None:
    """A target named by a host whose DNS is silent fails within its timeout_s; with
    every lookup slot then taken by silent hosts (a WAN link down), a webhook and a
    mailbox given by IP address still take the notice at once: they need no lookup."""
    mail = MailPeer()
    try:
        error, took = _try(send_mail, _mail("mail.slow-dns.test", mail.port))
        assert error is not None and "no answer from DNS" in error
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
        for index in range(MAX_PENDING - 1):
            with pytest.raises(TimeoutError):
                lookup(f"remote{index}.slow-dns.test", 443, 0.05)
        error, took = _try(post_webhook, _webhook("http://pager.slow-dns.test/critical"))
        assert error == (
            "webhook pager.slow-dns.test: ConnectError: "
            f"{MAX_PENDING} host name lookups are still unanswered"
        )
        assert took < 0.5
        for send, target in (
            (post_webhook, _webhook(webhook.url)),
            (send_mail, _mail("127.0.0.1", mail.port)),
        ):
            error, took = _try(send, target)
            assert error is None and took < 0.5
        assert len(webhook.received) == len(mail.messages) == 1
    finally:
        mail.close()


@pytest.fixture
def site_of_silent_pager(request, tmp_path, monkeypatch):
    """test_critical_notify's site whose pager is named by a host whose DNS is silent
    (timeout_s 1) and whose ward mailbox is given by address."""
    from test_critical_notify import ISSUER, PATIENT_ID
    from test_prior_comparison import Pipeline, ecg_file
    from test_store import open_backend

    from model.rhythm_synthetic import RhythmSpec

    monkeypatch.setenv("CRITICAL_HMAC", SECRET)
    peer, mail = WebhookPeer(), MailPeer()
    request.addfinalizer(peer.close)
    request.addfinalizer(mail.close)
    store = open_backend(request.param, request, tmp_path)
    request.addfinalizer(store.close)
    data = tmp_path / "data"
    pipeline = Pipeline(store, data)
    named = f"url: http://pager.slow-dns.test:{peer.server.server_port}/critical"
    text = routes(peer, mail).replace(f"url: {peer.url}", f"{named}\n      timeout_s: 1")
    (data / "routes.yaml").write_text(text)
    pipeline.workers._router.reload_if_changed()
    af = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130)
    path = ecg_file(tmp_path, "af", af, PATIENT_ID, ISSUER, datetime(2026, 3, 1, 9, 0))
    job_id = pipeline.process(path).job_id
    return store, Router(data / "routes.yaml", data), job_id, peer, mail


@pytest.mark.parametrize("site_of_silent_pager", ["sqlite", "postgresql"], indirect=True)
def test_a_sweep_is_held_only_timeout_s_by_a_target_whose_dns_is_silent(
    slow_dns: SlowDns, site_of_silent_pager
) -> None:
    """The notifier's sweep (one thread for every notice) goes on after the pager's
    timeout_s: the ward's mailbox takes the notice, the pager's try is charged with the
    DNS error, and the retry, DNS answering again, pages."""
    store, router, job_id, peer, mail = site_of_silent_pager
    t0 = round(store.get_critical_alert(job_id).created_at) + 1
    started = time.monotonic()
    assert CriticalNotifier(store, router).sweep(now=t0) == 0
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S
    alert = store.get_critical_alert(job_id)
    assert (alert.state, alert.attempts) == ("pending", 1)
    assert alert.last_error == (
        "pager: webhook pager.slow-dns.test: no answer from DNS for pager.slow-dns.test"
        " within 1 s (timeout_s)"
    )
    assert len(mail.messages) == 1 and peer.received == []

    slow_dns.answer(0)
    assert CriticalNotifier(store, router).sweep(now=alert.next_attempt_at) == 1
    assert [p["event"] for p in peer.received] == ["critical-ecg"]
    assert len(mail.messages) == 1  # the ward's took it at the first try: not again


def test_a_webhook_trickling_its_answer_fails_the_try_at_timeout_s() -> None:
    """timeout_s bounds the whole POST, not each read: a server sending its status line a
    byte every 0.2 s (which httpx's per-read timeout never catches) fails the try at it."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            for byte in b"HTTP/1.1 204 No Content\r\n" * 4:
                if stop.wait(0.2):
                    return
                conn.sendall(bytes([byte]))

    threading.Thread(target=trickle, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/critical"
        target = WebhookTarget.model_validate({"type": "webhook", "url": url, "timeout_s": 1})
        error, took = _try(post_webhook, target)
        assert error == "webhook 127.0.0.1: no complete answer within 1 s (timeout_s)"
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
    finally:
        stop.set()
        server.close()


def test_a_mail_names_itself_without_looking_this_host_up(slow_dns: SlowDns) -> None:
    """smtplib names the client in its EHLO by socket.getfqdn(), a reverse lookup of this
    host's name, unless told the name: while DNS is silent that held every mail, even to
    a server given by address, for as long as the resolver waited. The name is now found
    without DNS (the host's own if it is a full one, else the address literal)."""
    mail = MailPeer()
    try:
        error, took = _try(send_mail, _mail("127.0.0.1", mail.port))
        assert error is None and took < 0.5, (error, took)
        own = socket.gethostname()
        assert mail.ehlo_names == [own if "." in own else "[127.0.0.1]"]
    finally:
        mail.close()


def test_a_webhook_whose_tls_settings_fail_leaves_no_event_loop_open(tmp_path) -> None:
    """A CA file that is not one fails the try, naming it, and the POST's event loop (a
    selector, a socket pair) is closed all the same, not left to the garbage collector."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    target = WebhookTarget.model_validate(
        {"type": "webhook", "url": "https://127.0.0.1:9/critical", "tls": {"ca_file": str(ca)}}
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        error, _ = _try(post_webhook, target)
        gc.collect()
    assert error is not None and error.startswith("webhook 127.0.0.1: SSLError")
    assert [str(w.message) for w in seen if w.category is ResourceWarning] == []
