"""HL7 v2 ER7 encoding: segments of `|` fields, `^` components, escaped free text.

Written here instead of building messages with hl7apy: hl7apy's message model costs
45-67 ms per ORU^R01 (every assigned value is parsed back as ER7; measured in
bench/delivery_formats.py), more than decoding, measuring and rendering the ECG
together. The ORU's structure is fixed in gateway/delivery/hl7.py, and tests check
the messages against hl7apy's 2.5.1 validator and read them with python-hl7.
"""

from __future__ import annotations

ENCODING_CHARACTERS = "^~\\&"
SEGMENT_END = "\r"

# HL7 v2.5.1 section 2.7.1; the escape character itself first, so nothing is escaped twice.
_ESCAPES = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"})


def text(value: str) -> str:
    """Free text as one ER7 value: delimiters escaped, and every run of whitespace
    (a CR or LF would end the segment) one space."""
    return " ".join(value.split()).translate(_ESCAPES)


def components(*parts: str) -> str:
    """`^`-joined components (already encoded), trailing empty ones left out."""
    return "^".join(parts).rstrip("^")


def segment(name: str, fields: dict[int, str]) -> str:
    """One segment from its fields by 1-based number; fields not given stay empty.

    MSH counts the field separator itself as MSH-1, so its fields start at MSH-2.
    Trailing empty fields are left out, as HL7 recommends.
    """
    first = 2 if name == "MSH" else 1
    last = max((number for number, value in fields.items() if value), default=first - 1)
    values = [fields.get(number, "") for number in range(first, last + 1)]
    return "|".join([name, *values])


def message(segments: list[str]) -> str:
    return SEGMENT_END.join(segments)
