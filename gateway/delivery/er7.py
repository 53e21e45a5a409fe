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

# HL7 v2.5.1 section 2.7.1 for the delimiters, 2.7.5 (\Xhh\) for the control characters (C0,
# DEL, C1): a CR ends a segment, an LF or a NEL ends one for some receivers, 0x1C ends an MLLP
# frame. Written here because python-hl7's escape is wrong for them (it writes an LF as
# "\X a\") and for non-ASCII (one "byte" per code point), and hl7apy has none; other text
# is UTF-8, as MSH-18 declares, and needs no escape.
_ESCAPES = str.maketrans(
    {
        "\\": "\\E\\",
        "|": "\\F\\",
        "^": "\\S\\",
        "&": "\\T\\",
        "~": "\\R\\",
        **{chr(code): f"\\X{code:02X}\\" for code in (*range(0x20), *range(0x7F, 0xA0))},
    }
)


def text(value: str) -> str:
    """Any text as one ER7 value, exactly: delimiters and control characters escaped, so a
    value can never end its field, component or segment."""
    return value.translate(_ESCAPES)


def fitted(value: str, limit: int) -> str:
    """`text(value)` cut (ending in "...") so that, escaped, it is at most `limit` characters:
    validators count a field's length as written, escapes included."""
    encoded = text(value)
    if len(encoded) <= limit:
        return encoded
    kept, length = [], 3
    for char in value:
        piece = text(char)
        if length + len(piece) > limit:
            break
        kept.append(piece)
        length += len(piece)
    return "".join(kept) + "..."


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
