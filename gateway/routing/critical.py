"""Which critical-result rules (routes.yaml `critical:`) a report meets.

A pure function of the rules and the report, run by the pipeline before the report is
packaged, so the finding travels with the preliminary report (HL7 OBX-8, FHIR
Observation.interpretation, the worklist's order) and the notifier reads it from there.
"""

from __future__ import annotations

from gateway.routing.critical_schema import CriticalRule
from model.report import CriticalFinding, Report


def critical_findings(rules: list[CriticalRule], report: Report) -> list[CriticalFinding]:
    """One finding per rule the report meets, in the rules' order, with the statement
    codes and measurements that made it fire."""
    return [finding for rule in rules if (finding := _finding(rule, report)) is not None]


def _finding(rule: CriticalRule, report: Report) -> CriticalFinding | None:
    present = [code.upper() for code in report.codes]
    matched = [code for code in present if code in (rule.codes or [])]
    if rule.codes and not matched:
        return None
    if any(code in rule.without_codes for code in present):
        return None
    measured = report.measurements.model_dump()
    if not all(limit.holds(measured[key]) for key, limit in rule.measurements.items()):
        return None
    values: dict[str, float | int | str | None] = {key: measured[key] for key in rule.measurements}
    if matched:
        values["codes"] = ",".join(matched)
    return CriticalFinding(rule=rule.name, text=rule.text, values=values)
