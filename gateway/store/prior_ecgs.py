"""The store's index of finished ECGs by patient, for serial comparison.

One row per job: the patient key (a hash of Patient ID and issuer, never the ID or a
name: gateway.routing.key_for_patient), the SOP Instance UID, when the ECG was acquired,
and its report as JSON (a Report carries no patient data). Written by the worker just
before the job's completion commits and read only for done jobs, so a job that never
completes is never anyone's prior.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from model.report import Report

# A patient's most recent ECGs handed to processing; the one acquired last before the
# new ECG is its prior (several in case the new one was acquired before some of them).
PRIOR_CANDIDATES = 10


@dataclass(frozen=True)
class PriorEcg:
    """A finished ECG that may be a later one's prior."""

    job_id: int
    sop_instance_uid: str
    acquired_at: float | None  # epoch seconds; None when the object did not say
    report: Report


class PriorEcgQueries:
    """Mixin for Store (queries.py): its _statement/_execute/_query."""

    def record_prior_ecg(
        self,
        job_id: int,
        patient_key: str,
        sop_instance_uid: str,
        acquired_at: float | None,
        report: Report,
        now: float | None = None,
    ) -> None:
        """Index a job's report under its patient (again, if the job is redone)."""
        now = time.time() if now is None else now
        with self._statement() as conn:
            self._execute(
                conn,
                "INSERT INTO prior_ecgs (job_id, patient_key, sop_instance_uid, acquired_at,"
                " report, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE"
                " SET patient_key = excluded.patient_key, acquired_at = excluded.acquired_at,"
                " sop_instance_uid = excluded.sop_instance_uid, report = excluded.report",
                (job_id, patient_key, sop_instance_uid, acquired_at, report.model_dump_json(), now),
            )

    def prior_ecg_candidates(
        self, patient_key: str, sop_instance_uid: str, limit: int = PRIOR_CANDIDATES
    ) -> list[PriorEcg]:
        """The patient's latest finished ECGs other than this SOP instance (a correction of
        the same ECG is not its own prior), newest acquisition first. Only a key made
        from a Patient ID ("p:") identifies a patient; an ECG without one has no prior."""
        if not patient_key.startswith("p:"):
            return []
        rows = self._query(
            "SELECT p.job_id, p.sop_instance_uid, p.acquired_at, p.report FROM prior_ecgs p"
            " JOIN jobs j ON j.id = p.job_id WHERE p.patient_key = ? AND j.state = 'done'"
            " AND p.sop_instance_uid != ?"
            " ORDER BY p.acquired_at IS NULL, p.acquired_at DESC, p.job_id DESC LIMIT ?",
            (patient_key, sop_instance_uid, limit),
        )
        return [
            PriorEcg(
                job_id=int(row["job_id"]),
                sop_instance_uid=row["sop_instance_uid"],
                acquired_at=row["acquired_at"],
                report=Report.model_validate_json(row["report"]),
            )
            for row in rows
        ]
