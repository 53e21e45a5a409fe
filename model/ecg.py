"""The one in-memory ECG that every part of the gateway passes around.

Signal and identity are kept apart on purpose: the signal may go to a model or a
renderer, the metadata (patient data) only where a person or the EHR needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

STANDARD_LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)


def derive_limb_leads(leads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A copy of `leads` with the missing limb leads derived from any two of I, II, III.

    The six limb leads hold only two independent signals: Einthoven's law (III = II - I)
    and Goldberger's augmented leads (aVR = -(I + II) / 2, aVL = I - II / 2,
    aVF = II - I / 2). Carts often store only I, II and V1-V6; the renderer and the
    measurements want all twelve. Recorded leads are never replaced; with fewer than
    two of I, II, III nothing is derived.
    """
    if "I" in leads and "II" in leads:
        one, two = leads["I"], leads["II"]
    elif "I" in leads and "III" in leads:
        one, two = leads["I"], leads["I"] + leads["III"]
    elif "II" in leads and "III" in leads:
        one, two = leads["II"] - leads["III"], leads["II"]
    else:
        return dict(leads)
    derived = {
        "I": one,
        "II": two,
        "III": two - one,
        "aVR": -(one + two) / 2,
        "aVL": one - two / 2,
        "aVF": two - one / 2,
    }
    filled = dict(leads)
    for name, values in derived.items():
        if name not in filled:
            filled[name] = values
    return filled


@dataclass(frozen=True)
class EcgMetadata:
    """Acquisition context from the source file; all optional because carts differ."""

    patient_id: str | None = None
    patient_id_issuer: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    patient_age: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    accession_number: str | None = None
    acquisition_time: datetime | None = None
    device_manufacturer: str | None = None
    device_model: str | None = None
    device_serial: str | None = None
    institution_name: str | None = None
    station_name: str | None = None
    modality: str | None = None
    filters: str | None = None
    source_format: str = "unknown"
    # What the decoder had to normalise or leave out (never the values): report warnings.
    warnings: tuple[str, ...] = ()
    # What the source device itself measured and stated (a Philips cart's globalmeasurements
    # and statements, aECG annotations, SCP-ECG sections 7 and 8), for comparison and audit:
    # never passed on as the gateway's interpretation. Measurements are (key, value) pairs,
    # keyed like model.report.Measurements ('qrs_ms') where the meaning is the same.
    device_measurements: tuple[tuple[str, float], ...] = ()
    device_statements: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Tuples again after a JSON round trip (the job package stores lists)."""
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(
            self,
            "device_measurements",
            tuple((str(key), float(value)) for key, value in self.device_measurements),
        )
        object.__setattr__(self, "device_statements", tuple(self.device_statements))

    def device_measurement(self, key: str) -> float | None:
        """The device's own value for `key` ('heart_rate_bpm'), or None."""
        return dict(self.device_measurements).get(key)

    def with_updates(self, **changes: object) -> EcgMetadata:
        return replace(self, **changes)


@dataclass(frozen=True)
class Ecg:
    """Samples in millivolts, shape (leads, samples), leads in `lead_names` order.

    `lead_names` follows STANDARD_LEADS order for the leads present; extra leads
    (e.g. Frank X/Y/Z) come after. `median_beats` (same lead order) holds the
    cart's representative beats when the source carries them.
    """

    signal: np.ndarray
    sampling_rate: float
    lead_names: tuple[str, ...]
    metadata: EcgMetadata = field(default_factory=EcgMetadata)
    median_beats: np.ndarray | None = None
    median_sampling_rate: float | None = None

    def __post_init__(self) -> None:
        signal = np.ascontiguousarray(self.signal, dtype=np.float32)
        if signal.ndim != 2:
            raise ValueError(f"signal must be 2-D (leads x samples), got shape {signal.shape}")
        if signal.shape[0] != len(self.lead_names):
            raise ValueError(
                f"signal has {signal.shape[0]} leads but {len(self.lead_names)} lead names"
            )
        if not self.sampling_rate > 0:
            raise ValueError(f"sampling rate must be positive, got {self.sampling_rate}")
        object.__setattr__(self, "signal", signal)
        object.__setattr__(self, "lead_names", tuple(self.lead_names))
        if self.median_beats is not None:
            medians = np.ascontiguousarray(self.median_beats, dtype=np.float32)
            if medians.ndim != 2 or medians.shape[0] != len(self.lead_names):
                raise ValueError(
                    f"median beats must be ({len(self.lead_names)}, n), got {medians.shape}"
                )
            object.__setattr__(self, "median_beats", medians)
            if self.median_sampling_rate is None:
                object.__setattr__(self, "median_sampling_rate", self.sampling_rate)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples; KeyError names the missing lead."""
        try:
            return self.signal[self.lead_names.index(name)]
        except ValueError:
            raise KeyError(f"lead {name!r} not in {self.lead_names}") from None

    def has_lead(self, name: str) -> bool:
        return name in self.lead_names
