"""Sending the campaign's objects the way carts and archives do: dcmtk storescu for what
it can read, pynetdicom (raw bytes after the file meta) for what it cannot."""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pydicom

from gateway.cli.send import send_files
from reliability.corpus import Case
from tests.peers import announce_a_dataset_and_send_none

# Debian's dcmtk waits ~40 ms per small PDU for a delayed ACK unless told otherwise.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
_RESPONSE = re.compile(r"Received Store Response \((.*)\)")


@dataclass(frozen=True)
class Sent:
    """What the sender saw: success (the gateway now owns the object), a clean refusal
    (a failure status, or the SOP class refused in negotiation), or no answer."""

    case: Case
    acked: bool
    refused: bool
    detail: str
    sender: str
    tries: int = 1

    @property
    def unanswered(self) -> bool:
        return not (self.acked or self.refused)


def send(case: Case, port: int, timeout_s: float = 30.0) -> Sent:
    """storescu first where the case says so; pynetdicom for bytes storescu will not read."""
    if case.sender == "storescu":
        sent = send_storescu(case, port, timeout_s)
        if "Bad DICOM file" not in sent.detail:
            return sent
    return send_pynetdicom(case, port, timeout_s)


def send_storescu(case: Case, port: int, timeout_s: float) -> Sent:
    """One association per object, as a cart sends a finished recording."""
    t = str(int(timeout_s))
    command = ["storescu", "-v", "-nh", "-aet", "RELCART", "-to", t, "-ta", t, "-td", t]
    command += ["-ts", t, "127.0.0.1", str(port), str(case.path)]
    try:
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            env=DCMTK_ENV,
            timeout=timeout_s * 3,
        )
    except subprocess.TimeoutExpired:
        return Sent(case, False, False, "storescu timed out", "storescu")
    output = done.stdout + done.stderr
    match = _RESPONSE.search(output)
    if match:
        status = match.group(1)
        acked = status.startswith(("Success", "Warning"))
        return Sent(case, acked, not acked, status, "storescu")
    if "No presentation context" in output:
        return Sent(case, False, True, "SOP class refused in negotiation", "storescu")
    errors = [line for line in output.splitlines() if line.startswith("E:")]
    return Sent(case, False, False, (errors or ["no response"])[-1][:200], "storescu")


def send_pynetdicom(case: Case, port: int, timeout_s: float) -> Sent:
    """The object's dataset bytes exactly as they are in the file, undecoded."""
    [result] = send_files([case.path], "127.0.0.1", port, "RELSEND", timeout_s=timeout_s)
    if result.ok:
        return Sent(case, True, False, f"0x{result.status:04X}", "pynetdicom")
    if result.status is not None:
        detail = f"0x{result.status:04X} {result.message}"[:200]
        return Sent(case, False, True, detail, "pynetdicom")
    refused_class = "not accepted by the peer" in result.message
    detail = "SOP class refused in negotiation" if refused_class else result.message[:200]
    return Sent(case, False, refused_class, detail, "pynetdicom")


def send_announced_without_data(case: Case, port: int, timeout_s: float) -> Sent:
    """A C-STORE whose command announces the case's dataset and which then sends none."""
    sop_class = str(pydicom.dcmread(case.path).file_meta.MediaStorageSOPClassUID)
    response = announce_a_dataset_and_send_none(port, sop_class, timeout_s, "RELSEND", case.uid)
    if response is None or response.Status is None:
        return Sent(case, False, False, "no response", "announce-only")
    status = int(response.Status)
    detail = f"0x{status:04X} {response.ErrorComment or ''}"[:200]
    return Sent(case, status == 0, status != 0, detail, "announce-only")


def send_until_answered(
    case: Case, port: int, patience_s: float = 90.0, pause_s: float = 1.0
) -> Sent:
    """Send again while the gateway does not answer (it is being killed and restarted,
    which takes 20 s on a loaded machine), as a cart keeps an ECG until it is
    acknowledged. A resend of stored bytes is a duplicate that the gateway acknowledges
    without a second job."""
    deadline = time.monotonic() + patience_s
    sent = send(case, port)
    attempt = 1
    while sent.unanswered and time.monotonic() < deadline:
        time.sleep(pause_s)
        attempt += 1
        sent = send(case, port)
        sent = Sent(sent.case, sent.acked, sent.refused, sent.detail, sent.sender, attempt)
    return sent


def send_all(cases: list[Case], port: int, senders: int, retry: bool = False) -> list[Sent]:
    """`senders` concurrent senders, each taking the next case; results in case order."""
    one = (lambda c: send_until_answered(c, port)) if retry else (lambda c: send(c, port))
    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(one, cases))
