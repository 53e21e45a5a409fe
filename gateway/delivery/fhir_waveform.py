"""The ECG waveform in FHIR R4, when a route asks for it (`fhir.waveform`).

`observation`: an Observation coded MDC 131328 (MDC_ECG_ELEC_POTL) with one component per
lead, each a SampledData, as the FHIR R4 ECG example (observation-example-sample-data):
the lead's MDC code (131328 + the ISO/IEEE 11073-10102 lead number: 131329 lead I ...),
origin 0 uV, factor 1 (whole microvolts: the precision carts record), period in ms,
lowerLimit/upperLimit the lowest and highest value in the lead (the gateway does not know
the cart's detection limits, so no sample is L or U), dimensions 1, and "E" for a
sample the source did not have. A 10 s 500 Hz 12-lead Observation is ~300 KB and a
long recording megabytes, so above `fhir.waveform_max_kb` it goes as a Binary instead.

`binary`: the waveform as a DICOM 12-lead ECG object (model/dicom_write.py: int16
samples, about 150 KB for 10 s) in a Binary, written with PUT to an id derived from
the report (a resend rewrites the same Binary) and referenced from the DiagnosticReport's
presentedForm. The FHIR server must allow client-assigned ids (HAPI: the default
ALPHANUMERIC client id strategy).
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import numpy as np
from pydicom import dcmwrite

from gateway.delivery.base import content_version, object_uids
from gateway.processing.package import ReportPackage
from model.dicom_write import ecg_to_dicom
from model.ecg import Ecg

MDC = "urn:oid:2.16.840.1.113883.6.24"
ECG_ELEC_POTL = 131328
UCUM = "http://unitsofmeasure.org"
DICOM_TYPE = "application/dicom"
# ISO/IEEE 11073-10102 lead numbers (as in SCP-ECG); MDC_ECG_ELEC_POTL_x = 131328 + number
LEAD_NUMBERS = {
    "I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8, "V7": 9,
    "X": 16, "Y": 17, "Z": 18, "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
}  # fmt: skip
_BINARY_NAMESPACE = uuid.UUID("9f2c7a1e-4b3d-4c8e-a6f5-1d2e3c4b5a69")


def waveform_components(waveform: Ecg) -> list[dict[str, Any]]:
    """One component per lead, in the recording's lead order; none is left out (a lead
    without an MDC code is named in text)."""
    period_ms = 1000.0 / waveform.sampling_rate
    return [
        {"code": lead_concept(name), "valueSampledData": sampled_data(values, period_ms)}
        for name, values in zip(waveform.lead_names, waveform.signal, strict=True)
    ]


def lead_concept(name: str) -> dict[str, Any]:
    number = LEAD_NUMBERS.get(name)
    if number is None:
        return {"text": f"Lead {name}"}
    code = {
        "system": MDC,
        "code": str(ECG_ELEC_POTL + number),
        "display": f"MDC_ECG_ELEC_POTL_{name}",
    }
    return {"coding": [code], "text": f"Lead {name}"}


def sampled_data(values_mv: np.ndarray, period_ms: float) -> dict[str, Any]:
    """Whole microvolts, space-separated; NaN (a gap in the source) is "E"."""
    finite = np.isfinite(values_mv)
    microvolts = np.rint(np.where(finite, values_mv, 0.0) * 1000.0).astype(np.int64)
    words = np.where(finite, microvolts.astype(str), "E")
    shown = microvolts[finite]
    data: dict[str, Any] = {
        "origin": {"value": 0, "unit": "uV", "system": UCUM, "code": "uV"},
        "period": round(period_ms, 6),
        "factor": 1,
        "dimensions": 1,
        "data": " ".join(words.tolist()),
    }
    if shown.size:
        data["lowerLimit"], data["upperLimit"] = int(shown.min()), int(shown.max())
    return data


def json_size(resource: dict[str, Any]) -> int:
    return len(json.dumps(resource, separators=(",", ":")))


def binary_entry(package: ReportPackage, full_url: str) -> tuple[dict[str, Any], int]:
    """The Binary's bundle entry (PUT to a derived id) and the DICOM object's size."""
    assert package.waveform is not None
    waveform = package.waveform
    # the samples and the patient; not the cart's own measurements and statements, which
    # model/dicom_write.py would write as annotations: only validated text reaches the EHR
    meta = package.metadata.with_updates(device_measurements=(), device_statements=())
    ecg = Ecg(waveform.signal, waveform.sampling_rate, waveform.lead_names, meta)
    uids = object_uids(package, "waveform")
    dataset = ecg_to_dicom(
        ecg,
        sop_instance_uid=uids.instance,
        series_instance_uid=uids.series,
        created=package.report.created_at,
    )
    out = io.BytesIO()
    dcmwrite(out, dataset, enforce_file_format=True)
    data = out.getvalue()
    seed = f"{package.sop_instance_uid}\x00{content_version(package)}"
    binary_id = f"ecg-waveform-{uuid.uuid5(_BINARY_NAMESPACE, seed).hex}"
    resource = {
        "resourceType": "Binary",
        "id": binary_id,
        "contentType": DICOM_TYPE,
        "data": base64.b64encode(data).decode("ascii"),
    }
    entry = {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "PUT", "url": f"Binary/{binary_id}"},
    }
    return entry, len(data)
