"""routes.yaml as data: destinations (FHIR, HL7 over MLLP, DICOM C-STORE, file outbox),
retry policy, and the ordered rules that send each report to them.

Only the shape and the values are checked here; loading the file, naming the line of
each error and hot reload are in router.py, matching in match.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from gateway.routing.critical_schema import CriticalConfig
from gateway.routing.schema_parts import NAME_PATTERN, RetryPolicy, SecretRef, TlsOptions
from model.settings import StrictSettings


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Patterns = Annotated[list[str], BeforeValidator(_as_list)]
ObjectKind = Literal["ecg-waveform", "secondary-capture", "pdf"]
AckType = Literal["AL", "NE", "ER", "SU"]
PdfCarriage = Literal["embed", "split", "reference", "omit"]
RP_POINTER_MAX_CHARS = 199  # RP.1 is ST: 199 characters in hl7apy's strict 2.5.1 tables


class BearerAuth(StrictSettings):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(StrictSettings):
    type: Literal["basic"]
    username: str
    password: SecretRef


Auth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class Hl7Options(StrictSettings):
    """MSH fields the receiving system routes and acknowledges on."""

    sending_application: str = "ECGGW"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: Literal["P", "T", "D"] = "P"
    accept_ack_type: AckType | None = Field(None, description="MSH-15")
    application_ack_type: AckType | None = Field(None, description="MSH-16")
    pdf: PdfCarriage = Field(
        "split",
        description="how the report PDF travels: in one OBX (embed), in as many OBX as it "
        "takes (split), as a reference pointer (reference), or not at all (omit)",
    )
    pdf_reference_pointer: str = Field(
        "{instance_uid}",
        max_length=RP_POINTER_MAX_CHARS,
        description="with pdf: reference, RP.1: the key (or URL) under which the archive "
        "holds the Encapsulated PDF a dicom route stores; {study_uid}, {series_uid} and "
        "{instance_uid} are its UIDs",
    )
    pdf_reference_application: str = Field(
        "",
        description="with pdf: reference, RP.2: the system that holds it (e.g. the archive's "
        "name); empty for a URL pointer, whose host then names it",
    )

    @field_validator("pdf_reference_pointer")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            value.format(study_uid="", series_uid="", instance_uid="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"may use only {{study_uid}}, {{series_uid}} and {{instance_uid}}: {exc!r}"
            ) from None
        return value


class FhirOptions(StrictSettings):
    """How DICOM patient identifiers become FHIR identifier systems, and whether the
    waveform itself is sent."""

    issuer_systems: dict[str, str] = Field(
        default_factory=dict, description="IssuerOfPatientID -> identifier system URI"
    )
    default_patient_system: str = "urn:ecg-gateway:patient-id"
    waveform: Literal["none", "observation", "binary"] = Field(
        "none",
        description="the waveform itself: an Observation (MDC 131328, SampledData per lead), "
        "or a Binary (DICOM 12-lead ECG) referenced from the DiagnosticReport",
    )
    waveform_max_kb: int = Field(
        1024, gt=0, description="a waveform Observation larger than this is sent as a Binary"
    )


# A network destination's timeout_s: one deadline for a whole send.
_SendTimeout = Annotated[
    float,
    Field(
        ge=1,  # a connection, TLS and an answer: under a second is no deadline
        le=120,  # with the formatting (<= 120 s) within the 300 s lease of a delivery in
        # hand, so no other sweep retakes it (delivery/sweeper.py)
        description="one send (connecting, TLS, the message, the whole answer: every "
        "C-STORE of a dicom destination) may take this long in all; then the connection "
        "is closed and the delivery retried",
    ),
]


class _Destination(StrictSettings):
    retry: RetryPolicy = RetryPolicy()
    max_message_mb: float = Field(
        20.0, gt=0, description="largest message sent; a larger one is a dead letter"
    )


class FhirDestination(_Destination):
    type: Literal["fhir"]
    endpoint: HttpUrl = Field(description="FHIR R4 base URL; the transaction is POSTed there")
    auth: Auth | None = None
    tls: TlsOptions = TlsOptions()
    timeout_s: _SendTimeout = 30.0
    fhir: FhirOptions = FhirOptions()

    @field_validator("endpoint", mode="before")
    @classmethod
    def _has_a_host(cls, value: Any) -> Any:
        """HttpUrl reads `http:///fhir` and `http:/fhir` as the host `fhir`: refuse them
        here, on the text as written, instead of posting reports to a made-up host."""
        if isinstance(value, str) and not urlsplit(value.strip()).hostname:
            raise ValueError(f"{value!r} names no host (expected http(s)://host/path)")
        return value


class Hl7Destination(_Destination):
    type: Literal["hl7"]
    endpoint: str = Field(description="mllp://host:port, or mllps://host:port for TLS")
    sends: Literal["results", "order-status"] = Field(
        "results",
        description="order-status: the ORM^O01 status update (ORC-1 SC, ORC-5 CM) of each "
        "ECG matched to an order, sent to it without a rule (IHE REWF); rules cannot "
        "send reports there",
    )
    tls: TlsOptions = TlsOptions()
    timeout_s: _SendTimeout = 30.0
    hl7: Hl7Options = Hl7Options()

    @field_validator("endpoint")
    @classmethod
    def _mllp_url(cls, value: str) -> str:
        _split_mllp(value)
        return value

    @property
    def address(self) -> tuple[str, int, bool]:
        """(host, port, use TLS)."""
        return _split_mllp(self.endpoint)


DicomObject = Literal["pdf", "sr"]
_AE_TITLE = r"[^\\\x00-\x1f]{1,16}"


def _checked_dicom_endpoint(value: str) -> str:
    _split_dicom(value)
    return value


class DicomDestination(_Destination):
    """A DICOM archive (PACS, VNA, ECG management system) that takes C-STORE."""

    type: Literal["dicom"]
    endpoint: Annotated[str, AfterValidator(_checked_dicom_endpoint)] = Field(
        description="dicom://CALLED_AE@host:port"
    )
    calling_ae: str = Field("ECGGW", pattern=f"^{_AE_TITLE}$")
    timeout_s: _SendTimeout = 30.0
    objects: list[DicomObject] = Field(
        default=["pdf", "sr"],
        min_length=1,
        description="pdf: the report as Encapsulated PDF; sr: measurements and statements "
        "as a Comprehensive SR (TID 3700 ECG Report)",
    )

    @property
    def address(self) -> tuple[str, str, int]:
        """(called AE title, host, port)."""
        return _split_dicom(self.endpoint)


FileFormat = Literal["fhir", "hl7", "png", "pdf"]


class FileDestination(_Destination):
    type: Literal["file"]
    directory: Path = Field(description="absolute, or relative to the data directory")
    timeout_s: float = Field(
        60.0,
        ge=1,  # a write and its fsyncs, on a loaded disk: under a second is no deadline
        le=120,  # with the process starts and the formatting (<= 120 s) within the 300 s
        # lease of a delivery in hand, so no other sweep retakes it (delivery/sweeper.py)
        description="writing one delivery's files may take this long (a network file "
        "system that hangs); then the writing process is stopped and the delivery retried",
    )
    formats: list[FileFormat] = Field(default=["fhir", "hl7", "png", "pdf"])
    hl7: Hl7Options = Hl7Options()
    fhir: FhirOptions = FhirOptions()


Destination = Annotated[
    FhirDestination | Hl7Destination | DicomDestination | FileDestination,
    Field(discriminator="type"),
]


AnyDestination = FhirDestination | Hl7Destination | DicomDestination | FileDestination


class Match(StrictSettings):
    """All given conditions must hold; a list means any of its values (globs allowed)."""

    calling_ae: Patterns | None = None
    called_ae: Patterns | None = None
    kind: list[ObjectKind] | None = None
    modality: Patterns | None = None
    institution: Patterns | None = None
    station: Patterns | None = None
    source: Patterns | None = Field(
        None, description="source name of a watched folder or the upload endpoint"
    )
    statement_codes: Patterns | None = None
    # The order the ECG was matched to (docs/order-matching.md); an unordered ECG has
    # none, so a rule with any of these never matches it.
    ordering_facility: Patterns | None = Field(None, description="the order's facility")
    priority: list[Literal["stat", "asap", "routine"]] | None = Field(
        None, description="the order's priority"
    )
    procedure_code: Patterns | None = Field(None, description="the ordered procedure (OBR-4.1)")

    @field_validator("kind", "priority", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        return _as_list(value)

    @property
    def names_the_order(self) -> bool:
        return any(
            value is not None
            for value in (self.ordering_facility, self.priority, self.procedure_code)
        )


EngineName = Literal["measure", "vlm", "hybrid"]


class Rule(StrictSettings):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    match: Match = Match()
    destinations: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")
    engine: EngineName | None = Field(
        None, description="interpret matching objects with this engine instead of gateway.yaml's"
    )

    @model_validator(mode="after")
    def _engine_chosen_before_interpretation(self) -> Rule:
        if self.engine is not None and self.match.statement_codes is not None:
            raise ValueError(
                "a rule with 'engine' cannot match on statement_codes: the engine is chosen "
                "before the report (and its codes) exist; split it into two rules"
            )
        if self.engine is not None and self.match.names_the_order:
            raise ValueError(
                "a rule with 'engine' cannot match on ordering_facility, priority or "
                "procedure_code: the engine is chosen before the ECG is matched to its "
                "order; split it into two rules"
            )
        return self


class RoutesConfig(StrictSettings):
    destinations: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Destination] = Field(
        min_length=1
    )
    rules: list[Rule] = Field(default_factory=list)
    default: list[str] = Field(min_length=1)
    critical: CriticalConfig = Field(
        default_factory=CriticalConfig, description="critical-result rules and notifications"
    )


# What the gateway does without a routes file: the shipped config's behaviour.
OUTBOX_ONLY = RoutesConfig.model_validate(
    {"destinations": {"outbox": {"type": "file", "directory": "outbox"}}, "default": ["outbox"]}
)


def _split_mllp(endpoint: str) -> tuple[str, int, bool]:
    match = re.fullmatch(r"(mllps?)://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?", endpoint.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{endpoint!r} is not mllp://host:port or mllps://host:port")
    scheme, host, port = match.groups()
    return host.strip("[]"), int(port), scheme == "mllps"


def _split_dicom(endpoint: str) -> tuple[str, str, int]:
    match = re.fullmatch(
        rf"dicom://({_AE_TITLE})@([^:/\s@]+|\[[0-9a-fA-F:]+\]):(\d{{1,5}})/?", endpoint.strip()
    )
    if match is None or not 0 < int(match.group(3)) < 65536 or not match.group(1).strip():
        raise ValueError(f"{endpoint!r} is not dicom://CALLED_AE@host:port")
    called, host, port = match.groups()
    return called.strip(), host.strip("[]"), int(port)
