"""Named example reports for any test: what the rule engine reports for a normal sinus
ECG and for atrial fibrillation with a long QT; the latter critical and compared with a
prior ECG; and any of them as a physician confirmed it."""

from __future__ import annotations

from datetime import UTC, datetime

from model.report import (
    Comparison,
    ComparisonStatement,
    Confirmation,
    CriticalFinding,
    EngineInfo,
    Evidence,
    Measurements,
    Report,
    ReportStatus,
    Statement,
)


def afib_report() -> Report:
    """What the rule engine reports for atrial fibrillation with a long QT."""
    return Report(
        measurements=Measurements(
            heart_rate_bpm=112.4,
            rr_ms=534.0,
            qrs_ms=96.0,
            qt_ms=402.0,
            qtc_bazett_ms=550.2,
            qtc_fridericia_ms=497.0,
            qrs_axis_deg=-12.0,
            t_axis_deg=48.0,
        ),
        null_reasons={
            "pr_ms": "no consistent P waves (atrial fibrillation)",
            "p_axis_deg": "no consistent P waves",
            "p_duration_ms": "no P waves",
        },
        statements=[
            Statement(
                code="AFIB",
                text="Atrial fibrillation",
                snomed="164889003",
                evidence=Evidence(criterion="irregular RR without P waves", values={"rr_cv": 0.21}),
            ),
            Statement(code="LNGQT", text="Long QT interval", snomed="111975006"),
            Statement(code="ISC_", text="Non-specific ischemic changes"),
        ],
        impression="Atrial fibrillation with rapid ventricular response. Long QT.",
        engine=EngineInfo(name="measure", version="test"),
    )


def sinus_report() -> Report:
    """What the rule engine reports for a normal ECG in sinus rhythm."""
    return Report(
        measurements=Measurements(
            heart_rate_bpm=64.0,
            rr_ms=938.0,
            p_duration_ms=104.0,
            pr_ms=156.0,
            qrs_ms=88.0,
            qt_ms=392.0,
            qtc_bazett_ms=405.0,
            qtc_fridericia_ms=400.0,
            p_axis_deg=52.0,
            qrs_axis_deg=38.0,
            t_axis_deg=41.0,
        ),
        statements=[
            Statement(code="SR", text="Sinus rhythm", snomed="426783006"),
            Statement(code="NORM", text="Normal ECG"),
        ],
        impression="Sinus rhythm. Normal ECG.",
        engine=EngineInfo(name="measure", version="test"),
    )


# A physician's confirmation (the over-read), for reports in their final states.
CONFIRMATION = Confirmation(
    physician_id="dr.jones",
    physician_name="Jones^Alice^M^Dr",
    confirmed_at=datetime(2026, 12, 6, 21, 30, 5, tzinfo=UTC),
)


def confirmed(report: Report, status: ReportStatus = "final", version: int = 2) -> Report:
    """The report as a physician confirmed it (final), or changed it after final."""
    return report.model_copy(
        update={"status": status, "version": version, "confirmation": CONFIRMATION}
    )


def critical_afib_report() -> Report:
    """Atrial fibrillation at 112/min with a QTc of 550 ms: two critical-result rules fire,
    and the serial comparison finds the rhythm new and the QTc longer than on the prior ECG."""
    return afib_report().model_copy(
        update={
            "critical": [
                CriticalFinding(
                    rule="afib_rvr",
                    text="Atrial fibrillation with ventricular rate over 110/min",
                    values={"statement": "AFIB", "heart_rate_bpm": 112.4},
                ),
                CriticalFinding(
                    rule="qtc_500",
                    text="QTc 550 ms (500 ms or more)",
                    values={"qtc_bazett_ms": 550.2},
                ),
            ],
            "comparison": Comparison(
                prior_sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
                prior_acquired_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
                statements=[
                    ComparisonStatement(
                        code="NEW_RHYTHM",
                        text="Atrial fibrillation is new",
                        current="AFIB",
                        prior="SR",
                    ),
                    ComparisonStatement(
                        code="QTC_CHANGE", text="QTc longer by 119 ms", current=550.2, prior=431.0
                    ),
                ],
            ),
        }
    )
