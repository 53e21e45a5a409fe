"""Orders as the store keeps them (IHE Resting ECG Workflow): what the EHR ordered,
what a cart is offered in the modality worklist, and the reference a result carries back.

An order holds patient demographics (the worklist hands them to the cart), so it is
store data: never logged. `OrderReference` is the part without demographics that
travels with a report package to the deliverers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OrderState = Literal["scheduled", "in_progress", "completed", "cancelled", "discontinued"]
# Orders a cart may still be given and an ECG may still be matched to.
OPEN_ORDER_STATES: tuple[OrderState, ...] = ("scheduled", "in_progress")
OrderPriority = Literal["stat", "asap", "routine"]


@dataclass(frozen=True, kw_only=True)
class OrderReference:
    """What a result carries back to the EHR: the order's identifiers, no demographics."""

    placer_order_number: str  # ORC-2 / OBR-2, entity identifier
    placer_authority: str = ""  # its namespace (ORC-2.2)
    filler_order_number: str = ""  # ORC-3 / OBR-3 (the gateway assigns one if absent)
    filler_authority: str = ""
    accession_number: str = ""
    procedure_code: str = ""  # OBR-4.1
    procedure_text: str = ""  # OBR-4.2
    procedure_coding_system: str = ""  # OBR-4.3
    priority: OrderPriority = "routine"
    ordering_facility: str = ""
    # True when the order arrived after the ECG's report was first sent (reconciliation)
    reconciled: bool = False


@dataclass(frozen=True, kw_only=True)
class NewOrder:
    """An order as received from the EHR, before the store numbers it."""

    reference: OrderReference
    patient_id: str  # PID-3.1
    patient_id_issuer: str = ""  # PID-3.4
    patient_name: str = ""  # DICOM PN form: Family^Given^Middle
    birth_date: str = ""  # YYYYMMDD, or "" when unknown or invalid
    sex: str = ""  # M, F, O, U or ""
    referring_physician: str = ""  # DICOM PN form
    scheduled_at: float | None = None  # epoch seconds; None: as soon as possible
    station_ae: str = ""  # Scheduled Station AE Title, "" = any cart
    study_instance_uid: str = ""  # the Study Instance UID the cart is told to use
    requested_procedure_id: str = ""
    sending_application: str = ""  # MSH-3
    sending_facility: str = ""  # MSH-4


@dataclass(frozen=True, kw_only=True)
class Order(NewOrder):
    """An order in the store."""

    id: int
    state: OrderState
    job_id: int | None = None  # the ECG matched to it
    created_at: float
    updated_at: float
