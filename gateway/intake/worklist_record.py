"""An order as a Modality Worklist item (DICOM PS3.4 K.6.1), and the response a query gets.

`worklist_item` turns an Order into the full worklist item, as a dcmtk `.wl` file would
hold it: a plain tree of keyword -> text (or, for a sequence, a list of such trees).
Matching (worklist_query.py) and the response both work on that tree, so the two always
agree on what a value is. The item holds patient demographics: never logged.

Attributes of the worklist model the gateway knows no value for (allergies, the
performing physician ...) are in the item with an empty value: they are returned empty
when asked for (type 2 return keys), and an empty value matches only universal matching
(PS3.4 K.2.2.1.1.1).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Union

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from gateway.store.order_records import Order

Item = dict[str, str | list["Item"]]

ECG_MODALITY = "ECG"
SPS = "ScheduledProcedureStepSequence"
# RequestedProcedurePriority (0040,1003) defined terms.
_PRIORITY = {"stat": "STAT", "asap": "HIGH", "routine": "ROUTINE"}
_SPS_STATUS = {"scheduled": "SCHEDULED", "in_progress": "STARTED"}
# HL7 OBR-4 with no coding system (table 0396): a local code.
_LOCAL_CODING_SCHEME = "L"

_UNKNOWN_TOP = (
    "MedicalAlerts",
    "Allergies",
    "PatientWeight",
    "PatientSize",
    "PatientState",
    "SpecialNeeds",
    "PatientComments",
    "AdmissionID",
    "CurrentPatientLocation",
    "RequestingPhysician",
    "RequestingService",
    "ReasonForTheRequestedProcedure",
    "NamesOfIntendedRecipientsOfResults",
    "ImagingServiceRequestComments",
    "ConfidentialityConstraintOnPatientDataDescription",
)
_UNKNOWN_TOP_SEQUENCES = (
    "ReferencedStudySequence",
    "ReferencedPatientSequence",
    "IssuerOfAccessionNumberSequence",
)
_UNKNOWN_SPS = (
    "ScheduledPerformingPhysicianName",
    "ScheduledStationName",
    "ScheduledProcedureStepLocation",
    "PreMedication",
    "RequestedContrastAgent",
    "CommentsOnTheScheduledProcedureStep",
)


# Their values in every item (never changed: items are only read).
_EMPTY_SPS: dict[str, str] = dict.fromkeys(_UNKNOWN_SPS, "")
_EMPTY_TOP: Item = {
    **dict.fromkeys(_UNKNOWN_TOP, ""),
    **{keyword: [] for keyword in _UNKNOWN_TOP_SEQUENCES},
}

# The worklist model the gateway serves: keyword -> None, or for a sequence its item's keys.
Schema = Mapping[str, Union[None, "Schema"]]
CODE_KEYS: Schema = {"CodeValue": None, "CodingSchemeDesignator": None, "CodeMeaning": None}
SPS_KEYS: Schema = {
    "Modality": None,
    "ScheduledStationAETitle": None,
    "ScheduledProcedureStepStartDate": None,
    "ScheduledProcedureStepStartTime": None,
    "ScheduledProcedureStepID": None,
    "ScheduledProcedureStepDescription": None,
    "ScheduledProcedureStepStatus": None,
    "ScheduledProtocolCodeSequence": CODE_KEYS,
    **dict.fromkeys(_UNKNOWN_SPS),
}
ITEM_KEYS: Schema = {
    "PatientName": None,
    "PatientID": None,
    "IssuerOfPatientID": None,
    "PatientBirthDate": None,
    "PatientSex": None,
    "AccessionNumber": None,
    "ReferringPhysicianName": None,
    "StudyInstanceUID": None,
    "RequestedProcedureID": None,
    "RequestedProcedureDescription": None,
    "RequestedProcedureCodeSequence": CODE_KEYS,
    "RequestedProcedurePriority": None,
    "PlacerOrderNumberImagingServiceRequest": None,
    "FillerOrderNumberImagingServiceRequest": None,
    SPS: SPS_KEYS,
    **dict.fromkeys(_UNKNOWN_TOP),
    **{keyword: {} for keyword in _UNKNOWN_TOP_SEQUENCES},
}


def worklist_item(order: Order, now: float) -> Item:
    """The whole worklist item for `order` (every attribute the gateway can return); an
    order with no scheduled time is due `now`, the time of the query."""
    reference = order.reference
    start = order.scheduled_at if order.scheduled_at is not None else now
    date, clock = dicom_date_time(start)
    codes = _procedure_codes(order)
    sps: Item = {
        "Modality": ECG_MODALITY,
        "ScheduledStationAETitle": order.station_ae,
        "ScheduledProcedureStepStartDate": date,
        "ScheduledProcedureStepStartTime": clock,
        "ScheduledProcedureStepID": str(order.id),
        "ScheduledProcedureStepDescription": reference.procedure_text,
        "ScheduledProcedureStepStatus": _SPS_STATUS.get(order.state, ""),
        "ScheduledProtocolCodeSequence": codes,
        **_EMPTY_SPS,
    }
    return {
        "PatientName": order.patient_name,
        "PatientID": order.patient_id,
        "IssuerOfPatientID": order.patient_id_issuer,
        "PatientBirthDate": order.birth_date,
        "PatientSex": order.sex,
        "AccessionNumber": reference.accession_number,
        "ReferringPhysicianName": order.referring_physician,
        "StudyInstanceUID": order.study_instance_uid,
        # The gateway fills the order (IHE REWF Order Filler): its number names the
        # requested procedure when the EHR gave none.
        "RequestedProcedureID": order.requested_procedure_id or str(order.id),
        "RequestedProcedureDescription": reference.procedure_text,
        "RequestedProcedureCodeSequence": codes,
        "RequestedProcedurePriority": _PRIORITY.get(reference.priority, ""),
        "PlacerOrderNumberImagingServiceRequest": reference.placer_order_number,
        "FillerOrderNumberImagingServiceRequest": reference.filler_order_number,
        SPS: [sps],
        **_EMPTY_TOP,
    }


def dicom_date_time(epoch: float) -> tuple[str, str]:
    """DA and TM of `epoch` in the gateway's local time, as carts show a schedule."""
    local = time.localtime(epoch)
    return time.strftime("%Y%m%d", local), time.strftime("%H%M%S", local)


def _procedure_codes(order: Order) -> list[Item]:
    reference = order.reference
    if not reference.procedure_code:
        return []
    return [
        {
            "CodeValue": reference.procedure_code,
            "CodingSchemeDesignator": reference.procedure_coding_system or _LOCAL_CODING_SCHEME,
            "CodeMeaning": reference.procedure_text or reference.procedure_code,
        }
    ]


# --- the response ------------------------------------------------------------------------


def response(item: Item, requested: Schema) -> Dataset:
    """The identifier returned for one match: the requested keys only (a sub-schema of
    ITEM_KEYS), with the item's values (PS3.4 K.2.2.1.2: matching keys are return keys)."""
    non_ascii: list[str] = []
    dataset = _filled(item, requested, non_ascii)
    if non_ascii:
        # PS3.5 6.1.2.3: say the character set when it is not the default repertoire.
        dataset.SpecificCharacterSet = "ISO_IR 192"
    return dataset


def _filled(item: Item, requested: Schema, non_ascii: list[str]) -> Dataset:
    """The elements built directly, without pydicom's value validation: it costs more
    than the rest of a response, and its warnings quote the value (patient data)."""
    dataset = Dataset()
    for keyword, keys in requested.items():
        tag, vr = _tag_and_vr(keyword)
        value = item[keyword]
        if isinstance(value, list):
            value = Sequence([_filled(child, keys or {}, non_ascii) for child in value])
        elif not value.isascii():
            non_ascii.append(keyword)
        dataset.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return dataset


@functools.cache
def _tag_and_vr(keyword: str) -> tuple[BaseTag, str]:
    tag = Tag(keyword)
    return tag, dictionary_VR(tag)


def value_kind(keyword: str) -> str:
    """How a key matches (PS3.4 C.2.2.2), from its VR: pn, date, time, uid, seq or text."""
    vr = dictionary_VR(keyword)
    return {"PN": "pn", "DA": "date", "TM": "time", "UI": "uid", "SQ": "seq"}.get(vr, "text")
