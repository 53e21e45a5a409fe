"""HL7 v2 order messages from the EHR, read into the store's terms: ORM^O01 (v2.3.1,
v2.5.1) and OMG^O19 (v2.5.1) orders, ADT^A08 patient updates, ADT^A40 merges.

Parsed with python-hl7 (segments, repetitions, components, escapes): reading an ORM^O01
took 2.4 ms here, hl7apy's parser alone 52 ms on the same messages (bench/README.md,
HL7 orders in), and the fields taken are few. What cannot be used raises `MessageProblem`: which ACK code,
which field (PID-3, ORC-2), the HL7 error code (table 0357) and a text without patient
data, since it goes into the log and back to the sender.

Where a value lives (IHE Radiology's use of ORM/OMG, which REWF follows):
| value | field |
|---|---|
| placer / filler order number | ORC-2 / ORC-3 (OBR-2 / OBR-3 when empty) |
| scheduled time | TQ1-7, else ORC-7.4, else OBR-27.4 |
| priority | TQ1-9, else ORC-7.6, else OBR-27.6 (S stat, A asap, others routine) |
| procedure | OBR-4 (code, text, coding system) |
| accession number / requested procedure ID | OBR-18 / OBR-19 |
| referring physician | ORC-12, else OBR-16 |
| ordering facility | ORC-21.1, else the sending facility (MSH-4) |
| Study Instance UID | ZDS-1 (IHE), else the store assigns one |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import hl7

from gateway.store.order_records import NewOrder, OrderPriority, OrderReference

AckCode = Literal["AA", "AE", "AR"]
OrderControlCode = Literal["NW", "XO", "CA", "DC"]
# HL7 table 0357 (message error condition codes), as ERR names them.
SEGMENT_SEQUENCE_ERROR, REQUIRED_FIELD_MISSING, DATA_TYPE_ERROR = "100", "101", "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_EVENT_CODE, UNSUPPORTED_VERSION = "200", "201", "203"
UNKNOWN_KEY, DUPLICATE_KEY, APPLICATION_ERROR = "204", "205", "207"

ACCEPTED_TYPES = frozenset({("ORM", "O01"), ("OMG", "O19"), ("ADT", "A08"), ("ADT", "A40")})
ACCEPTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
_CHARSETS = {"": "utf-8", "ASCII": "utf-8", "UNICODE UTF-8": "utf-8", "8859/1": "latin-1"}
_PRIORITIES: dict[str, OrderPriority] = {"S": "stat", "A": "asap", "R": "routine"}
# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]; python-hl7 reads a prefix only.
_DTM = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")
_SEXES = {"M": "M", "F": "F", "O": "O", "U": "U", "A": "O", "N": "O"}


class MessageProblem(Exception):
    """A message the listener cannot use. `location` names the segment and field
    ("PID-3", "MSH-9"); `text` says what is wrong without quoting any value."""

    def __init__(self, ack: AckCode, location: str, code: str, text: str) -> None:
        super().__init__(f"{location}: {text}")
        self.ack = ack
        self.location = location
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Header:
    """What the listener needs of MSH: who sent what, and what to acknowledge."""

    control_id: str  # MSH-10
    message_type: str  # MSH-9.1
    trigger: str  # MSH-9.2
    version: str  # MSH-12.1
    processing_id: str  # MSH-11.1
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1

    @property
    def kind(self) -> str:
        """ORM^O01 and the like: safe to log (no patient data)."""
        return f"{self.message_type}^{self.trigger}"


@dataclass(frozen=True)
class OrderControl:
    """One ORC group: new (NW), change (XO), cancel (CA) or discontinue (DC) of `order`."""

    control: OrderControlCode  # ORC-1
    # For CA and DC only the placer number (ORC-2) counts: the store has the rest.
    order: NewOrder


@dataclass(frozen=True)
class PatientUpdate:
    """ADT^A08: the patient's demographics now."""

    patient_id: str
    patient_id_issuer: str
    patient_name: str
    birth_date: str
    sex: str


@dataclass(frozen=True)
class PatientMerge:
    """ADT^A40: the prior patient (MRG-1) is now the surviving one (PID-3)."""

    prior_id: str
    prior_issuer: str
    new_id: str
    new_issuer: str


@dataclass(frozen=True)
class OrderMessage:
    header: Header
    orders: tuple[OrderControl, ...] = ()
    updates: tuple[PatientUpdate, ...] = ()
    merges: tuple[PatientMerge, ...] = ()


def read_header(raw: bytes) -> tuple[hl7.Message, Header]:
    """The parsed message and its header; MessageProblem (AE) when there is no usable MSH."""
    text = _decode(raw).replace("\r\n", "\r").replace("\n", "\r").strip("\r\x00 ")
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except Exception:  # noqa: BLE001 - python-hl7 raises ParseException, IndexError, KeyError
        raise MessageProblem(
            "AE", "MSH", SEGMENT_SEQUENCE_ERROR, "not an HL7 v2 message (no MSH segment)"
        ) from None
    header = Header(
        control_id=_get(msh, 10),
        message_type=_get(msh, 9),
        trigger=_get(msh, 9, 2),
        version=_get(msh, 12),
        processing_id=_get(msh, 11),
        sending_application=_get(msh, 3),
        sending_facility=_get(msh, 4),
    )
    if not header.control_id:
        raise MessageProblem("AE", "MSH-10", REQUIRED_FIELD_MISSING, "no message control ID")
    return message, header


def check_type(header: Header) -> None:
    """MessageProblem (AR) for a message type, event or version this listener does not take."""
    if (header.message_type, header.trigger) not in ACCEPTED_TYPES:
        known = header.message_type in {kind for kind, _ in ACCEPTED_TYPES}
        raise MessageProblem(
            "AR",
            "MSH-9",
            UNSUPPORTED_EVENT_CODE if known else UNSUPPORTED_MESSAGE_TYPE,
            f"{header.kind} is not taken (ORM^O01, OMG^O19, ADT^A08, ADT^A40 are)",
        )
    if header.version not in ACCEPTED_VERSIONS:
        raise MessageProblem(
            "AR", "MSH-12", UNSUPPORTED_VERSION, "HL7 version not supported (2.3 to 2.5.1 are)"
        )


def read_message(
    message: hl7.Message, header: Header, default_station_ae: str = ""
) -> OrderMessage:
    """The orders, updates or merges of an accepted message type (check_type first)."""
    _refuse_nul(message)
    if header.message_type == "ADT" and header.trigger == "A08":
        return OrderMessage(header, updates=(_patient_update(message),))
    if header.message_type == "ADT":
        return OrderMessage(header, merges=_merges(message))
    return OrderMessage(header, orders=_orders(message, header, default_station_ae))


# --- orders -------------------------------------------------------------------------------


def _orders(message: hl7.Message, header: Header, station_ae: str) -> tuple[OrderControl, ...]:
    pid = _first(message, "PID")
    groups = _order_groups(message)
    if not groups:
        raise MessageProblem("AE", "ORC", SEGMENT_SEQUENCE_ERROR, "no ORC segment (no order)")
    return tuple(_order(pid, group, header, station_ae) for group in groups)


def _order_groups(message: hl7.Message) -> list[dict[str, hl7.Segment]]:
    """Each ORC with the first OBR, TQ1 and ZDS after it (the order detail group)."""
    groups: list[dict[str, hl7.Segment]] = []
    for segment in message:
        name = str(segment[0])
        if name == "ORC":
            groups.append({"ORC": segment})
        elif name in ("OBR", "TQ1", "ZDS"):
            if not groups:
                raise MessageProblem(
                    "AE", name, SEGMENT_SEQUENCE_ERROR, f"{name} before any ORC segment"
                )
            groups[-1].setdefault(name, segment)
    return groups


def _order(
    pid: hl7.Segment | None, group: dict[str, hl7.Segment], header: Header, station_ae: str
) -> OrderControl:
    orc, obr, tq1 = group["ORC"], group.get("OBR"), group.get("TQ1")
    control = _get(orc, 1)
    if control not in ("NW", "XO", "CA", "DC"):
        raise MessageProblem(
            "AE", "ORC-1", TABLE_VALUE_NOT_FOUND, "order control must be NW, XO, CA or DC"
        )
    placer = _get(orc, 2) or _get(obr, 2)
    if not placer:
        raise MessageProblem("AE", "ORC-2", REQUIRED_FIELD_MISSING, "no placer order number")
    patient_id = _get(pid, 3)
    if control in ("NW", "XO") and not patient_id:
        raise MessageProblem("AE", "PID-3", REQUIRED_FIELD_MISSING, "no patient ID")
    reference = OrderReference(
        placer_order_number=placer,
        placer_authority=_get(orc, 2, 2) if _get(orc, 2) else _get(obr, 2, 2),
        filler_order_number=_get(orc, 3) or _get(obr, 3),
        filler_authority=_get(orc, 3, 2) if _get(orc, 3) else _get(obr, 3, 2),
        accession_number=_get(obr, 18),
        procedure_code=_get(obr, 4),
        procedure_text=_get(obr, 4, 2),
        procedure_coding_system=_get(obr, 4, 3),
        priority=_priority(tq1, orc, obr),
        ordering_facility=_get(orc, 21) or header.sending_facility,
    )
    order = NewOrder(
        reference=reference,
        patient_id=patient_id,
        patient_id_issuer=_get(pid, 3, 4),
        patient_name=_person_name(pid, 5, (1, 2, 3, 5, 4)),
        birth_date=_date(_get(pid, 7)),
        sex=_SEXES.get(_get(pid, 8).upper(), ""),
        referring_physician=_person_name(orc, 12, (2, 3, 4, 6, 5))
        or _person_name(obr, 16, (2, 3, 4, 6, 5)),
        scheduled_at=_scheduled_at(tq1, orc, obr),
        station_ae=station_ae,
        study_instance_uid=_get(group.get("ZDS"), 1),
        requested_procedure_id=_get(obr, 19),
        sending_application=header.sending_application,
        sending_facility=header.sending_facility,
    )
    return OrderControl(cast(OrderControlCode, control), order)


def _priority(tq1: hl7.Segment | None, orc: hl7.Segment, obr: hl7.Segment | None) -> OrderPriority:
    code = _get(tq1, 9) or _get(orc, 7, 6) or _get(obr, 27, 6)
    return _PRIORITIES.get(code.upper(), "routine")


def _scheduled_at(
    tq1: hl7.Segment | None, orc: hl7.Segment, obr: hl7.Segment | None
) -> float | None:
    """The start time the order is scheduled for, in epoch seconds; None: as soon as
    possible. A time without a UTC offset is this machine's local time."""
    for segment, location, field, component in (
        (tq1, "TQ1-7", 7, 1),
        (orc, "ORC-7", 7, 4),
        (obr, "OBR-27", 27, 4),
    ):
        value = _get(segment, field, component)
        if value:
            try:
                if not _DTM.match(value):
                    raise ValueError(location)
                return hl7.parse_datetime(value).timestamp()
            except (ValueError, TypeError):
                raise MessageProblem(
                    "AE", location, DATA_TYPE_ERROR, "the start time is not an HL7 date/time"
                ) from None
    return None


# --- patients ------------------------------------------------------------------------------


def _patient_update(message: hl7.Message) -> PatientUpdate:
    pid = _first(message, "PID")
    if pid is None:
        raise MessageProblem("AE", "PID", SEGMENT_SEQUENCE_ERROR, "no PID segment")
    if not _get(pid, 3):
        raise MessageProblem("AE", "PID-3", REQUIRED_FIELD_MISSING, "no patient ID")
    return PatientUpdate(
        patient_id=_get(pid, 3),
        patient_id_issuer=_get(pid, 3, 4),
        patient_name=_person_name(pid, 5, (1, 2, 3, 5, 4)),
        birth_date=_date(_get(pid, 7)),
        sex=_SEXES.get(_get(pid, 8).upper(), ""),
    )


def _merges(message: hl7.Message) -> tuple[PatientMerge, ...]:
    """Each PID (the surviving patient) with the MRG (the prior one) after it."""
    merges, pid = [], None
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            pid = segment
        elif name == "MRG":
            if pid is None or not _get(pid, 3):
                raise MessageProblem("AE", "PID-3", REQUIRED_FIELD_MISSING, "no patient ID")
            if not _get(segment, 1):
                raise MessageProblem("AE", "MRG-1", REQUIRED_FIELD_MISSING, "no prior patient ID")
            merges.append(
                PatientMerge(_get(segment, 1), _get(segment, 1, 4), _get(pid, 3), _get(pid, 3, 4))
            )
    if not merges:
        raise MessageProblem("AE", "MRG", SEGMENT_SEQUENCE_ERROR, "no MRG segment (no merge)")
    return tuple(merges)


# --- values --------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    """The message as text, in the character set MSH-18 declares (UTF-8 when none)."""
    charset = ""
    first = raw.split(b"\r", 1)[0]
    if first.startswith(b"MSH") and len(first) > 3:
        fields = first.split(first[3:4])
        charset = fields[17].decode("ascii", "replace").strip() if len(fields) > 17 else ""
    encoding = _CHARSETS.get(charset.upper())
    if encoding is None:
        raise MessageProblem(
            "AE", "MSH-18", TABLE_VALUE_NOT_FOUND, "character set not supported (UTF-8, 8859/1)"
        )
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise MessageProblem(
            "AE", "MSH-18", DATA_TYPE_ERROR, f"the message is not valid {encoding}"
        ) from None


def _refuse_nul(message: hl7.Message) -> None:
    """MessageProblem (AE) naming the field of a NUL character: no HL7 data type allows
    one, and PostgreSQL text cannot hold one, so the store would refuse the message (AR,
    "send it again") on every resend, holding up the EHR's queue behind it."""
    for segment in message:
        for number, field in enumerate(segment):  # python-hl7: index = field number
            if "\x00" in str(field):
                raise MessageProblem(
                    "AE", f"{segment[0]}-{number}", DATA_TYPE_ERROR, "a NUL character in a value"
                )


def _first(message: hl7.Message, name: str) -> hl7.Segment | None:
    try:
        return message.segment(name)
    except KeyError:
        return None


def _get(segment: hl7.Segment | None, field: int, component: int = 1, sub: int = 1) -> str:
    """One value (first repetition), unescaped; "" where the message has none."""
    if segment is None:
        return ""
    try:
        return str(segment.extract_field(1, field, 1, component, sub)).strip()
    except (IndexError, KeyError):  # python-hl7: a path beyond what the message holds
        return ""


def _person_name(segment: hl7.Segment | None, field: int, order: tuple[int, ...]) -> str:
    """An XPN or XCN as a DICOM PN (family^given^middle^prefix^suffix): `order` names the
    components that hold those five. Characters PN reserves are dropped from a part."""
    parts = [_get(segment, field, number) for number in order]
    parts = [part.translate({ord(c): " " for c in "^=\\"}).strip() for part in parts]
    return "^".join(parts).rstrip("^")


def _date(value: str) -> str:
    """YYYYMMDD of an HL7 date/time, or "" when it is not a valid date."""
    try:
        return datetime.strptime(value[:8], "%Y%m%d").strftime("%Y%m%d")
    except ValueError:
        return ""
