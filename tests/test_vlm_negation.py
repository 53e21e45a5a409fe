"""Negated and hedged findings in report text, English and the German of PTB-XL's reports.

A negated finding is not a finding: negation is looked for on both sides of the phrase
within its clause. A hedged finding ("possible", "cannot be excluded", "möglich",
"nicht auszuschliessen") is kept as a statement whose text carries the hedge
("Possible left ventricular hypertrophy"), so a physician sees it and it is never
checked against a measured threshold as if it were certain.

The German sentences are PTB-XL report texts (ptbxl_database.csv, lower case as there,
with its "Ä" and "ueber" spellings) and variants of them built with the negations German
reports use; the English ones follow PTB-XL's English reports and common cart phrasing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model.vlm.findings import find_statements

# (sentence, expected codes in order of mention; a hedged code is written "CODE?")
TABLE: list[tuple[str, list[str]]] = [
    # clinical phrasings, synonyms and abbreviations
    ("Normal sinus rhythm. Normal ECG.", ["SR", "NORM"]),
    ("Sinus tachycardia with PVCs. LVH by voltage.", ["STACH", "PVC", "LVH"]),
    ("AF with rapid ventricular response; RBBB.", ["AFIB", "CRBBB"]),
    ("Incomplete right bundle branch block.", ["IRBBB"]),
    ("Complete left bundle branch block.", ["CLBBB"]),
    ("Old inferior MI. T-wave inversion in V1-V3.", ["IMI", "INVT"]),
    ("Nonspecific ST changes, left atrial enlargement", ["NST_", "LAO/LAE"]),
    ("Wolff-Parkinson-White pattern.", ["WPW"]),
    ("Rhythm [AFLT] with variable block.", ["AFLT"]),
    ("Abnormal ECG.", []),
    ("Sinus rhythm. Otherwise normal ECG.", ["SR"]),
    ("No ST elevation. Without Q waves. Sinus bradycardia.", ["SBRAD"]),
    ("Sinus rhythm, no atrial fibrillation, no LBBB.", ["SR"]),
    ("ischaemic in anterolateral leads", ["ISCAL"]),
    ("The lead is afferent and LADder-like.", []),
    # the four of issue 23
    ("first degree AV block is not present", []),
    ("LVH ruled out", []),
    ("ST depression not significant", []),
    ("AFL excluded", []),
    # English: negation after the finding
    ("Sinus rhythm. First degree AV block is not present.", ["SR"]),
    ("Sinus rhythm; atrial fibrillation is absent.", ["SR"]),
    ("Left bundle branch block no longer present. Sinus rhythm.", ["SR"]),
    ("ST elevation resolved, T wave inversion in V1-V3.", ["INVT"]),
    ("Sinus rhythm, LVH and RVH excluded.", ["SR"]),
    ("Delta wave (WPW) not seen; sinus rhythm.", ["SR"]),
    ("Acute pericarditis would be unlikely; sinus tachycardia.", ["STACH"]),
    ("Atrial flutter ruled out, atrial fibrillation with rapid ventricular response.", ["AFIB"]),
    # English: negation before the finding
    ("sinus rhythm. no definite pathology.", ["SR"]),
    ("atrial fibrillation. otherwise no definite pathology.", ["AFIB"]),
    ("No ST elevation or ST depression. Sinus bradycardia.", ["SBRAD"]),
    ("Sinus rhythm without ectopy; no LBBB.", ["SR"]),
    ("Negative for atrial flutter. Sinus rhythm.", ["SR"]),
    ("There is no ECG evidence of left ventricular hypertrophy.", []),
    ("Absence of Q waves; normal ECG.", ["NORM"]),
    # English: positives that must stay positive
    ("sinus rhythm. incomplete right bundle branch block.", ["SR", "IRBBB"]),
    ("sinus rhythm. left axis deviation. left anterior fascicular block.", ["SR", "LAD", "LAFB"]),
    ("atrial fibrillation with rapid ventricular response. low limb lead voltage.", ["AFIB"]),
    (
        "premature ventricular contraction(s), bigeminy. sinus rhythm. left bundle branch block.",
        ["PVC", "SR", "CLBBB"],
    ),
    ("Sinus rhythm with first degree AV block.", ["SR", "1AVB"]),
    ("ST depression in V4-V6, not seen on the previous tracing.", ["STD_"]),
    ("Atrial fibrillation. Complete right bundle branch block.", ["AFIB", "CRBBB"]),
    ("Sinus rhythm. Left ventricular hypertrophy with ST depression.", ["SR", "LVH", "STD_"]),
    # English: hedges (kept, marked)
    ("sinus arrhythmia. old anterior infarct cannot be excluded.", ["SARRH", "AMI?"]),
    ("q wave in v2, cannot rule out anteroseptal myocardial infarction.", ["ASMI?"]),
    ("Possible left ventricular hypertrophy.", ["LVH?"]),
    ("Probable left atrial enlargement; sinus rhythm.", ["LAO/LAE?", "SR"]),
    ("Borderline first degree AV block.", ["1AVB?"]),
    ("Cannot exclude LVH or RVH.", ["LVH?", "RVH?"]),
    ("Inferior infarct, probably old.", ["IMI"]),
    # German: positives from PTB-XL reports
    ("sinusrhythmus normales ekg", ["SR", "NORM"]),
    ("sinusbradykardie sonst normales ekg", ["SBRAD"]),
    (
        "sinusrhythmus linkstyp unvollstÄndiger rechtsschenkelblock av-block 1.grades",
        ["SR", "IRBBB", "1AVB"],
    ),
    ("sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock", ["SR", "LAD", "LAFB"]),
    ("sinusrhythmus rechtstyp linksposteriorer hemiblock", ["SR", "LPFB"]),
    (
        "sinusrhythmus unspezifischer intraventrikulÄrer block linkshypertrophie",
        ["SR", "IVCD", "LVH"],
    ),
    ("ventrikulÄre extrasystole(n), bigeminus sinusrhythmus", ["PVC", "SR"]),
    ("sinusrhythmus periphere niederspannung", ["SR", "LVOLT"]),
    ("schrittmacher ekg", ["PACE"]),
    ("tachykardes vorhofflimmern linkstyp linksschenkelblock", ["AFIB", "CLBBB"]),
    ("sinusrhythmus linkstyp unspezifisches abnormales t", ["SR", "NDT"]),
    (
        "sinusrhythmus p-dextrocardiale lagetyp normal rechtsschenkelblock",
        ["SR", "RAO/RAE", "CRBBB"],
    ),
    # German: hedges from PTB-XL reports
    ("sinusrhythmus qrs(t) abnormal    anterolateraler infarkt mÖglich", ["SR", "ALMI?"]),
    (
        "vorhofflimmern/-flattern linkstyp linksschenkelblock linkshypertrophie mÖglich",
        ["AFIB", "CLBBB", "LVH?"],
    ),
    ("sinus arrhythmie verdacht auf p-sinistrocardiale", ["SARRH", "LAO/LAE?"]),
    (
        "sinusrhythmus linkstyp qrs(t) abnormal    inferiorer infarkt     wahrscheinlich alt",
        ["SR", "IMI"],
    ),
    ("sinusrhythmus qrs(t) abnormal    anteriorer infarkt nicht auszuschliessen", ["SR", "AMI?"]),
    ("sinusrhythmus linkstyp mÖglicherweise wpw typ b", ["SR", "WPW?"]),
    # German: negation before and after the finding
    (
        "regelmÄssiger rhythmus, keine p-welle erkannt rechtstyp linksposteriorer hemiblock",
        ["LPFB"],
    ),
    ("sinusrhythmus, kein vorhofflimmern", ["SR"]),
    ("sinusrhythmus keine st-hebung", ["SR"]),
    ("sinusrhythmus, keine linkshypertrophie oder rechtshypertrophie", ["SR"]),
    ("sinusrhythmus ohne ventrikulÄre extrasystolen", ["SR"]),
    ("sinusrhythmus, linksschenkelblock nicht nachweisbar", ["SR"]),
    ("sinusrhythmus, vorhofflattern ausgeschlossen", ["SR"]),
    ("sinusrhythmus, st-senkung nicht signifikant", ["SR"]),
    ("sinusrhythmus, av-block 1. grades nicht mehr vorhanden", ["SR"]),
    ("sinusrhythmus, st-hebung und st-senkung ausgeschlossen", ["SR"]),
    ("vorhofflimmern, linkshypertrophie ausgeschlossen, rechtsschenkelblock", ["AFIB", "CRBBB"]),
    ("sinusrhythmus, qt-verlÄngerung unauffÄllig", ["SR"]),
]


def labelled(text: str) -> list[str]:
    return [f.code + ("?" if f.hedge else "") for f in find_statements(text)]


def test_the_table_is_large_and_mixes_languages():
    german = [t for t, _ in TABLE if "sinusrhythmus" in t or "vorhof" in t or "ekg" in t]
    assert len(TABLE) >= 50 and len(german) >= 20


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t[:40] for t, _ in TABLE])
def test_negations_and_hedges_on_both_sides(text: str, expected: list[str]):
    assert labelled(text) == expected


def test_hedged_statement_texts_say_the_hedge():
    found = find_statements("linkshypertrophie mÖglich. Probable left atrial enlargement.")
    assert [f.statement_text() for f in found] == [
        "Possible left ventricular hypertrophy",
        "Probable left atrial overload/enlargement",
    ]


def test_a_negation_after_one_finding_leaves_the_list_before_it(shared_data: Path):
    """PTB-XL's German reports list findings without punctuation: a negation at the end
    covers the finding it follows, not every finding of the report."""
    assert labelled("sinusrhythmus linkstyp linksschenkelblock ausgeschlossen") == ["SR"]
    assert labelled("sinusrhythmus linksschenkelblock oder rechtsschenkelblock ausgeschlossen") == [
        "SR"
    ]
