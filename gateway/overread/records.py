"""What the over-read service takes and returns: the user acting, and the report as the
report view shows it. WorklistEntry and Change are the store's records, used as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.store.report_records import Change, WorklistEntry
from model.ecg import EcgMetadata
from model.report import Report

Role = Literal["reader", "physician", "admin"]
# Who may confirm or correct a report: a physician. An admin manages users and the
# gateway, a reader reads; neither signs a clinical result.
CONFIRM_ROLES: tuple[Role, ...] = ("physician",)


@dataclass(frozen=True)
class Physician:
    """The signed-in user acting (the web application's login decides who it is)."""

    user_id: str
    name: str  # DICOM PN form: Family^Given
    role: Role

    @property
    def may_confirm(self) -> bool:
        return self.role in CONFIRM_ROLES


@dataclass(frozen=True)
class VersionInfo:
    version: int
    status: str
    created_by: str  # "" for the machine's preliminary report
    created_at: float


@dataclass(frozen=True)
class ReportView:
    """One report as the report view shows it: its latest version (confirm with
    `version` as base_version), the patient and acquisition, the pages (the PDF is that
    of the latest version), every version and every change."""

    job_id: int
    report: Report
    metadata: EcgMetadata  # patient name, ID, birth date, sex, acquisition time
    kind: str  # ecg-waveform, secondary-capture, pdf
    pdf: bytes | None
    png: bytes | None
    versions: list[VersionInfo]
    history: list[Change]
    entry: WorklistEntry

    @property
    def version(self) -> int:
        return self.report.version


__all__ = [
    "CONFIRM_ROLES",
    "Change",
    "Physician",
    "ReportView",
    "Role",
    "VersionInfo",
    "WorklistEntry",
]
