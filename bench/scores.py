"""What the accuracy benches (bench/measure_accuracy.py, measure_rhythm.py and their
parts) share: precision, recall and F1 of a statement against labels, the interval
names, and how a value or a list of differences is printed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Global intervals: the bench's short key -> the Measurements field, and its label.
INTERVAL_KEYS = {"p": "p_duration_ms", "pr": "pr_ms", "qrs": "qrs_ms", "qt": "qt_ms"}
INTERVAL_LABELS = {"p": "P duration", "pr": "PR", "qrs": "QRS", "qt": "QT"}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, actual: bool) -> None:
        self.tn += not predicted and not actual
        self.tp += predicted and actual
        self.fp += predicted and not actual
        self.fn += actual and not predicted

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def summary(self) -> str:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")
        return f"P {precision:.2f} R {recall:.2f} F1 {self.f1:.2f} (n+ {self.tp + self.fn})"

    @classmethod
    def of(cls, pairs: list[tuple[bool, bool]]) -> Counts:
        """From (predicted, actual) pairs."""
        counts = cls()
        for predicted, actual in pairs:
            counts.add(predicted, actual)
        return counts


def fmt_value(value: float | None) -> str:
    """A measurement as the tables print it: whole units, or null."""
    return "null" if value is None else f"{value:.0f}"


def mean_sd(values: list[float]) -> str:
    """Mean ± SD of the differences, or n/a with fewer than two."""
    if len(values) < 2:
        return "n/a"
    return f"{np.mean(values):+.1f} ± {np.std(values, ddof=1):.1f}"
