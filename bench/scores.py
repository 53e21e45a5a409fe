"""Precision, recall and F1 of a statement against labels: the count every accuracy
row of bench/measure_accuracy.py and bench/measure_rhythm.py prints."""

from __future__ import annotations

from dataclasses import dataclass


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
