"""The worklist's query reading and matching (DICOM PS3.4 C.2.2.2, K.2.2) and the order ->
worklist item -> response mapping, as pure functions over Order records. The SCP with
dcmtk's findscu as the cart is in test_worklist_scp.py."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from gateway.intake.worklist_query import QueryError, parse_query
from gateway.intake.worklist_record import ITEM_KEYS, SPS, response, worklist_item
from gateway.store.order_records import Order
from tests.worklist_support import CART_KEYS, local, new_order

NOW = local("20261206120000")


def order(number: int = 1, **changes) -> Order:
    """Order `number` as the store holds it (numbered, its filler number and UID set)."""
    changes.setdefault("filler_order_number", f"FI{number}")
    changes.setdefault("study_instance_uid", f"1.2.826.0.1.3680043.8.498.{number}")
    new = new_order(number, **changes)
    values = {field.name: getattr(new, field.name) for field in fields(new)}
    times = {"created_at": NOW - 3600, "updated_at": NOW - 3600}
    return Order(**values, id=number, state="scheduled", **times)


def query(sps: dict | None = None, **keys) -> Dataset:
    """An identifier: top-level keys, and an SPS item with `sps` keys (None: no SPS)."""
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if sps is not None:
        step = Dataset()
        for keyword, value in sps.items():
            setattr(step, keyword, value)
        ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def found(identifier: Dataset, *orders: Order) -> list[int]:
    parsed = parse_query(identifier)
    if not parsed.ecg_wanted:
        return []
    return [o.id for o in orders if parsed.matches(worklist_item(o, NOW))]


def test_item_holds_every_key_of_the_schema_and_nothing_else():
    item = worklist_item(order(), NOW)
    assert set(item) == set(ITEM_KEYS)
    assert set(item[SPS][0]) == set(ITEM_KEYS[SPS])
    codes = item["RequestedProcedureCodeSequence"]
    assert codes == [
        {"CodeValue": "ECG12", "CodingSchemeDesignator": "L", "CodeMeaning": "12-lead resting ECG"}
    ]


def test_universal_query_returns_only_the_keys_asked_for():
    identifier = query(sps={}, PatientName="", PatientID="", AccessionNumber="")
    parsed = parse_query(identifier)
    answer = response(worklist_item(order(), NOW), parsed.requested)
    assert sorted(answer.dir()) == [
        "AccessionNumber",
        "PatientID",
        "PatientName",
        "ScheduledProcedureStepSequence",
    ]
    assert answer.PatientName == "Doe^John" and answer.AccessionNumber == "ACC1"
    step = answer.ScheduledProcedureStepSequence[0]
    # An empty SPS item asks for the whole step (as dcmtk's wlmscpfs expands it).
    assert step.Modality == "ECG" and step.ScheduledStationAETitle == "CART1"
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261206",
        "093000",
    )
    assert step.ScheduledProcedureStepID == "1"
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "ECG12"
    assert step.ScheduledPerformingPhysicianName == ""
    assert "SpecificCharacterSet" not in answer


def test_sps_item_with_keys_returns_those_keys_only():
    parsed = parse_query(query(sps={"Modality": "ECG", "ScheduledStationAETitle": ""}))
    step = response(worklist_item(order(), NOW), parsed.requested)[SPS][0]
    assert sorted(step.dir()) == ["Modality", "ScheduledStationAETitle"]


def test_a_cart_gets_everything_it_needs():
    extra = (
        "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest",
        "RequestedProcedurePriority",
    )
    keys = dict.fromkeys((*CART_KEYS, *extra), "")
    answer = response(
        worklist_item(order(7, priority="stat"), NOW), parse_query(query(**keys)).requested
    )
    assert answer.PatientBirthDate == "19600102" and answer.PatientSex == "M"
    assert answer.IssuerOfPatientID == "HOSP"
    assert answer.RequestedProcedureID == "7"  # no ID from the EHR: the gateway's order number
    assert answer.RequestedProcedureDescription == "12-lead resting ECG"
    assert answer.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.7"
    assert answer.ReferringPhysicianName == "Who^Doctor"
    assert answer.PlacerOrderNumberImagingServiceRequest == "PL7"
    assert answer.FillerOrderNumberImagingServiceRequest == "FI7"
    assert answer.RequestedProcedurePriority == "STAT"


def test_non_ascii_names_are_sent_as_utf8_with_the_character_set():
    parsed = parse_query(query(PatientName=""))
    answer = response(worklist_item(order(patient_name="Müller^Jörg"), NOW), parsed.requested)
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert answer.PatientName == "Müller^Jörg"


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ("20261206", [1, 3]),
        ("20261205", [2]),
        ("20261205-20261206", [1, 2, 3]),
        ("20261206-", [1, 3]),
        ("-20261205", [2]),
        ("20261207-", []),
        ("", [1, 2, 3]),
        ("*", [1, 2, 3]),
    ],
)
def test_start_date_single_range_and_open_ranges(dates, expected):
    orders = [
        order(1),
        order(2, scheduled_at=local("20261205233000")),
        order(3, scheduled_at=None),  # as soon as possible: due now (the 6th)
    ]
    assert found(query(sps={"ScheduledProcedureStepStartDate": dates}), *orders) == expected


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ("093000", [1]),
        ("0930", [1]),
        ("09", [1, 2]),
        ("0900-0945", [1, 2]),
        ("0915-0945", [1]),
        ("-0930", [1, 2]),
        ("0931-", [3]),
        ("091500.5-100000", [1]),
    ],
)
def test_start_time_ranges_with_partial_times(times, expected):
    orders = [order(1), order(2, scheduled_at=local("20261206090000")), order(3, scheduled_at=NOW)]
    assert found(query(sps={"ScheduledProcedureStepStartTime": times}), *orders) == expected


def test_date_and_time_are_matched_each_on_its_own():
    orders = [order(1), order(2, scheduled_at=local("20261207093000"))]
    identifier = query(
        sps={
            "ScheduledProcedureStepStartDate": "20261206",
            "ScheduledProcedureStepStartTime": "09-10",
        }
    )
    assert found(identifier, *orders) == [1]


@pytest.mark.parametrize(
    ("modality", "expected"), [("ECG", [1]), ("E*", [1]), ("", [1]), ("MR", []), ("ecg", [])]
)
def test_modality_other_than_ecg_matches_nothing(modality, expected):
    assert found(query(sps={"Modality": modality}), order(1)) == expected
    assert parse_query(query(sps={"Modality": modality})).ecg_wanted == bool(expected)


def test_station_matches_its_orders_and_those_for_any_station():
    orders = [order(1), order(2, station_ae=""), order(3, station_ae="CART2")]
    assert found(query(sps={"ScheduledStationAETitle": "CART1"}), *orders) == [1, 2]
    assert found(query(sps={"ScheduledStationAETitle": "CART?"}), *orders) == [1, 2, 3]
    assert parse_query(query(sps={"ScheduledStationAETitle": "CART1"})).prefilter == {
        "station_ae": "CART1"
    }
    assert parse_query(query(sps={"ScheduledStationAETitle": "CART*"})).prefilter == {}


def test_patient_id_exact_and_wildcard():
    orders = [order(1), order(2), order(12)]
    assert found(query(PatientID="P1"), *orders) == [1]
    assert found(query(PatientID="P1*"), *orders) == [1, 12]
    assert found(query(PatientID="p1"), *orders) == []  # LO matching is case-sensitive
    assert parse_query(query(PatientID=" P1 ")).prefilter == {"patient_id": "P1"}


NAMED = [
    order(1),
    order(2, patient_name="Doe^John=ドウ^ジョン"),
    order(3, patient_name="Doe^Jane"),
    order(4, patient_name=""),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Doe^John", [1, 2]),
        ("doe^john", []),  # case-sensitive, as dcmtk's wlmscpfs
        ("Doe*", [1, 2, 3]),
        ("D?e^Jo*", [1, 2]),
        ("D?e^J*", [1, 2, 3]),
        ("*^Jane", [3]),
        ("Doe", []),  # no wildcard: the whole name
        ("Doe^John^^^", [1, 2]),  # empty trailing components are not significant
        ("Doe^John=*", [1, 2]),
        ("Doe^John=ドウ^ジョン", [2]),
        ("*=ドウ*", [2]),
    ],
)
def test_patient_name_wildcards(name, expected):
    assert found(query(PatientName=name), *NAMED) == expected


@pytest.mark.parametrize(
    ("name", "expected"), [("doe^john", [1, 2]), ("DOE*", [1, 2, 3]), ("d?e^ja*", [3])]
)
def test_patient_name_ignoring_case_when_configured(name, expected):
    parsed = parse_query(query(PatientName=name), names_ignore_case=True)
    assert [o.id for o in NAMED if parsed.matches(worklist_item(o, NOW))] == expected


def test_unknown_value_matches_only_universal_matching():
    orders = [order(1, birth_date=""), order(2)]
    assert found(query(PatientBirthDate="19600102"), *orders) == [2]
    assert found(query(PatientBirthDate="19500101-19700101"), *orders) == [2]
    assert found(query(PatientBirthDate=""), *orders) == [1, 2]
    assert found(query(sps={"ScheduledPerformingPhysicianName": "Who*"}), *orders) == []


def test_uid_list_matching():
    orders = [order(1), order(2), order(3)]
    uids = ["1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.3"]
    assert found(query(StudyInstanceUID=uids), *orders) == [1, 3]


def test_sequence_matching_inside_the_code_sequence():
    codes = Dataset()
    codes.CodeValue = "ECG12"
    identifier = query(RequestedProcedureCodeSequence=Sequence([codes]))
    assert found(identifier, order(1), order(2, procedure_code="")) == [1]


def test_unsupported_keys_are_dropped_and_noted():
    identifier = query(PatientName="", QueryRetrieveLevel="PATIENT", sps={"Modality": "ECG"})
    identifier.add_new(0x00091001, "LO", "private")
    identifier[SPS].value[0].ScheduledProcedureStepEndDate = "20261206"
    parsed = parse_query(identifier)
    assert parsed.unsupported == ["(0008,0052)", "(0009,1001)", "(0040,0004)"]
    assert set(parsed.requested) == {"PatientName", SPS}
    assert set(parsed.requested[SPS]) == {"Modality"}


def test_character_set_and_group_lengths_are_no_keys():
    identifier = query(PatientName="", SpecificCharacterSet="ISO_IR 100")
    parsed = parse_query(identifier)
    assert parsed.unsupported == [] and set(parsed.requested) == {"PatientName"}


@pytest.mark.parametrize(
    ("identifier", "tag", "comment"),
    [
        (query(sps={"ScheduledProcedureStepStartDate": "2026120*"}), 0x00400002, "wildcards"),
        (
            query(sps={"ScheduledProcedureStepStartDate": "2026-12-06"}),
            0x00400002,
            "or a range",
        ),
        (query(sps={"ScheduledProcedureStepStartDate": "20261340"}), 0x00400002, "calendar date"),
        (query(sps={"ScheduledProcedureStepStartDate": "20261207-20261206"}), 0x00400002, "after"),
        (query(sps={"ScheduledProcedureStepStartDate": "-"}), 0x00400002, "or a range"),
        (query(sps={"ScheduledProcedureStepStartTime": "25"}), 0x00400003, "time of day"),
        (query(sps={"ScheduledProcedureStepStartTime": "09:30"}), 0x00400003, "HHMMSS"),
        (query(sps={"ScheduledProcedureStepStartTime": "1000-0900"}), 0x00400003, "after"),
        (query(PatientBirthDate="1960*"), 0x00100030, "wildcards"),
        (query(StudyInstanceUID="1.2.*"), 0x0020000D, "wildcards"),
        (query(StudyInstanceUID="not-a-uid"), 0x0020000D, "not a UID list"),
        (query(PatientName=["Doe*", "Roe*"]), 0x00100010, "several values"),
        (query(PatientID="MRN\x0047"), 0x00100020, "NUL character"),
        (query(AccessionNumber="A\x001"), 0x00080050, "NUL character"),
        (Dataset(), None, "no worklist key"),
        (query(QueryRetrieveLevel="STUDY"), None, "no worklist key"),
    ],
)
def test_bad_identifiers_name_the_element(identifier, tag, comment):
    with pytest.raises(QueryError, match=comment) as raised:
        parse_query(identifier)
    assert raised.value.tag == (Tag(tag) if tag is not None else None)


def test_sps_query_with_two_items_is_refused():
    identifier = query(sps={"Modality": "ECG"})
    identifier[SPS].value.append(Dataset())
    with pytest.raises(QueryError, match="2 items") as raised:
        parse_query(identifier)
    assert raised.value.tag == Tag(SPS)


def test_date_prefilter_covers_whole_local_days():
    parsed = parse_query(query(sps={"ScheduledProcedureStepStartDate": "20261205-20261206"}))
    assert parsed.prefilter["scheduled_from"] == local("20261205000000")
    assert local("20261206235959") < parsed.prefilter["scheduled_to"] < local("20261207000000")
    open_end = parse_query(query(sps={"ScheduledProcedureStepStartDate": "20261205-"}))
    assert open_end.prefilter == {"scheduled_from": local("20261205000000")}
