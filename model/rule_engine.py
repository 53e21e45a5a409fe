"""PLACEHOLDER: replaced by the measurement work."""
from model.ecg import Ecg
from model.report import Report


def analyze(ecg: Ecg) -> Report:
    raise NotImplementedError
