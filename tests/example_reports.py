"""Named example reports for any test: what the rule engine reports for a normal sinus
ECG and for atrial fibrillation with a long QT."""

from __future__ import annotations

from model.report import EngineInfo, Evidence, Measurements, Report, Statement


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
