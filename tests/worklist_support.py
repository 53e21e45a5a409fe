"""For the worklist's tests and bench: orders put into a store as the HL7 listener would,
and dcmtk's findscu as the cart, its responses read back with pydicom."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from gateway.store.order_records import NewOrder, OrderReference

# What a cart asks for (dcmtk's wlistqry examples, carts' conformance statements): the
# top-level return keys and those of the Scheduled Procedure Step item.
CART_KEYS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
    "ReferringPhysicianName",
)
CART_SPS_KEYS = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepID",
    "ScheduledProcedureStepDescription",
)


def local(date_time: str) -> float:
    """Epoch seconds of a local 'YYYYMMDDHHMMSS' (DICOM dates and times are local)."""
    return time.mktime(time.strptime(date_time, "%Y%m%d%H%M%S"))


def new_order(number: int, **changes) -> NewOrder:
    """Order `number` for patient P<number>; OrderReference's fields and NewOrder's by name."""
    names = set(OrderReference.__dataclass_fields__)
    reference = {
        "placer_order_number": f"PL{number}",
        "placer_authority": "EHR",
        "accession_number": f"ACC{number}",
        "procedure_code": "ECG12",
        "procedure_text": "12-lead resting ECG",
        **{name: changes.pop(name) for name in list(changes) if name in names},
    }
    values = {
        "patient_id": f"P{number}",
        "patient_id_issuer": "HOSP",
        "patient_name": "Doe^John",
        "birth_date": "19600102",
        "sex": "M",
        "referring_physician": "Who^Doctor",
        "scheduled_at": local("20261206093000"),
        "station_ae": "CART1",
        **changes,
    }
    return NewOrder(reference=OrderReference(**reference), **values)


@dataclass
class FindResult:
    """What findscu got: the pending responses' identifiers, their statuses and the
    final one (from its debug log), and the final response's error comment."""

    returncode: int
    responses: list[Dataset]
    statuses: list[int]
    log: str

    @property
    def status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None

    @property
    def comment(self) -> str:
        found = re.findall(r"\(0000,0902\) LO \[([^\]]*)\]", self.log)
        return found[-1] if found else ""


def findscu(
    port: int, *keys: str, out: Path, aet: str = "CART1", extra: tuple[str, ...] = ()
) -> FindResult:
    """A worklist C-FIND by dcmtk's findscu (`-k` keys as findscu takes them)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args = ["findscu", "-W", "-d", "-aet", aet, "-aec", "ECGGW", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run(
        [*args, *extra, "127.0.0.1", str(port)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = done.stdout + done.stderr
    statuses = [int(code, 16) for code in re.findall(r"DIMSE Status\s*:\s*0x([0-9a-f]{4})", log)]
    responses = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    return FindResult(done.returncode, responses, statuses, log)
