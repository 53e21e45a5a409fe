"""Premature beats named by origin with their counts, and a bigeminal or trigeminal
pattern of them (from the beat-by-beat analysis, model.measure.rhythm): what is stated
beside the rhythm that model.rhythm_statements names.
"""

from __future__ import annotations

from model.beats import PREMATURE_FRACTION
from model.measure import EcgMeasurement
from model.measure.rhythm import (
    MIN_PATTERN_ECTOPICS,
    PAC_PREMATURITY,
    RhythmAnalysis,
    ventricular_pattern,
)
from model.report import Statement
from model.scp_statements import STATEMENTS
from model.statement_text import make_statement

ORIGIN_WORDS = {"A": "atrial", "J": "junctional", "V": "ventricular"}
# SNOMED CT concepts of a bigeminy / trigeminy of known origin (CinC 2021's mapping);
# SCP's BIGU and TRIGU leave the origin unknown and carry none. Atrial and junctional
# premature beats in turn are a supraventricular bigeminy; atrial and ventricular ones
# have no concept.
PATTERN_SNOMED = {
    ("bigeminy", "A"): "251173003",
    ("bigeminy", "J"): "251168009",
    ("bigeminy", "AJ"): "251168009",
    ("bigeminy", "V"): "11157007",
    ("trigeminy", "V"): "251180001",
}


def ectopy_statements(m: EcgMeasurement, sinus: bool) -> list[Statement]:
    """Premature beats by origin with their counts, then a bigeminal or trigeminal
    pattern. Supraventricular premature beats are named only in sinus rhythm: in
    atrial fibrillation an early beat is no premature atrial complex."""
    rhythm = m.rhythm
    if rhythm is None:
        return []
    beats = len(rhythm.classes)
    premature = f"RR < {PREMATURE_FRACTION:.0%} of the dominant RR"
    supraventricular = f"RR < {PAC_PREMATURITY:.0%} of both the dominant and the preceding RR"
    found = []
    if rhythm.count("V"):
        found.append(
            make_statement(
                "PVC",
                f"premature beat ({premature}) with a QRS shape outside the dominant beats' family",
                count=rhythm.count("V"),
                beats=beats,
                compensatory_pauses=rhythm.compensatory_pauses,
            )
        )
    if sinus and rhythm.count("A"):
        found.append(
            make_statement(
                "PAC",
                f"premature beat ({supraventricular}) of the dominant QRS shape with an atrial wave "
                "before it, once the preceding T wave is cancelled",
                count=rhythm.count("A"),
                beats=beats,
            )
        )
    if sinus and rhythm.count("J"):
        found.append(
            make_statement(
                "PJC",
                f"premature beat ({supraventricular}) of the dominant QRS shape without an atrial "
                "wave before it",
                count=rhythm.count("J"),
                beats=beats,
            )
        )
    return found + pattern_statements(rhythm, sinus)


def pattern_statements(rhythm: RhythmAnalysis, sinus: bool) -> list[Statement]:
    """BIGU / TRIGU named by origin ("Ventricular bigeminy") with its SNOMED CT concept;
    PACs and PVCs in turn in SCP's words (its "unknown origin, SV or Ventricular"), each
    origin's count in the evidence, no concept. Outside sinus rhythm the PVCs' alone."""
    pattern, beats = (
        (rhythm.pattern, rhythm.pattern_beats) if sinus else ventricular_pattern(rhythm.classes)
    )
    origin = "".join(o for o in ORIGIN_WORDS if o in beats)
    if pattern is None or not origin:
        return []
    code = "BIGU" if pattern == "bigeminy" else "TRIGU"
    every = "every second" if code == "BIGU" else "every third"
    words = [ORIGIN_WORDS[o] for o in origin]
    # Atrial and junctional beats in turn: all of the dominant shape, those "junctional"
    # mostly atrial ones whose P wave was not found; one supraventricular focus or two.
    text = f"{'supraventricular' if origin == 'AJ' else words[0]} {pattern}".capitalize()
    counts: dict[str, int] = {}
    if len(words) > 1:
        counts = {f"{word}_premature": beats.count(o) for o, word in zip(origin, words)}
    if "V" in origin and len(words) > 1:
        scp_words = STATEMENTS[code].description.split(" (")[0].capitalize()
        text = f"{scp_words} of premature {', '.join(words[:-1])} and {words[-1]} complexes"
    return [
        make_statement(
            code,
            f"{every} beat a premature {' or '.join(words)} beat, at least "
            f"{MIN_PATTERN_ECTOPICS} times in a row",
            text=text,
            snomed=PATTERN_SNOMED.get((pattern, origin)),
            cycles=len(beats),
            **counts,
        )
    ]
