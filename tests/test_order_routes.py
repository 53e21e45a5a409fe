"""routes.yaml and orders: rules match on the order's facility, priority and procedure
code; order-status destinations get each ordered ECG's status update and nothing else;
every mistake named with its key and line. The status update itself (ORM^O01) read
back by hl7apy (strict 2.5.1) and python-hl7."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import hl7
import pytest

from gateway.delivery.base import DeliveryError
from gateway.delivery.hl7 import control_id, prepare
from gateway.processing.package import ReportPackage
from gateway.routing import MatchContext, Router, check_routes
from gateway.store.order_records import OrderReference
from model.ecg import EcgMetadata
from tests.example_reports import sinus_report
from tests.hl7_strict import validated_strictly

ROUTES = """
destinations:
  outbox: {type: file, directory: out}
  cardiology: {type: file, directory: cardio}
  ehr-orders: {type: hl7, endpoint: "mllp://127.0.0.1:2575", sends: order-status}
rules:
  - name: stat-north
    match: {priority: [stat, asap], ordering_facility: "NORTH*", procedure_code: "930*"}
    destinations: [cardiology]
default: [outbox]
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _package(order: OrderReference | None) -> ReportPackage:
    metadata = EcgMetadata(
        patient_id="MRN1",
        patient_id_issuer="HOSP",
        patient_name="Doe^Jane",
        acquisition_time=datetime(2026, 1, 2, 8, 0),
        sop_instance_uid="1.2.3.4.5",
    )
    return ReportPackage(
        job_id=7, kind="ecg-waveform", metadata=metadata, report=sinus_report(), order=order
    )


def _order(**changes: str) -> OrderReference:
    values = {
        "placer_order_number": "P1",
        "placer_authority": "HIS",
        "priority": "stat",
        "ordering_facility": "NORTH-WING",
        "procedure_code": "93000",
    }
    return OrderReference(**{**values, **changes})


def test_rules_match_on_the_orders_facility_priority_and_procedure(tmp_path):
    router = Router(_write(tmp_path / "routes.yaml", ROUTES), tmp_path)
    names = [name for name, _ in router.destinations_for(_package(_order()))]
    assert names == ["cardiology", "ehr-orders"]
    for other in ({"priority": "routine"}, {"ordering_facility": "SOUTH"}, {"procedure_code": "1"}):
        names = [name for name, _ in router.destinations_for(_package(_order(**other)))]
        assert names == ["outbox", "ehr-orders"], other
    # an unordered ECG: no order to match on, no status to send
    assert [name for name, _ in router.destinations_for(_package(None))] == ["outbox"]
    assert MatchContext.of(_package(None)).priority == ""


def test_order_keys_and_order_status_destinations_are_checked_with_their_lines(tmp_path):
    routes = _write(
        tmp_path / "routes.yaml",
        """
        destinations:
          outbox: {type: file, directory: out}
          ehr-orders: {type: hl7, endpoint: "mllp://ehr:2575", sends: order-status}
          ris: {type: hl7, endpoint: "mllp://ris:2575", sends: orders}
        rules:
          - name: urgent
            match: {priority: urgent, ordering_facility: NORTH}
            destinations: [outbox]
          - name: stat-vlm
            match: {priority: stat}
            engine: vlm
            destinations: [outbox]
          - name: status-as-report
            destinations: [ehr-orders]
        default: [outbox, ehr-orders]
        """,
    )
    issues = {issue.where: issue for issue in check_routes(routes)}
    assert issues["destinations.ris.sends"].line == 4
    assert issues["rules[0].match.priority[0]"].line == 7
    assert "'stat', 'asap' or 'routine'" in issues["rules[0].match.priority[0]"].message
    assert issues["rules[1]"].line == 9
    assert "cannot match on ordering_facility, priority or procedure_code" in (
        issues["rules[1]"].message
    )
    assert issues["rules[2].destinations[0]"].line == 14
    assert "takes order status updates" in issues["rules[2].destinations[0]"].message
    assert issues["default[1]"].line == 15


def test_the_order_status_update_is_valid_orm_o01(tmp_path):
    router = Router(_write(tmp_path / "routes.yaml", ROUTES), tmp_path)
    destination = router.destination("ehr-orders")
    package = _package(_order(filler_order_number="ECG12", placer_order_number="P|1"))
    message = prepare(package, destination, "ehr-orders")["message"].decode()
    strict = validated_strictly(message)  # hl7apy, strict 2.5.1
    assert strict.msh.msh_9.to_er7() == "ORM^O01^ORM_O01"
    read = hl7.parse(message)  # python-hl7, another implementation
    assert str(read.segment("MSH")[10]) == control_id(package, "ehr-orders")
    orc = read.segment("ORC")
    assert (str(orc[1]), str(orc[3]), str(orc[5]), str(orc[9])) == (
        "SC", "ECG12", "CM", "20260102080000",
    )  # fmt: skip
    assert read.unescape(str(orc[2][0][0])) == "P|1"  # escaped, not a field break
    assert str(read.segment("PID")[3]) == "MRN1^^^HOSP^MR"
    assert "Doe" not in message  # the order is named by its numbers, not the patient
    with pytest.raises(DeliveryError, match="no order"):
        prepare(_package(None), destination, "ehr-orders")
