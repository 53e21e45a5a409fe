"""`ecg-gateway routes test INPUT`: decode and analyze one input the way the pipeline
does, then show which rules match and where the report would go. Sends nothing."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

import model
from gateway.intake.accept import KIND_BY_SOP_CLASS, WAVEFORM
from gateway.processing.package import Association, ReportPackage
from gateway.processing.received_pages import read_image_object
from gateway.routing import MatchContext, RoutesConfig, critical_findings, decide, explain
from gateway.store.order_records import OrderReference
from model.statement_limits import DEFAULT_LIMITS, StatementLimits


def package_for_input(
    path: Path,
    association: Association,
    limits: StatementLimits = DEFAULT_LIMITS,
    order: OrderReference | None = None,
) -> ReportPackage:
    """The report package the pipeline would build (without rendering: routing needs
    none), matched to `order` where one is given."""
    kind = _dicom_kind(path) or WAVEFORM
    if kind == WAVEFORM:
        ecg = model.load(path)
        return ReportPackage(
            job_id=0,
            kind=kind,
            metadata=ecg.metadata,
            report=model.analyze(ecg, limits),
            association=association,
            order=order,
        )
    image = read_image_object(path, kind)
    return ReportPackage(
        job_id=0,
        kind=kind,
        metadata=image.metadata,
        report=image.report,
        association=association,
        order=order,
    )


def format_route_test(package: ReportPackage, config: RoutesConfig) -> str:
    """Rules, matches and destinations; no patient data."""
    ctx = MatchContext.of(package)
    lines = [
        f"object:      {package.kind}, SOP Instance UID {package.metadata.sop_instance_uid or '-'}",
        (
            f"from:        calling AE {ctx.calling_ae or '-'}, called AE {ctx.called_ae or '-'}, "
            f"source {ctx.source or '-'}"
        ),
        (
            f"modality:    {ctx.modality or '-'}, institution {ctx.institution or '-'}, "
            f"station {ctx.station or '-'}"
        ),
        (
            f"order:       priority {ctx.priority or '-'}, facility {ctx.ordering_facility or '-'}, "
            f"procedure {ctx.procedure_code or '-'}"
        ),
        f"statements:  {', '.join(sorted(ctx.statement_codes)) or '-'}",
        f"critical:    {_critical(package, config)}",
        "rules:",
    ]
    decision = decide(config, ctx)
    for rule, matched in explain(config, ctx):
        verdict = "match" if matched else "-"
        if matched and rule.name not in decision.matched_rules:
            verdict = "match (not reached)"
        suffix = ", continue" if rule.continue_ else ""
        lines.append(f"  {verdict:<20} {rule.name} -> {', '.join(rule.destinations)}{suffix}")
    if not config.rules:
        lines.append("  (none)")
    lines.append(
        f"default:     {'applies' if decision.used_default else 'not used'} "
        f"-> {', '.join(config.default)}"
    )
    lines.append("destinations:")
    for name in decision.destinations:
        lines.append(f"  {name:<20} {_describe(config, name)}")
    return "\n".join(lines)


def _critical(package: ReportPackage, config: RoutesConfig) -> str:
    """The critical rules the report meets, and who would be told."""
    findings = critical_findings(config.critical.active_rules, package.report)
    if not findings:
        return "-"
    told = ", ".join(config.critical.notify) or "nobody (no notify targets)"
    return f"{', '.join(f.rule for f in findings)} -> {told}"


def _describe(config: RoutesConfig, name: str) -> str:
    destination = config.destinations[name]
    if destination.type == "file":
        return f"file   {destination.directory} ({', '.join(destination.formats)})"
    return f"{destination.type:<6} {destination.endpoint}"


def _dicom_kind(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError):
        return None
    return KIND_BY_SOP_CLASS.get(str(ds.get("SOPClassUID", "")))
