"""A worklist C-FIND identifier read into a query, and matching it (DICOM PS3.4 C.2.2.2).

`parse_query` checks the identifier once and turns each key into a test over the
worklist item (worklist_record.py): universal matching (empty or a lone "*"), single
value, wildcard (* and ?), UID list, date and time ranges (open ranges too), and
sequence matching (a single item whose keys all match one item of the sequence). What
the SCP cannot use is a QueryError naming the element; keys outside the worklist model
are dropped and noted (status 0xFF01, as dcmtk's wlmscpfs does).

Decisions, as the standard leaves them to the SCP:
- Patient's Name matches case-sensitively, as dcmtk's wlmscpfs does (`doe*` does not
  find `Doe^John`); `worklist.names_ignore_case` makes it case-insensitive, which PS3.4
  C.2.2.2.1 allows for PN. A query without "=" is matched against the alphabetic group
  only. Other VRs are case-sensitive, with the spaces their VR says are not significant
  ignored.
- Scheduled Procedure Step Start Date and Time are matched each on its own (no combined
  date-time matching: that needs extended negotiation).
- An order for no particular station ("" Scheduled Station AE Title) is offered to every
  station (the store's `open_orders` prefilter does the same); an order with no scheduled
  time is due now: it has the time of the query (worklist_record.worklist_item).
- Other empty values match only universal matching (PS3.4 K.2.2.1.1.1).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Union

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from gateway.intake.worklist_record import (
    ECG_MODALITY,
    ITEM_KEYS,
    SPS,
    Item,
    Schema,
    value_kind,
)

Test = Callable[[str], bool]
# keyword -> a test of the item's value, or for a sequence the tests of one of its items
Conditions = Mapping[str, Union[Test, "Conditions"]]

_NOT_KEYS = {"SpecificCharacterSet"}  # says how the identifier is encoded; not matched
_STATION = "ScheduledStationAETitle"
_START_DATE = "ScheduledProcedureStepStartDate"
_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")


class QueryError(ValueError):
    """An identifier the SCP cannot use (answered 0xA900): what is wrong and where."""

    def __init__(self, message: str, tag: BaseTag | None = None) -> None:
        super().__init__(message)
        self.tag = tag


@dataclass
class WorklistQuery:
    """What to look for, what to return, and what the store can narrow down first."""

    conditions: Conditions
    requested: Schema
    unsupported: list[str] = field(default_factory=list)  # "(gggg,eeee)" of dropped keys
    prefilter: dict[str, object] = field(default_factory=dict)  # open_orders(**prefilter)
    ecg_wanted: bool = True  # False: a modality other than ECG was asked for

    def matches(self, item: Item) -> bool:
        return _matches(self.conditions, item)


@dataclass
class _Reading:
    """How the identifier is being read, and what was dropped from it so far."""

    names_ignore_case: bool
    unsupported: list[str] = field(default_factory=list)


def parse_query(identifier: Dataset, names_ignore_case: bool = False) -> WorklistQuery:
    """The query in `identifier`, or QueryError for the first key that cannot be used."""
    reading = _Reading(names_ignore_case)
    conditions, requested = _parse_level(identifier, ITEM_KEYS, reading)
    if not requested:
        raise QueryError("the identifier holds no worklist key")
    query = WorklistQuery(conditions, requested, reading.unsupported)
    _add_prefilter(query, identifier)
    sps_tests = conditions.get(SPS, {})
    modality = sps_tests.get("Modality") if isinstance(sps_tests, Mapping) else None
    query.ecg_wanted = modality is None or modality(ECG_MODALITY)
    return query


def _matches(conditions: Conditions, item: Item) -> bool:
    for keyword, test in conditions.items():
        value = item[keyword]
        if isinstance(value, list):
            if test and not any(_matches(test, child) for child in value):
                return False
        elif not test(value):
            return False
    return True


def _parse_level(dataset: Dataset, schema: Schema, reading: _Reading) -> tuple[dict, dict]:
    """(conditions, requested keys) of one level of the identifier."""
    conditions: dict = {}
    requested: dict = {}
    for element in dataset:
        if element.tag.element == 0 or element.keyword in _NOT_KEYS:
            continue  # group lengths and the character set are no keys
        if element.keyword not in schema:
            reading.unsupported.append(str(element.tag))
            continue
        keys = schema[element.keyword]
        if keys is not None:
            test, asked = _parse_sequence(element, keys, reading)
        else:
            test, asked = _parse_value(element, reading), None
        if test:
            conditions[element.keyword] = test
        requested[element.keyword] = asked
    return conditions, requested


def _parse_sequence(element: DataElement, keys: Schema, reading: _Reading) -> tuple[dict, Schema]:
    """Sequence matching (PS3.4 C.2.2.2.6): zero items or an empty item asks for every
    attribute of the sequence's items; more than one item is not a query."""
    items = list(element.value or [])
    if len(items) > 1:
        raise QueryError(f"{element.keyword}: {len(items)} items, not 1", element.tag)
    if not items or len(items[0]) == 0:
        return {}, keys
    conditions, requested = _parse_level(items[0], keys, reading)
    return conditions, requested or keys


def _parse_value(element: DataElement, reading: _Reading) -> Test | None:
    """The test for one key, None for universal matching."""
    value = element.value
    if isinstance(value, MultiValue):
        if value_kind(element.keyword) != "uid":
            raise QueryError(f"{element.keyword}: several values (UIDs only)", element.tag)
        text = "\\".join(str(v) for v in value)
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    else:
        text = "" if value is None else str(value)
    text = text.strip()
    if text in ("", "*"):
        return None
    if "\x00" in text:  # no text VR allows one, and the store (PostgreSQL) cannot match it
        raise QueryError(f"{element.keyword}: a NUL character in the value", element.tag)
    try:
        kind = value_kind(element.keyword)
        if kind == "pn":
            test = _name_test(text, reading.names_ignore_case)
        else:
            test = _TESTS[kind](text)
    except ValueError as exc:
        raise QueryError(f"{element.keyword}: {exc}", element.tag) from None
    if element.keyword == _STATION:
        return lambda station: station == "" or test(station)
    return test


# --- one test per kind of value ------------------------------------------------------------


def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _text_test(query: str) -> Test:
    """Single value or wildcard matching; leading/trailing spaces are not significant."""
    pattern = _wildcard(query)
    return lambda value: bool(value) and pattern.fullmatch(value.strip()) is not None


def _name_test(query: str, ignore_case: bool) -> Test:
    """Person name matching, group by group (alphabetic=ideographic=phonetic): empty
    trailing components are not significant, an empty group or a lone "*" is universal,
    and a query of one group matches the alphabetic group only."""
    groups = [
        None if group.strip() in ("", "*") else _wildcard(_normal(group), ignore_case)
        for group in query.split("=")
    ]

    def test(value: str) -> bool:
        names = [_normal(group) for group in value.split("=")]
        names += [""] * (len(groups) - len(names))
        return bool(names[0]) and all(
            pattern is None or pattern.fullmatch(name) is not None
            for pattern, name in zip(groups, names, strict=False)
        )

    return test


def _normal(name: str) -> str:
    return name.strip().rstrip("^").strip()


def _uid_test(query: str) -> Test:
    uids = {uid.strip() for uid in query.split("\\")}
    if any("*" in uid or "?" in uid for uid in uids):
        raise ValueError("no wildcards in a UID")
    if not all(re.fullmatch(r"[0-9.]{1,64}", uid) for uid in uids):
        raise ValueError("not a UID list")
    return lambda value: value in uids


def _date_test(query: str) -> Test:
    low, high = _range(query, _date_bound, "YYYYMMDD")
    low, high = low or "00000000", high or "99999999"
    if low > high:
        raise ValueError("range starts after its end")
    return lambda value: bool(value) and low <= value <= high


def _time_test(query: str) -> Test:
    low, high = _range(query, _time_bound, "HHMMSS")
    low_s = _seconds(low, upper=False) if low else 0.0
    high_s = _seconds(high, upper=True) if high else 86400.0
    if low_s > high_s:
        raise ValueError("range starts after its end")
    return lambda value: bool(value) and low_s <= _seconds(value, upper=False) <= high_s


def _range(query: str, bound: Callable[[str], str], form: str) -> tuple[str, str]:
    """(low, high) of a single value or range, "" for an open end; a single value is the
    range from itself to itself."""
    if "*" in query or "?" in query:
        raise ValueError("no wildcards; use a range")
    if query.count("-") > 1 or query == "-":
        raise ValueError(f"not {form} or a range")
    low, sep, high = query.partition("-")
    low, high = (bound(low) if low else ""), (bound(high) if high else "")
    return (low, high) if sep else (low, low)


def _date_bound(text: str) -> str:
    if not _DATE.fullmatch(text):
        raise ValueError("not a date YYYYMMDD")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise ValueError("not a calendar date") from None
    return text


def _time_bound(text: str) -> str:
    parts = _TIME.fullmatch(text)
    if not parts:
        raise ValueError("not a time HHMMSS")
    hours, minutes, seconds = (int(p) if p else 0 for p in parts.groups()[:3])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueError("not a time of day")
    return text


def _seconds(value: str, upper: bool) -> float:
    """Seconds into the day; a partial time's upper bound is the end of its last unit
    ("12" up to 12:59:59.999999)."""
    parts = _TIME.fullmatch(value.strip())
    if not parts:
        return -1.0  # an unreadable stored time matches no range
    hours, minutes, seconds, fraction = parts.groups()
    total = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    total += float(fraction) if fraction else 0.0
    if upper:
        unit = 3600 if minutes is None else 60 if seconds is None else 1
        digits = len(fraction) - 1 if fraction else 0
        total += (unit if fraction is None else 10.0**-digits) - 1e-6
    return total


_TESTS: dict[str, Callable[[str], Test]] = {
    "text": _text_test,
    "uid": _uid_test,
    "date": _date_test,
    "time": _time_test,
}


# --- what the store can narrow down ----------------------------------------------------------


def _add_prefilter(query: WorklistQuery, identifier: Dataset) -> None:
    """Exact values the store's `open_orders` filters on in SQL: patient ID, station AE and
    the start date range (all checked by parse_query first); matching in Python does the
    rest."""
    patient_id = _literal(identifier.get("PatientID"))
    if patient_id:
        query.prefilter["patient_id"] = patient_id
    steps = identifier.get(SPS) or []
    if len(steps) != 1:
        return
    station = _literal(steps[0].get(_STATION))
    if station:
        query.prefilter["station_ae"] = station
    dates = _literal(steps[0].get(_START_DATE))
    low, _, high = dates.partition("-") if "-" in dates else (dates, "", dates)
    if low:
        query.prefilter["scheduled_from"] = _epoch(low)
    if high:
        query.prefilter["scheduled_to"] = _epoch(high) + 86400 - 0.001


def _literal(value: object) -> str:
    """A key's single value when it has no wildcard; "" otherwise."""
    if value is None or isinstance(value, MultiValue):
        return ""
    text = str(value).strip()
    return "" if "*" in text or "?" in text else text


def _epoch(date: str) -> float:
    """Local midnight starting `date` (YYYYMMDD, already checked)."""
    day = dt.datetime.strptime(date, "%Y%m%d")
    return time.mktime(day.timetuple())
