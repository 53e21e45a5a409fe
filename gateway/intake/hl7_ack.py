"""The HL7 v2 acknowledgement (original mode) the order listener answers each message
with: MSA AA once the message is committed, AE or AR with an ERR segment naming the
field (HL7 v2.5.1 section 2.15.5; v2.3.x's ERR-1 for the older versions).

Written with the gateway's ER7 helpers (gateway/delivery/er7.py, why not hl7apy there);
tests read the ACKs back with python-hl7 and check them with hl7apy.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from gateway.delivery import er7
from gateway.intake.order_messages import AckCode, Header, MessageProblem

_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:-(\d+))?$")


def ack(
    header: Header | None,
    code: AckCode,
    problem: MessageProblem | None = None,
    *,
    application: str,
    facility: str = "",
    now: datetime | None = None,
) -> bytes:
    """The ACK for a message (`header` None: one whose MSH could not be read)."""
    version = header.version if header is not None and header.version else "2.5.1"
    trigger = header.trigger if header is not None else ""
    msh = er7.segment(
        "MSH",
        {
            2: "^~\\&",
            3: er7.text(application),
            4: er7.text(facility),
            5: er7.text(header.sending_application) if header else "",
            6: er7.text(header.sending_facility) if header else "",
            7: (now or datetime.now().astimezone()).strftime("%Y%m%d%H%M%S%z"),
            9: er7.components("ACK", er7.text(trigger), "ACK" if trigger else ""),
            10: uuid.uuid4().hex[:20],
            11: er7.text(header.processing_id) if header and header.processing_id else "P",
            12: er7.text(version),
        },
    )
    older = not version.startswith("2.5")
    msa = er7.segment(
        "MSA",
        {
            1: code,
            2: er7.text(header.control_id) if header else "",
            3: er7.text(problem.text) if problem is not None and older else "",
        },
    )
    segments = [msh, msa]
    if problem is not None:
        segments.append(_err(problem, older))
    return er7.message(segments).encode("utf-8")


def _err(problem: MessageProblem, older: bool) -> str:
    """ERR naming the segment and field: ERR-1 (ELD) before v2.5, else ERR-2 (ERL),
    ERR-3 (the table 0357 code), ERR-4 (severity E) and ERR-8 (the text)."""
    match = _LOCATION.match(problem.location)
    segment, field = (match.group(1), match.group(2) or "") if match else ("", "")
    code = er7.components(problem.code, er7.text(problem.text), "HL70357")
    if older:
        subcode = code.replace("^", "&")
        return er7.segment("ERR", {1: er7.components(segment, "1", field, subcode)})
    location = er7.components(segment, "1", field)
    return er7.segment("ERR", {2: location, 3: code, 4: "E", 8: er7.text(problem.text)})
