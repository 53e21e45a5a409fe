"""The Modality Worklist SCP (C-FIND, 1.2.840.10008.5.1.4.31): carts ask for their
scheduled ECGs and get one pending response (0xFF00) per open order that matches.

In the style of pynetdicom's apps, `handle_find` is a generator of (status, identifier)
pairs: the query is read and checked (worklist_query.py), the store narrows the open
orders by exact values (`open_orders`), the rest is matched here, and each match is
answered with the keys asked for (worklist_record.py), checking for C-CANCEL before
each. Bad input is answered with a failure status and an error comment naming the
element, never an exception; the log line says who asked, which keys (never their
values: they are patient data) and how it ended; the audit trail records each query with
its identifier (IHE ATNA Query, PS3.15 A.5.3.12), as the worklist hands out patient data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pynetdicom import evt
from pynetdicom.sop_class import ModalityWorklistInformationFind

from gateway import metrics as m
from gateway.audit import Auditor
from gateway.audit.messages import Query
from gateway.config import WorklistConfig
from gateway.intake.worklist_query import QueryError, WorklistQuery, parse_query
from gateway.intake.worklist_record import SPS, Item, response, worklist_item
from gateway.logs import fault
from gateway.metrics import Metrics
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)

# C-FIND statuses (PS3.4 C.4.1.1.4, K.4.1.1.4).
PENDING = 0xFF00
PENDING_UNSUPPORTED_KEYS = 0xFF01
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
UNABLE_TO_PROCESS = 0xC000

Response = tuple[int | Dataset, Dataset | None]


@dataclass(frozen=True)
class FindRequest:
    """One C-FIND as the worklist needs it, apart from pynetdicom's event."""

    calling_ae: str
    host: str
    identifier: Callable[[], Dataset]  # decodes it (pydicom: errors may come later too)
    encoded: bytes = b""  # as received, for the audit record
    transfer_syntax: str = ""
    cancelled: Callable[[], bool] = lambda: False  # a C-CANCEL came


class Worklist:
    """The open orders of `store`, served to C-FIND queries; each query audited."""

    def __init__(
        self, store: Store, config: WorklistConfig, metrics: Metrics, audit: Auditor | None
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.audit = audit

    def find(self, request: FindRequest) -> Iterator[Response]:
        """The responses to `request`: one pending per match, or one failure. A fault of
        the gateway's ends them with a failure, logged by type and line (pynetdicom would
        log its message, which may quote an order's patient values)."""
        try:
            yield from self._answers(request)
        except Exception as exc:  # noqa: BLE001 - answered, never pynetdicom's to log
            log.error(
                "worklist query from %s: the gateway failed on it: %s",
                request.calling_ae,
                fault(exc, stack=True),
            )
            yield self._refuse(request, UNABLE_TO_PROCESS, "the gateway failed on this query")

    def _answers(self, request: FindRequest) -> Iterator[Response]:
        started = time.monotonic()
        try:
            query = parse_query(request.identifier(), self.config.names_ignore_case)
        except QueryError as exc:
            yield self._refuse(request, IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc), exc.tag)
            return
        except Exception as exc:  # noqa: BLE001 - pydicom decodes lazily: any error here
            comment = f"cannot decode the identifier ({type(exc).__name__})"
            yield self._refuse(request, IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment)
            return
        try:
            matches = self._matches(query)
        except StoreError as exc:
            log.error("worklist query from %s: store unavailable: %s", request.calling_ae, exc)
            yield self._refuse(request, UNABLE_TO_PROCESS, "worklist store unavailable")
            return
        if len(matches) > self.config.max_results:
            comment = f"more than {self.config.max_results} matches: narrow the query"
            yield self._refuse(request, OUT_OF_RESOURCES, comment)
            return
        pending = PENDING_UNSUPPORTED_KEYS if query.unsupported else PENDING
        for sent, item in enumerate(matches):
            if request.cancelled():
                self._done(request, query, f"cancelled after {sent} of {len(matches)}", started)
                yield CANCEL, None
                return
            yield pending, response(item, query.requested)
        self._done(request, query, f"{len(matches)} matches", started)

    def _matches(self, query: WorklistQuery) -> list[Item]:
        if not query.ecg_wanted:
            return []  # the gateway's orders are all ECGs
        now = time.time()
        items = (worklist_item(order, now) for order in self.store.open_orders(**query.prefilter))
        return [item for item in items if query.matches(item)]

    def _refuse(
        self, request: FindRequest, status: int, comment: str, tag: BaseTag | None = None
    ) -> Response:
        calling = request.calling_ae
        log.warning("worklist query from %s refused (0x%04X): %s", calling, status, comment)
        self.metrics.inc(m.WORKLIST_QUERIES, status=f"0x{status:04X}")
        self._audit(request, f"refused 0x{status:04X}: {comment}")
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = comment[:64]  # LO: at most 64 characters
        if tag is not None:
            answer.OffendingElement = [tag]
        return answer, None

    def _done(
        self, request: FindRequest, query: WorklistQuery, outcome: str, started: float
    ) -> None:
        self.metrics.inc(m.WORKLIST_QUERIES, status="0x0000")
        self._audit(request)
        unsupported = f"; ignored keys {', '.join(query.unsupported)}" if query.unsupported else ""
        log.info(
            "worklist query from %s matching on %s: %s in %.0f ms%s",
            request.calling_ae,
            ", ".join(_key_names(query.conditions)) or "nothing (all open orders)",
            outcome,
            (time.monotonic() - started) * 1000,
            unsupported,
        )

    def _audit(self, request: FindRequest, refused: str = "") -> None:
        """PS3.15 A.5.3.12: the worklist hands out patient data, so each query is audited."""
        if self.audit is not None:
            query = Query(ModalityWorklistInformationFind, request.encoded, request.transfer_syntax)
            self.audit.queried(query, request.calling_ae, request.host, refused)


def _key_names(conditions, prefix: str = "") -> list[str]:
    """The matching keys' names (never their values), sequence items as Seq>Key."""
    names = []
    for keyword, test in conditions.items():
        if isinstance(test, dict):
            short = "SPS" if keyword == SPS else keyword
            names += _key_names(test, f"{prefix}{short}>") or [prefix + keyword]
        else:
            names.append(prefix + keyword)
    return names


def handle_find(event: evt.Event, worklist: Worklist) -> Iterator[Response]:
    """EVT_C_FIND: the worklist's responses, C-CANCEL checked before each match."""
    encoded = event.request.Identifier
    request = FindRequest(
        calling_ae=event.assoc.requestor.ae_title,
        host=event.assoc.requestor.address,
        identifier=lambda: event.identifier,
        encoded=encoded.getvalue() if encoded is not None else b"",
        transfer_syntax=str(event.context.transfer_syntax),
        cancelled=lambda: event.is_cancelled,
    )
    yield from worklist.find(request)
