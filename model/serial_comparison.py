"""Serial comparison: what changed since the patient's previous ECG, each with both values.

A pure function of two reports, so it runs the same on a prior from the gateway's own
store or from a DICOM archive. Compared: the rhythm (new or resolved, by the SCP rhythm
codes; the sinus variants SR/SBRAD/STACH/SARRH count as one sinus rhythm, as their
difference is the heart rate, compared on its own), bundle branch blocks (new or
resolved), and three measurements whose change reaches a threshold: QRS axis, QTc and
heart rate. The defaults and where they come from: docs/serial-comparison.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import Field

from model.report import Comparison, ComparisonStatement, Report
from model.rhythm_statements import NORMAL_RHYTHM_CODES
from model.scp_statements import STATEMENTS
from model.settings import StrictSettings

RHYTHM_CODES = frozenset(code for code, s in STATEMENTS.items() if s.kind == "rhythm")
BUNDLE_BRANCH_BLOCK_CODES = frozenset({"CLBBB", "CRBBB", "ILBBB", "IRBBB"})
SINUS = "SR"
NO_CHANGE = "NO_CHANGE"


class ComparisonThresholds(StrictSettings):
    """A measurement change is stated when it is at least this large."""

    qrs_axis_deg: float = Field(45.0, gt=0, description="QRS axis shift, degrees")
    qtc_ms: float = Field(60.0, gt=0, description="QTc change, ms (ICH E14's 60 ms)")
    heart_rate_bpm: float = Field(20.0, gt=0, description="heart rate change, /min")
    qtc: Literal["fridericia", "bazett"] = Field(
        "fridericia", description="which QTc is compared (the engine's LNGQT uses Fridericia)"
    )


class Prior(NamedTuple):
    """The previous ECG's report, and which ECG it was (by UID and time: no patient data)."""

    report: Report
    sop_instance_uid: str
    acquired_at: datetime | None = None


def compare(
    current: Report, prior: Prior, limits: ComparisonThresholds | None = None
) -> Comparison | None:
    """The comparison statements of `current` against `prior`; a NO_CHANGE statement
    naming what was compared when nothing reached a threshold, so a reader knows the
    comparison was made. None when the two have nothing in common to compare (a prior
    read from a page without statements or measurements): no claim is made then."""
    limits = limits or ComparisonThresholds()
    before = prior.report
    compared = _comparable(current, before, limits)
    if not compared:
        return None
    statements: list[ComparisonStatement] = []
    if current.statements and before.statements:  # a page without statements says nothing
        statements += _rhythm_changes(current, before)
        statements += _block_changes(current, before)
    statements += _measurement_changes(current, before, limits)
    if not statements:
        statements = [
            ComparisonStatement(
                code=NO_CHANGE,
                text=f"No change beyond the comparison thresholds in {', '.join(compared)}",
            )
        ]
    return Comparison(
        prior_sop_instance_uid=prior.sop_instance_uid,
        prior_acquired_at=prior.acquired_at,
        statements=statements,
    )


def _comparable(current: Report, before: Report, limits: ComparisonThresholds) -> list[str]:
    """What both reports state or measure, in words."""
    aspects = []
    if current.statements and before.statements:
        if _rhythms(current) and _rhythms(before):
            aspects.append("rhythm")
        aspects.append("bundle branch block")
    qtc_key = f"qtc_{limits.qtc}_ms"
    for key, words in (
        ("qrs_axis_deg", "QRS axis"),
        (qtc_key, "QTc"),
        ("heart_rate_bpm", "heart rate"),
    ):
        if _both(getattr(current.measurements, key), getattr(before.measurements, key)):
            aspects.append(words)
    return aspects


def _rhythms(report: Report) -> list[str]:
    """The report's rhythm codes in its order, sinus variants as one sinus rhythm."""
    codes = [SINUS if code in NORMAL_RHYTHM_CODES else code for code in report.codes]
    return list(dict.fromkeys(code for code in codes if code in RHYTHM_CODES))


def _describe(codes: list[str]) -> str:
    return ", ".join(_name(code) for code in codes) or "none"


def _name(code: str) -> str:
    return "sinus rhythm" if code == SINUS else STATEMENTS[code].description


def _rhythm_changes(current: Report, prior: Report) -> list[ComparisonStatement]:
    now, before = _rhythms(current), _rhythms(prior)
    return _code_changes("RHYTHM", now, before) if now and before else []


def _block_changes(current: Report, prior: Report) -> list[ComparisonStatement]:
    blocks = [[c for c in r.codes if c in BUNDLE_BRANCH_BLOCK_CODES] for r in (current, prior)]
    return _code_changes("BBB", *blocks)


def _code_changes(kind: str, now: list[str], before: list[str]) -> list[ComparisonStatement]:
    """NEW_<kind> for each code only `now` states, RESOLVED_<kind> for each only `before`."""
    new = [
        ComparisonStatement(
            code=f"NEW_{kind}",
            text=f"{_name(code).capitalize()} is new (previously {_describe(before)})",
            current=code,
            prior=",".join(before) or None,
        )
        for code in now
        if code not in before
    ]
    resolved = [
        ComparisonStatement(
            code=f"RESOLVED_{kind}",
            text=f"{_name(code).capitalize()} is no longer present (now {_describe(now)})",
            current=",".join(now) or None,
            prior=code,
        )
        for code in before
        if code not in now
    ]
    return new + resolved


def _measurement_changes(
    current: Report, prior: Report, limits: ComparisonThresholds
) -> list[ComparisonStatement]:
    now, before = current.measurements, prior.measurements
    qtc_key = f"qtc_{limits.qtc}_ms"
    changes = []
    axis = _both(now.qrs_axis_deg, before.qrs_axis_deg)
    if axis is not None and abs(_angle_between(*axis)) >= limits.qrs_axis_deg:
        shift = _angle_between(*axis)
        changes.append(
            ComparisonStatement(
                code="AXIS_SHIFT",
                text=f"QRS axis shifted by {shift:+.0f} degrees "
                f"({axis[1]:.0f} -> {axis[0]:.0f} degrees)",
                current=axis[0],
                prior=axis[1],
            )
        )
    qtc = _both(getattr(now, qtc_key), getattr(before, qtc_key))
    changes += _level_change("QTC", f"QTc ({limits.qtc.capitalize()})", qtc, limits.qtc_ms, " ms")
    rate = _both(now.heart_rate_bpm, before.heart_rate_bpm)
    changes += _level_change("RATE", "Heart rate", rate, limits.heart_rate_bpm, "/min")
    return changes


def _level_change(
    stem: str, label: str, values: tuple[float, float] | None, limit: float, unit: str
) -> list[ComparisonStatement]:
    """<stem>_INCREASED or _DECREASED when the value moved by at least `limit`."""
    if values is None or abs(values[0] - values[1]) < limit:
        return []
    current, prior = values
    word = "increased" if current > prior else "decreased"
    return [
        ComparisonStatement(
            code=f"{stem}_{word.upper()}",
            text=f"{label} {word} by {abs(current - prior):.0f}{unit} "
            f"({prior:.0f} -> {current:.0f}{unit})",
            current=current,
            prior=prior,
        )
    ]


def _both(current: float | None, prior: float | None) -> tuple[float, float] | None:
    return None if current is None or prior is None else (float(current), float(prior))


def _angle_between(current: float, prior: float) -> float:
    """The signed shortest turn from `prior` to `current`, in -180..180 degrees (an axis
    of 170 and one of -170 are 20 degrees apart, not 340)."""
    return (current - prior + 180.0) % 360.0 - 180.0
