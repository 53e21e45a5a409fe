"""The campaign's objects, made from the real files: valid ECGs carrying made-up patients,
and malformed ones (truncated, bytes flipped, wrong VRs and lengths, absurd values,
oversized, other SOP classes, hostile patient strings, empty datasets).

Every object carries one of PATIENTS, whose strings are unusual enough that finding one
in a log can only mean the log leaks patient data. Each case keeps its SOP Instance UID
intact in the bytes, so the store's job (if any) can be found by it.
"""

from __future__ import annotations

import copy
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.dsutils import split_dataset

import model
from model.dicom_write import ecg_to_dicom
from tests import dicom_samples

VENDOR = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
PTBXL = "ptbxl/records500/00000"
NON_ECG_CLASSES = {
    "ct": "1.2.840.10008.5.1.4.1.1.2",
    "mr": "1.2.840.10008.5.1.4.1.1.4",
    "audio": "1.2.840.10008.5.1.4.1.1.9.4.1",
    "rt-plan": "1.2.840.10008.5.1.4.1.1.481.5",
    "raw-data": "1.2.840.10008.5.1.4.1.1.66",
}
# Strings that must reach HL7 escaped and FHIR verbatim, never break a message.
HOSTILE = [
    "|^~\\&",
    "A^B~C&D\\E",
    "X\rMSH|^~\\&|FAKE|||||ORU^R01|1|P|2.5.1",
    "X\nPID|1||EVIL^^^^MR",
    "\x0bMLLP\x1c\r",
    "nul\x00byte",
    "tab\there",
    "DEL\x7fchar",
    "Ünïcødé 患者 😀",
    "عربي עברית",
    "x" * 300,
    "y|" * 500,
    "^^^^",
    "' OR 1=1 --",
    '{"json": [1, 2]}',
    "<script>alert(1)</script>",
    "%s%n%x",
    "${jndi:ldap://x}",
    "\\X0D\\\\.br\\",
    "line\u2028sep",
]


@dataclass(frozen=True)
class Patient:
    """A made-up patient: every string here is searched for in the logs."""

    family: str
    given: str
    patient_id: str
    birth_date: str  # DICOM DA, YYYYMMDD

    @property
    def name(self) -> str:
        return f"{self.family}^{self.given}"

    def phi_strings(self) -> list[str]:
        """The name parts, the ID and the birth date as people and programs write it."""
        y, m, d = self.birth_date[:4], self.birth_date[4:6], self.birth_date[6:]
        dates = [self.birth_date, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{d}/{m}/{y}"]
        return [self.family, self.given, self.patient_id, *dates]


PATIENTS = [
    Patient("Zyxquor", "Velmaine", "PHIQ48213", "19470312"),
    Patient("Brathwick", "Oniselle", "PHIK90377", "19811129"),
    Patient("Quilleran", "Tzadok", "PHIM55102", "20030704"),
]


@dataclass(frozen=True)
class Case:
    """One object to send: which family of damage, which sender, under which UID."""

    path: Path
    family: str
    sender: str  # "storescu" or "pynetdicom" (raw bytes, for what storescu cannot read)
    uid: str


def templates(data: Path, ptbxl_records: int = 3) -> list[Dataset]:
    """The vendor's DICOM ECG and a few PTB-XL records written as DICOM 12-lead ECGs."""
    vendor = pydicom.dcmread(data / VENDOR)
    records = sorted(p.with_suffix("") for p in (data / PTBXL).glob("*_hr.hea"))
    return [vendor] + [ecg_to_dicom(model.load(r)) for r in records[:ptbxl_records]]


def stamped(template: Dataset, patient: Patient, uid: str | None = None) -> Dataset:
    """A copy under a new SOP Instance UID with the patient's name, ID and birth date."""
    ds = copy.deepcopy(template)
    ds.SOPInstanceUID = uid or generate_uid()
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Explicit VR little endian, the meta's UIDs matching the dataset's."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def valid_ecg(directory: Path, bases: list[Dataset], index: int, name: str) -> Case:
    """A well-formed ECG; the index picks the template and the patient in turn."""
    directory.mkdir(parents=True, exist_ok=True)
    ds = stamped(bases[index % len(bases)], PATIENTS[index % len(PATIENTS)])
    path = save(ds, directory / f"{name}.dcm")
    return Case(path, "valid", "storescu", str(ds.SOPInstanceUID))


def malformed(directory: Path, bases: list[Dataset], size: int, seed: int) -> list[Case]:
    """`size` malformed objects, taken in turn from each family so a small corpus still
    has every kind of damage."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    families = [
        _truncations(directory, bases, rng),
        _byte_flips(directory, bases, rng),
        _vr_and_length(directory, bases),
        _absurd_values(directory, bases),
        _hostile_patients(directory, bases),
        _other_sop_classes(directory, bases),
        _oversized(directory, bases),
    ]
    cases: list[Case] = []
    while len(cases) < size and families:
        for family in list(families):
            case = next(family, None)
            if case is None:
                families.remove(family)
            elif len(cases) < size:
                cases.append(case)
    return cases


def empty_datasets(directory: Path, count: int) -> list[Case]:
    """File meta announcing an ECG, then no dataset at all (a phase of their own: each is
    also sent as a C-STORE that announces the dataset and never sends it)."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(count):
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        path = directory / f"empty-{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        cases.append(Case(path, "empty dataset", "pynetdicom", uid))
    return cases


# --- byte-level damage (sent raw by pynetdicom: storescu would not read these) ----------


def _base_file(directory: Path, bases: list[Dataset], i: int) -> tuple[bytes, int, str]:
    """A stamped template's bytes, where its dataset starts, and its UID."""
    ds = stamped(bases[i % len(bases)], PATIENTS[i % len(PATIENTS)])
    path = save(ds, directory / f"base-{i}.dcm")
    _, offset = split_dataset(path)
    data = path.read_bytes()
    path.unlink()
    return data, offset, str(ds.SOPInstanceUID)


def _raw_case(directory: Path, name: str, family: str, data: bytes, uid: str) -> Case:
    path = directory / f"{name}.dcm"
    path.write_bytes(data)
    return Case(path, family, "pynetdicom", uid)


def _truncations(directory: Path, bases: list[Dataset], rng: random.Random) -> Iterator[Case]:
    """Cut after the file meta at offsets spread from the first byte to the last."""
    for i in range(200):
        data, start, uid = _base_file(directory, bases, i)
        cut = start + 1 + int((len(data) - start - 2) * ((i * 0.618) % 1.0))
        if rng.random() < 0.3:  # a third near the start: headers and sequences cut
            cut = start + 1 + rng.randrange(min(2000, len(data) - start - 2))
        yield _raw_case(directory, f"trunc-{i:03d}", "truncated", data[:cut], uid)


def _byte_flips(directory: Path, bases: list[Dataset], rng: random.Random) -> Iterator[Case]:
    """1 to 16 random bytes changed anywhere in the dataset, except the UID's own bytes."""
    for i in range(200):
        data, start, uid = _base_file(directory, bases, i)
        raw = bytearray(data)
        protected = data.find(uid.encode(), start)
        for _ in range(rng.choice([1, 2, 4, 16])):
            at = rng.randrange(start, len(raw))
            if not protected - 8 <= at < protected + len(uid):
                raw[at] = rng.randrange(256)
        yield _raw_case(directory, f"flip-{i:03d}", "bytes flipped", bytes(raw), uid)


# Elements the corpus damages; their tags come from pydicom's data dictionary.
_DAMAGED_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "SOPClassUID",
    "WaveformSequence",
    "NumberOfWaveformChannels",
    "NumberOfWaveformSamples",
    "SamplingFrequency",
    "ChannelDefinitionSequence",
    "ChannelSensitivity",
    "WaveformBitsAllocated",
    "WaveformSampleInterpretation",
    "WaveformData",
)
_LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OL", b"OV"}


def _vr_and_length(directory: Path, bases: list[Dataset]) -> Iterator[Case]:
    """Each tag's first header given another VR (same and other length form, invalid)
    or another length (zero, odd, larger than the file, undefined)."""
    for index, keyword in enumerate(_DAMAGED_KEYWORDS):
        tag = Tag(tag_for_keyword(keyword))
        for change in ("vr-same", "vr-other", "vr-invalid", "len-0", "len-odd", "len-huge"):
            data, start, uid = _base_file(directory, bases, index)
            damaged = _damage_header(data, start, tag, change)
            if damaged is not None:
                name = f"vr-{keyword}-{change}"
                yield _raw_case(directory, name, "wrong VR or length", damaged, uid)


def _damage_header(data: bytes, start: int, tag: BaseTag, change: str) -> bytes | None:
    at = data.find(struct.pack("<HH", tag.group, tag.element), start)
    if at < 0:
        return None
    raw = bytearray(data)
    vr = bytes(raw[at + 4 : at + 6])
    long_form = vr in _LONG_VRS
    if change.startswith("vr-"):
        new = {"vr-same": b"UN" if long_form else b"US", "vr-other": b"LO" if long_form else b"OB"}
        raw[at + 4 : at + 6] = new.get(change, b"Z9")
        return bytes(raw)
    width, where = (4, at + 8) if long_form else (2, at + 6)
    fmt = "<L" if width == 4 else "<H"
    (length,) = struct.unpack_from(fmt, raw, where)
    top = 0xFFFFFFFE if width == 4 else 0xFFFF
    new_length = {"len-0": 0, "len-odd": length + 1, "len-huge": top}[change]
    struct.pack_into(fmt, raw, where, min(new_length, top))
    return bytes(raw)


# --- dataset-level damage (well-formed DICOM, sent by storescu) --------------------------


def _edited(
    directory: Path, bases: list[Dataset], name: str, family: str, edit: Callable, i: int
) -> Case | None:
    ds = stamped(bases[i % len(bases)], PATIENTS[i % len(PATIENTS)])
    try:
        edit(ds)
        path = save(ds, directory / f"{name}.dcm")
    except (ValueError, TypeError, OverflowError, struct.error):
        return None  # pydicom will not write it: not a case a sender could send
    return Case(path, family, "storescu", str(ds.SOPInstanceUID))


def _set_all_groups(keyword: str, value: object) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for group in ds.WaveformSequence:
            setattr(group, keyword, value)

    return edit


def _absurd_edits() -> Iterator[tuple[str, Callable[[Dataset], None]]]:
    for rate in ("0", "-500", "1e9", "0.0001", "NaN", "inf", "1e308"):
        yield f"rate-{rate}", _set_all_groups("SamplingFrequency", rate)
    for channels in (0, 1, 13, 255, 65535):
        yield f"channels-{channels}", _set_all_groups("NumberOfWaveformChannels", channels)
    for samples in (0, 1, 5001, 2**32 - 1):
        yield f"samples-{samples}", _set_all_groups("NumberOfWaveformSamples", samples)
    for bits in (8, 12, 32, 64):
        yield f"bits-{bits}", _set_all_groups("WaveformBitsAllocated", bits)
    for interpretation in ("UB", "SV", "XX"):
        yield (
            f"interp-{interpretation}",
            _set_all_groups("WaveformSampleInterpretation", interpretation),
        )
    yield "data-empty", _set_all_groups("WaveformData", b"")
    yield (
        "data-odd",
        lambda ds: _set_all_groups("WaveformData", ds.WaveformSequence[0].WaveformData[:-3])(ds),
    )
    yield "no-waveform", lambda ds: delattr(ds, "WaveformSequence")
    yield "empty-waveform-seq", lambda ds: setattr(ds, "WaveformSequence", [])
    yield "sensitivity-0", _sensitivity("0")
    yield "sensitivity-huge", _sensitivity("1e300")
    yield "no-channel-defs", _set_all_groups("ChannelDefinitionSequence", [])


def _sensitivity(value: str) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for group in ds.WaveformSequence:
            for channel in group.ChannelDefinitionSequence:
                channel.ChannelSensitivity = value

    return edit


def _absurd_values(directory: Path, bases: list[Dataset]) -> Iterator[Case]:
    """Sampling rates, channel counts, sample counts and encodings no cart writes."""
    for i, (name, edit) in enumerate(_absurd_edits()):
        for copy_index in range(2):
            case = _edited(
                directory,
                bases,
                f"absurd-{name}-{copy_index}",
                "absurd values",
                edit,
                i + copy_index,
            )
            if case is not None:
                yield case


def _hostile_patients(directory: Path, bases: list[Dataset]) -> Iterator[Case]:
    """Delimiters, segment injection, control characters in the patient's name and ID,
    each next to the patient's own searchable strings."""
    for i, hostile in enumerate(HOSTILE):
        patient = PATIENTS[i % len(PATIENTS)]

        def edit(ds: Dataset, h: str = hostile, p: Patient = patient) -> None:
            ds.PatientName = f"{p.family}{h}^{p.given}"
            ds.PatientID = f"{p.patient_id}{h[:40]}"

        case = _edited(directory, bases, f"hostile-{i:02d}", "hostile patient strings", edit, i)
        if case is not None:
            yield case


def _other_sop_classes(directory: Path, bases: list[Dataset]) -> Iterator[Case]:
    """Objects that are not ECGs, and ECGs that say they are something else."""
    ct = dicom_samples.ct_image(directory / "ct.dcm")
    ct_ds = pydicom.dcmread(ct)
    ct_ds.PatientName, ct_ds.PatientID = PATIENTS[0].name, PATIENTS[0].patient_id
    yield Case(save(ct_ds, ct), "other SOP class", "storescu", str(ct_ds.SOPInstanceUID))
    for i, (name, sop_class) in enumerate(NON_ECG_CLASSES.items()):

        def relabel(ds: Dataset, c: str = sop_class) -> None:
            ds.SOPClassUID = c

        case = _edited(directory, bases, f"class-{name}", "other SOP class", relabel, i)
        if case is not None:
            yield case


def _oversized(directory: Path, bases: list[Dataset]) -> Iterator[Case]:
    """A 64 KiB patient name, and rhythm strips of 5 and 30 minutes (3.6 and 22 MB)."""
    yield _edited(
        directory,
        bases,
        "huge-name",
        "oversized",
        lambda ds: setattr(ds, "PatientName", "Q" * 65534),
        0,
    )
    for minutes in (5, 30):
        yield _edited(
            directory, bases, f"long-{minutes}min", "oversized", _longer(minutes), minutes
        )


def _longer(minutes: int) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        group = ds.WaveformSequence[0]
        channels = int(group.NumberOfWaveformChannels)
        samples = np.frombuffer(group.WaveformData, dtype="<i2").reshape(-1, channels)
        wanted = int(float(group.SamplingFrequency) * 60 * minutes)
        tiled = np.tile(samples, (wanted // len(samples) + 1, 1))[:wanted]
        group.NumberOfWaveformSamples = wanted
        group.WaveformData = tiled.astype("<i2").tobytes()

    return edit
