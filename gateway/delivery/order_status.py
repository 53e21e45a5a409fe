"""The order status update IHE's Resting ECG Workflow has the order filler send when the
ECG is acquired: ORM^O01 (HL7 v2.5.1) with ORC-1 SC (status changed) and ORC-5 CM (the
order's procedure is done), naming the order by its placer and filler numbers, so the
EHR closes the order before the result arrives.

Built with hl7apy's message model and validated by it (strict, 2.5.1) as it is built:
one message per ECG, so its cost (tens of milliseconds, see er7.py) does not matter.
Sent like a result, by an `hl7` destination whose `sends` is `order-status`
(gateway/routing/schema.py), through the same sender and ACK checks (hl7.py).
"""

from __future__ import annotations

from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException

from gateway.delivery import er7
from gateway.delivery.base import DeliveryError
from gateway.processing.package import ReportPackage
from gateway.routing import Hl7Options

VERSION = "2.5.1"
STATUS_CHANGED = "SC"  # ORC-1, HL7 table 0119
COMPLETED = "CM"  # ORC-5, HL7 table 0038: the order's procedure is done (the ECG taken)


def build_status(package: ReportPackage, options: Hl7Options, message_control_id: str) -> str:
    """The ORM^O01 status update for the order the ECG of `package` fulfilled, as ER7."""
    order = package.order
    if order is None:  # routing sends only ordered ECGs here; a stale row says so clearly
        raise DeliveryError("the ECG has no order to report a status for", permanent=True)
    message = Message("ORM_O01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    try:
        _fill_msh(message, options, message_control_id)
        if package.metadata.patient_id:
            _fill_pid(message, package)
        _fill_orc(message, package)
        message.validate()
    except HL7apyException as exc:
        raise DeliveryError(
            f"the order status message is not valid HL7 {VERSION}: {type(exc).__name__}",
            permanent=True,
        ) from None
    return message.to_er7()


def _fill_msh(message: Message, options: Hl7Options, message_control_id: str) -> None:
    msh = message.msh
    msh.msh_3 = er7.text(options.sending_application)
    msh.msh_4 = er7.text(options.sending_facility)
    msh.msh_5 = er7.text(options.receiving_application)
    msh.msh_6 = er7.text(options.receiving_facility)
    msh.msh_7 = datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z")
    msh.msh_9 = "ORM^O01^ORM_O01"
    msh.msh_10 = message_control_id
    msh.msh_11 = options.processing_id
    msh.msh_12 = VERSION
    if options.accept_ack_type:
        msh.msh_15 = options.accept_ack_type
    if options.application_ack_type:
        msh.msh_16 = options.application_ack_type
    msh.msh_18 = "UNICODE UTF-8"


def _fill_pid(message: Message, package: ReportPackage) -> None:
    """The ECG's patient identifier (the order's, or the match would have been refused);
    no name or birth date: the order is named by its numbers, the EHR knows the rest."""
    meta = package.metadata
    pid = message.add_group("ORM_O01_PATIENT").add_segment("PID")
    pid.pid_1 = "1"
    pid.pid_3 = er7.components(
        er7.text(meta.patient_id or ""), "", "", er7.text(meta.patient_id_issuer or ""), "MR"
    )
    pid.pid_5 = er7.components("", "", "", "", "", "", "U")  # required; U: not given here


def _fill_orc(message: Message, package: ReportPackage) -> None:
    order = package.order
    orc = message.add_group("ORM_O01_ORDER").add_segment("ORC")
    orc.orc_1 = STATUS_CHANGED
    orc.orc_2 = er7.components(
        er7.text(order.placer_order_number), er7.text(order.placer_authority)
    )
    if order.filler_order_number:
        orc.orc_3 = er7.components(
            er7.text(order.filler_order_number), er7.text(order.filler_authority)
        )
    orc.orc_5 = COMPLETED
    acquired = package.metadata.acquisition_time
    if acquired is not None:  # ORC-9: when the status changed, i.e. the ECG was taken
        orc.orc_9 = acquired.strftime("%Y%m%d%H%M%S")
