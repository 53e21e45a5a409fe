"""The Modality Worklist SCP (C-FIND, 1.2.840.10008.5.1.4.31): carts ask for their
scheduled ECGs and get one pending response (0xFF00) per open order that matches.

In the style of pynetdicom's apps, `handle_find` is a generator of (status, identifier)
pairs: the query is read and checked (worklist_query.py), the store narrows the open
orders by exact values (`open_orders`), the rest is matched here, and each match is
answered with the keys asked for (worklist_record.py), checking for C-CANCEL before
each. Bad input is answered with a failure status and an error comment naming the
element, never an exception; the log line says who asked, which keys (never their
values: they are patient data) and how it ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pynetdicom import evt

from gateway import metrics as m
from gateway.config import WorklistConfig
from gateway.intake.worklist_query import QueryError, WorklistQuery, parse_query
from gateway.intake.worklist_record import SPS, response, worklist_item
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


class Worklist:
    """The open orders of `store`, served to C-FIND queries."""

    def __init__(self, store: Store, config: WorklistConfig, metrics: Metrics) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics

    def find(
        self,
        identifier: Callable[[], Dataset],
        peer: str,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[Response]:
        """The responses to the query that `identifier()` decodes, from `peer` (a calling
        AE title); `cancelled()` says whether a C-CANCEL came."""
        started = time.monotonic()
        try:
            query = parse_query(identifier(), self.config.names_ignore_case)
        except QueryError as exc:
            yield self._refuse(peer, IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc), exc.tag)
            return
        except Exception as exc:  # noqa: BLE001 - pydicom decodes lazily: any error here
            comment = f"cannot decode the identifier ({type(exc).__name__})"
            yield self._refuse(peer, IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment)
            return
        try:
            matches = self._matches(query)
        except StoreError as exc:
            log.error("worklist query from %s: store unavailable: %s", peer, exc)
            yield self._refuse(peer, UNABLE_TO_PROCESS, "worklist store unavailable")
            return
        if len(matches) > self.config.max_results:
            comment = f"more than {self.config.max_results} matches: narrow the query"
            yield self._refuse(peer, OUT_OF_RESOURCES, comment)
            return
        pending = PENDING_UNSUPPORTED_KEYS if query.unsupported else PENDING
        for sent, item in enumerate(matches):
            if cancelled():
                self._done(peer, query, f"cancelled after {sent} of {len(matches)}", started)
                yield CANCEL, None
                return
            yield pending, response(item, query.requested)
        self._done(peer, query, f"{len(matches)} matches", started)

    def _matches(self, query: WorklistQuery) -> list:
        if not query.ecg_wanted:
            return []  # the gateway's orders are all ECGs
        now = time.time()
        items = (worklist_item(order, now) for order in self.store.open_orders(**query.prefilter))
        return [item for item in items if query.matches(item)]

    def _refuse(self, peer: str, status: int, comment: str, tag: BaseTag | None = None) -> Response:
        log.warning("worklist query from %s refused (0x%04X): %s", peer, status, comment)
        self.metrics.inc(m.WORKLIST_QUERIES, status=f"0x{status:04X}")
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = comment[:64]  # LO: at most 64 characters
        if tag is not None:
            answer.OffendingElement = [tag]
        return answer, None

    def _done(self, peer: str, query: WorklistQuery, outcome: str, started: float) -> None:
        self.metrics.inc(m.WORKLIST_QUERIES, status="0x0000")
        unsupported = f"; ignored keys {', '.join(query.unsupported)}" if query.unsupported else ""
        log.info(
            "worklist query from %s matching on %s: %s in %.0f ms%s",
            peer,
            ", ".join(_key_names(query.conditions)) or "nothing (all open orders)",
            outcome,
            (time.monotonic() - started) * 1000,
            unsupported,
        )


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
    yield from worklist.find(
        lambda: event.identifier, event.assoc.requestor.ae_title, lambda: event.is_cancelled
    )
