"""The Modality Worklist SCP against dcmtk's findscu as the cart: orders put into the store
(both backends) come back with what a cart needs, closed orders never do, and bad queries
get a failure status naming the element, a log line without patient data, and the SCP
keeps answering. The SCP runs in-process with the real store (as in test_scp.py)."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from gateway import metrics as m
from gateway.audit import Auditor
from gateway.config import AuditConfig, GatewayConfig
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.intake.dicom_scp import start_scp
from gateway.intake.worklist import FindRequest, Worklist
from gateway.metrics import Metrics
from gateway.store import StoreError
from tests.gateway_process import GatewayProcess, free_port
from tests.hl7_orders_support import PATIENT_ID as HL7_PATIENT_ID
from tests.hl7_orders_support import PATIENT_NAME as HL7_NAME
from tests.hl7_orders_support import ack_code, orm, send
from tests.test_store import open_backend
from tests.worklist_support import CART_KEYS, CART_SPS_KEYS, findscu, local, new_order

pytestmark = pytest.mark.skipif(shutil.which("findscu") is None, reason="dcmtk not installed")

SPS = "ScheduledProcedureStepSequence[0]"
# What a cart asks for, and more: codes, order numbers, a key the gateway has no value for.
CART_QUERY = (
    *CART_KEYS,
    "RequestedProcedureCodeSequence",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "MedicalAlerts",
    *(f"{SPS}.{keyword}" for keyword in CART_SPS_KEYS),
    f"{SPS}.ScheduledPerformingPhysicianName",
)
# Patient data that must never reach the log.
NAME, PATIENT_ID = "Zyxwvu^Qrstuv", "MRN88421"


class WorklistGateway:
    """An in-process SCP with the worklist on, on a store of one backend, auditing."""

    def __init__(self, store, tmp_path: Path, **settings) -> None:
        settings.setdefault("worklist", {"enabled": True})
        self.config = GatewayConfig(
            data_dir=tmp_path / "data",
            port=free_port(),
            bind_address="127.0.0.1",
            allowed_calling_aes=["CART1", "CART2"],
            **settings,
        )
        ensure_dir(self.config.spool_dir)
        self.store = store
        self.metrics = Metrics()
        self.audit = Auditor(tmp_path / "audit", AuditConfig(), "ECGGW")
        intake = Intake(store, self.config.spool_dir, self.metrics, 0, lambda: None, self.audit)
        self.scp = start_scp(self.config, intake, self.metrics)
        self.out = tmp_path / "findscu"

    def find(self, *keys: str, **options):
        return findscu(self.config.port, *keys, out=self.out, **options)

    def audited_queries(self) -> list[ET.Element]:
        """The Query (110112) audit messages written so far."""
        records = [json.loads(line)["msg"] for line in self.audit.trail.path.open()]
        messages = [ET.fromstring(text[text.index("<AuditMessage") :]) for text in records]
        return [
            m for m in messages if m.find("EventIdentification/EventID").get("csd-code") == "110112"
        ]

    def stop(self) -> None:
        self.scp.stop(grace_s=2)
        self.audit.close()


@pytest.fixture(params=["sqlite"])
def backend(request):
    return request.param


@pytest.fixture
def gateway(backend, request, tmp_path):
    store = open_backend(backend, request, tmp_path)
    running = WorklistGateway(store, tmp_path)
    yield running
    running.stop()
    store.close()


def gateway_logs(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_cart_downloads_its_scheduled_ecgs_with_what_it_needs(gateway, caplog):
    caplog.set_level(logging.INFO)
    store = gateway.store
    mine = store.add_order(new_order(1, patient_name=NAME, patient_id=PATIENT_ID, priority="stat"))
    anywhere = store.add_order(new_order(2, station_ae="", scheduled_at=local("20261206140000")))
    store.add_order(new_order(3, station_ae="CART2"))
    store.add_order(new_order(4, scheduled_at=local("20261207093000")))  # tomorrow
    for number, state in ((5, "cancelled"), (6, "completed"), (7, "discontinued")):
        store.set_order_state(store.add_order(new_order(number)).id, state)

    keys = [k for k in CART_QUERY if "Station" not in k and "StartDate" not in k]
    result = gateway.find(
        *keys,
        f"{SPS}.ScheduledStationAETitle=CART1",
        f"{SPS}.ScheduledProcedureStepStartDate=20261206",
    )

    assert result.returncode == 0 and result.status == 0x0000, result.log[-2000:]
    assert [r.AccessionNumber for r in result.responses] == ["ACC1", "ACC2"]
    first = result.responses[0]
    assert str(first.PatientName) == NAME and first.PatientID == PATIENT_ID
    assert first.IssuerOfPatientID == "HOSP"
    assert (first.PatientBirthDate, first.PatientSex) == ("19600102", "M")
    assert first.StudyInstanceUID == mine.study_instance_uid != ""
    assert first.RequestedProcedureID == str(mine.id)
    assert first.RequestedProcedureDescription == "12-lead resting ECG"
    code = first.RequestedProcedureCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("ECG12", "L")
    assert str(first.ReferringPhysicianName) == "Who^Doctor"
    assert first.PlacerOrderNumberImagingServiceRequest == "PL1"
    assert first.FillerOrderNumberImagingServiceRequest == mine.reference.filler_order_number
    assert first.MedicalAlerts == ""  # known to the model, unknown to the gateway: empty
    step = first.ScheduledProcedureStepSequence[0]
    assert step.Modality == "ECG" and step.ScheduledStationAETitle == "CART1"
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261206",
        "093000",
    )
    assert step.ScheduledProcedureStepID == str(mine.id)
    assert step.ScheduledProcedureStepDescription == "12-lead resting ECG"
    assert "PatientWeight" not in first  # only the keys asked for
    assert result.responses[1].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == ""
    assert result.responses[1].StudyInstanceUID == anywhere.study_instance_uid

    # The ECG is taken: its order no longer shows.
    store.set_order_state(mine.id, "completed")
    again = gateway.find(f"{SPS}.ScheduledStationAETitle=CART1", "AccessionNumber")
    assert [r.AccessionNumber for r in again.responses] == ["ACC2", "ACC4"]

    logs = gateway_logs(caplog)
    assert "worklist query from CART1 matching on SPS>ScheduledStationAETitle" in logs
    assert "2 matches" in logs
    assert NAME.split("^")[0] not in logs and PATIENT_ID not in logs


def test_queries_by_patient_id_name_wildcards_time_and_modality(gateway):
    store = gateway.store
    store.add_order(new_order(1, patient_name="Doe^John"))
    store.add_order(new_order(2, patient_name="Doe^Jane", scheduled_at=local("20261206150000")))
    store.add_order(new_order(3, patient_name="Roe^Richard", patient_id="P33"))

    def accessions(*keys: str) -> list[str]:
        result = gateway.find("AccessionNumber", *keys)
        assert result.status == 0x0000, result.log[-2000:]
        return [r.AccessionNumber for r in result.responses]

    assert accessions("PatientID=P2") == ["ACC2"]
    assert accessions("PatientID=P3*") == ["ACC3"]
    assert accessions("PatientName=Doe*") == ["ACC1", "ACC2"]
    assert accessions("PatientName=doe*") == []  # case-sensitive, as dcmtk's wlmscpfs
    assert accessions("PatientName=D?e^Ja*") == ["ACC2"]
    assert accessions("PatientName=*ich*") == ["ACC3"]
    assert accessions(f"{SPS}.ScheduledProcedureStepStartTime=1200-") == ["ACC2"]
    assert accessions(f"{SPS}.ScheduledProcedureStepStartDate=20261201-20261205") == []
    assert accessions(f"{SPS}.Modality=MR") == []
    assert accessions(f"{SPS}.Modality=E*", "PatientID=P1") == ["ACC1"]


def test_unsupported_keys_are_ignored_with_warning_status(gateway):
    gateway.store.add_order(new_order(1))
    result = gateway.find("PatientID", "(0008,0052)=PATIENT", "(0009,0010)=ACME", f"{SPS}.Modality")
    assert result.status == 0x0000
    assert result.statuses[:-1] == [0xFF01]  # matches continuing, optional keys unsupported
    answer = result.responses[0]
    assert answer.PatientID == "P1" and "QueryRetrieveLevel" not in answer
    assert (0x0009, 0x0010) not in answer


@pytest.mark.parametrize(
    ("key", "comment"),
    [
        (f"{SPS}.ScheduledProcedureStepStartDate=2026*", "no wildcards"),
        (f"{SPS}.ScheduledProcedureStepStartDate=20261206-20261201", "starts after its end"),
        (f"{SPS}.ScheduledProcedureStepStartDate=2026-12-06", "not YYYYMMDD or a range"),
        (f"{SPS}.ScheduledProcedureStepStartTime=9:30", "not a time HHMMSS"),
        ("StudyInstanceUID=1.2.*", "no wildcards in a UID"),
        ("PatientName=Doe*\\Roe*", "several values"),
    ],
)
def test_bad_queries_are_refused_naming_the_element(gateway, caplog, key, comment):
    caplog.set_level(logging.INFO)
    gateway.store.add_order(new_order(1))
    result = gateway.find("PatientName", key)
    assert result.status == 0xA900 and result.responses == []
    assert comment in result.comment
    assert "(0000,0901) AT" in result.log  # OffendingElement
    assert "refused (0xA900)" in gateway_logs(caplog)
    assert gateway.metrics.get(m.WORKLIST_QUERIES) == 1
    # The SCP is still up and answering.
    assert gateway.find("PatientName").status == 0x0000


def test_an_identifier_with_no_worklist_key_is_refused(gateway):
    result = gateway.find("SpecificCharacterSet=ISO_IR 100", "(0008,0052)=PATIENT")
    assert result.status == 0xA900 and "no worklist key" in result.comment


def test_a_query_with_no_identifier_is_refused_after_the_wait(backend, request, tmp_path):
    """dcmtk will not send a C-FIND without an identifier; pynetdicom's client sends the
    command alone. pynetdicom's SCP would wait for the identifier until the network
    timeout with no handler run; the gateway answers 0xA900 after dataset_wait_s."""
    store = open_backend(backend, request, tmp_path)
    running = WorklistGateway(store, tmp_path, dicom={"dataset_wait_s": 0.5})
    try:
        ae = AE(ae_title="CART1")
        ae.dimse_timeout = 10
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", running.config.port, ae_title="ECGGW")
        assert assoc.is_established
        answers = list(assoc.send_c_find(Dataset(), ModalityWorklistInformationFind))
        assert [status.get("Status") for status, _ in answers] == [0xA900]
        assert "no dataset" in answers[0][0].ErrorComment
        assert running.metrics.rejections() == {"no-dataset": 1}
        assert running.find("PatientName").status == 0x0000  # other carts still served
    finally:
        running.stop()
        store.close()


def test_a_peer_not_allowed_gets_no_worklist(gateway, caplog):
    caplog.set_level(logging.INFO)
    gateway.store.add_order(new_order(1))
    refused = gateway.find("PatientName", aet="INTRUDER")
    assert refused.returncode != 0 and refused.responses == []
    assert "rejected association from INTRUDER" in gateway_logs(caplog)
    assert gateway.metrics.rejections() == {"calling-ae-not-allowed": 1}
    assert len(gateway.find("PatientName").responses) == 1


def test_too_many_matches_are_refused_not_cut(backend, request, tmp_path):
    store = open_backend(backend, request, tmp_path)
    running = WorklistGateway(store, tmp_path, worklist={"enabled": True, "max_results": 3})
    try:
        for number in range(1, 5):
            store.add_order(new_order(number))
        result = running.find("PatientID")
        assert result.status == 0xA700 and result.responses == []
        assert "more than 3 matches" in result.comment
        assert len(running.find("PatientID=P1*").responses) == 1
    finally:
        running.stop()
        store.close()


def test_a_cancel_stops_the_answers(gateway, caplog):
    """The handler looks for a C-CANCEL before each answer (pynetdicom's event says)."""
    caplog.set_level(logging.INFO)
    for number in range(1, 21):
        gateway.store.add_order(new_order(number))
    identifier = Dataset()
    identifier.PatientID = ""
    asked = iter([False, False, False, True])
    request = FindRequest("CART1", "127.0.0.1", lambda: identifier, cancelled=lambda: next(asked))
    answers = list(Worklist(gateway.store, gateway.config.worklist, Metrics(), None).find(request))
    assert [status for status, _ in answers] == [0xFF00, 0xFF00, 0xFF00, 0xFE00]
    assert "cancelled after 3 of 20" in gateway_logs(caplog)


def test_findscu_cancelling_is_answered(gateway):
    """findscu's C-CANCEL after the first answer: the SCP, faster than findscu, may have
    sent every answer already (then success); either way the association ends cleanly."""
    for number in range(1, 201):
        gateway.store.add_order(new_order(number))
    result = gateway.find("PatientID", "PatientName", extra=("--cancel", "1"))
    assert result.returncode == 0, result.log[-1500:]
    if result.status == 0xFE00:
        assert 1 <= len(result.responses) < 200
    else:
        assert (result.status, len(result.responses)) == (0x0000, 200)


def test_worklist_off_refuses_the_association(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    store = open_backend("sqlite", None, tmp_path)
    running = WorklistGateway(store, tmp_path, worklist={"enabled": False})
    try:
        store.add_order(new_order(1))
        result = running.find("PatientName")
        assert result.returncode != 0 and result.responses == []
        assert "offers no supported SOP class" in gateway_logs(caplog)
    finally:
        running.stop()
        store.close()


def _answers_to_any_name(store) -> list:
    """What a Worklist over `store` answers a query for any patient name."""
    worklist = Worklist(store, GatewayConfig().worklist, Metrics(), None)
    identifier = Dataset()
    identifier.PatientName = ""
    return list(worklist.find(FindRequest("CART1", "127.0.0.1", lambda: identifier)))


class _BrokenStore:
    """A store whose database is gone: every call fails as the real one then does."""

    def open_orders(self, **_):
        raise StoreError("database unavailable")


def test_store_failure_and_undecodable_identifier_are_failures_not_crashes(caplog):
    answers = _answers_to_any_name(_BrokenStore())
    assert [a[0].Status for a in answers] == [0xC000]
    assert answers[0][0].ErrorComment == "worklist store unavailable"

    def undecodable() -> Dataset:
        raise ValueError("bad element length")

    worklist = Worklist(_BrokenStore(), GatewayConfig().worklist, Metrics(), None)
    answers = list(worklist.find(FindRequest("CART1", "127.0.0.1", undecodable)))
    assert [a[0].Status for a in answers] == [0xA900]
    assert "cannot decode the identifier" in answers[0][0].ErrorComment


def test_a_fault_while_answering_is_a_failure_logged_without_values(monkeypatch, caplog):
    """A bug while building the answers (here the item mapping raising, quoting the
    patient) ends the query with 0xC000, logged by type and line: never pynetdicom's
    own log line, which holds the exception's message."""
    from gateway.intake import worklist as worklist_module

    class OneOrder:
        def open_orders(self, **_):
            return [object()]

    def broken(order, now):
        raise ValueError(f"bad date for {NAME}")

    monkeypatch.setattr(worklist_module, "worklist_item", broken)
    answers = _answers_to_any_name(OneOrder())
    assert [a[0].Status for a in answers] == [0xC000]
    assert answers[0][0].ErrorComment == "the gateway failed on this query"
    assert "ValueError at test_worklist_scp.py:" in caplog.text and "Zyxwvu" not in caplog.text


def test_each_query_is_audited_with_its_identifier(gateway):
    """PS3.15 A.5.3.12: who asked (source, requestor), the gateway (destination), the SOP
    class and the identifier as sent; a refused query as a minor failure saying why."""
    gateway.store.add_order(new_order(1))
    assert gateway.find("PatientName=Doe*", "PatientID").status == 0x0000
    assert gateway.find(f"{SPS}.ScheduledProcedureStepStartDate=2026*").status == 0xA900
    answered, refused = gateway.audited_queries()
    assert answered.find("EventIdentification").get("EventOutcomeIndicator") == "0"
    source = answered.find("ActiveParticipant")
    assert (source.get("UserID"), source.get("UserIsRequestor")) == ("CART1", "true")
    assert source.get("NetworkAccessPointID") == "127.0.0.1"
    query = answered.find("ParticipantObjectIdentification")
    assert query.get("ParticipantObjectID") == ModalityWorklistInformationFind
    detail = query.find("ParticipantObjectDetail")
    syntax = base64.b64decode(detail.get("value")).decode()
    identifier = read_dataset(
        BytesIO(base64.b64decode(query.find("ParticipantObjectQuery").text)),
        is_implicit_VR=syntax == "1.2.840.10008.1.2",
        is_little_endian=True,
    )
    assert str(identifier.PatientName) == "Doe*"
    assert refused.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert "refused 0xA900" in refused.find("EventIdentification/EventOutcomeDescription").text


def test_an_hl7_order_reaches_the_carts_worklist_and_its_cancel_removes_it(tmp_path):
    """IHE REWF end to end in `ecg-gateway serve`: the EHR's ORM^O01 (python-hl7's MLLP
    client) is on the worklist dcmtk's findscu downloads, with what the cart needs; the
    EHR's cancel takes it off."""
    orders_port = free_port()
    server = GatewayProcess(
        tmp_path / "data",
        extra_config=(
            "worklist:\n  enabled: true\n"
            f"orders:\n  enabled: true\n  port: {orders_port}\n  default_station_ae: CART1\n"
        ),
    )
    server.start()
    keys = (
        *(key for key in CART_QUERY if not key.endswith("StartDate")),
        "RequestedProcedurePriority",
        f"{SPS}.ScheduledProcedureStepStartDate=20260102",
    )
    try:
        assert ack_code(send(orders_port, orm(placer="P1"))) == "AA"
        result = findscu(server.port, *keys, out=tmp_path / "out")
        assert result.status == 0x0000, result.log[-2000:]
        [answer] = result.responses
        assert (str(answer.PatientName), answer.PatientID) == (HL7_NAME, HL7_PATIENT_ID)
        assert (answer.AccessionNumber, answer.RequestedProcedureID) == ("ACCP1", "RPP1")
        assert answer.RequestedProcedureDescription == "ECG 12 lead"
        code = answer.RequestedProcedureCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == ("93000", "C4")
        assert answer.RequestedProcedurePriority == "STAT"
        assert answer.PlacerOrderNumberImagingServiceRequest == "P1"
        step = answer.ScheduledProcedureStepSequence[0]
        assert (step.ScheduledStationAETitle, step.ScheduledProcedureStepStartTime) == (
            "CART1",
            "083000",
        )
        assert answer.StudyInstanceUID  # the one the result will be matched by

        assert ack_code(send(orders_port, orm("CA", "P1", control_id="MSG9"))) == "AA"
        again = findscu(server.port, *keys, out=tmp_path / "out")
        assert again.status == 0x0000 and again.responses == []
    finally:
        assert server.terminate(timeout_s=120) == 0  # workers may still be starting
    logs = server.logs()
    assert "worklist query from CART1 matching on" in logs
    assert HL7_NAME.split("^")[0] not in logs and HL7_PATIENT_ID not in logs
