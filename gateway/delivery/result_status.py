"""What a report's status, confirmation and critical findings mean in every output format,
decided once so HL7, FHIR and the DICOM SR can never disagree about whether a result is
preliminary, final or a correction, or about which of its rows a critical finding is about.
"""

from __future__ import annotations

from datetime import datetime

from model.report import Report, WithdrawnFinding, WithdrawnKind

# HL7 v2.5.1 table 0085 (OBR-25, OBX-11)
HL7_PRELIMINARY = "P"
HL7_FINAL = "F"
HL7_CORRECTED = "C"  # replaces a result already sent (a correction, or a change after final)
HL7_DELETED = "D"  # deletes the OBX record: a finding an earlier version sent, withdrawn
# FHIR R4 Observation.status of a finding an earlier version sent and this one withdrew
FHIR_WITHDRAWN = "entered-in-error"
# HL7 v2.5.1 table 0078 (OBX-8): AA "very abnormal", the flag receivers raise alerts on; a
# rule says a finding is critical, not in which direction, so HH/LL are not claimed.
HL7_CRITICAL_FLAG = "AA"
# FHIR v3-ObservationInterpretation, the same meaning as HL7 AA
FHIR_INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
FHIR_CRITICAL = ("AA", "Critical abnormal")


def is_confirmed(report: Report) -> bool:
    """A physician confirmed it: final, or corrected or amended after final."""
    return report.status != "preliminary" and report.confirmation is not None


def is_update(report: Report) -> bool:
    """The report replaces one already sent for the same ECG (the EHR replaces, never
    duplicates): a correction of the object, or any status after preliminary."""
    return report.is_correction or report.status != "preliminary"


def hl7_result_status(report: Report) -> str:
    """OBR-25 / OBX-11: C for a correction or a change after final, F for final, else P."""
    if report.is_correction or report.status in ("corrected", "amended"):
        return HL7_CORRECTED
    return HL7_FINAL if report.status == "final" else HL7_PRELIMINARY


def issued_at(report: Report) -> datetime:
    """When this version was issued: the confirmation for a confirmed report (HL7 OBR-22,
    FHIR issued, the SR's verification), the machine's report time otherwise."""
    return report.confirmation.confirmed_at if is_confirmed(report) else report.created_at


def critical_subjects(report: Report) -> frozenset[str]:
    """The measurement keys and statement codes the report's critical findings are about:
    the names in each finding's `values` and the codes in its text values, as the rules
    write them (gateway/routing/critical.py: {"heart_rate_bpm": 132, "codes": "AFIB,AFLT"})."""
    subjects: set[str] = set()
    for finding in report.critical:
        subjects.update(finding.values)
        for value in finding.values.values():
            if isinstance(value, str):
                subjects.update(code.strip() for code in value.split(","))
    return frozenset(subjects)


def withdrawn(report: Report, kind: WithdrawnKind) -> list[WithdrawnFinding]:
    """The findings of one kind an earlier version sent and this one withdrew (a
    physician's edit): each output retracts them where the EHR keeps them apart."""
    return [finding for finding in report.withdrawn if finding.kind == kind]
