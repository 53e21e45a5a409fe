"""The DICOM objects a `dicom` route stores: what every one of them shares (patient,
study, series, equipment and SOP common modules, in the ECG's own study) and the report
PDF as an Encapsulated PDF (PS3.3 A.45.1). The SR is in dicom_sr.py.

Built with pydicom; the bytes are Part 10 files, the same for every resend of the same
report (UIDs and dates come from the report, gateway/delivery/base.py object_uids).
"""

from __future__ import annotations

import io

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from gateway.delivery.base import ObjectUids, object_uids
from gateway.processing.package import ReportPackage
from model.decode.demographics import dicom_date

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
UTF8 = "ISO_IR 192"
MANUFACTURER = "ECG Gateway"
_SEXES = {"M", "F", "O"}


def part10_bytes(ds: Dataset) -> bytes:
    """The dataset as a DICOM file (explicit VR little endian)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def report_dataset(
    package: ReportPackage, sop_class: str, modality: str, uids: ObjectUids, series_number: int
) -> Dataset:
    """Patient, general study, series, general equipment and SOP common modules of a
    report object in the ECG's study; type 2 attributes present even when empty."""
    meta = package.metadata
    acquired = meta.acquisition_time
    created = package.report.created_at
    ds = Dataset()
    ds.SpecificCharacterSet = UTF8
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uids.instance
    ds.InstanceCreationDate = created.strftime("%Y%m%d")
    ds.InstanceCreationTime = created.strftime("%H%M%S")
    ds.PatientName = meta.patient_name or ""
    ds.PatientID = meta.patient_id or ""
    if meta.patient_id_issuer:
        ds.IssuerOfPatientID = meta.patient_id_issuer
    ds.PatientBirthDate = dicom_date(meta.patient_birth_date) or ""
    sex = (meta.patient_sex or "").strip().upper()
    ds.PatientSex = sex if sex in _SEXES else ""
    ds.StudyInstanceUID = uids.study
    ds.StudyDate = acquired.strftime("%Y%m%d") if acquired else ""
    ds.StudyTime = acquired.strftime("%H%M%S") if acquired else ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = meta.accession_number or ""
    ds.Modality = modality
    ds.SeriesInstanceUID = uids.series
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    if meta.institution_name:
        ds.InstitutionName = meta.institution_name
    ds.ContentDate = created.strftime("%Y%m%d")
    ds.ContentTime = created.strftime("%H%M%S")
    return ds


def encapsulated_pdf(package: ReportPackage) -> bytes:
    """The report PDF as an Encapsulated PDF object (modality DOC), concept name 11524-6
    EKG study; it shows the patient (burned-in annotation)."""
    pdf = package.pdf
    assert pdf is not None, "callers send the PDF object only when the package has one"
    ds = report_dataset(
        package, ENCAPSULATED_PDF_STORAGE, "DOC", object_uids(package, "pdf"), series_number=901
    )
    acquired = package.metadata.acquisition_time
    ds.ConversionType = "WSD"  # SC Equipment module: made on a workstation
    ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S") if acquired else ""
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "ECG report"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "11524-6", "LN"
    concept.CodeMeaning = "EKG study"
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + b"\0" * (len(pdf) % 2)  # OB values have even length
    ds.EncapsulatedDocumentLength = len(pdf)
    return part10_bytes(ds)
