"""Where each report goes: the `routes.yaml` schema, rule matching and hot reload.

Rules are evaluated in order. A matching rule adds its destinations and ends the
evaluation, unless it says `continue: true` (an "extra" rule, e.g. AFIB to an
urgent inbox). When evaluation runs past the last rule without being ended, the
`default` route applies too, so every report goes somewhere.

Errors are reported with the YAML line they come from: admins edit this file by
hand, and "line 23: unknown destination 'ehr-fhr'" is what lets them fix it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.package import ReportPackage

log = logging.getLogger(__name__)

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECRET_KEYS = {"token", "password", "secret", "api_key", "apikey", "bearer"}


def _parse_duration(value: Any) -> Any:
    """Admins write `30s`, `15m`, `2h`, `7d` or plain seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 7d")
        number, unit = match.groups()
        return timedelta(seconds=float(number) * _UNIT_SECONDS[unit or "s"])
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
Patterns = Annotated[list[str], BeforeValidator(_as_list)]
ObjectKind = Literal["ecg-waveform", "secondary-capture", "pdf"]
AckType = Literal["AL", "NE", "ER", "SU"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(20, ge=1)
    max_age: Duration = timedelta(days=3)
    backoff_base: Duration = timedelta(seconds=30)
    backoff_cap: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must not be smaller than backoff_base")
        return self


class SecretRef(_Strict):
    """Where a secret lives; the secret itself never appears in routes.yaml."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: (variable name) or file: (path)")
        return self

    def read(self) -> str:
        """Read at send time so a rotated secret takes effect without a reload."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise LookupError(f"environment variable {self.env} is not set")
            return value.strip()
        assert self.file is not None
        try:
            return self.file.read_text().strip()
        except OSError as exc:
            raise LookupError(f"cannot read secret file {self.file}: {exc.strerror}") from None


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: str
    password: SecretRef


Auth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class TlsOptions(_Strict):
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsOptions:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self


class Hl7Options(_Strict):
    """MSH fields the receiving system routes and acknowledges on."""

    sending_application: str = "ECGGW"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: Literal["P", "T", "D"] = "P"
    accept_ack_type: AckType | None = Field(None, description="MSH-15")
    application_ack_type: AckType | None = Field(None, description="MSH-16")


class FhirOptions(_Strict):
    """How DICOM patient identifiers become FHIR identifier systems."""

    issuer_systems: dict[str, str] = Field(
        default_factory=dict, description="IssuerOfPatientID -> identifier system URI"
    )
    default_patient_system: str = "urn:ecg-gateway:patient-id"


class _Destination(_Strict):
    retry: RetryPolicy = RetryPolicy()


class FhirDestination(_Destination):
    type: Literal["fhir"]
    endpoint: HttpUrl = Field(description="FHIR R4 base URL; the transaction is POSTed there")
    auth: Auth | None = None
    tls: TlsOptions = TlsOptions()
    timeout_s: float = Field(30.0, gt=0)
    fhir: FhirOptions = FhirOptions()


class Hl7Destination(_Destination):
    type: Literal["hl7"]
    endpoint: str = Field(description="mllp://host:port, or mllps://host:port for TLS")
    tls: TlsOptions = TlsOptions()
    timeout_s: float = Field(30.0, gt=0)
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


FileFormat = Literal["fhir", "hl7", "png", "pdf"]


class FileDestination(_Destination):
    type: Literal["file"]
    directory: Path = Field(description="absolute, or relative to the data directory")
    formats: list[FileFormat] = ["fhir", "hl7", "png", "pdf"]
    hl7: Hl7Options = Hl7Options()
    fhir: FhirOptions = FhirOptions()


Destination = Annotated[
    FhirDestination | Hl7Destination | FileDestination, Field(discriminator="type")
]


class Match(_Strict):
    """All given conditions must hold; a list means any of its values (globs allowed)."""

    calling_ae: Patterns | None = None
    called_ae: Patterns | None = None
    kind: list[ObjectKind] | None = None
    modality: Patterns | None = None
    institution: Patterns | None = None
    station: Patterns | None = None
    statement_codes: Patterns | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_list(cls, value: Any) -> Any:
        return _as_list(value)


EngineName = Literal["measure", "vlm", "hybrid"]


class Rule(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=_NAME_PATTERN)
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
        return self


class RoutesConfig(_Strict):
    destinations: dict[Annotated[str, Field(pattern=_NAME_PATTERN)], Destination] = Field(
        min_length=1
    )
    rules: list[Rule] = []
    default: list[str] = Field(min_length=1)


# What the gateway does without a routes file: the shipped config's behaviour.
OUTBOX_ONLY = RoutesConfig.model_validate(
    {"destinations": {"outbox": {"type": "file", "directory": "outbox"}}, "default": ["outbox"]}
)


@dataclass(frozen=True)
class RouteIssue:
    """One problem in a routes file; `line` is 1-based, 0 when unknown."""

    line: int
    where: str
    message: str

    def format(self, path: Path | str) -> str:
        location = f"{path}:{self.line}" if self.line else str(path)
        return (
            f"{location}: {self.where}: {self.message}"
            if self.where
            else f"{location}: {self.message}"
        )


class RoutesError(Exception):
    """A routes file that cannot be used; carries every issue found."""

    def __init__(self, path: Path, issues: list[RouteIssue]):
        self.path = path
        self.issues = issues
        super().__init__("\n".join(issue.format(path) for issue in issues))


@dataclass(frozen=True)
class RouteDecision:
    matched_rules: tuple[str, ...]
    used_default: bool
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class MatchContext:
    """The routable facts about one received object."""

    calling_ae: str
    called_ae: str
    kind: str
    modality: str
    institution: str
    station: str
    statement_codes: frozenset[str]

    @classmethod
    def of(cls, package: ReportPackage) -> MatchContext:
        meta = package.metadata
        return cls(
            calling_ae=package.association.calling_ae,
            called_ae=package.association.called_ae,
            kind=package.kind,
            modality=meta.modality or "",
            institution=meta.institution_name or "",
            station=meta.station_name or "",
            statement_codes=frozenset(package.report.codes),
        )

    @classmethod
    def at_intake(
        cls,
        calling_ae: str,
        called_ae: str,
        kind: str,
        modality: str = "",
        institution: str = "",
        station: str = "",
    ) -> MatchContext:
        """What is known of an object before it is interpreted: no statement codes yet."""
        return cls(calling_ae, called_ae, kind, modality, institution, station, frozenset())


def rule_matches(rule: Rule, ctx: MatchContext) -> bool:
    m = rule.match
    return (
        _any_glob(m.calling_ae, ctx.calling_ae)
        and _any_glob(m.called_ae, ctx.called_ae)
        and (m.kind is None or ctx.kind in m.kind)
        and _any_glob(m.modality, ctx.modality)
        and _any_glob(m.institution, ctx.institution)
        and _any_glob(m.station, ctx.station)
        and (m.statement_codes is None or _any_code(m.statement_codes, ctx.statement_codes))
    )


def explain(config: RoutesConfig, ctx: MatchContext) -> list[tuple[Rule, bool]]:
    """Each rule and whether it matches, for `routes test`."""
    return [(rule, rule_matches(rule, ctx)) for rule in config.rules]


def decide(config: RoutesConfig, ctx: MatchContext) -> RouteDecision:
    matched: list[str] = []
    destinations: list[str] = []
    for rule in config.rules:
        if not rule_matches(rule, ctx):
            continue
        matched.append(rule.name)
        destinations.extend(rule.destinations)
        if not rule.continue_:
            return RouteDecision(tuple(matched), False, _unique(destinations))
    destinations.extend(config.default)
    return RouteDecision(tuple(matched), True, _unique(destinations))


def engine_for(config: RoutesConfig, ctx: MatchContext) -> EngineName | None:
    """The engine of the first matching rule that names one; None: gateway.yaml's engine.

    Engine rules never match on statement codes (the Rule validator refuses it), so this
    is decided from the intake facts alone, before any engine has run."""
    for rule in config.rules:
        if rule.engine is not None and rule_matches(rule, ctx):
            return rule.engine
    return None


def patient_key(package: ReportPackage) -> str:
    """Ordering key per patient; a hash, so the store never holds a patient ID."""
    meta = package.metadata
    if meta.patient_id:
        identity = f"{meta.patient_id_issuer or ''}\x00{meta.patient_id}"
        return "p:" + hashlib.sha256(identity.encode()).hexdigest()[:20]
    return "u:" + hashlib.sha256(package.sop_instance_uid.encode()).hexdigest()[:20]


def check_routes(path: Path) -> list[RouteIssue]:
    """Every problem in the file, each with its line; empty when the file is good."""
    try:
        _parse(path)
    except RoutesError as exc:
        return exc.issues
    return []


def load_routes(path: Path, data_dir: Path | None = None) -> RoutesConfig:
    """Parse and validate; relative file paths are made absolute here, once.

    Outbox directories are relative to the data directory; certificate and secret
    files are relative to the routes file, as admins expect of a config file.
    """
    config = _parse(path)
    return _resolve_paths(config, data_dir or Path.cwd(), path.resolve().parent)


class Router:
    """The routes in force; the pipeline and the delivery sweeper share one.

    `reload_if_changed` swaps in a changed file only when it is valid; an invalid
    file is logged once and the previous rules stay.
    """

    def __init__(self, path: Path, data_dir: Path):
        self.path = Path(path)
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        if self.path.exists():
            self._config = load_routes(self.path, self.data_dir)
        else:
            log.warning(
                "routes file %s not found: every report goes to %s/outbox until it appears",
                self.path,
                self.data_dir,
            )
            self._config = _resolve_paths(OUTBOX_ONLY, self.data_dir, Path.cwd())
        self._fingerprint = _fingerprint(self.path)
        self._applied_digest = self._fingerprint.digest
        self._rejected_digest: str | None = None

    @property
    def config(self) -> RoutesConfig:
        return self._config

    def decide(self, package: ReportPackage) -> RouteDecision:
        return decide(self._config, MatchContext.of(package))

    def engine_for(self, ctx: MatchContext) -> EngineName | None:
        return engine_for(self._config, ctx)

    @property
    def names_engines(self) -> bool:
        """Whether any rule picks an engine: if none does, no job's header need be read."""
        return any(rule.engine is not None for rule in self._config.rules)

    def destinations_for(self, package: ReportPackage) -> list[tuple[str, str]]:
        key = patient_key(package)
        return [(name, key) for name in self.decide(package).destinations]

    def destination(self, name: str) -> FhirDestination | Hl7Destination | FileDestination | None:
        return self._config.destinations.get(name)

    def reload_if_changed(self) -> bool:
        """True when a changed, valid file took effect."""
        with self._lock:
            fingerprint = _fingerprint(self.path)
            if fingerprint == self._fingerprint:
                return False
            self._fingerprint = fingerprint
            if fingerprint.digest in (self._applied_digest, self._rejected_digest):
                return False  # touched, or the same bad content: nothing new to say
            try:
                config = load_routes(self.path, self.data_dir)
            except RoutesError as exc:
                self._rejected_digest = fingerprint.digest
                log.error("routes file rejected, previous rules stay in force:\n%s", exc)
                return False
            self._rejected_digest = None
            self._applied_digest = fingerprint.digest
            self._config = config
            log.info(
                "routes reloaded from %s: %d rules, %d destinations",
                self.path,
                len(config.rules),
                len(config.destinations),
            )
            return True


@dataclass(frozen=True)
class _Fingerprint:
    mtime_ns: int
    size: int
    digest: str


def _fingerprint(path: Path) -> _Fingerprint:
    try:
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return _Fingerprint(-1, -1, "")
    return _Fingerprint(stat.st_mtime_ns, stat.st_size, digest)


def _parse(path: Path) -> RoutesConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesError(path, [RouteIssue(0, "", f"cannot read: {exc}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise RoutesError(path, [RouteIssue(line, "", f"YAML syntax: {exc.problem}")]) from None
    if not isinstance(data, dict) or root is None:
        raise RoutesError(
            path, [RouteIssue(1, "", "expected a mapping with destinations, rules and default")]
        )
    issues = _duplicate_key_issues(root)
    config: RoutesConfig | None = None
    try:
        config = RoutesConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, root))
    issues.extend(_reference_issues(data, root))
    if issues:
        raise RoutesError(path, sorted(issues, key=lambda issue: issue.line))
    assert config is not None
    return config


def _pydantic_issues(exc: ValidationError, root: yaml.Node) -> list[RouteIssue]:
    issues = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        line, path = _line_at(root, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        if loc and str(loc[-1]).lower() in _SECRET_KEYS:
            message += "; secrets never go in routes.yaml: write {env: VARIABLE} or {file: PATH}"
        issues.append(RouteIssue(line, _dotted(path), message))
    return issues


def _reference_issues(data: dict, root: yaml.Node) -> list[RouteIssue]:
    """Names used by rules and the default route must be defined destinations."""
    defined = (
        set(data.get("destinations") or {}) if isinstance(data.get("destinations"), dict) else set()
    )
    issues: list[RouteIssue] = []

    def check_names(names: Any, loc: tuple) -> None:
        if not isinstance(names, list):
            return
        for index, name in enumerate(names):
            if isinstance(name, str) and name not in defined:
                line, path = _line_at(root, (*loc, index))
                issues.append(RouteIssue(line, _dotted(path), f"unknown destination {name!r}"))

    rules = data.get("rules")
    seen_names: set[str] = set()
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        check_names(rule.get("destinations"), ("rules", index, "destinations"))
        name = rule.get("name")
        if isinstance(name, str) and name in seen_names:
            line, path = _line_at(root, ("rules", index, "name"))
            issues.append(RouteIssue(line, _dotted(path), f"rule name {name!r} is used twice"))
        seen_names.add(name)
    check_names(data.get("default"), ("default",))
    return issues


def _duplicate_key_issues(node: yaml.Node, path: tuple = ()) -> list[RouteIssue]:
    """PyYAML silently keeps the last of two equal keys; an admin wants to know."""
    issues: list[RouteIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                issues.append(
                    RouteIssue(
                        key.start_mark.line + 1, _dotted((*path, key.value)), "key appears twice"
                    )
                )
            seen.add(key.value)
            issues.extend(_duplicate_key_issues(value, (*path, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            issues.extend(_duplicate_key_issues(item, (*path, index)))
    return issues


def _line_at(root: yaml.Node, loc: tuple) -> tuple[int, tuple]:
    """The 1-based line of the deepest YAML node along an error location, and the path.

    A mapping step points at its key (so a missing field points at its parent's
    key). Pydantic puts a discriminated union's tag (`fhir`, `hl7`, `file`) into
    the location; it is skipped where the mapping's own `type:` says the same.
    """
    node, anchor, walked = root, root, ()
    tag_skipped = False
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            if not tag_skipped and _mapping_type(node) == part:
                tag_skipped = True
                continue
            tag_skipped = False
            child = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if child is None:
                return anchor.start_mark.line + 1, (*walked, part)
            anchor, node = child
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            anchor = node = node.value[part]
        else:
            return anchor.start_mark.line + 1, (*walked, part)
        walked = (*walked, part)
    return anchor.start_mark.line + 1, walked


def _mapping_type(node: yaml.MappingNode) -> str | None:
    for key, value in node.value:
        if key.value == "type" and isinstance(value, yaml.ScalarNode):
            return value.value
    return None


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _resolve_paths(config: RoutesConfig, data_dir: Path, config_dir: Path) -> RoutesConfig:
    destinations = {}
    for name, dest in config.destinations.items():
        updates: dict[str, Any] = {}
        if isinstance(dest, FileDestination):
            updates["directory"] = _absolute(dest.directory, data_dir)
        if isinstance(dest, (FhirDestination, Hl7Destination)):
            updates["tls"] = TlsOptions(
                ca_file=_absolute_or_none(dest.tls.ca_file, config_dir),
                client_cert=_absolute_or_none(dest.tls.client_cert, config_dir),
                client_key=_absolute_or_none(dest.tls.client_key, config_dir),
            )
        if isinstance(dest, FhirDestination) and dest.auth is not None:
            updates["auth"] = _resolve_auth(dest.auth, config_dir)
        destinations[name] = dest.model_copy(update=updates)
    return config.model_copy(update={"destinations": destinations})


def _resolve_auth(auth: BearerAuth | BasicAuth, config_dir: Path) -> BearerAuth | BasicAuth:
    if isinstance(auth, BearerAuth):
        return auth.model_copy(update={"token": _resolve_secret(auth.token, config_dir)})
    return auth.model_copy(update={"password": _resolve_secret(auth.password, config_dir)})


def _resolve_secret(ref: SecretRef, config_dir: Path) -> SecretRef:
    return ref.model_copy(update={"file": _absolute_or_none(ref.file, config_dir)})


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).absolute()


def _absolute_or_none(path: Path | None, base: Path) -> Path | None:
    return None if path is None else _absolute(path, base)


def _split_mllp(endpoint: str) -> tuple[str, int, bool]:
    match = re.fullmatch(r"(mllps?)://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?", endpoint.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{endpoint!r} is not mllp://host:port or mllps://host:port")
    scheme, host, port = match.groups()
    return host.strip("[]"), int(port), scheme == "mllps"


def _any_glob(patterns: list[str] | None, value: str) -> bool:
    if patterns is None:
        return True
    value = value.strip().upper()
    return any(fnmatch.fnmatchcase(value, pattern.strip().upper()) for pattern in patterns)


def _any_code(codes: list[str], present: frozenset[str]) -> bool:
    wanted = {code.strip().upper() for code in codes}
    return any(code.upper() in wanted for code in present)


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
