"""The report as a DICOM Comprehensive SR following TID 3700 "ECG Report" (PS3.16), as
IHE's Resting ECG Workflow expects an ECG management system to store it.

    CONTAINER (28010-7, LN, "ECG Report")                        template 3700
      HAS OBS CONTEXT  observer: the device (this gateway's engine, name and version)
      CONTAINS CONTAINER (122144, DCM, "Quantitative Analysis")
        CONTAINS CONTAINER (122158, DCM, "ECG Global Measurements")   TID 3713
          NUM heart rate (8867-4, LN) /min; PR, QRS, QT, RR intervals global (MDC, ms);
          QTc global using Bazett formula (MDC, ms); P, QRS, T axes (MDC, deg)
      CONTAINS CONTAINER (122145, DCM, "Qualitative Analysis")        TID 3717
        CONTAINS CODE (121071, DCM, "Finding") per statement with a SNOMED CT code,
                 TEXT (121071, DCM, "Finding") for one without; TEXT (121071, DCM,
                 "Finding") "CRITICAL: ..." per critical finding
      CONTAINS CONTAINER (121111, DCM, "Summary")                     TID 3719
        CONTAINS TEXT (121073, DCM, "Impression"); TEXT (121106, DCM, "Comment"): the
                 comparison with the prior ECG, then the technical notes

Codes come from pydicom's copy of the PS3.16 code tables (pydicom.sr.codedict), so none
is typed by hand but the root's. A measurement that could not be made is left out (the
template has no null value for NUM without a qualifier; the PDF and HL7 say why). A
preliminary report is VerificationFlag UNVERIFIED and PreliminaryFlag PRELIMINARY; a
confirmed one VERIFIED, with the physician in VerifyingObserverSequence, and FINAL. An
ordered ECG's SR names the order in ReferencedRequestSequence.
pydicom has no SR builder and highdicom none for TID 3700, so the few content item
shapes are built here.
"""

from __future__ import annotations

import uuid

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from gateway.delivery.base import object_uids
from gateway.delivery.dicom_objects import MANUFACTURER, part10_bytes, report_dataset
from gateway.delivery.result_status import is_confirmed
from gateway.processing.package import ReportPackage
from gateway.store.order_records import OrderReference
from model.report import Confirmation, Report
from model.report_text import comparison_line, critical_line, technical_notes

COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
ECG_REPORT = Code("28010-7", "LN", "ECG Report")
SNOMED = "SCT"
_CODE_MEANING_MAX = 64  # LO
_LO_MAX = 64
_SH_MAX = 16  # Accession Number
_CODE_VALUE_MAX = 16  # SH; a longer code goes in LongCodeValue (UC)
# The over-read application's user names as a local coding scheme (PS3.3 8.2: 99...)
USER_CODING_SCHEME = "99ECGGW"
# HL7 v2 coding system names (table 0396) of an ordered procedure -> DICOM designators
_PROCEDURE_SCHEMES = {"LN": "LN", "C4": "C4", "CPT": "C4", "SCT": "SCT", "SNM": "SCT"}
_OBSERVER_NAMESPACE = uuid.UUID("5d8a4c7e-3f1b-4e2a-9b6c-0a1d2e3f4a5b")

# Report.measurements key -> (concept, unit), in TID 3713's order
GLOBAL_MEASUREMENTS: tuple[tuple[str, Code, Code], ...] = (
    ("heart_rate_bpm", codes.LN.HeartRate, codes.UCUM.PerMinute),
    ("pr_ms", codes.MDC.PRIntervalGlobal, codes.UCUM.Millisecond),
    ("qrs_ms", codes.MDC.QRSDurationGlobal, codes.UCUM.Millisecond),
    ("qt_ms", codes.MDC.QTIntervalGlobal, codes.UCUM.Millisecond),
    ("rr_ms", codes.MDC.RRIntervalGlobal, codes.UCUM.Millisecond),
    ("qtc_bazett_ms", codes.MDC.QtcGlobalUsingBazettFormula, codes.UCUM.Millisecond),
    ("p_axis_deg", codes.MDC.PAxis, codes.UCUM.Degree),
    ("qrs_axis_deg", codes.MDC.QRSAxis, codes.UCUM.Degree),
    ("t_axis_deg", codes.MDC.TAxis, codes.UCUM.Degree),
)


def ecg_report_sr(package: ReportPackage) -> bytes:
    """The TID 3700 Comprehensive SR of this report, as a Part 10 file."""
    report = package.report
    ds = report_dataset(
        package, COMPREHENSIVE_SR_STORAGE, "SR", object_uids(package, "sr"), series_number=902
    )
    ds.CompletionFlag = "COMPLETE"
    if is_confirmed(report):
        ds.VerificationFlag = "VERIFIED"
        ds.VerifyingObserverSequence = [_verifier(report.confirmation, package)]
        ds.PreliminaryFlag = "FINAL"
    else:
        ds.VerificationFlag = "UNVERIFIED"  # a machine report no physician has confirmed
        ds.PreliminaryFlag = "PRELIMINARY"
    if package.order is not None:
        ds.ReferencedRequestSequence = [_request(package.order, ds.StudyInstanceUID)]
    ds.PerformedProcedureCodeSequence = []
    ds.ReferencedPerformedProcedureStepSequence = []
    if package.replaces is not None:
        ds.PredecessorDocumentsSequence = [_predecessor(package)]
    evidence = _evidence(package)
    if evidence is not None:
        ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(ECG_REPORT)]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "3700"
    ds.ContentTemplateSequence = [template]
    ds.ContentSequence = [
        *_observer(report),
        _container(codes.DCM.QuantitativeAnalysis, [_global_measurements(report)]),
        _container(codes.DCM.QualitativeAnalysis, _findings(report)),
        _container(codes.DCM.Summary, _summary(report)),
    ]
    return part10_bytes(ds)


def _observer(report: Report) -> list[Dataset]:
    """TID 1004 device observer: what produced the report (every report says so)."""
    engine = f"{report.engine.name} {report.engine.version}"
    uid = f"2.25.{uuid.uuid5(_OBSERVER_NAMESPACE, engine).int}"
    return [
        _item("CODE", codes.DCM.ObserverType, "HAS OBS CONTEXT", code=codes.DCM.Device),
        _item("UIDREF", codes.DCM.DeviceObserverUID, "HAS OBS CONTEXT", uid=uid),
        _item("TEXT", codes.DCM.DeviceObserverName, "HAS OBS CONTEXT", text=MANUFACTURER),
        _item("TEXT", codes.DCM.DeviceObserverManufacturer, "HAS OBS CONTEXT", text=MANUFACTURER),
        _item(
            "TEXT",
            codes.DCM.DeviceObserverModelName,
            "HAS OBS CONTEXT",
            text=f"engine {engine}",
        ),
    ]


def _verifier(confirmation: Confirmation, package: ReportPackage) -> Dataset:
    """The physician who confirmed the report: name, id (a local code), organisation (the
    ECG's institution, else the gateway whose over-read it was) and time."""
    verifier = Dataset()
    verifier.VerifyingObserverName = confirmation.physician_name or confirmation.physician_id
    verifier.VerifyingObserverIdentificationCodeSequence = [
        _code_value(confirmation.physician_id, USER_CODING_SCHEME, confirmation.physician_id)
    ]
    verifier.VerifyingOrganization = package.metadata.institution_name or MANUFACTURER
    verifier.VerificationDateTime = confirmation.confirmed_at.strftime("%Y%m%d%H%M%S%z")
    return verifier


def _request(order: OrderReference, study_uid: str) -> Dataset:
    """The order the ECG was made for (SR Document General module), type 2 attributes
    present even when empty."""
    request = Dataset()
    request.StudyInstanceUID = study_uid
    request.ReferencedStudySequence = []
    request.AccessionNumber = _fitting(order.accession_number, _SH_MAX)
    request.PlacerOrderNumberImagingServiceRequest = _fitting(order.placer_order_number, _LO_MAX)
    request.OrderPlacerIdentifierSequence = _issuer(order.placer_authority)
    request.FillerOrderNumberImagingServiceRequest = _fitting(order.filler_order_number, _LO_MAX)
    request.OrderFillerIdentifierSequence = _issuer(order.filler_authority)
    request.RequestedProcedureID = ""
    request.RequestedProcedureDescription = order.procedure_text[:_LO_MAX]
    scheme = _PROCEDURE_SCHEMES.get(order.procedure_coding_system.strip().upper())
    meaning = order.procedure_text or order.procedure_code
    request.RequestedProcedureCodeSequence = (
        [_code_value(order.procedure_code, scheme, meaning)]
        if order.procedure_code and scheme
        else []
    )
    return request


def _fitting(identifier: str, limit: int) -> str:
    """An identifier as it is, or empty (these are type 2) when it is longer than its VR
    allows: a cut identifier would name another order; HL7 and FHIR carry it whole."""
    return identifier if len(identifier) <= limit else ""


def _issuer(namespace: str) -> list[Dataset]:
    """An HL7 namespace as an HL7v2 Hierarchic Designator macro (local namespace only)."""
    if not namespace:
        return []
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = namespace
    return [issuer]


def _code_value(value: str, scheme: str, meaning: str) -> Dataset:
    """A code item whose value may be longer than CodeValue's 16 characters."""
    item = Dataset()
    if len(value) > _CODE_VALUE_MAX:
        item.LongCodeValue = value
    else:
        item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning[:_CODE_MEANING_MAX]
    return item


def _global_measurements(report: Report) -> Dataset:
    values = report.measurements
    items = [
        _num(concept, getattr(values, key), unit)
        for key, concept, unit in GLOBAL_MEASUREMENTS
        if getattr(values, key) is not None
    ]
    return _container(codes.DCM.ECGGlobalMeasurements, items)


def _findings(report: Report) -> list[Dataset]:
    """One finding per statement: SNOMED CT coded where the statement has a code, its
    text otherwise; never dropped."""
    items = []
    for statement in report.statements:
        if statement.snomed:
            finding = Code(statement.snomed, SNOMED, statement.text[:_CODE_MEANING_MAX])
            items.append(_item("CODE", codes.DCM.Finding, "CONTAINS", code=finding))
        else:
            text = f"{statement.text} ({statement.code})"
            items.append(_item("TEXT", codes.DCM.Finding, "CONTAINS", text=text))
    for finding in report.critical:
        items.append(_item("TEXT", codes.DCM.Finding, "CONTAINS", text=critical_line(finding)))
    return items


def _summary(report: Report) -> list[Dataset]:
    items = []
    if report.impression:
        items.append(_item("TEXT", codes.DCM.Impression, "CONTAINS", text=report.impression))
    if report.comparison is not None and report.comparison.statements:
        lines = "; ".join(comparison_line(s) for s in report.comparison.statements)
        text = f"Compared with the prior ECG: {lines}."
        items.append(_item("TEXT", codes.DCM.Comment, "CONTAINS", text=text))
    notes = technical_notes(report.warnings)
    if notes:
        items.append(_item("TEXT", codes.DCM.Comment, "CONTAINS", text=notes))
    return items


def _evidence(package: ReportPackage) -> Dataset | None:
    """The ECG the report is of, when its UIDs are known."""
    meta = package.metadata
    if not (meta.study_instance_uid and meta.series_instance_uid and meta.sop_class_uid):
        return None
    return _reference(
        meta.study_instance_uid,
        meta.series_instance_uid,
        meta.sop_class_uid,
        package.sop_instance_uid,
    )


def _predecessor(package: ReportPackage) -> Dataset:
    """The SR this version supersedes (the one last sent to this destination): an
    archive or viewer can mark it replaced (PS3.3 C.17.2.3)."""
    uids = object_uids(package, "sr", package.replaces)
    return _reference(uids.study, uids.series, COMPREHENSIVE_SR_STORAGE, uids.instance)


def _reference(study_uid: str, series_uid: str, sop_class: str, sop_instance: str) -> Dataset:
    """A hierarchical SOP instance reference (study > series > instance)."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = sop_class
    instance.ReferencedSOPInstanceUID = sop_instance
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedSOPSequence = [instance]
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = [series]
    return study


def _container(concept: Code, children: list[Dataset]) -> Dataset:
    item = _item("CONTAINER", concept, "CONTAINS")
    item.ContinuityOfContent = "SEPARATE"
    if children:
        item.ContentSequence = children
    return item


def _num(concept: Code, value: float, unit: Code) -> Dataset:
    measured = Dataset()
    measured.NumericValue = f"{round(float(value), 1):g}"
    measured.MeasurementUnitsCodeSequence = [_code(unit)]
    item = _item("NUM", concept, "CONTAINS")
    item.MeasuredValueSequence = [measured]
    return item


def _item(
    value_type: str,
    concept: Code,
    relationship: str,
    *,
    code: Code | None = None,
    text: str | None = None,
    uid: str | None = None,
) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(concept)]
    if code is not None:
        item.ConceptCodeSequence = [_code(code)]
    if text is not None:
        item.TextValue = text
    if uid is not None:
        item.UID = uid
    return item


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item
