"""gateway.yaml: the gateway's settings, validated once at start and passed in.

Every field has a default, so `ecg-gateway serve` runs with no file at all. Unknown keys
are errors (a typo must not silently fall back to a default). Relative paths are taken
relative to the directory the gateway is started from.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.processing.order_match import OrderMatching
from model.serial_comparison import ComparisonThresholds
from model.settings import StrictSettings, YamlFileError, line_at, read_settings
from model.statement_limits import StatementLimits
from model.vlm.settings import VlmSettings

log = logging.getLogger(__name__)
SettingsFile = TypeVar("SettingsFile", bound=StrictSettings)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file, field and line."""


def _check_ae_title(value: str) -> str:
    stripped = value.strip()
    if not stripped or len(stripped) > 16 or "\\" in stripped or not stripped.isascii():
        raise ValueError(f"AE title {value!r} must be 1-16 ASCII characters without '\\'")
    return stripped


def _check_network(value: str) -> str:
    ipaddress.ip_network(value, strict=False)
    return value


def _check_host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} must be host:port with a port from 1 to 65535")
    return value


def _check_address(value: str) -> str:
    ipaddress.ip_address(value)
    return value


AeTitle = Annotated[str, AfterValidator(_check_ae_title)]
IpAddress = Annotated[str, AfterValidator(_check_address)]
IpNetwork = Annotated[str, AfterValidator(_check_network)]
HostPort = Annotated[str, AfterValidator(_check_host_port)]


class TlsConfig(StrictSettings):
    """DICOM over TLS (PS3.15 BCP 195 profile: TLS 1.2 or newer)."""

    enabled: bool = False
    cert: Path | None = Field(None, description="server certificate chain (PEM)")
    key: Path | None = Field(None, description="server private key (PEM)")
    ca: Path | None = Field(None, description="CA bundle used to verify client certificates")
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _complete(self) -> TlsConfig:
        if self.enabled and (self.cert is None or self.key is None):
            raise ValueError("tls.enabled needs both 'cert' and 'key'")
        if self.require_client_cert and self.ca is None:
            raise ValueError("tls.require_client_cert needs 'ca' to verify client certificates")
        return self


class DicomLimits(StrictSettings):
    """Association timeouts and limits; a stuck peer must not hold a thread forever."""

    acse_timeout_s: float = Field(30.0, gt=0)
    dimse_timeout_s: float = Field(60.0, gt=0)
    network_timeout_s: float = Field(60.0, gt=0)
    # How long a C-STORE command that announces a dataset may wait for its first data
    # fragment before it is answered 0xC000 and the association aborted
    # (gateway/intake/dataset_wait.py); a sender sends it right after the command.
    dataset_wait_s: float = Field(10.0, gt=0)
    max_associations: int = Field(10, ge=1, le=1000)


class StorageCommitmentConfig(StrictSettings):
    """Where a storage commitment report goes when the requesting association is gone: a
    cart deletes its copies only once told, so each cart's AE title needs an address."""

    peers: dict[AeTitle, HostPort] = Field(
        default_factory=dict, description="calling AE title -> 'host:port' of its SCP"
    )


class WorklistConfig(StrictSettings):
    """The Modality Worklist SCP (C-FIND) on the DICOM port: carts download their open
    orders. Off by default: it hands patient demographics to any AE allowed to associate."""

    enabled: bool = False
    max_results: int = Field(
        1000, ge=1, le=100_000, description="a query matching more is refused (0xA700)"
    )
    names_ignore_case: bool = Field(
        False, description="Patient's Name matching ignores case (dcmtk's wlmscpfs: it does not)"
    )


class StoreConfig(StrictSettings):
    """Where jobs and deliveries live. No url: the SQLite file in the data directory (one
    gateway process). `postgresql://user@host:port/dbname?sslmode=verify-full&sslrootcert=
    /path/ca.pem`: a PostgreSQL database several gateway nodes share. The password is not
    written here: `password_file`, or libpq's PGPASSWORD / PGPASSFILE in the environment."""

    url: str | None = Field(None, description="postgresql://... ; empty: SQLite in data_dir")
    password_file: Path | None = Field(None, description="file holding the database password")
    max_connections: int = Field(20, ge=2, le=1000, description="per gateway node")

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must start with postgresql:// (or leave store out for SQLite)")
        if parts.password:
            raise ValueError(
                "holds a password: put it in store.password_file or PGPASSWORD instead"
            )
        try:
            conninfo_to_dict(value)
        except Exception as exc:  # noqa: BLE001 - psycopg.ProgrammingError, any parse error
            raise ValueError(f"is not a valid connection URL: {exc}") from None
        return value

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    def conninfo(self) -> str:
        """The libpq connection string, with the password from password_file if given."""
        if self.password_file is None:
            return self.url
        password = self.password_file.read_text().strip()
        return make_conninfo(self.url, password=password)


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


# What a watched folder or the upload endpoint may be told to take: the decoders'
# `source_format` names (model/decode), or auto (whatever model.load recognises).
FileFormat = Literal["auto", "dicom", "muse-xml", "philips-xml", "hl7-aecg", "scp-ecg"]
SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class WatchFolder(StrictSettings):
    """A folder that carts write ECG files into (gateway/intake/folders.py)."""

    path: Path = Field(description="the folder; its error/ (and processed/) are made inside")
    source: SourceName = Field(description="source name that routes.yaml rules match on")
    format: FileFormat = Field("auto", description="the only format taken; others go to error/")
    after: Literal["move", "delete", "keep"] = Field(
        "move", description="what is done with a file once its job is committed"
    )
    move_to: Path | None = Field(None, description="with after: move; default <path>/processed")
    poll_interval_s: float = Field(2.0, gt=0, le=3600)
    ignore: list[str] = Field(
        default_factory=lambda: ["*.tmp", "*.part", "*.partial"],
        description="name globs of files still being written (hidden files are always ignored)",
    )
    max_file_mb: float = Field(50.0, gt=0, description="a larger file goes to error/")

    @model_validator(mode="after")
    def _move_to_with_move(self) -> WatchFolder:
        if self.move_to is not None and self.after != "move":
            raise ValueError(f"move_to is only used with after: move (after is {self.after!r})")
        return self

    @property
    def processed_dir(self) -> Path:
        return self.move_to if self.move_to is not None else self.path / "processed"

    @property
    def error_dir(self) -> Path:
        return self.path / "error"


class UploadToken(StrictSettings):
    """One device class's bearer token (kept in a file, never in gateway.yaml) and the
    source name its uploads are routed by."""

    source: SourceName
    token_file: Path


class UploadConfig(StrictSettings):
    """POST /upload for devices that push files (gateway/intake/upload.py)."""

    enabled: bool = False
    tls: TlsConfig = Field(default_factory=TlsConfig)
    # After tls: its validator reads tls.
    bind_address: IpAddress = Field("127.0.0.1", description="elsewhere than loopback needs tls")
    port: int = Field(8104, ge=1, le=65535)
    tokens: list[UploadToken] = Field(default_factory=list)
    format: FileFormat = "auto"
    max_mb: float = Field(50.0, gt=0, description="a larger body is refused with 413")
    read_timeout_s: float = Field(
        60.0, gt=0, description="a body not received within this is refused with 408"
    )

    @field_validator("bind_address")
    @classmethod
    def _tls_beyond_loopback(cls, value: str, info: ValidationInfo) -> str:
        tls = info.data.get("tls")
        if not _is_loopback(value) and not (tls and tls.enabled):
            raise ValueError(
                f"{value} is not a loopback address: upload.tls.enabled must be true "
                "(tokens and ECGs must not cross the network in clear)"
            )
        return value

    @model_validator(mode="after")
    def _tokens_when_enabled(self) -> UploadConfig:
        if self.enabled and not self.tokens:
            raise ValueError("upload.enabled needs at least one entry in 'tokens'")
        return self


class AdminConfig(StrictSettings):
    """The admin HTTP endpoint (/healthz, /readyz, /metrics). On this machine only by
    default; bound to any other address it needs a bearer token and TLS."""

    enabled: bool = True
    bind: IpAddress = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="0: any free port")
    token_file: Path | None = Field(None, description="file holding the bearer token")
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _protected_beyond_localhost(self) -> AdminConfig:
        unprotected = self.token_file is None or not self.tls.enabled
        if self.enabled and not _is_loopback(self.bind) and unprotected:
            raise ValueError(
                f"admin.bind {self.bind} is reachable from other machines: "
                "set admin.token_file and admin.tls (enabled, cert, key), "
                "or bind to 127.0.0.1"
            )
        return self


HdNamespace = Annotated[str, Field(pattern=r"^[^|^~\\&]{1,64}$")]


class OrdersConfig(StrictSettings):
    """The HL7 v2 order listener (gateway/intake/hl7_orders.py): ORM^O01, OMG^O19 and
    ADT^A08/A40 from the EHR over MLLP, acknowledged once committed (docs/orders.md)."""

    enabled: bool = False
    bind: IpAddress = "127.0.0.1"
    port: int = Field(2575, ge=0, le=65535, description="0: any free port")
    tls: TlsConfig = Field(default_factory=TlsConfig)
    allowed_facilities: list[HdNamespace] = Field(
        default_factory=list,
        description="sending facilities (MSH-4.1) taken; empty: any (a warning is logged)",
    )
    default_station_ae: AeTitle | None = Field(
        None, description="the cart AE title an order is scheduled for; empty: any cart"
    )
    application: HdNamespace = Field("ECGGW", description="MSH-3 of the acknowledgements")
    facility: HdNamespace | None = Field(None, description="MSH-4 of the acknowledgements")
    max_message_kb: int = Field(1024, ge=1, le=65536, description="a larger frame is refused")
    idle_timeout_s: float = Field(
        600.0, gt=0, description="a connection silent this long is closed"
    )


class WebConfig(StrictSettings):
    """The physicians' over-read web application (gateway/web). On this machine only by
    default; bound to any other address it needs TLS (passwords and patient data)."""

    enabled: bool = False
    bind: IpAddress = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535, description="0: any free port")
    users_file: Path = Field(
        Path("config/web-users.yaml"),
        description="local users with argon2 hashes (`ecg-gateway web user add`)",
    )
    session_minutes: float = Field(
        30.0, gt=0, le=24 * 60, description="a session unused this long ends"
    )
    max_failed_logins: int = Field(
        5, ge=1, description="wrong passwords per user (and 4x per address) before a pause"
    )
    lockout_minutes: float = Field(15.0, gt=0, description="the window and the pause")
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _tls_beyond_localhost(self) -> WebConfig:
        if self.enabled and not _is_loopback(self.bind) and not self.tls.enabled:
            raise ValueError(
                f"web.bind {self.bind} is reachable from other machines: "
                "set web.tls (enabled, cert, key), or bind to 127.0.0.1"
            )
        return self


class SyslogTlsConfig(StrictSettings):
    """TLS to the audit record repository (RFC 5425): the collector's CA, and this node's
    certificate where the collector authenticates nodes (IHE ATNA mutual TLS)."""

    enabled: bool = False
    ca: Path | None = Field(None, description="CA bundle that signed the collector's certificate")
    cert: Path | None = Field(None, description="this node's certificate chain (PEM)")
    key: Path | None = Field(None, description="this node's private key (PEM)")

    @model_validator(mode="after")
    def _complete(self) -> SyslogTlsConfig:
        if self.enabled and self.ca is None:
            raise ValueError("audit.syslog.tls.enabled needs 'ca' to verify the collector")
        if (self.cert is None) != (self.key is None):
            raise ValueError("audit.syslog.tls: give both 'cert' and 'key', or neither")
        return self


class SyslogConfig(StrictSettings):
    """The ATNA audit record repository: RFC 5424 messages over TCP, or TLS (RFC 5425)."""

    host: str = Field(description="the collector's host name or address")
    port: int = Field(6514, ge=1, le=65535)
    tls: SyslogTlsConfig = Field(default_factory=SyslogTlsConfig)
    timeout_s: float = Field(10.0, gt=0)


class PriorArchiveConfig(StrictSettings):
    """A DICOM archive asked for the patient's previous ECG when the gateway's own store
    has none as recent: C-FIND (study, series, instance), then C-GET of the instance, or
    C-MOVE to `move_destination_ae` for an archive without C-GET: the archive must know
    that AE title at this host and `move_port`, where the gateway listens only while it
    retrieves (never its intake port: a prior is not a new ECG to report)."""

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    called_ae: AeTitle
    calling_ae: AeTitle = "ECGGW"
    timeout_s: float = Field(20.0, gt=0, description="per association; a slow archive is skipped")
    retrieve: Literal["get", "move"] = "get"
    move_destination_ae: AeTitle | None = None
    move_bind: IpAddress = "0.0.0.0"
    move_port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _move_needs_a_destination(self) -> PriorArchiveConfig:
        if self.retrieve == "move" and (self.move_destination_ae is None or self.move_port is None):
            raise ValueError("retrieve: move needs move_destination_ae and move_port")
        return self


class ComparisonConfig(StrictSettings):
    """Serial comparison with the patient's previous ECG (docs/serial-comparison.md)."""

    enabled: bool = True
    thresholds: ComparisonThresholds = Field(default_factory=ComparisonThresholds)
    archive: PriorArchiveConfig | None = Field(None, description="none: the own store only")


class AuditConfig(StrictSettings):
    """The audit trail (IHE ATNA, DICOM PS3.15 A.5 messages): always written to a
    hash-chained file in the data directory; also sent to `syslog` when set."""

    enabled: bool = True
    syslog: SyslogConfig | None = None
    enterprise_site_id: str = Field("", description="AuditEnterpriseSiteID, e.g. the hospital")
    source_id: str = Field("", description="AuditSourceID; empty: the host name")


class GatewayConfig(StrictSettings):
    ae_title: AeTitle = "ECGGW"
    port: int = Field(11112, ge=1, le=65535)
    bind_address: IpAddress = "0.0.0.0"
    tls: TlsConfig = Field(default_factory=TlsConfig)
    allowed_calling_aes: list[AeTitle] = Field(
        default_factory=list, description="empty: any calling AE (a warning is logged at start)"
    )
    allowed_addresses: list[IpNetwork] = Field(
        default_factory=list, description="peer IP addresses or networks; empty: any address"
    )
    dicom: DicomLimits = Field(default_factory=DicomLimits)
    storage_commitment: StorageCommitmentConfig = Field(default_factory=StorageCommitmentConfig)
    worklist: WorklistConfig = Field(default_factory=WorklistConfig)
    data_dir: Path = Path("ecg-gateway-data")
    min_free_disk_mb: int = Field(100, ge=0, description="refuse objects (0xA700) below this")
    workers: int = Field(2, ge=1, le=64)
    engine: Literal["measure", "vlm", "hybrid"] = "measure"
    statement_limits: StatementLimits = Field(
        default_factory=StatementLimits,
        # `rules:` was this key's first name; routes.yaml's rules are another thing.
        validation_alias=AliasChoices("statement_limits", "rules"),
        description="limits of the rule statements, every engine",
    )
    vlm: VlmSettings = Field(
        default_factory=VlmSettings, description="model settings of the vlm and hybrid engines"
    )
    engine_unavailable: Literal["fallback", "hold"] = Field(
        "fallback", description="when the VLM cannot be loaded: measure instead, or keep the jobs"
    )
    hold_retry_s: float = Field(60.0, gt=0, description="how often a held job tries again")
    job_lease_s: float = Field(300.0, gt=0, description="a crashed worker's job is retaken after")
    job_max_attempts: int = Field(3, ge=1)
    job_max_worker_deaths: int = Field(
        3, ge=1, description="a job whose worker process dies this often fails (a poison object)"
    )
    watch_folders: list[WatchFolder] = Field(default_factory=list)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    orders: OrdersConfig = Field(default_factory=OrdersConfig)
    delivery_format_timeout_s: float = Field(
        60.0,
        gt=0,
        le=120,  # with the process starts and a file write (timeout_s <= 120) within the
        # 300 s lease of a delivery in hand, so no other sweep retakes it (delivery/sweeper.py)
        description="building one delivery's message (FHIR, HL7, DICOM, file) may take this "
        "long; then its process is replaced and the delivery retried",
    )
    retention_days: int = Field(30, ge=1)
    alert_command: tuple[str, ...] = Field(
        (), description="argv run for each job failed for good and each delivery given up"
    )
    store: StoreConfig = Field(
        default_factory=StoreConfig,
        description="postgresql://... (several nodes on one database); default SQLite",
    )
    admin: AdminConfig = Field(default_factory=AdminConfig)
    comparison: ComparisonConfig = Field(default_factory=ComparisonConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="on SIGTERM, how long jobs in progress may take to finish"
    )
    order_matching: OrderMatching = Field(
        default_factory=OrderMatching,
        description="matching received ECGs to the EHR's orders (docs/order-matching.md)",
    )
    routes: Path = Path("config/routes.yaml")
    routes_optional: bool = Field(
        False,
        description="start without the routes file, every report to the outbox until it "
        "appears; otherwise a missing routes file stops the start",
    )

    @field_validator("store", mode="before")
    @classmethod
    def _store_url(cls, value: Any) -> Any:
        """`store: postgresql://...` is short for `store: {url: postgresql://...}`."""
        return {"url": value} if isinstance(value, str) else value

    @field_validator("watch_folders")
    @classmethod
    def _one_watcher_per_folder(cls, folders: list[WatchFolder]) -> list[WatchFolder]:
        seen: set[Path] = set()
        for folder in folders:
            path = folder.path.resolve()
            if path in seen:
                raise ValueError(f"{folder.path} is watched twice")
            seen.add(path)
        return folders

    @model_validator(mode="after")
    def _engine_sets_the_mode(self) -> GatewayConfig:
        if "mode" in self.vlm.model_fields_set and self.vlm.mode != self.engine:
            raise ValueError(
                f"vlm.mode {self.vlm.mode!r} contradicts engine {self.engine!r}: "
                "choose the engine with `engine:` and leave vlm.mode out"
            )
        return self

    @property
    def vlm_settings(self) -> VlmSettings | None:
        """The VLM settings of the configured engine; None for the measurement engine."""
        if self.engine == "measure":
            return None
        return self.vlm.model_copy(update={"mode": self.engine})

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "gateway.sqlite3"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def metrics_path(self) -> Path:
        return self.data_dir / "metrics.json"

    def with_overrides(self, **changes: Any) -> GatewayConfig:
        """A copy with command-line overrides applied, validated like the file."""
        changes = {k: v for k, v in changes.items() if v is not None}
        try:
            return GatewayConfig.model_validate(
                {**self.model_dump(exclude={"vlm": {"mode"}}), **changes}
            )
        except ValidationError as exc:
            raise ConfigError(_validation_message("command line", exc, None)) from None


def load_config(path: Path | None) -> GatewayConfig:
    """The validated config from `path`, or the embedded defaults when `path` is None."""
    if path is None:
        return GatewayConfig()
    return load_settings(path, GatewayConfig)


def load_settings(path: Path, model: type[SettingsFile]) -> SettingsFile:
    """A settings file (gateway.yaml, the web users file) validated as `model`;
    ConfigError naming the file, and the line and field of each problem."""
    try:
        document = read_settings(path)
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc, document.root)) from None


def _validation_message(path: Path | str, exc: ValidationError, root: yaml.Node | None) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        line, _ = line_at(root, error["loc"])
        where = f"line {line}: " if line else ""
        lines.append(f"{path}: {where}{field}: {error['msg']}")
    return "\n".join(lines)


def log_security_posture(config: GatewayConfig) -> None:
    """Say at start, in the log, what the gateway lets in."""
    if not config.allowed_calling_aes:
        log.warning(
            "allowed_calling_aes is empty: ANY calling AE title is accepted; "
            "list the modalities' AE titles in production"
        )
    if not config.tls.enabled:
        log.warning("TLS is off: DICOM traffic (with patient data) is not encrypted")
    orders = config.orders
    if orders.enabled and not orders.allowed_facilities:
        log.warning("orders.allowed_facilities is empty: orders from ANY sending facility")
    if orders.enabled and not orders.tls.enabled and not _is_loopback(orders.bind):
        log.warning("orders.tls is off: HL7 orders (with patient data) are not encrypted")
    if config.worklist.enabled and not config.allowed_calling_aes:
        log.warning(
            "the worklist is on and allowed_calling_aes is empty: ANY calling AE can "
            "download orders with patient demographics"
        )
