"""FHIR R4: one transaction Bundle per ECG, built and validated with fhir.resources
(sent by fhir_client.py; the waveform itself in fhir_waveform.py).

Every entry is a conditional create (Patient and DiagnosticReport on their
identifiers, the rest on identifiers derived from the SOP Instance UID and the
report content), so a resend after a timeout never creates a second copy. A
correction replaces the earlier report with a conditional update instead.

fhir.resources defaults to R5; its R4B models are used because they match R4 for
every resource here (Media, for one, no longer exists in R5).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError
from pydicom.valuerep import PersonName

from gateway.delivery.base import Artefacts, DeliveryError, content_version
from gateway.delivery.codes import (
    CARDIOLOGY_CATEGORY,
    DIAGNOSTIC_SECTION_SYSTEM,
    EKG_IMPRESSION,
    EKG_STUDY,
    ELECTROCARDIAC_SECTION,
    LOINC,
    MEASUREMENT_CODES,
    SNOMED,
    TWELVE_LEAD_PANEL,
    UCUM,
    measurement_value,
)
from gateway.delivery.fhir_waveform import (
    DICOM_TYPE,
    ECG_ELEC_POTL,
    MDC,
    binary_entry,
    json_size,
    waveform_components,
)
from gateway.processing.package import ReportPackage
from gateway.routing import FhirDestination, FhirOptions
from model.decode.demographics import dicom_date
from model.report_text import technical_notes

DICOM_UID_SYSTEM = "urn:dicom:uid"
URI_SYSTEM = "urn:ietf:rfc:3986"
DEVICE_SYSTEM = "urn:ecg-gateway:device"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
_IDENTITY_NAMESPACE = uuid.UUID("6f0f3b0e-2c55-4c1e-9a43-6b1d8f1e0c2a")
_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
_SEX = {"M": "male", "F": "female", "O": "other"}


def build_bundle(package: ReportPackage, options: FhirOptions) -> Bundle:
    """The transaction Bundle for one ECG, every resource validated.

    Raises DeliveryError(permanent=True) when the report cannot be expressed as
    valid FHIR: sending it again would fail the same way.
    """
    builder = _BundleBuilder(package, options)
    return builder.build()


def bundle_json(bundle: Bundle) -> bytes:
    return bundle.model_dump_json(exclude_none=True).encode()


def prepare(package: ReportPackage, destination: FhirDestination, name: str) -> Artefacts:
    return {"bundle": bundle_json(build_bundle(package, destination.fhir))}


class _BundleBuilder:
    """Builds the entries in dependency order, each validated as its R4B type."""

    def __init__(self, package: ReportPackage, options: FhirOptions):
        self.package = package
        self.options = options
        self.meta = package.metadata
        self.report = package.report
        self.version = content_version(package)
        self.effective = _fhir_datetime(self.meta.acquisition_time)
        self.issued = _fhir_datetime(self.report.created_at)
        self.entries: list[dict[str, Any]] = []

    def build(self) -> Bundle:
        patient_ref = self._add_patient()
        device_ref = self._add_device()
        measurements = self._add_observations(patient_ref, device_ref)
        results = self._add_panel(measurements, patient_ref, device_ref)
        results += self._add_impression(patient_ref, device_ref)
        forms = self._add_waveform(patient_ref, device_ref, results)
        media_ref = self._add_media(patient_ref, device_ref)
        self._add_report(patient_ref, results, media_ref, forms)
        return _validated(
            Bundle, {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}
        )

    def _full_url(self, role: str) -> str:
        seed = f"{self.package.sop_instance_uid}/{self.version}/{role}"
        return f"urn:uuid:{uuid.uuid5(_IDENTITY_NAMESPACE, seed)}"

    def _add(self, resource_type: type, resource: dict, full_url: str, request: dict) -> dict:
        _validated(resource_type, resource)
        self.entries.append({"fullUrl": full_url, "resource": resource, "request": request})
        return {"reference": full_url}

    def _create_if_none(self, resource_type: str, system: str, value: str) -> dict:
        return {
            "method": "POST",
            "url": resource_type,
            "ifNoneExist": _identifier_query(system, value),
        }

    def _derived_identifier(self, role: str) -> dict:
        """Observations and Media have no natural identifier; this one is stable per content."""
        return {"system": URI_SYSTEM, "value": self._full_url(role)}

    def _add_patient(self) -> dict | None:
        if not self.meta.patient_id:
            return None
        identifier = {"system": self._patient_system(), "value": self.meta.patient_id}
        patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [identifier]}
        name = _human_name(self.meta.patient_name)
        if name:
            patient["name"] = [name]
        if _SEX.get((self.meta.patient_sex or "").upper()):
            patient["gender"] = _SEX[self.meta.patient_sex.upper()]
        birth_date = _fhir_date(self.meta.patient_birth_date)
        if birth_date:
            patient["birthDate"] = birth_date
        request = self._create_if_none("Patient", identifier["system"], identifier["value"])
        return self._add(Patient, patient, self._full_url("patient"), request)

    def _patient_system(self) -> str:
        issuer = (self.meta.patient_id_issuer or "").strip()
        if not issuer:
            return self.options.default_patient_system
        if issuer in self.options.issuer_systems:
            return self.options.issuer_systems[issuer]
        if all(part.isdigit() for part in issuer.split(".")):
            return f"urn:oid:{issuer}"
        if ":" in issuer and all(char.isprintable() and not char.isspace() for char in issuer):
            return issuer  # a uri has no whitespace or control characters
        return f"urn:ecg-gateway:issuer:{quote(issuer, safe='')}"

    def _add_device(self) -> dict | None:
        """The cart: Observations and Media point at it (R4 DiagnosticReport cannot)."""
        meta = self.meta
        if not (meta.device_manufacturer or meta.device_model or meta.device_serial):
            return None
        key = (
            meta.device_serial
            or hashlib.sha256(
                f"{meta.device_manufacturer}|{meta.device_model}|{meta.station_name}".encode()
            ).hexdigest()[:20]
        )
        device: dict[str, Any] = {
            "resourceType": "Device",
            "identifier": [{"system": DEVICE_SYSTEM, "value": key}],
        }
        if meta.device_manufacturer:
            device["manufacturer"] = meta.device_manufacturer
        if meta.device_model:
            device["deviceName"] = [{"name": meta.device_model, "type": "model-name"}]
            device["modelNumber"] = meta.device_model
        if meta.device_serial:
            device["serialNumber"] = meta.device_serial
        request = self._create_if_none("Device", DEVICE_SYSTEM, key)
        return self._add(Device, device, self._full_url("device"), request)

    def _observation_base(
        self, role: str, code: tuple[str, str], patient_ref: dict | None, device_ref: dict | None
    ) -> dict[str, Any]:
        observation = self._preliminary(
            "Observation",
            self._derived_identifier(role),
            [_concept(OBSERVATION_CATEGORY, ("procedure", "Procedure"))],
            code,
            patient_ref,
        )
        if device_ref:
            observation["device"] = device_ref
        return observation

    def _preliminary(
        self,
        resource_type: str,
        identifier: dict,
        categories: list[dict],
        code: tuple[str, str],
        patient_ref: dict | None,
    ) -> dict[str, Any]:
        """What the report and each observation share: a preliminary result, LOINC-coded,
        issued now, about the patient (when known) at the time of acquisition."""
        resource: dict[str, Any] = {
            "resourceType": resource_type,
            "identifier": [identifier],
            "status": "preliminary",
            "category": categories,
            "code": {**_concept(LOINC, code), "text": code[1]},
            "issued": self.issued,
        }
        if patient_ref:
            resource["subject"] = patient_ref
        if self.effective:
            resource["effectiveDateTime"] = self.effective
        return resource

    @property
    def _measured(self) -> bool:
        """Only a waveform was measured; an image's empty measurements are no findings."""
        return self.package.kind == "ecg-waveform"

    def _add_observations(self, patient_ref: dict | None, device_ref: dict | None) -> list[dict]:
        """A value per measurement; where measuring a waveform failed, the reason as a
        dataAbsentReason (never a zero)."""
        results = []
        measurements = self.report.measurements
        for code in MEASUREMENT_CODES:
            value = getattr(measurements, code.key)
            reason = self.report.null_reasons.get(code.key)
            if value is None and not (reason and self._measured):
                continue
            observation = self._observation_base(
                code.key, (code.loinc, code.display), patient_ref, device_ref
            )
            if value is not None:
                observation["valueQuantity"] = {
                    "value": measurement_value(value),
                    "unit": code.ucum,
                    "system": UCUM,
                    "code": code.ucum,
                }
            else:
                observation["dataAbsentReason"] = {
                    "coding": [{"system": DATA_ABSENT, "code": "unknown"}],
                    "text": reason,
                }
            results.append(self._add_entry_for(observation, code.key))
        return results

    def _add_panel(
        self, members: list[dict], patient_ref: dict | None, device_ref: dict | None
    ) -> list[dict]:
        """US Core: the 12-lead EKG panel (34534-8) groups the interval observations."""
        if not members:
            return []
        panel = self._observation_base("panel", TWELVE_LEAD_PANEL, patient_ref, device_ref)
        panel["hasMember"] = members
        return [self._add_entry_for(panel, "panel")]

    def _add_impression(self, patient_ref: dict | None, device_ref: dict | None) -> list[dict]:
        if not self.report.impression:
            return []
        observation = self._observation_base("impression", EKG_IMPRESSION, patient_ref, device_ref)
        observation["valueString"] = self.report.impression
        return [self._add_entry_for(observation, "impression")]

    def _add_waveform(
        self, patient_ref: dict | None, device_ref: dict | None, results: list[dict]
    ) -> list[dict]:
        """The waveform, as the route asks: an Observation in the report's results, or
        (asked, or too large) a Binary in its presentedForm; returns the latter's forms."""
        waveform = self.package.waveform
        if self.options.waveform == "none" or waveform is None:
            return []
        if self.options.waveform == "observation":
            observation = self._observation_base(
                "waveform", (str(ECG_ELEC_POTL), "MDC_ECG_ELEC_POTL"), patient_ref, device_ref
            )
            observation["code"]["coding"][0]["system"] = MDC  # an MDC code, not LOINC
            observation["status"] = "final"  # the recorded signal, not an interpretation
            observation["component"] = waveform_components(waveform)
            if json_size(observation) <= self.options.waveform_max_kb * 1024:
                results.append(self._add_entry_for(observation, "waveform"))
                return []
        entry, size = binary_entry(self.package, self._full_url("waveform-binary"))
        self.entries.append(entry)
        return [
            {
                "contentType": DICOM_TYPE,
                "url": entry["fullUrl"],
                "size": size,
                "title": "ECG waveform (DICOM 12-lead ECG)",
                "creation": self.issued,
            }
        ]

    def _add_entry_for(self, observation: dict, role: str) -> dict:
        identifier = observation["identifier"][0]
        request = self._create_if_none("Observation", identifier["system"], identifier["value"])
        return self._add(Observation, observation, self._full_url(role), request)

    def _add_media(self, patient_ref: dict | None, device_ref: dict | None) -> dict | None:
        image, content_type = self._image()
        if image is None:
            return None
        media: dict[str, Any] = {
            "resourceType": "Media",
            "identifier": [self._derived_identifier("media")],
            "status": "completed",
            "type": {"coding": [{"system": MEDIA_TYPE, "code": "image", "display": "Image"}]},
            "content": {
                "contentType": content_type,
                "data": _b64(image),
                "title": "12-lead ECG" if self.package.png else "received ECG image",
            },
        }
        if patient_ref:
            media["subject"] = patient_ref
        if self.effective:
            media["createdDateTime"] = self.effective
        if device_ref:
            media["device"] = device_ref
        identifier = media["identifier"][0]
        request = self._create_if_none("Media", identifier["system"], identifier["value"])
        return self._add(Media, media, self._full_url("media"), request)

    def _image(self) -> tuple[bytes | None, str]:
        if self.package.png is not None:
            return self.package.png, "image/png"
        image_type = (self.package.source_image_type or "").lower()
        content_type = (
            image_type if image_type.startswith("image/") else _IMAGE_TYPES.get(image_type)
        )
        if self.package.source_image is not None and content_type:
            return self.package.source_image, content_type
        return None, ""

    def _add_report(
        self,
        patient_ref: dict | None,
        results: list[dict],
        media_ref: dict | None,
        forms: list[dict],
    ) -> None:
        identifier = self._report_identifier()
        report = self._preliminary(
            "DiagnosticReport",
            identifier,
            [
                _concept(LOINC, CARDIOLOGY_CATEGORY),
                _concept(DIAGNOSTIC_SECTION_SYSTEM, ELECTROCARDIAC_SECTION),
            ],
            EKG_STUDY,
            patient_ref,
        )
        if self.meta.institution_name:
            report["performer"] = [{"type": "Organization", "display": self.meta.institution_name}]
        if results:
            report["result"] = results
        if media_ref:
            report["media"] = [{"comment": "12-lead ECG", "link": media_ref}]
        conclusion = " ".join(
            part for part in (self.report.impression, technical_notes(self.report.warnings)) if part
        )
        if conclusion:
            report["conclusion"] = conclusion  # R4 DiagnosticReport has no note element
        codes = self._conclusion_codes()
        if codes:
            report["conclusionCode"] = codes
        if self.package.pdf is not None:
            forms = [
                {
                    "contentType": "application/pdf",
                    "data": _b64(self.package.pdf),
                    "title": "ECG report (preliminary)",
                    "creation": self.issued,
                },
                *forms,
            ]
        if forms:
            report["presentedForm"] = forms
        self._add(
            DiagnosticReport, report, self._full_url("report"), self._report_request(identifier)
        )

    def _report_identifier(self) -> dict:
        uid = self.meta.sop_instance_uid
        if uid:
            return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}
        return {"system": "urn:ecg-gateway:job", "value": str(self.package.job_id)}

    def _report_request(self, identifier: dict) -> dict:
        """A correction replaces the earlier report; anything else is created once."""
        if self.report.is_correction:
            query = _identifier_query(identifier["system"], identifier["value"])
            return {"method": "PUT", "url": f"DiagnosticReport?{query}"}
        return self._create_if_none("DiagnosticReport", identifier["system"], identifier["value"])

    def _conclusion_codes(self) -> list[dict]:
        """SNOMED-coded where the statement has a code; text alone otherwise, never dropped."""
        codes = []
        for statement in self.report.statements:
            concept: dict[str, Any] = {"text": statement.text}
            if statement.snomed:
                concept["coding"] = [
                    {"system": SNOMED, "code": statement.snomed, "display": statement.text}
                ]
            codes.append(concept)
        return codes


def _identifier_query(system: str, value: str) -> str:
    """`identifier=system|value`, readable as in the FHIR examples, the rest escaped."""
    return "identifier=" + quote(f"{system}|{value}", safe=":/|")


def _validated(model: type, data: dict) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise DeliveryError(f"building FHIR {model.__name__}: {problems}", permanent=True) from None


def _fhir_datetime(value: datetime | None) -> str | None:
    """FHIR wants a zone with every time; DICOM times without one are the site's local time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone()
    return value.isoformat()


def _fhir_date(value: str | None) -> str | None:
    """A DICOM date as a FHIR date at the same precision (1958, 1958-03, 1958-03-12); an
    invalid one is left out (the decoder already warned in the report)."""
    digits = dicom_date(value)
    if digits is None:
        return None
    return "-".join(part for part in (digits[:4], digits[4:6], digits[6:]) if part)


def _human_name(dicom_name: str | None) -> dict | None:
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _concept(system: str, code: tuple[str, str]) -> dict[str, Any]:
    """A CodeableConcept of one coding: (code, display) in `system`."""
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}]}
