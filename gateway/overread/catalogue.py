"""The statements a physician may put in a report: the SCP-ECG codes the engines use
(model/scp_statements.py, with their SNOMED CT concepts), searchable by code or words."""

from __future__ import annotations

from typing import NamedTuple

from model.scp_statements import STATEMENTS
from model.statement_text import TEXT_OVERRIDES


class CatalogueEntry(NamedTuple):
    code: str
    text: str  # as a report words it (the engines' default text)
    snomed: str | None


def catalogue_entry(code: str) -> CatalogueEntry | None:
    """The entry for exactly `code`, or None when it is not a known statement."""
    scp = STATEMENTS.get(code)
    if scp is None:
        return None
    text = TEXT_OVERRIDES.get(code, scp.description[0].upper() + scp.description[1:])
    return CatalogueEntry(code, text, scp.snomed)


def statement_catalogue(query: str = "", limit: int = 100) -> list[CatalogueEntry]:
    """Statements whose code or text contains every word of `query` (any case): codes
    that start with the query first, then by code. An empty query lists them all."""
    words = query.lower().split()
    found = []
    for code in STATEMENTS:
        entry = catalogue_entry(code)
        haystack = f"{code} {entry.text}".lower()
        if all(word in haystack for word in words):
            found.append(entry)
    head = query.strip().upper()
    found.sort(key=lambda e: (not (head and e.code.startswith(head)), e.code))
    return found[:limit]
