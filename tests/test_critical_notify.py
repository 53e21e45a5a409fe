"""Critical-result notices end to end: a critical ECG through the pipeline, its notice to
a local webhook server that validates the payload strictly (exact keys, HMAC signature,
no patient data) and to a local SMTP server (aiosmtpd) that checks the mail; retries,
giving up loudly, and the escalation after the time limit that an opened report stops."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from test_prior_comparison import Pipeline, ecg_file
from test_store import open_backend

from gateway import metrics as m
from gateway.alerts import CRITICAL_NOTICE_DEAD, CRITICAL_NOTICE_UNRECORDED, Alert, AlertHook
from gateway.metrics import Metrics
from gateway.notify import CriticalNotifier
from gateway.routing import Router
from model.rhythm_synthetic import RhythmSpec
from tests.gateway_process import free_port
from tests.store_faults import REFUSAL, allow_updates, refuse_updates

SECRET = "s3cret-hmac-key"
PATIENT_ID, ISSUER, NAME = "PAT-4711", "HOSP", "Doe^Jane"
PAYLOAD_KEYS = {
    "event",
    "notice_id",
    "job_id",
    "report_url",
    "rules",
    "flagged_at",
    "first_notice_at",
    "sent_at",
}


class WebhookPeer:
    """A local HTTP endpoint that accepts only what a paging system would: a signed JSON
    POST with exactly the agreed keys, and nothing that identifies the patient."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.idempotency_keys: list[str] = []  # each accepted request's Idempotency-Key
        self.problems: list[str] = []
        self.fail_next = 0  # answer this many requests with 503
        self.while_receiving: Callable[[], object] | None = None  # run before answering
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = peer.check(self.path, self.headers, body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/critical"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, path: str, headers, body: bytes) -> int:
        if self.while_receiving is not None:
            self.while_receiving()
        if self.fail_next:
            self.fail_next -= 1
            return 503
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        problems = []
        if path != "/critical":
            problems.append(f"path {path}")
        if headers["Content-Type"] != "application/json":
            problems.append("content type")
        if not hmac.compare_digest(headers.get("X-ECG-Gateway-Signature", ""), expected):
            problems.append("signature")
        for secret in (PATIENT_ID, "Doe", "Jane", ISSUER):
            if secret.encode() in body:
                problems.append(f"patient data {secret!r} in the payload")
        payload = json.loads(body)
        if set(payload) != PAYLOAD_KEYS:
            problems.append(f"keys {sorted(payload)}")
        key = headers.get("Idempotency-Key", "")  # a structured-field string, as the draft
        if key != f'"{uuid.UUID(payload.get("notice_id", ""))}"':
            problems.append(f"Idempotency-Key {key!r}")
        if not all(set(rule) == {"name", "text"} for rule in payload["rules"]):
            problems.append("rule keys")
        datetime.fromisoformat(payload["sent_at"])
        if problems:
            self.problems += problems
            return 400
        self.received.append(payload)
        self.idempotency_keys.append(key)
        return 204

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailPeer:
    """aiosmtpd as the hospital's mail server: keeps each message it accepts; with `tls`,
    it offers STARTTLS and takes mail only after it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.messages = []
        self.ehlo_names: list[str] = []  # what each client's EHLO said it was
        peer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                peer.ehlo_names.append(session.host_name)
                peer.messages.append(
                    (envelope, message_from_bytes(envelope.content, policy=default))
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="mail.example.org",  # aiosmtpd's default looks this host up
            tls_context=tls,
            require_starttls=tls is not None,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook(request):
    peer = WebhookPeer()
    request.addfinalizer(peer.close)
    return peer


@pytest.fixture
def mail(request):
    peer = MailPeer()
    request.addfinalizer(peer.close)
    return peer


def _smtp(port: int, to: str) -> str:
    return (
        f"{{type: smtp, host: 127.0.0.1, port: {port}, starttls: false,"
        f" sender: ecg-gateway@example.org, to: [{to}]}}"
    )


# A routes file's head with an outbox and the critical section's targets to come.
ROUTES_HEAD = """
destinations:
  outbox: {type: file, directory: outbox}
default: [outbox]
critical:
  targets:
"""


def routes(webhook: WebhookPeer, mail: MailPeer, **extra: str) -> str:
    lines = "".join(f"  {key}: {value}\n" for key, value in extra.items())
    return f"""{ROUTES_HEAD}    pager:
      type: webhook
      url: {webhook.url}
      secret: {{env: CRITICAL_HMAC}}
    ward: {_smtp(mail.port, "cardiology@example.org")}
    chief: {_smtp(mail.port, "chief@example.org")}
  notify: [pager, ward]
  escalate_to: [pager, chief]
  report_link: https://ecg.example.org/reports/{{job_id}}
{lines}"""


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path, webhook, mail, monkeypatch):
    """A critical AF ECG processed by the pipeline, with its alert pending."""
    monkeypatch.setenv("CRITICAL_HMAC", SECRET)
    store = open_backend(request.param, request, tmp_path)
    data = tmp_path / "data"
    pipeline = Pipeline(store, data)
    (data / "routes.yaml").write_text(routes(webhook, mail))
    pipeline.workers._router.reload_if_changed()
    af = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130)
    path = ecg_file(tmp_path, "af", af, PATIENT_ID, ISSUER, datetime(2026, 3, 1, 9, 0))
    package = pipeline.process(path)
    assert [f.rule for f in package.report.critical] == ["afib-flutter-rapid"]
    yield store, Router(data / "routes.yaml", data), package.job_id, data
    store.close()


def test_notice_to_webhook_and_mail_without_patient_data(site, webhook, mail):
    store, router, job_id, _ = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    notifier = CriticalNotifier(store, router)
    assert notifier.sweep(now=t0) == 1
    assert webhook.problems == []
    (payload,) = webhook.received
    assert payload["event"] == "critical-ecg" and payload["job_id"] == job_id
    assert payload["report_url"] == f"https://ecg.example.org/reports/{job_id}"
    assert payload["rules"] == [
        {
            "name": "afib-flutter-rapid",
            "text": "Atrial fibrillation or flutter with a ventricular rate over 110/min",
        }
    ]
    assert payload["first_notice_at"] is None
    ((envelope, message),) = mail.messages
    assert envelope.rcpt_tos == ["cardiology@example.org"]
    text = envelope.content.decode()
    for secret in (PATIENT_ID, "Doe", "Jane"):
        assert secret not in text
    assert message["Subject"] == f"Critical ECG result, job {job_id} (afib-flutter-rapid)"
    assert f"https://ecg.example.org/reports/{job_id}" in message.get_content()
    assert notifier.sweep(now=t0 + 5) == 0  # sent once
    assert store.get_critical_alert(job_id).state == "notified"


def test_escalation_after_the_limit_unless_opened(site, webhook, mail):
    store, router, job_id, _ = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    notifier = CriticalNotifier(store, router)
    notifier.sweep(now=t0)
    assert notifier.sweep(now=t0 + 15 * 60 - 1) == 0  # the default limit: 15 minutes
    assert notifier.sweep(now=t0 + 15 * 60) == 1
    escalation = webhook.received[-1]
    assert escalation["event"] == "critical-ecg-escalation"
    assert datetime.fromisoformat(escalation["first_notice_at"]).timestamp() == t0
    envelope, message = mail.messages[-1]
    assert envelope.rcpt_tos == ["chief@example.org"]
    assert message["Subject"].strip().startswith("ESCALATION: not opened")
    assert notifier.sweep(now=t0 + 3600) == 0  # escalated once
    assert store.get_critical_alert(job_id).escalated_at == t0 + 15 * 60


def test_no_escalation_when_a_physician_opened_the_report(site, webhook, mail):
    store, router, job_id, _ = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    notifier = CriticalNotifier(store, router)
    notifier.sweep(now=t0)
    assert store.acknowledge_critical(job_id, "dr.cardio", now=t0 + 60)
    assert notifier.sweep(now=t0 + 7200) == 0
    assert [p["event"] for p in webhook.received] == ["critical-ecg"]
    alert = store.get_critical_alert(job_id)
    assert (alert.acknowledged_by, alert.escalated_at) == ("dr.cardio", None)


def test_reports_history_tells_the_operator_who_was_told_and_when(site, webhook, mail):
    """`ecg-gateway reports history JOB`: the critical notice's state, first notice,
    escalation and who opened it, after the report's versions."""
    from gateway.cli.reports import format_history

    store, router, job_id, _ = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    notifier = CriticalNotifier(store, router)
    notifier.sweep(now=t0)
    notifier.sweep(now=t0 + 15 * 60)
    store.acknowledge_critical(job_id, "dr.cardio", now=t0 + 20 * 60)
    lines = format_history(store, job_id).splitlines()
    at = lines.index("critical notice: closed (afib-flutter-rapid)")
    stamp = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[at + 1] == f"  first notice {stamp}"
    assert lines[at + 2].startswith("  escalated ") and lines[at + 3].startswith(
        "  opened by dr.cardio "
    )


class Recorder(AlertHook):
    """The site's alert command, as the notifier calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


def _with_retry(router: Router, data: Path, webhook, mail, max_attempts: int) -> None:
    retry = f"{{max_attempts: {max_attempts}, backoff_base: 10s, backoff_cap: 10s}}"
    (data / "routes.yaml").write_text(routes(webhook, mail, retry=retry))
    assert router.reload_if_changed()


def test_failed_notice_is_retried_with_backoff(site, webhook, mail):
    store, router, job_id, data = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    _with_retry(router, data, webhook, mail, max_attempts=3)
    metrics = Metrics()
    notifier = CriticalNotifier(store, router, metrics=metrics)
    webhook.fail_next = 1
    assert notifier.sweep(now=t0) == 0
    alert = store.get_critical_alert(job_id)
    assert alert.attempts == 1 and "HTTP 503" in alert.last_error
    assert notifier.sweep(now=t0 + 4) == 0  # not due yet (backoff 5-10 s)
    assert notifier.sweep(now=t0 + 10) == 1
    assert [p["event"] for p in webhook.received] == ["critical-ecg"]
    assert len(mail.messages) == 1  # the ward's mailbox took it at the first try: not again
    assert store.get_critical_alert(job_id).state == "notified"
    assert (metrics.get(m.CRITICAL_NOTICES_FAILED), metrics.get(m.CRITICAL_NOTICES_SENT)) == (1, 1)


def test_a_fault_while_sending_is_retried_like_a_refusal(site, webhook, mail, monkeypatch):
    """A bug in sending one notice (here the sender raising what it never raises) does
    not end the sweep: that notice is retried, and given up loudly in the end."""
    from gateway.notify import sweeper

    store, router, job_id, data = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    _with_retry(router, data, webhook, mail, max_attempts=3)
    real = sweeper.send

    def broken(target, payload):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sweeper, "send", broken)
    assert CriticalNotifier(store, router).sweep(now=t0) == 0
    alert = store.get_critical_alert(job_id)
    assert alert.attempts == 1 and "RuntimeError at test_critical_notify.py:" in alert.last_error
    monkeypatch.setattr(sweeper, "send", real)
    assert CriticalNotifier(store, router).sweep(now=t0 + 10) == 1


def test_notice_given_up_loudly_after_the_last_try(site, webhook, mail, caplog):
    store, router, job_id, data = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    _with_retry(router, data, webhook, mail, max_attempts=2)
    hook = Recorder()
    metrics = Metrics()
    notifier = CriticalNotifier(store, router, hook, metrics)
    webhook.fail_next = 2
    assert notifier.sweep(now=t0) == 0
    assert notifier.sweep(now=t0 + 10) == 0
    alert = store.get_critical_alert(job_id)
    assert alert.state == "dead" and alert.attempts == 2
    (dead,) = hook.sent
    assert dead.event == CRITICAL_NOTICE_DEAD and dead.detail == f"critical notice of job {job_id}"
    assert "given up after 2 tries" in caplog.text
    assert metrics.get(m.CRITICAL_NOTICES_DEAD) == 1
    # Given up, the notice is not tried again; but the ward's mailbox took it and nobody
    # opened the report, so the escalation goes out escalate_after later (to pager, chief).
    assert notifier.sweep(now=t0 + 15 * 60 - 1) == 0
    assert notifier.sweep(now=t0 + 15 * 60) == 1
    assert [p["event"] for p in webhook.received] == ["critical-ecg-escalation"]


def test_mail_with_starttls_refused_without_tls_support(site, webhook, mail):
    """STARTTLS on (the default) against a server that offers none: the notice fails and
    is retried; mail is never sent in clear text to a target configured for TLS."""
    store, router, job_id, data = site
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notices are due
    (data / "routes.yaml").write_text(
        routes(webhook, mail).replace("starttls: false", "starttls: true")
    )
    assert router.reload_if_changed()
    notifier = CriticalNotifier(store, router)
    assert notifier.sweep(now=t0) == 0
    alert = store.get_critical_alert(job_id)
    assert "STARTTLS" in alert.last_error and alert.state == "pending"
    assert mail.messages == []


def test_the_gateway_scheduler_sends_due_notices(site, webhook, mail):
    """start_delivery's scheduler runs the notifier: the notice goes out by itself."""
    from gateway.delivery.sweeper import DeliverySweeper

    store, router, job_id, _ = site
    sent = _sent_by_the_scheduler(store, router, DeliverySweeper(store, router), webhook, 20)
    assert sent == [job_id]
    assert store.get_critical_alert(job_id).state == "notified"


def test_the_notice_goes_out_while_every_delivery_sweep_is_held_up(site, webhook, monkeypatch):
    """Sixteen destinations whose sweeps all hang (a stalled share, a formatting turn):
    the notifier has a thread of its own, so the page still goes out (it shared the
    sweeps' sixteen threads before and waited for them)."""
    import yaml

    from gateway.delivery.sweeper import DeliverySweeper

    store, _, job_id, data = site
    routes = yaml.safe_load((data / "routes.yaml").read_text())
    for n in range(16):
        routes["destinations"][f"share{n}"] = {"type": "file", "directory": f"share{n}"}
    (data / "routes.yaml").write_text(yaml.safe_dump(routes))
    router = Router(data / "routes.yaml", data)
    sweeper = DeliverySweeper(store, router)
    hung = threading.Event()
    monkeypatch.setattr(sweeper, "sweep_destination", lambda name: hung.wait(30))
    try:
        assert _sent_by_the_scheduler(store, router, sweeper, webhook, 10, hung.set) == [job_id]
    finally:
        hung.set()


def _sent_by_the_scheduler(
    store, router, sweeper, webhook, seconds: float, before_stop=lambda: None
) -> list[int]:
    """The jobs whose notice the gateway's scheduler sent within `seconds` of starting
    (counted before it stops: a shutdown runs the jobs still queued, and waits for those
    running, after `before_stop`)."""
    from gateway.scheduler import GatewayScheduler

    scheduler = GatewayScheduler(
        store,
        router,
        sweeper,
        retention_days=30,
        notifier=CriticalNotifier(store, router),
        notify_interval_s=0.2,
        sweep_interval_s=0.1,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + seconds
        while not webhook.received and time.monotonic() < deadline:
            time.sleep(0.1)
        return [p["job_id"] for p in webhook.received]
    finally:
        before_stop()
        scheduler.shutdown()


def test_a_notice_the_store_cannot_record_holds_up_no_other(site, webhook, mail, request):
    """The database refuses to record one alert's notice as sent: that record alone is
    retried (the notice went out: no try charged); the alert leased with it goes out now."""
    store, router, first, data = site
    second_site = Pipeline(store, data)  # a second critical ECG, another patient
    (data / "routes.yaml").write_text(routes(webhook, mail))
    second_site.workers._router.reload_if_changed()
    af = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130)
    path = ecg_file(data.parent, "af2", af, "PAT-0815", ISSUER, datetime(2026, 3, 1, 9, 5))
    second = second_site.process(path).job_id
    refuse_updates(
        store, request, "critical_alerts", f"NEW.state = 'notified' AND OLD.job_id = {first}"
    )
    t0 = round(store.get_critical_alert(second).created_at) + 1  # both notices are due
    assert CriticalNotifier(store, router).sweep(now=t0) == 2  # both went out
    assert [p["job_id"] for p in webhook.received] == [first, second]
    assert store.get_critical_alert(second).state == "notified"
    refused = store.get_critical_alert(first)
    assert (refused.state, refused.attempts) == ("pending", 0)  # sent: no try charged


def test_a_notice_sent_but_not_recorded_is_not_sent_again_and_a_repeat_says_so(
    site, webhook, mail, request, caplog
):
    """The database refuses to record the notice as sent, and which targets took it,
    after it went out. The running notifier retries the record, not the notice: no second
    page. A restart forgets and sends it again, with the same identity (webhook
    Idempotency-Key and notice_id, mail Message-ID) so that the pager and the mailbox can
    drop the repeat. When the store takes the record, the escalation clock starts from
    the real send."""
    store, router, job_id, _ = site
    refuse_updates(store, request, "critical_alerts", "NEW.state = 'notified'")
    refuse_updates(store, request, "critical_notice_targets", "NEW.escalation = 0", event="INSERT")
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notice is due
    notifier = CriticalNotifier(store, router)
    assert notifier.sweep(now=t0) == 1
    [line] = [r.getMessage() for r in caplog.records if "sent but not recorded" in r.getMessage()]
    assert (
        line.startswith(f"job {job_id}: critical notice sent but not recorded") and REFUSAL in line
    )
    for later in (t0 + 5, t0 + 61, t0 + 3600):  # due again, and leased again past 60 s
        assert notifier.sweep(now=later) == 0
    assert (len(webhook.received), len(mail.messages)) == (1, 1)
    assert store.get_critical_alert(job_id).state == "pending"

    restarted = CriticalNotifier(store, router)
    assert restarted.sweep(now=t0 + 3700) == 1
    assert webhook.problems == []
    first, again = webhook.received
    assert first["notice_id"] == again["notice_id"] and first["sent_at"] != again["sent_at"]
    assert webhook.idempotency_keys == [f'"{first["notice_id"]}"'] * 2
    ids = [message["Message-ID"] for _, message in mail.messages]
    assert ids[0] == ids[1] and ids[0].startswith(f"<{first['notice_id']}.")
    assert ids[0].endswith("@example.org>")  # the sender's domain, as RFC 5322 asks

    allow_updates(store, request, "critical_alerts")
    assert restarted.sweep(now=t0 + 3705) == 0
    alert = store.get_critical_alert(job_id)
    assert (alert.state, alert.notified_at, alert.attempts) == ("notified", t0 + 3700, 0)
    assert (len(webhook.received), len(mail.messages)) == (2, 2)
    assert restarted.sweep(now=t0 + 3700 + 15 * 60) == 1  # escalated 15 min after the send
    escalation = webhook.received[-1]
    assert escalation["event"] == "critical-ecg-escalation"
    assert escalation["notice_id"] != first["notice_id"]


def test_a_notice_left_unrecorded_past_the_escalation_wait_raises_the_site_alert(
    site, webhook, mail, request, caplog
):
    """The store keeps refusing to record a notice that went out: the escalation cannot
    run. When it would have been due (escalate_after, 15 min, before the retry policy's
    max_age of a day) the site's alert command hears of it once, without patient data,
    and a counter says so; the record is still retried, and taken once the store heals."""
    store, router, job_id, _ = site
    refuse_updates(store, request, "critical_alerts", "NEW.state = 'notified'")
    refuse_updates(store, request, "critical_notice_targets", "NEW.escalation = 0", event="INSERT")
    hook, metrics = Recorder(), Metrics()
    notifier = CriticalNotifier(store, router, hook, metrics)
    t0 = round(store.get_critical_alert(job_id).created_at) + 1  # the notice is due
    assert notifier.sweep(now=t0) == 1
    assert notifier.sweep(now=t0 + 15 * 60 - 1) == 0
    assert hook.sent == [] and metrics.get(m.CRITICAL_NOTICES_UNRECORDED) == 0
    assert notifier.sweep(now=t0 + 15 * 60) == 0
    (alert,) = hook.sent
    assert alert.event == CRITICAL_NOTICE_UNRECORDED
    assert alert.detail == f"critical notice of job {job_id}"
    assert alert.reason == "critical notice sent but not recorded for 900 s: escalation cannot run"
    assert alert.subject == store.get_job(job_id).sop_instance_uid
    for secret in (PATIENT_ID, "Doe", "Jane"):
        assert secret not in f"{alert}{caplog.text}"
    assert metrics.get(m.CRITICAL_NOTICES_UNRECORDED) == 1
    assert notifier.sweep(now=t0 + 3600) == 0
    assert len(hook.sent) == 1 and (len(webhook.received), len(mail.messages)) == (1, 1)

    allow_updates(store, request, "critical_alerts")
    assert notifier.sweep(now=t0 + 3605) == 1  # recorded at t0, so the escalation is due
    assert store.get_critical_alert(job_id).notified_at == t0
    assert webhook.received[-1]["event"] == "critical-ecg-escalation"
    assert len(hook.sent) == 1
