"""hl7apy's strict v2.5.1 validation of a whole message, OBX-5 typed as its OBX-2 says.

hl7apy's parser gives every component of a `varies` field (OBX-5) the type ST, 199
characters, whatever OBX-2 declares; HL7 v2.5.1 (7.4.2.2) makes OBX-2 the data type of
OBX-5. So the message is parsed and validated strictly with OBX-5 set aside, and each
OBX-5 is then parsed strictly as its declared type (ED: ED.5 is TX, 65,536 characters;
RP: RP.1 is ST, 199; NM: 16 digits; TX; ...), with hl7apy's own data type tables.
"""

from __future__ import annotations

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_components, parse_message

STRICT = VALIDATION_LEVEL.STRICT


def validated_strictly(er7_text: str) -> Message:
    """The message as hl7apy reads it strictly; raises an HL7apyException (naming the
    value and the limit) where any field, component or OBX-5 breaks 2.5.1."""
    segments = er7_text.split("\r")
    observation_values = []
    set_aside = []
    for segment in segments:
        fields = segment.split("|")
        if fields[0] == "OBX" and len(fields) > 5:
            observation_values.append((fields[2], fields[5]))
            fields[5] = ""
        set_aside.append("|".join(fields))
    message = parse_message("\r".join(set_aside), validation_level=STRICT, find_groups=True)
    message.validate()
    for value_type, value in observation_values:
        if value:
            parse_components(
                value, field_datatype=value_type, version="2.5.1", validation_level=STRICT
            )
    return message
