"""HL7 order messages as an EHR sends them, and the listener in-process, for the order
listener's tests and bench/orders.py. The EHR side is python-hl7's MLLP client."""

from __future__ import annotations

from pathlib import Path

import hl7
from hl7.client import MLLPClient

from gateway.audit import Auditor
from gateway.config import AuditConfig, OrdersConfig
from gateway.delivery.er7 import segment
from gateway.intake.hl7_orders import OrderListener
from gateway.intake.order_intake import OrderIntake
from gateway.metrics import Metrics
from gateway.store import Store

PATIENT_NAME = "Doe^Jane^Q"  # must never reach a log line
PATIENT_ID = "MRN4711"
ORC = {12: "1234^Who^Doctor", 21: "Cardiology"}  # ordering provider, ordering facility
OBR = {4: "93000^ECG 12 lead^C4"}


def msh(kind: str, control_id: str, version: str, facility: str = "NORTH") -> str:
    return f"MSH|^~\\&|EPIC|{facility}|ECGGW|CARDIO|20260101120000||{kind}|{control_id}|P|{version}"


def pid(patient_id: str = PATIENT_ID, issuer: str = "HOSP") -> str:
    return f"PID|1||{patient_id}^^^{issuer}^MR||{PATIENT_NAME}||19600102|F"


def orm(
    control: str = "NW",
    placer: str = "P1",
    *,
    control_id: str = "MSG1",
    version: str = "2.3.1",
    facility: str = "NORTH",
    patient: str | None = None,
    priority: str = "S",
    start: str = "20260102083000",
) -> str:
    """ORM^O01: scheduled time and priority in ORC-7 (TQ), the procedure in OBR-4."""
    segments = [
        msh("ORM^O01", control_id, version, facility),
        patient if patient is not None else pid(),
        "PV1|1|O",
        segment("ORC", {1: control, 2: f"{placer}^HIS", 7: f"^^^{start}^^{priority}", **ORC}),
        segment("OBR", {1: "1", 2: f"{placer}^HIS", 18: f"ACC{placer}", 19: f"RP{placer}", **OBR}),
    ]
    return "\r".join(segments)


def omg(
    control: str = "NW", placer: str = "P2", *, control_id: str = "MSG2", priority: str = "A",
    start: str = "20260102090000+0100", study_uid: str = "1.2.826.0.1.3680043.8.498.1",
) -> str:  # fmt: skip
    """OMG^O19 v2.5.1: timing in TQ1, the Study Instance UID in IHE's ZDS."""
    segments = [
        msh("OMG^O19^OMG_O19", control_id, "2.5.1"),
        pid(),
        f"ORC|{control}|{placer}^HIS",
        f"TQ1|1||||||{start}||{priority}",
        f"OBR|1|{placer}^HIS||93000^ECG 12 lead^C4",
        f"ZDS|{study_uid}^100^Application^DICOM",
    ]
    return "\r".join(segments)


def adt_a08(name: str = "Doe^Janet", control_id: str = "MSG3") -> str:
    return "\r".join(
        [
            msh("ADT^A08^ADT_A01", control_id, "2.5.1"),
            "EVN|A08|20260101120000",
            f"PID|1||{PATIENT_ID}^^^HOSP^MR||{name}||19600103|F",
        ]
    )


def adt_a40(prior: str = PATIENT_ID, new: str = "MRN9", control_id: str = "MSG4") -> str:
    return "\r".join(
        [
            msh("ADT^A40^ADT_A39", control_id, "2.5.1"),
            "EVN|A40|20260101120000",
            f"PID|1||{new}^^^HOSP^MR||{PATIENT_NAME}",
            f"MRG|{prior}^^^HOSP^MR",
        ]
    )


def send(port: int, message: str | bytes) -> hl7.Message:
    """One message over a fresh MLLP connection (python-hl7's client); the ACK parsed."""
    with MLLPClient("127.0.0.1", port) as client:
        return parse_ack(client.send_message(message))


def parse_ack(framed: bytes) -> hl7.Message:
    assert framed.startswith(b"\x0b") and framed.endswith(b"\x1c\r"), framed
    return hl7.parse(framed[1:-2].decode("utf-8"))


def ack_code(reply: hl7.Message) -> str:
    return str(reply.segment("MSA")[1])


def start_listener(
    store: Store, directory: Path, **settings: object
) -> tuple[OrderListener, Metrics]:
    """The listener on a free port of 127.0.0.1 over `store`, auditing into `directory`."""
    config = OrdersConfig.model_validate({"enabled": True, "port": 0, **settings})
    metrics = Metrics()
    audit = Auditor(directory, AuditConfig(), "ECGGW", metrics)
    listener = OrderListener(config, OrderIntake(store, config, metrics, audit)).start()
    return listener, metrics
