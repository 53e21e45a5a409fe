"""FHIR R4: one transaction Bundle per ECG, built and validated with fhir.resources
(sent by fhir_client.py; the waveform itself in fhir_waveform.py).

Every entry is a conditional create (Patient, Device, Practitioner, ServiceRequest and
DiagnosticReport on their identifiers, Observations and Media on identifiers derived from
the SOP Instance UID and their role), so a resend after a timeout never creates a second
copy. A report that replaces one already sent (confirmed final, corrected, amended, or a
correction of the object) is a conditional update of the same DiagnosticReport and of the
same Observations and Media instead: the EHR replaces them, never duplicates them.

fhir.resources defaults to R5; its R4B models are used because they match R4 for
every resource here (Media, for one, no longer exists in R5).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

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
from gateway.delivery.fhir_context import (
    human_name,
    identifier_query,
    identifier_system,
    interpreter,
    is_code,
    order_identifiers,
    service_request,
)
from gateway.delivery.fhir_waveform import (
    DICOM_TYPE,
    ECG_ELEC_POTL,
    MDC,
    binary_entry,
    json_size,
    waveform_components,
)
from gateway.delivery.result_status import (
    FHIR_CRITICAL,
    FHIR_INTERPRETATION_SYSTEM,
    FHIR_WITHDRAWN,
    critical_subjects,
    is_confirmed,
    is_update,
    issued_at,
    withdrawn,
)
from gateway.processing.package import ReportPackage
from gateway.routing import FhirDestination, FhirOptions
from model.decode.demographics import dicom_date
from model.report_text import comparison_line, critical_line, technical_notes

DICOM_UID_SYSTEM = "urn:dicom:uid"
URI_SYSTEM = "urn:ietf:rfc:3986"
DEVICE_SYSTEM = "urn:ecg-gateway:device"
COMPARISON_SYSTEM = "urn:ecg-gateway:comparison"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
_IDENTITY_NAMESPACE = uuid.UUID("6f0f3b0e-2c55-4c1e-9a43-6b1d8f1e0c2a")
_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
_SEX = {"M": "male", "F": "female", "O": "other"}
_MEASUREMENT_CONCEPT = {code.key: (code.loinc, code.display) for code in MEASUREMENT_CODES}


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
        self.issued = _fhir_datetime(issued_at(self.report))
        self.critical = critical_subjects(self.report)
        self.entries: list[dict[str, Any]] = []

    def build(self) -> Bundle:
        patient_ref = self._add_patient()
        device_ref = self._add_device()
        measurements = self._add_observations(patient_ref, device_ref)
        results = self._add_panel(measurements, patient_ref, device_ref)
        results += self._add_impression(patient_ref, device_ref)
        results += self._add_critical(patient_ref, device_ref)
        results += self._add_comparison(patient_ref, device_ref)
        self._add_retractions(patient_ref, device_ref)
        forms = self._add_waveform(patient_ref, device_ref, results)
        media_ref = self._add_media(patient_ref, device_ref)
        context = {
            "basedOn": self._add_order(patient_ref),
            "resultsInterpreter": self._add_interpreter(),
        }
        self._add_report(patient_ref, results, media_ref, forms, context)
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
            "ifNoneExist": identifier_query(system, value),
        }

    def _derived_identifier(self, role: str) -> dict:
        """Observations and Media have no natural identifier; this one is the same for every
        version of the report on this ECG, so a confirmed or corrected version replaces it."""
        seed = f"{self.package.sop_instance_uid}/{role}"
        return {"system": URI_SYSTEM, "value": f"urn:uuid:{uuid.uuid5(_IDENTITY_NAMESPACE, seed)}"}

    def _result_request(self, resource_type: str, identifier: dict) -> dict:
        """A report that replaces one already sent updates its resources where they are
        (conditional update on the identifier); anything else is created once."""
        if is_update(self.report):
            query = identifier_query(identifier["system"], identifier["value"])
            return {"method": "PUT", "url": f"{resource_type}?{query}"}
        return self._create_if_none(resource_type, identifier["system"], identifier["value"])

    def _add_patient(self) -> dict | None:
        if not self.meta.patient_id:
            return None
        identifier = {"system": self._patient_system(), "value": self.meta.patient_id}
        patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [identifier]}
        name = human_name(self.meta.patient_name)
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
        return identifier_system(
            self.meta.patient_id_issuer, self.options, self.options.default_patient_system
        )

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
        observation = self._result(
            "Observation",
            self._derived_identifier(role),
            [_concept(OBSERVATION_CATEGORY, ("procedure", "Procedure"))],
            code,
            patient_ref,
        )
        if device_ref:
            observation["device"] = device_ref
        return observation

    def _result(
        self,
        resource_type: str,
        identifier: dict,
        categories: list[dict],
        code: tuple[str, str],
        patient_ref: dict | None,
    ) -> dict[str, Any]:
        """What the report and each observation share: the report's status (preliminary,
        final, corrected, amended: the R4 codes are the same words), LOINC-coded, issued when
        made or confirmed, about the patient (when known) at the time of acquisition."""
        resource: dict[str, Any] = {
            "resourceType": resource_type,
            "identifier": [identifier],
            "status": self.report.status,
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
        retracted = {finding.key for finding in withdrawn(self.report, "measurement")}
        for code in MEASUREMENT_CODES:
            value = getattr(measurements, code.key)
            reason = self.report.null_reasons.get(code.key)
            if value is None and (code.key in retracted or not (reason and self._measured)):
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
                if code.key in self.critical:
                    observation["interpretation"] = [_CRITICAL_INTERPRETATION]
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
        if self.critical.intersection(self.report.codes):  # the statements it sums up
            observation["interpretation"] = [_CRITICAL_INTERPRETATION]
        return [self._add_entry_for(observation, "impression")]

    def _add_critical(self, patient_ref: dict | None, device_ref: dict | None) -> list[dict]:
        """One Observation per critical finding (EKG impression, interpretation AA), as the
        HL7 message has one OBX: what an EHR raises its critical-result alert on."""
        results = []
        for finding in self.report.critical:
            role = f"critical-{finding.rule}"  # by rule: a withdrawn one is retracted by it
            observation = self._observation_base(role, EKG_IMPRESSION, patient_ref, device_ref)
            observation["valueString"] = critical_line(finding)
            observation["interpretation"] = [_CRITICAL_INTERPRETATION]
            results.append(self._add_entry_for(observation, role))
        return results

    def _add_comparison(self, patient_ref: dict | None, device_ref: dict | None) -> list[dict]:
        """One Observation per difference from the prior ECG, coded (the gateway's own
        codes) with both values in its text, so an EHR can list and search them; the
        conclusion repeats them in words."""
        comparison = self.report.comparison
        if comparison is None:
            return []
        results = []
        for number, statement in enumerate(comparison.statements, start=1):
            role = f"comparison-{number}"
            observation = self._observation_base(role, EKG_IMPRESSION, patient_ref, device_ref)
            observation["code"] = {"text": "Comparison with the prior ECG"}
            if is_code(statement.code):
                coding = {"system": COMPARISON_SYSTEM, "code": statement.code}
                observation["code"]["coding"] = [{**coding, "display": statement.text}]
            observation["valueString"] = comparison_line(statement)
            if comparison.prior_acquired_at is not None:
                prior = _fhir_datetime(comparison.prior_acquired_at)
                observation["note"] = [{"text": f"Prior ECG acquired {prior}"}]
            results.append(self._add_entry_for(observation, role))
        return results

    def _add_retractions(self, patient_ref: dict | None, device_ref: dict | None) -> None:
        """An Observation an earlier version sent for a finding this one withdrew is
        updated in place (same identifier) to entered-in-error, referenced by nothing: the
        EHR's copy is retracted, so no Observation query finds it as current."""
        roles = [
            (f.key, _MEASUREMENT_CONCEPT[f.key]) for f in withdrawn(self.report, "measurement")
        ]
        roles += [(f"critical-{f.key}", EKG_IMPRESSION) for f in withdrawn(self.report, "critical")]
        roles += [("impression", EKG_IMPRESSION) for _ in withdrawn(self.report, "impression")]
        roles += [
            (f"comparison-{f.key}", EKG_IMPRESSION) for f in withdrawn(self.report, "comparison")
        ]
        for role, code in roles:
            observation = self._observation_base(role, code, patient_ref, device_ref)
            observation["status"] = FHIR_WITHDRAWN
            observation["note"] = [{"text": f"Withdrawn in report version {self.report.version}"}]
            self._add_entry_for(observation, role)

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
        request = self._result_request("Observation", observation["identifier"][0])
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
        request = self._result_request("Media", media["identifier"][0])
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
        context: dict[str, list[dict]],
    ) -> None:
        identifier = self._report_identifier()
        report = self._result(
            "DiagnosticReport",
            identifier,
            [
                _concept(LOINC, CARDIOLOGY_CATEGORY),
                _concept(DIAGNOSTIC_SECTION_SYSTEM, ELECTROCARDIAC_SECTION),
            ],
            EKG_STUDY,
            patient_ref,
        )
        report.update({key: refs for key, refs in context.items() if refs})
        if self.meta.institution_name:
            report["performer"] = [{"type": "Organization", "display": self.meta.institution_name}]
        if results:
            report["result"] = results
        if media_ref:
            report["media"] = [{"comment": "12-lead ECG", "link": media_ref}]
        conclusion = self._conclusion()
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
                    "title": f"ECG report ({self.report.status})",
                    "creation": self.issued,
                },
                *forms,
            ]
        if forms:
            report["presentedForm"] = forms
        request = self._result_request("DiagnosticReport", identifier)
        self._add(DiagnosticReport, report, self._full_url("report"), request)

    def _conclusion(self) -> str:
        """Critical findings, the impression, the comparison and the technical notes, in
        words (R4 DiagnosticReport has no note element)."""
        parts = [f"{critical_line(finding)}." for finding in self.report.critical]
        parts.append(self.report.impression)
        comparison = self.report.comparison
        if comparison is not None and comparison.statements:
            lines = "; ".join(comparison_line(s) for s in comparison.statements)
            parts.append(f"Compared with the prior ECG: {lines}.")
        parts.append(technical_notes(self.report.warnings))
        return " ".join(part for part in parts if part)

    def _add_order(self, patient_ref: dict | None) -> list[dict]:
        """basedOn: the order's ServiceRequest (see fhir_context.py for why an entry, and why
        a logical reference when there is no patient)."""
        order = self.package.order
        if order is None:
            return []
        identifiers = order_identifiers(order, self.options)
        placer = identifiers[0]
        logical = {"type": "ServiceRequest", "identifier": placer}
        if patient_ref is None:
            return [logical]
        request = self._create_if_none("ServiceRequest", placer["system"], placer["value"])
        resource = service_request(order, identifiers, patient_ref)
        reference = self._add(ServiceRequest, resource, self._full_url("order"), request)
        return [{**reference, **logical}]

    def _add_interpreter(self) -> list[dict]:
        """resultsInterpreter: the physician who confirmed the report."""
        if not is_confirmed(self.report):
            return []
        practitioner, identifier = interpreter(self.report.confirmation)
        request = self._create_if_none("Practitioner", identifier["system"], identifier["value"])
        return [self._add(Practitioner, practitioner, self._full_url("interpreter"), request)]

    def _report_identifier(self) -> dict:
        uid = self.meta.sop_instance_uid
        if uid:
            return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}
        return {"system": "urn:ecg-gateway:job", "value": str(self.package.job_id)}

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


_CRITICAL_INTERPRETATION = {
    "coding": [
        {
            "system": FHIR_INTERPRETATION_SYSTEM,
            "code": FHIR_CRITICAL[0],
            "display": FHIR_CRITICAL[1],
        }
    ]
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _concept(system: str, code: tuple[str, str]) -> dict[str, Any]:
    """A CodeableConcept of one coding: (code, display) in `system`."""
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}]}
