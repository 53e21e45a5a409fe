"""FHIR R4 over HTTP: POSTing a transaction Bundle (built in fhir.py) to the server's
base URL with httpx, and judging the transaction-response.

Success is a transaction-response whose every entry succeeded; client errors a person
can fix without changing the report (auth, rate limits) are retried, others are
permanent; a server's Retry-After is honoured.

A POST has `timeout_s` as a whole (connect, TLS, request, the whole response): httpx's own
timeouts are per network operation, so a server trickling its answer a byte at a time
would hold a sync client for ever. Its async client is cancelled at a deadline instead,
as httpx's maintainers advise (encode/httpx#1450), on an event loop of the sender's own,
whose host name lookups are bounded as well (resolve.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from gateway.delivery.base import Artefacts, DeliveryError, SendInterrupted, redact
from gateway.delivery.resolve import LookupLoop
from gateway.delivery.tls import client_ssl_context
from gateway.processing.package import ReportPackage
from gateway.routing import BasicAuth, BearerAuth, FhirDestination

FHIR_JSON = "application/fhir+json"
# Client errors that a person can fix without changing the report: retry those.
_RETRYABLE_4XX = {401, 403, 404, 408, 429}
_SAYS_WHEN_TO_RETRY = {429, 503}  # statuses whose Retry-After header we honour


class FhirSender:
    """POSTs transactions to one FHIR server over a reused httpx connection pool, one at a
    time (`_in_use`). A reload or stop may close the sender while a sweep sends: close
    cancels that send (`_sending`), which hands its delivery back untried."""

    def __init__(self, destination: FhirDestination, name: str):
        self.destination = destination
        self.name = name
        # httpx logs every request at INFO; the sweeper already logs each delivery once
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.endpoint = str(destination.endpoint)
        self._client = httpx.AsyncClient(
            timeout=None,  # the deadline in _post bounds the whole POST
            verify=client_ssl_context(destination.tls),
            headers={"Accept": FHIR_JSON},
        )
        self._loop = LookupLoop()  # the host's lookup bounded too
        self._in_use = threading.Lock()
        self._state = threading.Lock()  # guards _closing and _sending, across threads
        self._closing = False
        self._sending: asyncio.Task | None = None

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        response = self._post(artefacts["bundle"])
        return check_response(response, package)

    def close(self) -> None:
        with self._state:
            self._closing = True
            if self._sending is not None:
                self._loop.call_soon_threadsafe(self._sending.cancel)
        with self._in_use:
            if not self._loop.is_closed():
                self._loop.run_until_complete(self._client.aclose())
                self._loop.close()

    def _post(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": FHIR_JSON}
        auth: httpx.Auth | None = None
        try:
            if isinstance(self.destination.auth, BearerAuth):
                headers["Authorization"] = f"Bearer {self.destination.auth.token.read()}"
            elif isinstance(self.destination.auth, BasicAuth):
                auth = httpx.BasicAuth(
                    self.destination.auth.username, self.destination.auth.password.read()
                )
        except LookupError as exc:
            raise DeliveryError(f"reading credentials for {self.endpoint}: {exc}") from None
        timeout = self.destination.timeout_s
        with self._in_use:
            with self._state:
                if self._closing:  # a reload closed this sender after the sweep took it
                    raise SendInterrupted(f"the sender of {self.endpoint} was closed")
                post = self._client.post(self.endpoint, content=body, headers=headers, auth=auth)
                self._sending = self._loop.create_task(asyncio.wait_for(post, timeout))
            try:
                return self._loop.run_until_complete(self._sending)
            except asyncio.CancelledError:
                if not self._closing:  # cancelled by something else: a failed try, not a hand-back
                    raise DeliveryError(f"POST transaction to {self.endpoint}: cancelled") from None
                raise SendInterrupted(
                    f"the sender of {self.endpoint} was closed during the send"
                ) from None
            except TimeoutError:
                if self._loop.unanswered():
                    raise DeliveryError(
                        f"POST transaction to {self.endpoint}: no answer from DNS for "
                        f"{httpx.URL(self.endpoint).host} within {timeout:g} s (timeout_s)"
                    ) from None
                raise DeliveryError(
                    f"POST transaction to {self.endpoint}: no complete answer within "
                    f"{timeout:g} s (timeout_s); the connection was closed"
                ) from None
            except (httpx.HTTPError, OSError) as exc:  # the async client lets a TLS alert through
                raise DeliveryError(f"POST transaction to {self.endpoint}: {exc}") from None
            finally:
                with self._state:
                    self._sending = None


def check_response(response: httpx.Response, package: ReportPackage) -> str:
    """Success means a transaction-response whose every entry succeeded."""
    where = f"POST transaction to {response.request.url}"
    if not response.is_success:
        permanent = 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX
        detail = redact(_outcome_summary(response), package)
        wait = None
        if response.status_code in _SAYS_WHEN_TO_RETRY:
            wait = retry_after_s(response.headers.get("Retry-After"), datetime.now(UTC))
        raise DeliveryError(
            f"{where}: HTTP {response.status_code} {detail}".rstrip(),
            permanent=permanent,
            retry_after_s=wait,
        )
    try:
        reply = response.json()
        statuses = [entry["response"]["status"] for entry in reply.get("entry", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DeliveryError(
            f"{where}: HTTP {response.status_code} but no transaction-response"
        ) from None
    failed = [status for status in statuses if not str(status).startswith("2")]
    if reply.get("type") != "transaction-response" or failed:
        failures = redact(", ".join(str(status) for status in failed), package)
        raise DeliveryError(f"{where}: transaction-response with failed entries: {failures}")
    report_locations = [
        entry["response"].get("location", "")
        for entry in reply["entry"]
        if "DiagnosticReport" in entry["response"].get("location", "")
    ]
    return f"HTTP {response.status_code} {' '.join(report_locations)}".rstrip()


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header (delay-seconds or an HTTP-date) asks us to wait;
    None when there is none or it cannot be read, so the usual backoff applies."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _outcome_summary(response: httpx.Response) -> str:
    """Issue codes and diagnostics of an OperationOutcome, if the server sent one."""
    try:
        outcome = response.json()
        issues = outcome.get("issue", [])
        return "; ".join(
            f"{issue.get('severity', '?')} {issue.get('code', '?')}: {issue.get('diagnostics', '')}"
            for issue in issues
        )
    except (ValueError, AttributeError):
        return response.reason_phrase
