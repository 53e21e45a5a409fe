"""SCP-ECG (EN 1064 / ISO 11073-91064) -> Ecg.

No maintained Python reader exists (PyPI has none; the Healforce script in the data's
source reads only that device's files). BioSig (C, Debian biosig-tools) reads standard
records and is the second implementation in the tests, but it does not recognise the
Healforce files, crashes on multi-table Huffman coding and has no size limits, so the
format is read here: sections.py (record and section structure, CRCs), huffman.py
(section 2), signal.py (sections 3-6), metadata.py (sections 1, 7, 8, 11),
lead_measurements.py (section 10); section 9 (manufacturer-specific) only by its length.
"""

from __future__ import annotations

from pathlib import Path

from model.decode.acquisition import checked_sampling_rate
from model.decode.leads import add_channel, stack_leads
from model.decode.scp import metadata as meta
from model.decode.scp.lead_measurements import lead_measurements
from model.decode.scp.sections import FORMAT, looks_like_scp, read_scp
from model.decode.scp.signal import decode_samples
from model.ecg import Ecg, EcgMetadata, derive_limb_leads

__all__ = ["decode_scp", "looks_like_scp"]


def decode_scp(path: Path) -> Ecg:
    """The rhythm (section 6, reference beat added back) as the signal, the reference beat
    (section 5) as the median beat."""
    scp = read_scp(path)
    samples = decode_samples(scp)
    rate = checked_sampling_rate(path, samples.rate, f"{FORMAT} section 6")
    leads: dict = {}
    for name, lead in zip(samples.names, samples.signal, strict=True):
        add_channel(leads, name, lead)
    names, signal = stack_leads(derive_limb_leads(leads))
    medians = None
    if samples.median is not None:
        beats = derive_limb_leads(dict(zip(samples.names, samples.median, strict=True)))
        medians = stack_leads({name: beats[name] for name in names})[1]
    tags = meta.read_tags(scp.data(1) or b"", scp.warnings)
    manufacturer, model, serial = meta.device(tags)
    return Ecg(
        signal=signal,
        sampling_rate=rate,
        lead_names=names,
        metadata=EcgMetadata(
            patient_id=meta.text(tags.get(2)),
            patient_name=meta.person_name(tags),
            patient_birth_date=meta.birth_date(tags, scp.warnings),
            patient_sex=meta.sex(tags),
            patient_age=meta.age(tags),
            acquisition_time=meta.acquisition(tags, scp.warnings),
            device_manufacturer=manufacturer,
            device_model=model,
            device_serial=serial,
            institution_name=meta.text(tags.get(16)),
            modality="ECG",
            filters=meta.filters(tags),
            source_format="scp-ecg",
            warnings=_one_warning(scp.warnings) + _not_decoded(scp.data(9)),
            device_measurements=meta.global_measurements(scp.data(7))
            + lead_measurements(path, scp.data(10)),
            device_statements=meta.statements(scp.data(8)) + meta.statements(scp.data(11)),
        ),
        median_beats=medians,
        median_sampling_rate=samples.median_rate if medians is not None else None,
    )


def _one_warning(deviations: list[str]) -> tuple[str, ...]:
    """The file's deviations from EN 1064 as one report warning (they reach a physician:
    one line saying the file was read despite them, with the details for the engineer)."""
    if not deviations:
        return ()
    details = "; ".join(dict.fromkeys(deviations))
    return (
        f"the SCP-ECG file deviates from EN 1064 and was read as its recorder writes it ({details})",
    )


def _not_decoded(section9: bytes | None) -> tuple[str, ...]:
    """Section 9 is the recorder's own format: what the gateway left out, by size only
    (it may hold anything, patient data included, so none of it is shown)."""
    if section9 is None:
        return ()
    return (f"SCP-ECG section 9 (manufacturer-specific, {len(section9)} bytes) was not decoded",)
