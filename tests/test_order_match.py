"""Matching an ECG to its order against a real store (both backends): by the worklist's
Study Instance UID or Accession Number, else Patient ID within the time window, never by
name alone; ambiguous and other-patient matches refused; demographic differences named
(never their values)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.processing.order_match import EcgIdentity, OrderMatching, match_order
from gateway.store.order_records import NewOrder, OrderReference
from tests.test_store import OBJECT, _job

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC).timestamp()
SETTINGS = OrderMatching()


@pytest.fixture
def store(store_each_backend):
    return store_each_backend


def _order(store, placer: str = "P1", **changes):
    names = set(OrderReference.__dataclass_fields__)
    reference = {name: changes.pop(name) for name in list(changes) if name in names}
    values = {
        "patient_id": "MRN1",
        "patient_id_issuer": "HOSP",
        "patient_name": "Müller^Hans",
        "birth_date": "19600102",
        "sex": "M",
        "scheduled_at": T0,
        **changes,
    }
    ref = OrderReference(placer_order_number=placer, placer_authority="HIS", **reference)
    return store.add_order(NewOrder(reference=ref, **values), now=T0 - 3600)


def _ecg(**changes) -> EcgIdentity:
    values = {
        "patient_id": "MRN1",
        "patient_id_issuer": "HOSP",
        "acquired_at": T0 + 600,
        "patient_name": "MULLER^HANS",
        "birth_date": "19600102",
        "sex": "M",
        **changes,
    }
    return EcgIdentity(**values)


def test_the_worklists_study_uid_matches_even_with_another_patient_id_missing(store):
    order = _order(store, study_instance_uid="1.2.826.0.1.7")
    _order(store, "P2")  # the same patient's other open order: not a rival of the UID
    found = match_order(store, _ecg(study_instance_uid="1.2.826.0.1.7", patient_id=""), SETTINGS)
    assert (found.order.id, found.matched_by, found.mismatches) == (order.id, "study-uid", ())
    assert found.warning is None


def test_the_accession_number_matches(store):
    order = _order(store, accession_number="ACC9")
    _order(store, "P2")
    found = match_order(store, _ecg(accession_number="ACC9"), SETTINGS)
    assert (found.order.id, found.matched_by) == (order.id, "accession")


def test_patient_id_within_the_window_and_not_outside_it(store):
    order = _order(store)
    assert match_order(store, _ecg(), SETTINGS).order.id == order.id
    assert match_order(store, _ecg(), SETTINGS).matched_by == "patient-id"
    late = _ecg(acquired_at=T0 + 13 * 3600)
    assert match_order(store, late, SETTINGS).order is None
    assert match_order(store, late, OrderMatching(patient_window_h=24)).order.id == order.id
    assert match_order(store, _ecg(), OrderMatching(patient_window_h=0)).order is None


def test_never_by_name_alone(store):
    _order(store)
    found = match_order(store, _ecg(patient_id="OTHER", patient_id_issuer=""), SETTINGS)
    assert found.order is None and found.warning is None


def test_another_issuer_is_another_patient(store):
    _order(store)
    assert match_order(store, _ecg(patient_id_issuer="CLINIC"), SETTINGS).order is None


def test_two_open_orders_of_the_patient_are_ambiguous_and_neither_is_taken(store):
    _order(store, "P1")
    _order(store, "P2", scheduled_at=T0 + 1800)
    found = match_order(store, _ecg(), SETTINGS)
    assert found.order is None
    assert "2 orders fit this ECG (Patient ID and time)" in found.warning


def test_uid_and_accession_naming_two_different_orders_is_ambiguous(store):
    _order(store, "P1", study_instance_uid="1.2.3.1")
    _order(store, "P2", accession_number="ACC2")
    found = match_order(
        store, _ecg(study_instance_uid="1.2.3.1", accession_number="ACC2"), SETTINGS
    )
    assert found.order is None and "2 orders fit" in found.warning


def test_an_order_for_another_patient_id_is_not_attached(store):
    _order(store, study_instance_uid="1.2.3.1")
    found = match_order(store, _ecg(study_instance_uid="1.2.3.1", patient_id="MRN2"), SETTINGS)
    assert found.order is None
    assert "for another patient ID" in found.warning and "MRN" not in found.warning


def test_name_birth_date_and_sex_differences_are_named_not_merged(store):
    order = _order(store, study_instance_uid="1.2.3.1")
    ecg = _ecg(
        study_instance_uid="1.2.3.1", patient_name="Mueller^Hans", birth_date="19600201", sex="F"
    )
    found = match_order(store, ecg, SETTINGS)
    assert found.order.id == order.id  # the same patient ID: attached, and flagged
    assert found.mismatches == ("patient name", "birth date", "sex")
    for value in ("Mueller", "Müller", "1960", "Hans"):
        assert value not in found.warning


def test_names_compare_without_case_accents_spacing_or_empty_parts(store):
    _order(store, study_instance_uid="1.2.3.1", patient_name="Müller^Hans^^Dr")
    for spelling in ("MULLER^HANS", "muller^ hans ^^", "Müller^Hans"):
        ecg = _ecg(study_instance_uid="1.2.3.1", patient_name=spelling)
        assert match_order(store, ecg, SETTINGS).mismatches == ()
    unknown = _ecg(study_instance_uid="1.2.3.1", patient_name="", birth_date="", sex="U")
    assert match_order(store, unknown, SETTINGS).mismatches == ()


def test_closed_orders_do_not_match_by_patient_but_a_completed_one_does_by_uid(store):
    completed = _order(store, "P1", study_instance_uid="1.2.3.1")
    cancelled = _order(store, "P2", study_instance_uid="1.2.3.2")
    first_job = store.add_job(_job(), now=T0, content=OBJECT).job_id
    store.attach_job(completed.id, first_job)
    store.set_order_state(cancelled.id, "cancelled")
    assert match_order(store, _ecg(), SETTINGS).order is None  # none open for the patient
    repeat = match_order(store, _ecg(study_instance_uid="1.2.3.1"), SETTINGS)
    assert repeat.order.id == completed.id  # a repeat ECG of the study refers to it
    assert match_order(store, _ecg(study_instance_uid="1.2.3.2"), SETTINGS).order is None


def test_a_retried_job_finds_the_order_it_was_attached_to(store):
    order = _order(store)
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    store.attach_job(order.id, job_id)
    assert store.order_for_job(job_id).id == order.id
    assert match_order(store, _ecg(), SETTINGS, job_id=job_id).order.id == order.id
    assert match_order(store, _ecg(), SETTINGS, job_id=job_id + 1).order is None


def test_matching_switched_off(store):
    _order(store, study_instance_uid="1.2.3.1")
    off = OrderMatching(enabled=False)
    assert match_order(store, _ecg(study_instance_uid="1.2.3.1"), off).order is None
