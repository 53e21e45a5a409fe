"""Finding ECG statements in report text: SCP codes, negated and hedged findings.

Statements are found by the English phrases of the SCP-ECG statements (PTB-XL's
descriptions, which the training targets use verbatim, plus the usual synonyms and
abbreviations of clinical reports), by the German of PTB-XL's own reports, and by
bracketed codes such as "[AFIB]".

A finding under a negation is not a finding, whichever side the negation stands on
within its clause: "no ST elevation", "keine ST-Hebung", "first degree AV block is not
present", "LVH ruled out", "Vorhofflattern ausgeschlossen". A hedged finding ("possible",
"probable", "borderline", "cannot be excluded", "möglich", "Verdacht auf", "nicht
auszuschliessen") is kept, deliberately, with the hedge in its statement text ("Possible
left ventricular hypertrophy"): a physician must see a suspicion the text raises, and
model/vlm/parse.py never checks a hedged statement against a measured threshold. The
evaluation (training/evaluate.py) counts a hedged code as stated, as PTB-XL's labels
carry low-likelihood codes too. tests/test_vlm_negation.py holds the sentences, from
PTB-XL's English and German reports, that pin this behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from model.scp_statements import STATEMENTS

# Usual names in reports for SCP statements, beyond PTB-XL's own descriptions.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "SR": ("normal sinus rhythm", "sinus rhythm"),
    "AFIB": ("atrial fibrillation",),
    "AFLT": ("atrial flutter",),
    "1AVB": (
        "first degree AV block",
        "1st degree AV block",
        "first degree atrioventricular block",
        "first degree heart block",
    ),
    "2AVB": ("second degree AV block", "2nd degree AV block", "Mobitz", "Wenckebach"),
    "3AVB": (
        "third degree AV block",
        "3rd degree AV block",
        "complete heart block",
        "complete AV block",
    ),
    "CRBBB": ("right bundle branch block", "complete right bundle branch block"),
    "CLBBB": ("left bundle branch block", "complete left bundle branch block"),
    "LAFB": ("left anterior hemiblock",),
    "LPFB": ("left posterior hemiblock",),
    "IVCD": ("intraventricular conduction delay", "intraventricular conduction disturbance"),
    "LAO/LAE": ("left atrial abnormality",),
    "RAO/RAE": ("right atrial abnormality",),
    "WPW": ("Wolff-Parkinson-White", "Wolff-Parkinson-White pattern", "ventricular pre-excitation"),
    "LNGQT": (
        "long QT",
        "prolonged QT",
        "prolonged QT interval",
        "QT prolongation",
        "prolonged QTc",
    ),
    "LPR": ("prolonged PR", "PR prolongation"),
    "PVC": (
        "premature ventricular complexes",
        "premature ventricular contraction",
        "premature ventricular contractions",
        "premature ventricular beats",
        "ventricular premature beats",
        "ventricular extrasystoles",
        "ventricular ectopic beats",
    ),
    "PAC": (
        "premature atrial complexes",
        "premature atrial contraction",
        "premature atrial contractions",
        "premature atrial beats",
        "atrial premature beats",
        "supraventricular extrasystoles",
    ),
    "PACE": (
        "pacemaker rhythm",
        "paced rhythm",
        "artificial pacemaker rhythm",
        "ventricular pacing",
    ),
    "LVOLT": ("low QRS voltage", "low QRS voltages", "low voltage QRS", "low voltage"),
    "HVOLT": ("high QRS voltages",),
    "STD_": ("ST depression", "ST segment depression"),
    "STE_": ("ST elevation", "ST segment elevation"),
    "INVT": ("T wave inversion", "inverted T waves", "T wave inversions"),
    "TAB_": ("T wave abnormality", "T wave abnormalities", "abnormal T waves"),
    "NT_": ("non-specific T wave changes", "nonspecific T wave abnormality"),
    "NST_": ("non-specific ST-T changes", "nonspecific ST-T wave changes"),
    "QWAVE": ("Q waves", "pathological Q waves"),
    "LAD": ("left axis deviation", "left axis"),
    "RAD": ("right axis deviation", "right axis"),
    "SVTAC": ("supraventricular tachycardia",),
    "NORM": ("normal ECG", "normal electrocardiogram"),
}
# The German of PTB-XL's reports (ptbxl_database.csv `report`), lower case there, with
# umlauts or their "ae"/"ue" spellings; hyphens and spaces between words are optional.
GERMAN: dict[str, tuple[str, ...]] = {
    "SR": ("Sinusrhythmus",),
    "SBRAD": ("Sinusbradykardie",),
    "STACH": ("Sinustachykardie",),
    "SARRH": ("Sinusarrhythmie", "Sinus Arrhythmie"),
    "AFIB": ("Vorhofflimmern",),
    "AFLT": ("Vorhofflattern",),
    "PVC": ("ventrikuläre Extrasystole", "ventrikuläre Extrasystolen", "VES"),
    "PAC": ("supraventrikuläre Extrasystole", "supraventrikuläre Extrasystolen", "SVES"),
    "SVTAC": ("supraventrikuläre Tachykardie",),
    "1AVB": ("AV-Block 1. Grades", "AV-Block I. Grades", "AV-Block ersten Grades"),
    "2AVB": ("AV-Block 2. Grades", "AV-Block II. Grades", "AV-Block zweiten Grades"),
    "3AVB": ("AV-Block 3. Grades", "AV-Block III. Grades", "totaler AV-Block"),
    "CLBBB": ("Linksschenkelblock", "vollständiger Linksschenkelblock"),
    "CRBBB": ("Rechtsschenkelblock", "vollständiger Rechtsschenkelblock"),
    "ILBBB": ("unvollständiger Linksschenkelblock",),
    "IRBBB": ("unvollständiger Rechtsschenkelblock",),
    "LAFB": ("linksanteriorer Hemiblock",),
    "LPFB": ("linksposteriorer Hemiblock",),
    "IVCD": (
        "unspezifischer intraventrikulärer Block",
        "unspezifische intraventrikuläre Leitungsstörung",
        "intraventrikuläre Leitungsstörung",
    ),
    "WPW": ("WPW", "WPW-Syndrom", "Präexzitation"),
    "LVH": ("Linkshypertrophie", "linksventrikuläre Hypertrophie"),
    "RVH": ("Rechtshypertrophie", "rechtsventrikuläre Hypertrophie"),
    "LAO/LAE": ("P-sinistrocardiale", "P-sinistroatriale", "P mitrale"),
    "RAO/RAE": ("P-dextrocardiale", "P-dextroatriale", "P pulmonale"),
    "LVOLT": ("periphere Niederspannung", "Niederspannung", "Niedervoltage"),
    "STD_": ("ST-Senkung", "ST-Senkungen", "ST-Streckensenkung"),
    "STE_": ("ST-Hebung", "ST-Hebungen", "ST-Streckenhebung"),
    "NDT": ("unspezifisches abnormales T", "unspezifisches abnormes T"),
    "INVT": ("T-Negativierung", "T-Negativierungen", "negatives T"),
    "LNGQT": ("QT-Verlängerung", "verlängerte QT-Zeit"),
    "NORM": ("normales EKG",),
    "PACE": ("Schrittmacher-EKG", "Schrittmacherrhythmus"),
    "IMI": ("inferiorer Infarkt", "Hinterwandinfarkt"),
    "AMI": ("anteriorer Infarkt", "Vorderwandinfarkt"),
    "ASMI": ("anteroseptaler Infarkt",),
    "ALMI": ("anterolateraler Infarkt",),
    "LMI": ("lateraler Infarkt", "hochlateraler Infarkt"),
    "ILMI": ("inferolateraler Infarkt",),
    "IPMI": ("inferoposteriorer Infarkt",),
    "PMI": ("posteriorer Infarkt",),
    "LAD": ("überdrehter Linkstyp",),
    "RAD": ("überdrehter Rechtstyp",),
}
# Abbreviations, matched with their exact capitals ("AF", not "af" inside a word).
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "SR": ("NSR",),
    "AFIB": ("AF", "AFib"),
    "AFLT": ("AFL",),
    "1AVB": ("1AVB", "1° AV block"),
    "CRBBB": ("RBBB", "CRBBB"),
    "CLBBB": ("LBBB", "CLBBB"),
    "IRBBB": ("IRBBB",),
    "ILBBB": ("ILBBB",),
    "LAFB": ("LAFB", "LAHB"),
    "LPFB": ("LPFB", "LPHB"),
    "LVH": ("LVH",),
    "RVH": ("RVH",),
    "WPW": ("WPW",),
    "PVC": ("PVC", "PVCs", "VPB", "VPBs"),
    "PAC": ("PAC", "PACs", "APB", "APBs"),
    "SVTAC": ("SVT",),
    "LAD": ("LAD",),
    "RAD": ("RAD",),
    "IVCD": ("IVCD",),
}
# Negation and hedging, in English and in the German of PTB-XL's reports, on either side
# of a finding phrase ("no LVH", "LVH ruled out", "keine ST-Hebung", "Infarkt möglich").
# Each cue word says which side it binds to: a prefix cue the finding after it, a postfix
# cue the finding before it, and a cue that can stand either side ("not", "possible") the
# finding after it if there is one in the clause, else the one before. Longer cues are
# listed first, so "cannot be excluded" is a hedge and never the negation "not".
CUES: tuple[tuple[str, str, str], ...] = (
    # (kind, side, pattern): kind "neg" or a hedge word; side "next", "previous" or "either"
    (
        "possible",
        "previous",
        (
            r"cannot (?:be )?(?:entirely )?(?:excluded|ruled out)|can'?t be (?:excluded|ruled out)|"
            r"not (?:be )?excluded|nicht (?:sicher )?auszuschlie(?:ss|\u00df)en|"
            r"nicht (?:sicher )?ausgeschlossen|m\u00f6glich|moeglich"
        ),
    ),
    (
        "neg",
        "previous",
        (
            r"no longer(?: present)?|absent|excluded|ruled out|resolved|unlikely|ausgeschlossen|"
            r"unauff(?:\u00e4|ae)llig|(?:is |are )?not (?:present|seen|significant|evident|"
            r"identified|detected|found|confirmed|visible|demonstrated|shown)|"
            r"nicht (?:mehr )?(?:nachweisbar|vorhanden|signifikant|sichtbar|erkennbar)|nicht mehr"
        ),
    ),
    (
        "possible",
        "next",
        (
            r"cannot (?:entirely )?(?:exclude|rule out)|can'?t (?:exclude|rule out)|consider|"
            r"verdacht auf|m\u00f6glicherweise|moeglicherweise|possibly"
        ),
    ),
    (
        "neg",
        "next",
        (
            r"no|without|absence of|negative for|free of|rule out|kein|keine|keinen|keinem|"
            r"keiner|keines|ohne"
        ),
    ),
    ("probable", "either", r"probable|probably|likely|wahrscheinlich"),
    ("borderline", "either", r"borderline"),
    ("possible", "either", r"possible|suspected|fraglich"),
    ("neg", "either", r"not|nicht"),
)
CUE = re.compile(
    "|".join(f"(?P<c{i}>\\b(?:{pattern})(?!\\w))" for i, (_, _, pattern) in enumerate(CUES)),
    re.IGNORECASE,
)
# A hedge about the finding's age ("wahrscheinlich alt", "probably old"), not the finding.
AGE_HEDGE = re.compile(
    r"\b(?:wahrscheinlich|probably|likely|possibly)\s+(?:alt|old)\b", re.IGNORECASE
)
# Participles that close a negated noun phrase: "keine P-Welle erkannt Rechtstyp LPFB"
# negates the P wave, not the hemiblock after it.
SCOPE_END = re.compile(r"\b(?:erkannt|nachweisbar|seen|noted|identified)\b", re.IGNORECASE)
# Words that join findings so that one negation or hedge covers them all:
# "no LVH or RVH", "LVH and RVH excluded". Bare juxtaposition (PTB-XL's German lists
# findings without punctuation) does not.
CONJUNCTION = re.compile(r"^\s*(?:and|or|nor|und|oder|bzw|/|&)\s*$", re.IGNORECASE)
CLAUSE_END = re.compile(r"[.,;:\n!?]")
BRACKETED_CODE = re.compile(r"[\[(]\s*([A-Za-z0-9_/()]{2,8}?)\s*[\])]")


@dataclass(frozen=True)
class FoundStatement:
    """A statement named in the text: its code, the words that named it, any hedge."""

    code: str
    phrase: str
    hedge: str | None = None

    def statement_text(self) -> str:
        text = STATEMENTS[self.code].description
        text = f"{self.hedge} {text}" if self.hedge else text
        return text[0].upper() + text[1:]


def _phrase_pattern(phrase: str) -> str:
    """Words may be joined by spaces or hyphens, or run together ('non-specific', 'T wave')."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return r"(?<![\w-])" + r"[\s\-]*".join(words) + r"(?![\w-])"


def _description_variants(description: str) -> set[str]:
    """PTB-XL descriptions as people write them: 'a/b' either way, no parenthesis, 'MI'."""
    plain = re.sub(r"\s*\([^)]*\)", "", description).strip()
    spelled = {description, plain}
    spelled |= {option for text in spelled for option in _slash_options(text)}
    spelled |= {
        text.replace("myocardial infarction", other)
        for text in spelled
        if "myocardial infarction" in text
        for other in ("infarction", "infarct", "MI")
    }
    spelled |= {
        "ischemia in " + text.removeprefix("ischemic in ")
        for text in spelled
        if text.startswith("ischemic in ")
    }
    return {v for v in spelled if "/" not in v or v == description}


def _slash_options(text: str) -> list[str]:
    """'left atrial overload/enlargement' -> 'left atrial overload', '... enlargement'."""
    words = text.split()
    return [
        " ".join(words[:i] + [option] + words[i + 1 :])
        for i, word in enumerate(words)
        if "/" in word and len(word) > 3
        for option in word.split("/")
    ]


def _umlaut_variants(phrase: str) -> set[str]:
    """'überdrehter' and 'ueberdrehter': PTB-XL writes both."""
    spelled = phrase
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue")):
        spelled = spelled.replace(umlaut, plain)
    return {phrase, spelled}


def _build_patterns() -> list[tuple[str, re.Pattern[str]]]:
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for code, statement in STATEMENTS.items():
        phrases = _description_variants(statement.description) | set(SYNONYMS.get(code, ()))
        phrases |= {v for p in GERMAN.get(code, ()) for v in _umlaut_variants(p)}
        for phrase in sorted(phrases):
            patterns.append((code, re.compile(_phrase_pattern(phrase), re.IGNORECASE)))
            if "ischemic" in phrase:
                british = phrase.replace("ischemic", "ischaemic").replace("ischemia", "ischaemia")
                patterns.append((code, re.compile(_phrase_pattern(british), re.IGNORECASE)))
    for code, abbreviations in ABBREVIATIONS.items():
        for abbreviation in abbreviations:
            exact = r"(?<![\w-])" + re.escape(abbreviation) + r"(?![\w-])"
            patterns.append((code, re.compile(exact)))
    return patterns


_PATTERNS = _build_patterns()


@dataclass(frozen=True)
class _Mention:
    """A finding phrase in the text and the clause it stands in."""

    start: int
    end: int
    code: str
    clause_start: int
    clause_end: int


def find_statements(text: str) -> list[FoundStatement]:
    """Statements in order of appearance, each code once; the longest phrase wins a span.

    A finding under a negation before it ("no LVH", "keine ST-Hebung") or after it ("LVH
    ruled out", "AV-Block nicht nachweisbar") within its clause is not a finding; words
    such as "and"/"oder" between findings share one negation or hedge among them."""
    mentions = find_mentions(text)
    cues = _mention_cues(text, mentions)
    found: dict[str, FoundStatement] = {}
    for i, mention in enumerate(mentions):
        prefix = text[mention.clause_start : mention.start]
        if mention.code in found or cues.negated[i] or _is_qualified_normal(mention.code, prefix):
            continue
        found[mention.code] = FoundStatement(
            mention.code, text[mention.start : mention.end], cues.hedges[i]
        )
    return list(found.values())


def find_mentions(text: str) -> list[_Mention]:
    """Every finding phrase, negated or not, in order; overlapping phrases: the longest."""
    candidates = [
        (m.start(), m.end(), code) for code, pattern in _PATTERNS for m in pattern.finditer(text)
    ]
    candidates += [
        (m.start(), m.end(), m.group(1).upper())
        for m in BRACKETED_CODE.finditer(text)
        if m.group(1).upper() in STATEMENTS
    ]
    taken: list[tuple[int, int, str]] = []
    for start, end, code in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, code))
    ends = [m.end() for m in CLAUSE_END.finditer(text)]
    mentions = []
    for start, end, code in sorted(taken):
        clause_start = max((e for e in ends if e <= start), default=0)
        clause_end = min((e - 1 for e in ends if e - 1 >= end), default=len(text))
        mentions.append(_Mention(start, end, code, clause_start, clause_end))
    return mentions


def _same_clause(mentions: list[_Mention], i: int, j: int) -> bool:
    return 0 <= j < len(mentions) and mentions[i].clause_start == mentions[j].clause_start


def _before(text: str, mentions: list[_Mention], i: int) -> str:
    """The words between the previous finding of the clause (or its start) and this one."""
    mention = mentions[i]
    start = mentions[i - 1].end if _same_clause(mentions, i, i - 1) else mention.clause_start
    return text[start : mention.start]


def _after(text: str, mentions: list[_Mention], i: int) -> str:
    """The words between this finding and the next one of the clause (or its end)."""
    mention = mentions[i]
    end = mentions[i + 1].start if _same_clause(mentions, i, i + 1) else mention.clause_end
    return text[mention.end : end]


def _joined(text: str, mentions: list[_Mention], i: int, j: int) -> bool:
    """Mentions i and j are neighbours in one clause with only "and"/"or" between them."""
    if not _same_clause(mentions, i, j):
        return False
    first, second = sorted((mentions[i], mentions[j]), key=lambda m: m.start)
    return CONJUNCTION.match(text[first.end : second.start]) is not None


@dataclass
class _Cues:
    """What the words around each mention say about it."""

    negated: list[bool]
    hedges: list[str | None]


def _mention_cues(text: str, mentions: list[_Mention]) -> _Cues:
    """Per mention: negated, and its hedge, from the gaps on both sides (see CUES)."""
    n = len(mentions)
    ahead = _Cues([False] * n, [None] * n)  # cues that bind to the finding after them
    behind = _Cues([False] * n, [None] * n)  # cues that bind to the finding before them
    for i in range(n):
        previous = _same_clause(mentions, i, i - 1)
        for kind, side in _gap_cues(_before(text, mentions, i), previous, True):
            _mark(ahead if side == "next" else behind, i if side == "next" else i - 1, kind)
        if not _same_clause(mentions, i, i + 1):
            for kind, _ in _gap_cues(_after(text, mentions, i), True, False):
                _mark(behind, i, kind)
    for i in range(1, n):
        if _joined(text, mentions, i, i - 1):
            ahead.negated[i] |= ahead.negated[i - 1]
            ahead.hedges[i] = ahead.hedges[i] or ahead.hedges[i - 1]
    for i in reversed(range(n - 1)):
        if _joined(text, mentions, i, i + 1):
            behind.negated[i] |= behind.negated[i + 1]
            behind.hedges[i] = behind.hedges[i] or behind.hedges[i + 1]
    return _Cues(
        [a or b for a, b in zip(ahead.negated, behind.negated, strict=True)],
        [a or b for a, b in zip(ahead.hedges, behind.hedges, strict=True)],
    )


def _mark(cues: _Cues, i: int, kind: str) -> None:
    if kind == "neg":
        cues.negated[i] = True
    elif cues.hedges[i] is None:
        cues.hedges[i] = kind


def _gap_cues(words: str, has_previous: bool, has_next: bool) -> list[tuple[str, str]]:
    """(kind, "next" or "previous") of each cue in the words between two findings."""
    words = AGE_HEDGE.sub(" ", words)
    found = []
    for match in CUE.finditer(words):
        index = int(match.lastgroup[1:])
        kind, side, _ = CUES[index]
        if side == "either":
            side = "next" if has_next else "previous"
        if side == "next" and SCOPE_END.search(words, match.end()):
            continue
        if (side == "next" and has_next) or (side == "previous" and has_previous):
            found.append((kind, side))
    return found


def _is_qualified_normal(code: str, prefix: str) -> bool:
    """'Otherwise normal ECG' and 'borderline normal' are not PTB-XL's NORM."""
    qualified = re.search(r"\b(otherwise|borderline|sonst)\b", prefix, re.IGNORECASE)
    return code == "NORM" and qualified is not None
