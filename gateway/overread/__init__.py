"""Physician over-read: the worklist of reports awaiting confirmation, confirming and
correcting a report (a new version, routed and delivered like the preliminary one),
and the history of every change. The web application (gateway/web) is its user."""

from gateway.overread.catalogue import CatalogueEntry, statement_catalogue
from gateway.overread.edits import ReportEdit, StatementEdit, control_character
from gateway.overread.errors import (
    Conflict,
    InvalidEdit,
    NotFound,
    OverreadError,
    PermissionDenied,
    Unavailable,
)
from gateway.overread.records import (
    CONFIRM_ROLES,
    Change,
    Physician,
    ReportView,
    VersionInfo,
    WorklistEntry,
)
from gateway.overread.service import OverreadService

__all__ = [
    "CONFIRM_ROLES",
    "CatalogueEntry",
    "Change",
    "Conflict",
    "InvalidEdit",
    "NotFound",
    "OverreadError",
    "OverreadService",
    "PermissionDenied",
    "Physician",
    "ReportEdit",
    "ReportView",
    "StatementEdit",
    "Unavailable",
    "VersionInfo",
    "WorklistEntry",
    "control_character",
    "statement_catalogue",
]
