"""HL7 v2.5.1 ORU^R01: the result message built with hl7apy and validated against
the 2.5.1 structures before it leaves, sent over MLLP, judged by its ACK.

The message is built at hl7apy's tolerant level and then checked with hl7apy's
validator (cardinality, segment and field structure, data types). Building at
the strict level is not possible here: OBX-5 is of type `varies`, and strict
mode types its components as 199-character ST, which no embedded PDF fits.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hl7apy.v2_5_1 import TX

from gateway.deliver.base import DeliveryError, content_version, redact
from gateway.deliver.codes import EKG_IMPRESSION, EKG_STUDY, MEASUREMENT_CODES, format_number
from gateway.deliver.mllp import MllpClient, MllpError
from gateway.deliver.tls import client_ssl_context
from gateway.package import ReportPackage
from gateway.routing import Hl7Destination, Hl7Options

VERSION = "2.5.1"
SUCCESS_CODES = {"AA", "CA"}
FAILURE_CODES = {"AE", "AR", "CE", "CR"}
_SEX = {"M": "M", "F": "F", "O": "O"}
_PRELIMINARY = "P"


def control_id(package: ReportPackage, destination_name: str) -> str:
    """MSH-10, the same for every resend of one report to one destination.

    Receivers drop a message whose control ID they have already processed; a
    corrected report has new content, hence a new ID (20 characters: the 2.5.1 limit).
    """
    seed = f"{package.sop_instance_uid}\x00{destination_name}\x00{content_version(package)}"
    return hashlib.sha256(seed.encode()).hexdigest()[:20]


def build_oru(package: ReportPackage, options: Hl7Options, message_control_id: str) -> Message:
    """The ORU^R01 for one ECG; raises DeliveryError(permanent) if it is not valid 2.5.1."""
    message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    try:
        _fill_msh(message, options, message_control_id)
        result = message.add_group("ORU_R01_PATIENT_RESULT")
        if package.metadata.patient_id:
            _fill_pid(result.add_group("ORU_R01_PATIENT"), package)
        order = result.add_group("ORU_R01_ORDER_OBSERVATION")
        _fill_order(order, package)
        _add_observations(order, package)
        message.validate()
    except HL7apyException as exc:
        raise DeliveryError(
            f"building HL7 ORU^R01: {redact(str(exc), package)}", permanent=True
        ) from None
    return message


def encode(message: Message) -> bytes:
    """ER7 with segments ended by CR, in UTF-8 as MSH-18 declares."""
    return message.to_er7().encode("utf-8")


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
    """ORU^R01 over MLLP to one receiver, on a connection kept between messages."""

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

    def send(self, package: ReportPackage) -> str:
        sent_id = control_id(package, self.name)
        message = encode(build_oru(package, self.destination.hl7, sent_id))
        try:
            reply = self._client.exchange(message)
        except MllpError as exc:
            raise DeliveryError(str(exc)) from None
        try:
            ack = parse_ack(reply)
        except DeliveryError:
            self._client.close()  # whatever answered, the connection is not in step
            raise
        peer = self._client.peer
        if ack.control_id != sent_id:
            self._client.close()
            raise DeliveryError(
                f"ACK from {peer} acknowledges MSH-10 {ack.control_id!r}, "
                f"not the {sent_id!r} that was sent"
            )
        if ack.code in SUCCESS_CODES:
            return f"{ack.code} from {peer}"
        kind = "rejected" if ack.code in FAILURE_CODES else "answered with unknown code"
        detail = f": {redact(ack.text, package)}" if ack.text else ""
        raise DeliveryError(f"{peer} {kind} {ack.code or '(empty MSA-1)'}{detail}")

    def close(self) -> None:
        self._client.close()


def _fill_msh(message: Message, options: Hl7Options, message_control_id: str) -> None:
    msh = message.msh
    msh.msh_3.hd_1 = _text(options.sending_application)
    msh.msh_4.hd_1 = _text(options.sending_facility)
    msh.msh_5.hd_1 = _text(options.receiving_application)
    msh.msh_6.hd_1 = _text(options.receiving_facility)
    msh.msh_7.ts_1 = _hl7_time(datetime.now().astimezone())
    msh.msh_9.msg_1 = "ORU"
    msh.msh_9.msg_2 = "R01"
    msh.msh_9.msg_3 = "ORU_R01"
    msh.msh_10 = message_control_id
    msh.msh_11.pt_1 = options.processing_id
    msh.msh_12.vid_1 = VERSION
    if options.accept_ack_type:
        msh.msh_15 = options.accept_ack_type
    if options.application_ack_type:
        msh.msh_16 = options.application_ack_type
    msh.msh_18 = "UNICODE UTF-8"


def _fill_pid(patient: Group, package: ReportPackage) -> None:
    meta = package.metadata
    pid = patient.pid
    pid.pid_1 = "1"
    pid.pid_3.cx_1 = _text(meta.patient_id)
    if meta.patient_id_issuer:
        pid.pid_3.cx_4.hd_1 = _text(meta.patient_id_issuer)
    pid.pid_3.cx_5 = "MR"
    _fill_name(pid, meta.patient_name or "")
    birth_date = (meta.patient_birth_date or "").strip()
    if len(birth_date) == 8 and birth_date.isdigit():
        pid.pid_7.ts_1 = birth_date
    pid.pid_8 = _SEX.get((meta.patient_sex or "").strip().upper(), "U")


def _fill_name(pid, dicom_name: str) -> None:
    """DICOM PN family^given^middle^prefix^suffix -> XPN family^given^middle^suffix^prefix.

    PID-5 is required; an object without a name gets name type U ("unspecified")
    rather than an invented name or `""`, which would tell the EHR to erase it.
    """
    family, given, middle, prefix, suffix = (dicom_name.split("=")[0].split("^") + [""] * 5)[:5]
    name = pid.pid_5
    if not any(part.strip() for part in (family, given, middle, prefix, suffix)):
        name.xpn_7 = "U"
        return
    if family.strip():
        name.xpn_1.fn_1 = _text(family.strip())
    for component, value in (
        ("xpn_2", given),
        ("xpn_3", middle),
        ("xpn_4", suffix),
        ("xpn_5", prefix),
    ):
        if value.strip():
            setattr(name, component, _text(value.strip()))


def _fill_order(order: Group, package: ReportPackage) -> None:
    meta = package.metadata
    orc, obr = order.orc, order.obr
    orc.orc_1 = "RE"
    obr.obr_1 = "1"
    if meta.accession_number:
        orc.orc_2.ei_1 = _text(meta.accession_number)
        obr.obr_2.ei_1 = _text(meta.accession_number)
    orc.orc_3.ei_1 = _text(package.sop_instance_uid)
    obr.obr_3.ei_1 = _text(package.sop_instance_uid)
    obr.obr_4 = f"{EKG_STUDY[0]}^{EKG_STUDY[1]}^LN"
    if meta.acquisition_time is not None:
        obr.obr_7.ts_1 = _hl7_time(meta.acquisition_time)
    obr.obr_22.ts_1 = _hl7_time(package.report.created_at)
    obr.obr_24 = "EC"
    obr.obr_25 = _PRELIMINARY


def _add_observations(order: Group, package: ReportPackage) -> None:
    observations = _ObservationWriter(order, package)
    measurements = package.report.measurements
    for code in MEASUREMENT_CODES:
        value = getattr(measurements, code.key)
        if value is not None:
            observations.add(
                "NM",
                f"{code.loinc}^{code.display}^LN",
                format_number(value),
                units=f"{code.ucum}^{code.ucum}^UCUM",
            )
    impression = f"{EKG_IMPRESSION[0]}^{EKG_IMPRESSION[1]}^LN"
    if package.report.impression:
        observations.add("TX", impression, _text(package.report.impression), sub_id="1")
    for index, statement in enumerate(package.report.statements, start=2):
        observations.add(
            "TX", impression, _text(f"{statement.code}: {statement.text}"), sub_id=str(index)
        )
    document = package.pdf
    if document is not None:
        data = base64.b64encode(document).decode("ascii")
        observations.add("ED", f"{EKG_STUDY[0]}^{EKG_STUDY[1]}^LN", f"^AP^PDF^Base64^{data}")


class _ObservationWriter:
    """Numbers the OBX segments and stamps each with status and time."""

    def __init__(self, order: Group, package: ReportPackage):
        self.order = order
        self.count = 0
        acquired = package.metadata.acquisition_time
        self.observed = _hl7_time(acquired) if acquired is not None else None

    def add(
        self,
        value_type: str,
        identifier: str,
        value: str,
        *,
        units: str | None = None,
        sub_id: str | None = None,
    ) -> None:
        self.count += 1
        obx = self.order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1 = str(self.count)
        obx.obx_2 = value_type
        obx.obx_3 = identifier
        if sub_id is not None:
            obx.obx_4 = sub_id
        obx.obx_5 = value
        if units is not None:
            obx.obx_6 = units
        obx.obx_11 = _PRELIMINARY
        if self.observed:
            obx.obx_14.ts_1 = self.observed


def _text(value: str) -> str:
    """Free text as ER7, its delimiters escaped by hl7apy (an assigned string is parsed as ER7)."""
    return TX(" ".join(value.split())).to_er7()


def _hl7_time(value: datetime) -> str:
    """DTM; with the zone offset when the time carries one."""
    text = value.strftime("%Y%m%d%H%M%S")
    return text + value.strftime("%z") if value.tzinfo is not None else text
