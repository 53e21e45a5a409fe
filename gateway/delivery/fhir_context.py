"""FHIR R4: what a DiagnosticReport names besides its results: the order it fulfils
(basedOn, a ServiceRequest), the physician who confirmed it (resultsInterpreter, a
Practitioner), and the identifier systems and names they need.

The order is a ServiceRequest entry in the transaction, a conditional create on its
placer identifier: a server that already holds the order (an EHR that placed it through
FHIR, or made it from its HL7 ORM) matches it and the report's basedOn resolves to that
ServiceRequest, which is what `DiagnosticReport?based-on=...` and `_include` need; a
server that does not gets a ServiceRequest carrying the placer, filler and accession
identifiers, status `unknown` (the order's state is the placer's to say). HAPI FHIR
processes conditional creates inside a transaction and rewrites the references to the
match. ServiceRequest.subject is required, so for an ECG that names no patient basedOn is
a logical reference (Reference.identifier, the placer identifier) instead: HAPI stores it
as given and searches it with `based-on:identifier`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydicom.valuerep import PersonName

from gateway.delivery.codes import EKG_STUDY, LOINC, SNOMED
from gateway.routing import FhirOptions
from gateway.store.order_records import OrderReference
from model.report import Confirmation

IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
# v2-0203 code, display, and the system used when the order names no namespace
PLACER = ("PLAC", "Placer Identifier", "urn:ecg-gateway:placer-order")
FILLER = ("FILL", "Filler Identifier", "urn:ecg-gateway:filler-order")
ACCESSION = ("ACSN", "Accession ID", "urn:ecg-gateway:accession")
# The over-read application's user names (Confirmation.physician_id)
PRACTITIONER_SYSTEM = "urn:ecg-gateway:user"
CPT = "http://www.ama-assn.org/go/cpt"
# HL7 v2 coding system names (table 0396) an ordered procedure comes in -> FHIR systems
PROCEDURE_SYSTEMS = {"LN": LOINC, "C4": CPT, "CPT": CPT, "SCT": SNOMED, "SNM": SNOMED}


def identifier_system(namespace: str | None, options: FhirOptions, default: str) -> str:
    """The identifier system of an HL7 namespace or DICOM issuer: the route's mapping
    (fhir.issuer_systems), an OID as urn:oid, a URI as it is, else a gateway URN."""
    namespace = (namespace or "").strip()
    if not namespace:
        return default
    if namespace in options.issuer_systems:
        return options.issuer_systems[namespace]
    if all(part.isdigit() for part in namespace.split(".")):
        return f"urn:oid:{namespace}"
    if ":" in namespace and all(char.isprintable() and not char.isspace() for char in namespace):
        return namespace  # a uri has no whitespace or control characters
    return f"urn:ecg-gateway:issuer:{quote(namespace, safe='')}"


def identifier_query(system: str, value: str) -> str:
    """`identifier=system|value`, readable as in the FHIR examples, the rest escaped."""
    return "identifier=" + quote(f"{system}|{value}", safe=":/|")


def order_identifiers(order: OrderReference, options: FhirOptions) -> list[dict[str, Any]]:
    """Placer (PLAC), filler (FILL) and accession (ACSN) identifiers, the placer's first."""
    identifiers = [
        _typed(PLACER, order.placer_authority, order.placer_order_number, options),
    ]
    if order.filler_order_number:
        identifiers.append(
            _typed(FILLER, order.filler_authority, order.filler_order_number, options)
        )
    if order.accession_number:
        identifiers.append(_typed(ACCESSION, "", order.accession_number, options))
    return identifiers


def _typed(
    kind: tuple[str, str, str], namespace: str, value: str, options: FhirOptions
) -> dict[str, Any]:
    code, display, default_system = kind
    return {
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": code, "display": display}]},
        "system": identifier_system(namespace, options, default_system),
        "value": value,
    }


def service_request(order: OrderReference, identifiers: list[dict], patient_ref: dict) -> dict:
    """The ServiceRequest made when the server holds none with the placer identifier."""
    return {
        "resourceType": "ServiceRequest",
        "identifier": identifiers,
        "status": "unknown",
        "intent": "order",
        "priority": order.priority,  # stat, asap, routine: the same words in R4
        "code": procedure_concept(order),
        "subject": patient_ref,
    }


def procedure_concept(order: OrderReference) -> dict[str, Any]:
    """The ordered procedure as coded by the placer (a coding where its system is known,
    the text always); the EKG study when the order names none."""
    code, text = order.procedure_code.strip(), order.procedure_text.strip()
    if not (code or text):
        return {"coding": [{"system": LOINC, "code": EKG_STUDY[0], "display": EKG_STUDY[1]}]}
    concept: dict[str, Any] = {"text": text or code}
    system = PROCEDURE_SYSTEMS.get(order.procedure_coding_system.strip().upper())
    if code and system:
        coding = {"system": system, "code": code}
        concept["coding"] = [{**coding, "display": text} if text else coding]
    return concept


def interpreter(confirmation: Confirmation) -> tuple[dict[str, Any], dict[str, str]]:
    """The confirming physician as a Practitioner (created once per user name), and its
    identifier."""
    identifier = {"system": PRACTITIONER_SYSTEM, "value": confirmation.physician_id}
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "identifier": [identifier]}
    name = human_name(confirmation.physician_name)
    if name:
        practitioner["name"] = [name]
    return practitioner, identifier


def human_name(dicom_name: str | None) -> dict | None:
    """DICOM PN: family^given^middle^prefix^suffix (first, alphabetic, group only)."""
    if not dicom_name:
        return None
    person = PersonName(dicom_name)  # its parts are those of the first (alphabetic) group
    parts = (person.family_name, person.given_name, person.middle_name)
    family, given, middle = (part.strip() for part in parts)
    prefix, suffix = person.name_prefix.strip(), person.name_suffix.strip()
    name: dict[str, Any] = {
        "text": " ".join(p for p in (prefix, given, middle, family, suffix) if p)
    }
    if not name["text"]:
        return None
    if family:
        name["family"] = family
    if given or middle:
        name["given"] = [p for p in (given, middle) if p]
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name
