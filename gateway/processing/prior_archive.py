"""The patient's previous ECG from a DICOM archive: C-FIND down the study root (study ->
series of modality ECG -> instance), then C-GET (or C-MOVE) of the newest instance
acquired before this one, decoded with model.load and analysed by the measurement engine.

C-GET by default: the object comes back on the same association, so the gateway needs no
second listening port. For an archive without C-GET, C-MOVE sends it to
`move_destination_ae`, a storage SCP the gateway runs on `move_port` only while it
retrieves, never its intake port, so a retrieved prior is never mistaken for a new ECG
to report; helper processes take turns on that port (a file lock). The retrieved object
is accepted only if its Patient ID and Issuer of Patient ID equal this ECG's: the
archive's matching is not trusted with identity, and a name is never used. This patient's
retrieved ECG that the decoder refuses is an error for the caller to tell on the report
(gateway/processing/findings.py), not passed over for an older one: a comparison with an
ECG that is not the previous one would say what changed since the wrong one.
"""

from __future__ import annotations

import fcntl
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom import Dataset, dcmread
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    AmbulatoryECGWaveformStorage,
    GeneralECGWaveformStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    TwelveLeadECGWaveformStorage,
)

import model
from gateway.config import PriorArchiveConfig
from gateway.store.prior_ecgs import PriorEcg
from model.decode.dicom_metadata import metadata_from_dataset
from model.ecg import EcgMetadata
from model.errors import EcgDecodeError

ECG_STORAGE = (
    TwelveLeadECGWaveformStorage,
    GeneralECGWaveformStorage,
    AmbulatoryECGWaveformStorage,
)
_PENDING = (0xFF00, 0xFF01)
MAX_STUDIES = 20  # the patient's most recent studies searched for ECG series


class ArchiveError(Exception):
    """The archive could not be asked (refused, unreachable, timed out)."""


@dataclass(frozen=True)
class _Instance:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sort_key: str  # StudyDate + StudyTime as the archive returned them


def archive_prior(
    settings: PriorArchiveConfig, metadata: EcgMetadata, before: float | None
) -> PriorEcg | None:
    """The patient's newest archived ECG acquired before `before` (epoch seconds; None:
    the newest), analysed; None when the archive holds none."""
    ae = _application_entity(settings)
    roles = [build_role(storage, scp_role=True) for storage in ECG_STORAGE]
    received: list[bytes] = []

    def keep(event: evt.Event) -> int:
        received.append(event.encoded_dataset())
        return 0x0000

    assoc = ae.associate(
        settings.host,
        settings.port,
        ae_title=settings.called_ae,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, keep)],
    )
    if not assoc.is_established:
        raise ArchiveError(f"association with {settings.called_ae} refused or not answered")
    try:
        _check_services(assoc, settings)
        for instance in _instances(assoc, metadata):
            if instance.sop_instance_uid == metadata.sop_instance_uid:
                continue
            received.clear()
            if settings.retrieve == "move":
                _move(assoc, instance, settings, keep)
            else:
                _get(assoc, instance)
            prior = _analysed(received, metadata, before)
            if prior is not None:
                return prior
        return None
    finally:
        assoc.release()


def _check_services(assoc, settings: PriorArchiveConfig) -> None:
    """ArchiveError unless the archive accepted C-FIND and the configured retrieve (an
    archive without C-GET refuses its context; pynetdicom would raise a ValueError)."""
    retrieve = (
        StudyRootQueryRetrieveInformationModelMove
        if settings.retrieve == "move"
        else StudyRootQueryRetrieveInformationModelGet
    )
    wanted = {
        "C-FIND": StudyRootQueryRetrieveInformationModelFind,
        f"C-{settings.retrieve.upper()}": retrieve,
    }
    accepted = {context.abstract_syntax for context in assoc.accepted_contexts}
    refused = [name for name, service in wanted.items() if service not in accepted]
    if refused:
        raise ArchiveError(f"{settings.called_ae} does not accept {' or '.join(refused)}")


def _application_entity(settings: PriorArchiveConfig) -> AE:
    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    for storage in ECG_STORAGE:
        ae.add_requested_context(storage)
    return ae


def _find(assoc, query: Dataset) -> list[Dataset]:
    answers = []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:
            raise ArchiveError("C-FIND: no answer (timed out or aborted)")
        if status.Status in _PENDING and identifier is not None:
            answers.append(identifier)
        elif status.Status not in _PENDING and status.Status != 0x0000:
            raise ArchiveError(f"C-FIND failed with status 0x{status.Status:04X}")
    return answers


def _query(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _instances(assoc, metadata: EcgMetadata) -> list[_Instance]:
    """The patient's ECG instances, newest study first."""
    studies = _find(
        assoc,
        _query(
            "STUDY", PatientID=metadata.patient_id, StudyInstanceUID="", StudyDate="", StudyTime=""
        ),
    )
    studies.sort(key=lambda s: f"{s.get('StudyDate', '')}{s.get('StudyTime', '')}", reverse=True)
    found = []
    for study in studies[:MAX_STUDIES]:
        study_uid = study.StudyInstanceUID
        sort_key = f"{study.get('StudyDate', '')}{study.get('StudyTime', '')}"
        for series in _find(
            assoc,
            _query("SERIES", StudyInstanceUID=study_uid, Modality="ECG", SeriesInstanceUID=""),
        ):
            for image in _find(
                assoc,
                _query(
                    "IMAGE",
                    StudyInstanceUID=study_uid,
                    SeriesInstanceUID=series.SeriesInstanceUID,
                    SOPInstanceUID="",
                ),
            ):
                found.append(
                    _Instance(study_uid, series.SeriesInstanceUID, image.SOPInstanceUID, sort_key)
                )
    return found


def _instance_query(instance: _Instance) -> Dataset:
    return _query(
        "IMAGE",
        StudyInstanceUID=instance.study_uid,
        SeriesInstanceUID=instance.series_uid,
        SOPInstanceUID=instance.sop_instance_uid,
    )


def _get(assoc, instance: _Instance) -> None:
    for status, _ in assoc.send_c_get(
        _instance_query(instance), StudyRootQueryRetrieveInformationModelGet
    ):
        if not status:
            raise ArchiveError("C-GET: no answer (timed out or aborted)")


def _move(assoc, instance: _Instance, settings: PriorArchiveConfig, keep) -> None:
    """C-MOVE to the gateway's own move destination, listening only meanwhile."""
    destination = AE(ae_title=settings.move_destination_ae)
    destination.network_timeout = settings.timeout_s
    for storage in ECG_STORAGE:
        destination.add_supported_context(storage)
    with _move_port_taken(settings.move_port):
        server = destination.start_server(
            (settings.move_bind, settings.move_port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, keep)],
        )
        try:
            for status, _ in assoc.send_c_move(
                _instance_query(instance),
                settings.move_destination_ae,
                StudyRootQueryRetrieveInformationModelMove,
            ):
                if not status:
                    raise ArchiveError("C-MOVE: no answer (timed out or aborted)")
                if status.Status not in _PENDING and status.Status != 0x0000:
                    raise ArchiveError(f"C-MOVE failed with status 0x{status.Status:04X}")
        finally:
            server.shutdown()


@contextmanager
def _move_port_taken(port: int) -> Iterator[None]:
    """One retrieve at a time on the move port, across the gateway's helper processes."""
    lock_path = Path(tempfile.gettempdir()) / f"ecg-gateway-move-{port}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _analysed(
    received: list[bytes], metadata: EcgMetadata, before: float | None
) -> PriorEcg | None:
    """The retrieved ECG analysed, if it is this patient's (same Patient ID and issuer)
    acquired before `before` (None: whenever)."""
    for content in received:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "prior.dcm"
            path.write_bytes(content)
            try:
                ecg = model.load(path)
            except EcgDecodeError:
                if _is_prior(content, metadata, before):
                    raise
                continue  # another patient's object, or a later one: no prior
        acquired = ecg.metadata.acquisition_time
        if not _same_patient(ecg.metadata, metadata) or not _acquired_before(acquired, before):
            continue
        return PriorEcg(
            job_id=0,
            sop_instance_uid=ecg.metadata.sop_instance_uid or "",
            acquired_at=None if acquired is None else acquired.timestamp(),
            report=model.analyze(ecg),
        )
    return None


def _is_prior(content: bytes, wanted: EcgMetadata, before: float | None) -> bool:
    """Whether an object the decoder refused is this patient's, acquired before `before`:
    read from its attributes alone."""
    found = metadata_from_dataset(dcmread(io.BytesIO(content), force=True))
    return _same_patient(found, wanted) and _acquired_before(found.acquisition_time, before)


def _same_patient(found: EcgMetadata, wanted: EcgMetadata) -> bool:
    return (found.patient_id or "") == (wanted.patient_id or "") and (
        found.patient_id_issuer or ""
    ) == (wanted.patient_id_issuer or "")


def _acquired_before(acquired: datetime | None, before: float | None) -> bool:
    """None `before`: any time will do; otherwise a time must be known, and earlier."""
    return before is None or (acquired is not None and acquired.timestamp() < before)
