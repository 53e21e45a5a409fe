"""ECG interpretation: the ECG type, decoders, rendering, measurement, engines.

Public API (other parts and outside checks call these; keep the names):
    load(path) -> Ecg
    render_png(ecg, dpi=200, header=False) -> bytes
    render_pdf(ecg, header=True) -> bytes
    analyze(ecg, rules=DEFAULT_RULES) -> Report
"""

from model.decode import load
from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata
from model.errors import EcgDecodeError
from model.render import render_pdf, render_png
from model.report import Report
from model.rule_engine import analyze
from model.rule_settings import DEFAULT_RULES, RuleSettings

__all__ = [
    "DEFAULT_RULES",
    "STANDARD_LEADS",
    "Ecg",
    "EcgDecodeError",
    "EcgMetadata",
    "Report",
    "RuleSettings",
    "analyze",
    "load",
    "render_pdf",
    "render_png",
]
