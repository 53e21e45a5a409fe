"""HL7 v2.5.1 ORU^R01: the result message for one ECG, sent over MLLP, judged by its ACK.

The message is written as ER7 by gateway/delivery/er7.py (see there why not through
hl7apy's model); its structure is the ORU_R01 one, checked in tests against hl7apy's
2.5.1 validator. ACKs are read with hl7apy.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from pydicom.valuerep import PersonName

from gateway.delivery import er7
from gateway.delivery.base import (
    Artefacts,
    DeliveryError,
    SendInterrupted,
    content_version,
    object_uids,
    redact,
)
from gateway.delivery.codes import (
    EKG_IMPRESSION,
    EKG_STUDY,
    MEASUREMENT_CODES,
    format_number,
)
from gateway.delivery.mllp import MllpClient, MllpClosed, MllpError
from gateway.delivery.order_status import build_status
from gateway.delivery.result_status import (
    HL7_CRITICAL_FLAG,
    HL7_DELETED,
    critical_subjects,
    hl7_result_status,
    is_confirmed,
    issued_at,
    withdrawn,
)
from gateway.delivery.tls import client_ssl_context
from gateway.processing.package import ReportPackage
from gateway.routing import Hl7Destination, Hl7Options
from gateway.routing.schema import RP_POINTER_MAX_CHARS
from gateway.store.order_records import OrderPriority
from model.decode.demographics import dicom_date
from model.report_text import comparison_line, critical_line, technical_notes

VERSION = "2.5.1"
# One ED.5 (TX) holds 65,536 characters in hl7apy's 2.5.1 tables, which its strict
# validation enforces (RP.1, ST, 199: see gateway/routing/schema.py); 2.5.1's own OBX-5
# length (99,999) is the looser bound.
ED_DATA_MAX_CHARS = 65536
SUCCESS_CODES = {"AA", "CA"}
FAILURE_CODES = {"AE", "AR", "CE", "CR"}
# Reject (original and enhanced mode): the receiver refuses this message as it is, so
# resending it unchanged cannot succeed; AE/CE are errors that a later try may not meet.
REJECT_CODES = {"AR", "CR"}
_SEX = {"M": "M", "F": "F", "O": "O"}
_CANNOT_BE_OBTAINED = "X"  # OBX-11 (table 0085): results cannot be obtained
_NOTE_SOURCE = "L"  # NTE-2 (table 0105): the ancillary (filler) department, here the gateway
# TQ1-9 (table 0485): the order's priority; S (stat) for a critical result whatever was ordered
_PRIORITIES: dict[OrderPriority, tuple[str, str]] = {
    "stat": ("S", "Stat"),
    "asap": ("A", "ASAP"),
    "routine": ("R", "Routine"),
}
# Comparison statements' codes (NEW_RHYTHM, QTC_CHANGE, ...) are the gateway's own: a local
# coding system, as HL7 names them (99zzz)
COMPARISON_CODING_SYSTEM = "99ECGCMP"
_ST_MAX = 199  # an ST component (CWE.1, CWE.2, CE.2) as hl7apy's 2.5.1 tables bound it


def control_id(package: ReportPackage, destination_name: str) -> str:
    """MSH-10, the same for every resend of one report to one destination.

    Receivers drop a message whose control ID they have already processed; a
    corrected report has new content, hence a new ID, and so has each correction even
    when two of them read alike: every received object is its own job (20 characters:
    the 2.5.1 limit).
    """
    version = content_version(package)
    seed = f"{package.sop_instance_uid}\x00{package.job_id}\x00{destination_name}\x00{version}"
    return hashlib.sha256(seed.encode()).hexdigest()[:20]


def build_oru(package: ReportPackage, options: Hl7Options, message_control_id: str) -> str:
    """The ORU^R01 for one ECG as ER7: MSH, PID (when the object names a patient),
    ORC, OBR, then one OBX per measurement, the impression and statements, the PDF."""
    segments = [_msh(options, message_control_id)]
    if package.metadata.patient_id:
        segments.append(_pid(package))
    segments += [
        _orc(package),
        _obr(package),
        *_notes(package),
        *_timing(package),
        *_observations(package, options),
    ]
    return er7.message(segments)


def encode(message: str) -> bytes:
    """In UTF-8, as MSH-18 declares."""
    return message.encode("utf-8")


def prepare(package: ReportPackage, destination: Hl7Destination, name: str) -> Artefacts:
    """The result (ORU^R01), or for an order-status destination the order's status update."""
    build = build_status if destination.sends == "order-status" else build_oru
    return {"message": encode(build(package, destination.hl7, control_id(package, name)))}


@dataclass(frozen=True)
class Ack:
    code: str
    control_id: str
    text: str


def parse_ack(raw: bytes) -> Ack:
    try:
        ack = parse_message(
            raw.decode("utf-8", errors="replace").strip(),
            validation_level=VALIDATION_LEVEL.TOLERANT,
        )
        msa = ack.msa
        return Ack(msa.msa_1.value.strip(), msa.msa_2.value.strip(), msa.msa_3.value.strip())
    except (HL7apyException, AttributeError, IndexError) as exc:
        raise DeliveryError(f"reply is not a readable HL7 ACK: {type(exc).__name__}") from None


class Hl7Sender:
    """ORU^R01 over MLLP to one receiver, on a connection kept between messages. A reload
    or stop may close the sender while a sweep sends: the exchange is cut at once."""

    def __init__(self, destination: Hl7Destination, name: str):
        self.destination = destination
        self.name = name
        host, port, use_tls = destination.address
        self._client = MllpClient(
            host,
            port,
            timeout=destination.timeout_s,
            ssl_context=client_ssl_context(destination.tls) if use_tls else None,
        )

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        sent_id = control_id(package, self.name)
        peer = self._client.peer
        try:
            reply = self._client.exchange(artefacts["message"])
        except MllpClosed:  # by a reload that removed the destination, or the gateway's stop
            raise SendInterrupted(f"the sender of {peer} was closed during the send") from None
        except MllpError as exc:
            raise DeliveryError(str(exc)) from None
        try:
            ack = parse_ack(reply)
        except DeliveryError:
            self._client.disconnect()  # whatever answered, the connection is not in step
            raise
        if ack.control_id != sent_id:
            self._client.disconnect()
            raise DeliveryError(
                f"ACK from {peer} acknowledges MSH-10 {redact(ack.control_id, package, 40)!r}, "
                f"not the {sent_id!r} that was sent"
            )
        if ack.code in SUCCESS_CODES:
            return f"{ack.code} from {peer}"
        kind = "rejected" if ack.code in FAILURE_CODES else "answered with unknown code"
        code = redact(ack.code, package, 20) if ack.code else "(empty MSA-1)"
        detail = f": {redact(ack.text, package)}" if ack.text else ""
        raise DeliveryError(f"{peer} {kind} {code}{detail}", permanent=ack.code in REJECT_CODES)

    def close(self) -> None:
        """For good; from another thread it cuts a send in progress, whose delivery is then
        handed back untried (SendInterrupted)."""
        self._client.close()


def _msh(options: Hl7Options, message_control_id: str) -> str:
    text = er7.text
    return er7.segment(
        "MSH",
        {
            2: er7.ENCODING_CHARACTERS,
            3: text(options.sending_application),
            4: text(options.sending_facility),
            5: text(options.receiving_application),
            6: text(options.receiving_facility),
            7: _hl7_time(datetime.now().astimezone()),
            9: "ORU^R01^ORU_R01",
            10: message_control_id,
            11: text(options.processing_id),
            12: VERSION,
            15: text(options.accept_ack_type or ""),
            16: text(options.application_ack_type or ""),
            18: "UNICODE UTF-8",
        },
    )


def _pid(package: ReportPackage) -> str:
    meta = package.metadata
    return er7.segment(
        "PID",
        {
            1: "1",
            3: er7.components(
                er7.text(meta.patient_id or ""),
                "",
                "",
                er7.text(meta.patient_id_issuer or ""),
                "MR",
            ),
            5: _name(meta.patient_name or ""),
            7: dicom_date(meta.patient_birth_date) or "",  # DA and DT share YYYY[MM[DD]]
            8: _SEX.get((meta.patient_sex or "").strip().upper(), "U"),
        },
    )


def _name(dicom_name: str) -> str:
    """DICOM PN family^given^middle^prefix^suffix -> XPN family^given^middle^suffix^prefix.

    PID-5 is required; an object without a name gets name type U ("unspecified")
    rather than an invented name or `""`, which would tell the EHR to erase it.
    """
    name = PersonName(dicom_name)  # its parts are those of the first (alphabetic) group
    order = (name.family_name, name.given_name, name.middle_name, name.name_suffix)
    parts = [er7.text(part) for part in (*order, name.name_prefix)]
    if not any(parts):
        return er7.components("", "", "", "", "", "", "U")
    return er7.components(*parts)


def _order_numbers(package: ReportPackage) -> tuple[str, str]:
    """ORC-2/OBR-2 placer and ORC-3/OBR-3 filler order numbers (EI: number^namespace): the
    order's when the ECG was matched to one; otherwise the accession number and the SOP
    Instance UID, which is all an unordered ECG has."""
    order = package.order
    if order is None:
        return er7.text(package.metadata.accession_number or ""), er7.text(package.sop_instance_uid)
    placer = er7.components(er7.text(order.placer_order_number), er7.text(order.placer_authority))
    filler = er7.components(
        er7.text(order.filler_order_number or package.sop_instance_uid),
        er7.text(order.filler_authority if order.filler_order_number else ""),
    )
    return placer, filler


def _orc(package: ReportPackage) -> str:
    placer, filler = _order_numbers(package)
    return er7.segment("ORC", {1: "RE", 2: placer, 3: filler})


def _obr(package: ReportPackage) -> str:
    acquired = package.metadata.acquisition_time
    placer, filler = _order_numbers(package)
    return er7.segment(
        "OBR",
        {
            1: "1",
            2: placer,
            3: filler,
            4: _universal_service(package),
            7: _hl7_time(acquired) if acquired is not None else "",
            18: _placer_field_1(package),
            22: _hl7_time(issued_at(package.report)),
            24: "EC",
            25: hl7_result_status(package.report),
            32: _interpreter(package),
        },
    )


def _placer_field_1(package: ReportPackage) -> str:
    """OBR-18: an ordered ECG's accession number, where IHE's workflow profiles carry it
    (an unordered ECG has it in OBR-2 instead)."""
    order = package.order
    if order is None:
        return ""
    return er7.text(order.accession_number or package.metadata.accession_number or "")


def _universal_service(package: ReportPackage) -> str:
    """OBR-4: the ordered procedure (code^text^system) when there is an order naming one,
    the EKG study (LOINC 11524-6) otherwise."""
    order = package.order
    if order is not None and (order.procedure_code or order.procedure_text):
        return er7.components(
            er7.text(order.procedure_code),
            er7.fitted(order.procedure_text, _ST_MAX),
            er7.text(order.procedure_coding_system),
        )
    return er7.components(*EKG_STUDY, "LN")


def _interpreter(package: ReportPackage) -> str:
    """OBR-32 principal result interpreter (NDL.1 CNN: id&family&given&middle&suffix&
    prefix), the physician who confirmed the report; empty while it is preliminary."""
    report = package.report
    if not is_confirmed(report):
        return ""
    confirmation = report.confirmation
    name = PersonName(confirmation.physician_name)  # the first (alphabetic) group
    parts = (
        confirmation.physician_id,
        name.family_name,
        name.given_name,
        name.middle_name,
        name.name_suffix,
        name.name_prefix,
    )
    return "&".join(er7.text(part) for part in parts).rstrip("&")


def _timing(package: ReportPackage) -> list[str]:
    """TQ1 with TQ1-9 the result's priority: the order's, S (stat) when the report is
    critical; none for an unordered, non-critical report (nothing to say)."""
    if package.report.critical:
        code, text = _PRIORITIES["stat"]
    elif package.order is not None:
        code, text = _PRIORITIES[package.order.priority]
    else:
        return []
    return [er7.segment("TQ1", {1: "1", 9: er7.components(code, text, "HL70485")})]


def _notes(package: ReportPackage) -> list[str]:
    """The report's warnings as an NTE on the order, for the physician who over-reads it."""
    notes = technical_notes(package.report.warnings)
    return [er7.segment("NTE", {1: "1", 2: _NOTE_SOURCE, 3: er7.text(notes)})] if notes else []


class _Observation(NamedTuple):
    """One OBX's content (ER7-encoded), and the note that follows it, if any."""

    value_type: str
    identifier: str
    value: str
    status: str
    units: str = ""
    sub_id: str = ""
    note: str = ""
    flag: str = ""  # OBX-8 abnormal flag


def _observations(package: ReportPackage, options: Hl7Options) -> list[str]:
    """The OBX segments, numbered, each with status and observation time; a measurement
    that could not be made is an OBX with status X and its reason in an NTE after it."""
    acquired = package.metadata.acquisition_time
    observed = _hl7_time(acquired) if acquired is not None else ""
    segments = []
    for number, obx in enumerate(_observation_contents(package, options), start=1):
        segments.append(
            er7.segment(
                "OBX",
                {
                    1: str(number),
                    2: obx.value_type,
                    3: obx.identifier,
                    4: obx.sub_id,
                    5: obx.value,
                    6: obx.units,
                    8: obx.flag,
                    11: obx.status,
                    14: observed,
                },
            )
        )
        if obx.note:
            segments.append(er7.segment("NTE", {1: "1", 2: _NOTE_SOURCE, 3: er7.text(obx.note)}))
    return segments


def _observation_contents(package: ReportPackage, options: Hl7Options) -> list[_Observation]:
    """Measurements, then the impression, each statement, each critical finding and each
    comparison with the prior ECG, then the PDF; AA in OBX-8 on what a critical finding
    is about."""
    contents = []
    report = package.report
    status = hl7_result_status(report)
    critical = critical_subjects(report)
    measured = package.kind == "ecg-waveform"  # an image's empty measurements are no findings
    retracted = {finding.key for finding in withdrawn(report, "measurement")}
    for code in MEASUREMENT_CODES:
        value = getattr(report.measurements, code.key)
        reason = report.null_reasons.get(code.key)
        identifier = er7.components(code.loinc, code.display, "LN")
        units = er7.components(code.ucum, code.ucum, "UCUM")
        flag = HL7_CRITICAL_FLAG if code.key in critical else ""
        if value is not None:
            contents.append(
                _Observation("NM", identifier, format_number(value), status, units, flag=flag)
            )
        elif code.key in retracted:  # sent before, withdrawn: the receiver deletes its row
            contents.append(_Observation("NM", identifier, "", HL7_DELETED, units, note=reason))
        elif reason and measured:
            contents.append(
                _Observation("NM", identifier, "", _CANNOT_BE_OBTAINED, units, note=reason)
            )
    impression = er7.components(*EKG_IMPRESSION, "LN")
    if report.impression:
        text = er7.text(report.impression)
        contents.append(_Observation("TX", impression, text, status, sub_id="1"))
    elif withdrawn(report, "impression"):
        contents.append(_Observation("TX", impression, "", HL7_DELETED, sub_id="1"))
    sub_ids = itertools.count(2)  # OBX-4 under the impression's OBX-3, after its 1
    for statement in report.statements:
        line = er7.text(f"{statement.code}: {statement.text}")
        flag = HL7_CRITICAL_FLAG if statement.code in critical else ""
        contents.append(
            _Observation("TX", impression, line, status, "", str(next(sub_ids)), "", flag)
        )
    for finding in report.critical:
        line = er7.text(critical_line(finding))
        contents.append(
            _Observation(
                "TX", impression, line, status, "", str(next(sub_ids)), "", HL7_CRITICAL_FLAG
            )
        )
    contents += _comparison_observations(package, status, sub_ids)
    # Rows under the impression's OBX-3 are numbered in order, so an earlier version's
    # rows beyond this one's last are the withdrawn ones: one D row each deletes them all.
    gone = ("statement", "critical", "comparison")
    for _ in [finding for kind in gone for finding in withdrawn(report, kind)]:
        contents.append(_Observation("TX", impression, "", HL7_DELETED, sub_id=str(next(sub_ids))))
    if package.pdf is not None:
        contents += _pdf_observations(package, options, status)
    return contents


def _comparison_observations(
    package: ReportPackage, status: str, sub_ids: Iterator[int]
) -> list[_Observation]:
    """One CWE OBX per difference from the prior ECG: the comparison's code (local coding
    system) and its text with both values; a line too long for CWE.2 is cut there and
    follows whole in an NTE."""
    comparison = package.report.comparison
    if comparison is None:
        return []
    impression = er7.components(*EKG_IMPRESSION, "LN")
    rows = []
    for statement in comparison.statements:
        line = comparison_line(statement)
        text = er7.fitted(line, _ST_MAX)
        value = er7.components(er7.fitted(statement.code, _ST_MAX), text, COMPARISON_CODING_SYSTEM)
        note = line if text != er7.text(line) else ""  # cut: the whole line follows in an NTE
        rows.append(
            _Observation("CWE", impression, value, status, sub_id=str(next(sub_ids)), note=note)
        )
    return rows


def _pdf_observations(
    package: ReportPackage, options: Hl7Options, status: str
) -> list[_Observation]:
    """The report PDF as the route asks: one ED OBX (embed), as many ED OBX as it takes
    with the same OBX-3 and OBX-4, the receiver joining their data in order (split), or an
    RP pointer to the Encapsulated PDF a dicom route stores (reference). See
    docs/output-formats.md for why."""
    study = er7.components(*EKG_STUDY, "LN")
    if options.pdf == "omit":
        return []
    if options.pdf == "reference":
        return [_Observation("RP", study, _pdf_pointer(package, options), status, sub_id="1")]
    data = base64.b64encode(package.pdf).decode("ascii")
    if len(data) > ED_DATA_MAX_CHARS and options.pdf == "embed":
        raise DeliveryError(
            f"the PDF's base64 is {len(data)} characters, over the {ED_DATA_MAX_CHARS} one "
            "OBX-5 holds; set the route's hl7.pdf to split or reference",
            permanent=True,
        )
    pieces = [data[i : i + ED_DATA_MAX_CHARS] for i in range(0, len(data), ED_DATA_MAX_CHARS)]
    return [
        _Observation("ED", study, er7.components("", "AP", "PDF", "Base64", piece), status, "", "1")
        for piece in pieces
    ]


def _pdf_pointer(package: ReportPackage, options: Hl7Options) -> str:
    """RP: pointer^application ID^type of data^subtype. The pointer names the Encapsulated
    PDF by its UIDs (the key the archive holds it under, or a URL); the application is the
    system holding it, or a URL's host."""
    uids = object_uids(package, "pdf")
    pointer = options.pdf_reference_pointer.format(
        study_uid=uids.study, series_uid=uids.series, instance_uid=uids.instance
    )
    if len(pointer) > RP_POINTER_MAX_CHARS:
        raise DeliveryError(
            f"the PDF reference is {len(pointer)} characters, over the {RP_POINTER_MAX_CHARS} "
            "RP.1 holds; shorten the route's hl7.pdf_reference_pointer",
            permanent=True,
        )
    if options.pdf_reference_application:
        application = er7.text(options.pdf_reference_application)
    else:
        host = urlsplit(pointer).hostname or ""
        application = f"&{er7.text(host)}&DNS" if host else ""
    return er7.components(er7.text(pointer), application, "AP", "PDF")


def _hl7_time(value: datetime) -> str:
    """DTM; with the zone offset when the time carries one."""
    text = value.strftime("%Y%m%d%H%M%S")
    return text + value.strftime("%z") if value.tzinfo is not None else text
