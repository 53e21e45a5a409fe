"""The structured report: the one object every downstream part (routing, FHIR,
HL7, file outbox) consumes. Key names are a public interface; keep them stable.

The report carries no patient data: deliverers join it with the ECG's metadata
at the last moment, so a report can be logged or shown to a model safely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MEASUREMENT_KEYS: tuple[str, ...] = (
    "heart_rate_bpm",
    "rr_ms",
    "p_duration_ms",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_bazett_ms",
    "qtc_fridericia_ms",
    "p_axis_deg",
    "qrs_axis_deg",
    "t_axis_deg",
)

SourceKind = Literal["ecg-waveform", "secondary-capture", "pdf"]
# preliminary: the machine's report; final: a physician confirmed it; corrected: changed
# after it was final (HL7 C); amended: information added after final (FHIR "amended").
ReportStatus = Literal["preliminary", "final", "corrected", "amended"]


class Measurements(BaseModel):
    """Global measurements; None means 'not reliably measurable', never zero."""

    model_config = ConfigDict(extra="forbid")

    heart_rate_bpm: float | None = None
    rr_ms: float | None = None
    p_duration_ms: float | None = None
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    p_axis_deg: float | None = None
    qrs_axis_deg: float | None = None
    t_axis_deg: float | None = None


class Evidence(BaseModel):
    """Why a statement fired: the criterion in words and the values it used."""

    criterion: str
    values: dict[str, float | int | str | None] = Field(default_factory=dict)


class Statement(BaseModel):
    code: str = Field(description="SCP-ECG statement code as used by PTB-XL, e.g. 'AFIB'")
    text: str
    snomed: str | None = None
    evidence: Evidence | None = None


class EngineInfo(BaseModel):
    name: str
    version: str


class SourceInfo(BaseModel):
    kind: SourceKind = "ecg-waveform"
    format: str = "unknown"
    leads: list[str] = Field(default_factory=list)
    sampling_rate_hz: float | None = None
    duration_s: float | None = None
    quality_flags: list[str] = Field(default_factory=list)


class Confirmation(BaseModel):
    """Who confirmed (over-read) the report and when: the results interpreter."""

    physician_id: str = Field(description="the physician's user name or staff number")
    physician_name: str = Field("", description="DICOM PN form: Family^Given^Middle")
    confirmed_at: datetime


class ComparisonStatement(BaseModel):
    """One difference from the patient's prior ECG, with both values."""

    code: str = Field(description="e.g. NEW_RHYTHM, RESOLVED_RHYTHM, NEW_BBB, AXIS_SHIFT")
    text: str
    current: float | str | None = None
    prior: float | str | None = None


class Comparison(BaseModel):
    """Serial comparison with the patient's previous ECG (identified by UID, no PHI)."""

    prior_sop_instance_uid: str
    prior_acquired_at: datetime | None = None
    statements: list[ComparisonStatement] = Field(default_factory=list)


class CriticalFinding(BaseModel):
    """A critical-result rule (routes.yaml) that fired, with the values it used."""

    rule: str
    text: str
    values: dict[str, float | int | str | None] = Field(default_factory=dict)


# what a physician removed: a coded statement, a measurement set to null, a critical
# finding that no longer holds, the impression emptied, or a comparison statement (by
# its position) that the confirmed reading no longer supports
WithdrawnKind = Literal["statement", "measurement", "critical", "impression", "comparison"]


class WithdrawnFinding(BaseModel):
    """A finding an earlier version of this report sent and this version no longer holds:
    the outputs retract it where the EHR keeps it apart from the report (FHIR Observation
    entered-in-error, HL7 OBX-11 D), so no query finds it as a current finding."""

    model_config = ConfigDict(extra="forbid")

    kind: WithdrawnKind
    key: str = Field(
        "",
        description="statement code, measurement key, critical rule or comparison position;"
        " '' for impression",
    )
    text: str = Field("", description="the statement's or critical finding's text as sent")


class Report(BaseModel):
    """A machine report, preliminary until a physician confirms it (then final, and
    corrected or amended if changed after that; `version` counts the versions sent)."""

    measurements: Measurements = Field(default_factory=Measurements)
    null_reasons: dict[str, str] = Field(
        default_factory=dict, description="measurement key -> why it is null"
    )
    statements: list[Statement] = Field(default_factory=list)
    impression: str = ""
    status: ReportStatus = "preliminary"
    version: int = Field(1, ge=1)
    confirmation: Confirmation | None = None
    comparison: Comparison | None = None
    critical: list[CriticalFinding] = Field(default_factory=list)
    withdrawn: list[WithdrawnFinding] = Field(
        default_factory=list, description="sent by an earlier version, absent from this one"
    )
    engine: EngineInfo
    source: SourceInfo = Field(default_factory=SourceInfo)
    warnings: list[str] = Field(default_factory=list)
    generated_text: str | None = None
    is_correction: bool = False
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def codes(self) -> list[str]:
        return [s.code for s in self.statements]
