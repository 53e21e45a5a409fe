"""DICOM audit messages (PS3.15 A.5), the XML that IHE ATNA repositories expect.

No maintained Python library writes them (PyPI has none for the DICOM schema), so the
few elements the gateway needs are built here with ElementTree, in the schema's order:
EventIdentification, ActiveParticipant+, AuditSourceIdentification,
ParticipantObjectIdentification*. Codes are DCM (PS3.16) and RFC-3881 ones.

Patient identifiers appear only in the ParticipantObjectID of the Patient object, where
the message types that concern an instance require it; nothing here is ever logged.
"""

from __future__ import annotations

import base64
import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

# (code, code system, original text)
Code = tuple[str, str, str]

# Event IDs (PS3.15 A.5.3)
APPLICATION_ACTIVITY: Code = ("110100", "DCM", "Application Activity")
INSTANCES_TRANSFERRED: Code = ("110104", "DCM", "DICOM Instances Transferred")
EXPORT: Code = ("110106", "DCM", "Export")
ORDER_RECORD: Code = ("110109", "DCM", "Order Record")
PATIENT_RECORD: Code = ("110110", "DCM", "Patient Record")
QUERY: Code = ("110112", "DCM", "Query")
SECURITY_ALERT: Code = ("110113", "DCM", "Security Alert")
USER_AUTHENTICATION: Code = ("110114", "DCM", "User Authentication")
# Event type codes
APPLICATION_START: Code = ("110120", "DCM", "Application Start")
APPLICATION_STOP: Code = ("110121", "DCM", "Application Stop")
LOGIN: Code = ("110122", "DCM", "Login")
LOGOUT: Code = ("110123", "DCM", "Logout")
NODE_AUTHENTICATION: Code = ("110126", "DCM", "Node Authentication")
SOFTWARE_CONFIGURATION: Code = ("110131", "DCM", "Software Configuration")
USE_OF_RESTRICTED_FUNCTION: Code = ("110132", "DCM", "Use of Restricted Function")
# Roles of active participants
APPLICATION: Code = ("110150", "DCM", "Application")
APPLICATION_LAUNCHER: Code = ("110151", "DCM", "Application Launcher")
DESTINATION: Code = ("110152", "DCM", "Destination Role ID")
SOURCE: Code = ("110153", "DCM", "Source Role ID")
# Participant object ID types
PATIENT_NUMBER: Code = ("2", "RFC-3881", "Patient Number")
STUDY_INSTANCE_UID: Code = ("110180", "DCM", "Study Instance UID")
SOP_CLASS_UID: Code = ("110181", "DCM", "SOP Class UID")
APPLICATION_SERVER: Code = ("4", "DCM", "Application Server Process")

# EventOutcomeIndicator
SUCCESS = "0"
MINOR_FAILURE = "4"
SERIOUS_FAILURE = "8"

_IP_ADDRESS, _MACHINE_NAME = "2", "1"


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a user, process or node taking part in the event."""

    user_id: str
    role: Code | None = None
    is_requestor: bool = False
    ae_title: str = ""
    network_address: str = ""  # an IP address or a host name


@dataclass(frozen=True)
class Instance:
    """The object concerned: its study (as a participant object) and its patient."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str = ""
    patient_id: str = ""
    patient_id_issuer: str = ""


def patient_object(patient_id: str, patient_id_issuer: str = "") -> Instance:
    """The patient alone as the object of an event (an order or patient record)."""
    return Instance("", "", patient_id=patient_id, patient_id_issuer=patient_id_issuer)


@dataclass(frozen=True)
class Query:
    """A C-FIND as A.5.3.12 records it: the SOP class asked, and the identifier as sent."""

    sop_class_uid: str
    identifier: bytes  # the encoded C-FIND identifier (it may hold patient data)
    transfer_syntax: str


@dataclass(frozen=True)
class AuditEvent:
    event_id: Code
    action: str  # C R U D E
    outcome: str = SUCCESS
    event_type: Code | None = None
    description: str = ""  # EventOutcomeDescription: why, never patient data
    participants: tuple[Participant, ...] = ()
    instance: Instance | None = None
    query: Query | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class AuditSource:
    """Who reports: AuditSourceID (this node) and AuditEnterpriseSiteID (the hospital)."""

    source_id: str
    site_id: str = ""


def to_xml(event: AuditEvent, source: AuditSource) -> str:
    """The AuditMessage document for `event`, as one line of XML text."""
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(
        root,
        "EventIdentification",
        EventActionCode=event.action,
        EventDateTime=event.time.isoformat(timespec="milliseconds"),
        EventOutcomeIndicator=event.outcome,
    )
    _code(identification, "EventID", event.event_id)
    if event.event_type is not None:
        _code(identification, "EventTypeCode", event.event_type)
    if event.description:
        ET.SubElement(identification, "EventOutcomeDescription").text = event.description
    for participant in event.participants:
        _participant(root, participant)
    audit_source = ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=source.source_id)
    if source.site_id:
        audit_source.set("AuditEnterpriseSiteID", source.site_id)
    _code(audit_source, "AuditSourceTypeCode", APPLICATION_SERVER)
    if event.instance is not None:
        _instance_objects(root, event.instance)
    if event.query is not None:
        _query_object(root, event.query)
    return ET.tostring(root, encoding="unicode")


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    value, system, text = code
    return ET.SubElement(
        parent, tag, {"csd-code": value, "codeSystemName": system, "originalText": text}
    )


def _participant(root: ET.Element, p: Participant) -> None:
    attributes = {"UserID": p.user_id, "UserIsRequestor": "true" if p.is_requestor else "false"}
    if p.ae_title:
        attributes["AlternativeUserID"] = f"AETITLES={p.ae_title}"
    if p.network_address:
        attributes["NetworkAccessPointID"] = p.network_address
        kind = _IP_ADDRESS if _looks_like_ip(p.network_address) else _MACHINE_NAME
        attributes["NetworkAccessPointTypeCode"] = kind
    element = ET.SubElement(root, "ActiveParticipant", attributes)
    if p.role is not None:
        _code(element, "RoleIDCode", p.role)


def _instance_objects(root: ET.Element, instance: Instance) -> None:
    """The study with its SOP class and instance (type 2 system object, role 3 report),
    then the patient (type 1 person, role 1 patient), as A.5.3.5 and A.5.3.7 list them."""
    if instance.study_uid:
        study = _object(root, instance.study_uid, "2", "3", STUDY_INSTANCE_UID)
        sop_class = ET.SubElement(
            study, "SOPClass", UID=instance.sop_class_uid, NumberOfInstances="1"
        )
        ET.SubElement(sop_class, "Instance", UID=instance.sop_instance_uid)
    _object(root, _patient_cx(instance), "1", "1", PATIENT_NUMBER)


def _query_object(root: ET.Element, query: Query) -> None:
    """The SOP class queried (type 2 system object, role 3 report), with the identifier
    and its transfer syntax in base64 (PS3.15 A.5.3.12)."""
    element = _object(root, query.sop_class_uid, "2", "3", SOP_CLASS_UID)
    ET.SubElement(element, "ParticipantObjectQuery").text = base64.b64encode(
        query.identifier
    ).decode("ascii")
    syntax = base64.b64encode(query.transfer_syntax.encode("ascii")).decode("ascii")
    ET.SubElement(element, "ParticipantObjectDetail", type="TransferSyntax", value=syntax)


def _object(
    root: ET.Element, object_id: str, type_code: str, role: str, id_type: Code
) -> ET.Element:
    """A ParticipantObjectIdentification with its ID type code."""
    element = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        ParticipantObjectID=object_id,
        ParticipantObjectTypeCode=type_code,
        ParticipantObjectTypeCodeRole=role,
    )
    _code(element, "ParticipantObjectIDTypeCode", id_type)
    return element


def _patient_cx(instance: Instance) -> str:
    """The patient ID in HL7 CX form (ID^^^issuer), as IHE ATNA profiles write it."""
    if instance.patient_id_issuer:
        return f"{instance.patient_id}^^^{instance.patient_id_issuer}"
    return instance.patient_id


def _looks_like_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
