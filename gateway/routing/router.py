"""The routes in force: routes.yaml loaded and validated, and reloaded when it changes.

Errors are reported with the YAML line they come from: admins edit this file by
hand, and "line 23: unknown destination 'ehr-fhr'" is what lets them fix it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.processing.package import ReportPackage
from gateway.routing.critical_schema import Target, WebhookTarget
from gateway.routing.match import MatchContext, RouteDecision, decide, engine_for, patient_key
from gateway.routing.schema import (
    OUTBOX_ONLY,
    AnyDestination,
    BasicAuth,
    BearerAuth,
    EngineName,
    FhirDestination,
    FileDestination,
    Hl7Destination,
    RoutesConfig,
    SecretRef,
    TlsOptions,
)
from model.settings import YamlFileError, dotted, duplicate_keys, line_at, read_yaml

log = logging.getLogger(__name__)

_SECRET_KEYS = {"token", "password", "secret", "api_key", "apikey", "bearer"}


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

    def __init__(self, path: Path, data_dir: Path, *, optional: bool = False):
        """`optional`: a missing file sends every report to the outbox until it appears;
        otherwise it is a RoutesError, as a mistyped path must not reroute every report."""
        self.path = Path(path)
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        if self.path.exists():
            self._config = load_routes(self.path, self.data_dir)
        elif not optional:
            message = "not found (to start without it, set routes_optional: true in gateway.yaml)"
            raise RoutesError(self.path, [RouteIssue(0, "", message)])
        else:
            log.warning(
                "routes file %s not found: every report goes to %s/outbox until it appears",
                self.path,
                self.data_dir,
            )
            self._config = _resolve_paths(OUTBOX_ONLY, self.data_dir, Path.cwd())
        self._applied_digest = _digest(self.path)
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
        """Where the rules send the report, and for an ECG matched to an order, each
        order-status destination (the EHR hears the order was done)."""
        key = patient_key(package)
        names = list(self.decide(package).destinations)
        if package.order is not None:
            names += order_status_destinations(self._config)
        return [(name, key) for name in names]

    def destination(self, name: str) -> AnyDestination | None:
        return self._config.destinations.get(name)

    def reload_if_changed(self) -> bool:
        """True when a changed, valid file took effect."""
        with self._lock:
            digest = _digest(self.path)
            if digest in (self._applied_digest, self._rejected_digest):
                return False  # unchanged, touched, or the same bad content: nothing new to say
            try:
                config = load_routes(self.path, self.data_dir)
            except RoutesError as exc:
                self._rejected_digest = digest
                log.error("routes file rejected, previous rules stay in force:\n%s", exc)
                return False
            self._rejected_digest = None
            self._applied_digest = digest
            self._config = config
            log.info(
                "routes reloaded from %s: %d rules, %d destinations",
                self.path,
                len(config.rules),
                len(config.destinations),
            )
            return True


def order_status_destinations(config: RoutesConfig) -> list[str]:
    """The hl7 destinations that take order status updates instead of results."""
    return [
        name
        for name, destination in config.destinations.items()
        if isinstance(destination, Hl7Destination) and destination.sends == "order-status"
    ]


def _digest(path: Path) -> str:
    """The file's content hash ("" when it cannot be read): a routes file is a few KB, so
    hashing it at each check is cheaper than reasoning about times and sizes."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _parse(path: Path) -> RoutesConfig:
    try:
        document = read_yaml(path)
    except YamlFileError as exc:
        raise RoutesError(path, [RouteIssue(exc.line, "", exc.problem)]) from None
    data, root = document.data, document.root
    if not isinstance(data, dict) or root is None:
        raise RoutesError(
            path, [RouteIssue(1, "", "expected a mapping with destinations, rules and default")]
        )
    issues = [RouteIssue(line, key, "key appears twice") for line, key in duplicate_keys(root)]
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
        line, path = line_at(root, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        if loc and str(loc[-1]).lower() in _SECRET_KEYS:
            message += "; secrets never go in routes.yaml: write {env: VARIABLE} or {file: PATH}"
        issues.append(RouteIssue(line, dotted(path), message))
    return issues


def _reference_issues(data: dict, root: yaml.Node) -> list[RouteIssue]:
    """Names used by rules and the default route must be defined destinations, and not
    ones that take order status updates (they are sent those without a rule)."""
    destinations = data.get("destinations")
    defined = set(destinations) if isinstance(destinations, dict) else set()
    status_only = {
        name
        for name, value in (destinations if isinstance(destinations, dict) else {}).items()
        if isinstance(value, dict) and value.get("sends") == "order-status"
    }
    issues: list[RouteIssue] = []

    def check_names(names: Any, loc: tuple) -> None:
        if not isinstance(names, list):
            return
        for index, name in enumerate(names):
            if isinstance(name, str) and name not in defined:
                line, path = line_at(root, (*loc, index))
                issues.append(RouteIssue(line, dotted(path), f"unknown destination {name!r}"))
            elif name in status_only:
                line, path = line_at(root, (*loc, index))
                issues.append(
                    RouteIssue(
                        line,
                        dotted(path),
                        f"destination {name!r} takes order status updates (sends: "
                        f"order-status), not reports",
                    )
                )

    rules = data.get("rules")
    seen_names: set[str] = set()
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        check_names(rule.get("destinations"), ("rules", index, "destinations"))
        name = rule.get("name")
        if isinstance(name, str) and name in seen_names:
            line, path = line_at(root, ("rules", index, "name"))
            issues.append(RouteIssue(line, dotted(path), f"rule name {name!r} is used twice"))
        seen_names.add(name)
    check_names(data.get("default"), ("default",))
    return issues + _critical_reference_issues(data.get("critical"), root)


def _critical_reference_issues(section: Any, root: yaml.Node) -> list[RouteIssue]:
    """The critical section's notify and escalate_to must name its targets; its rule
    names must be unique (a notification names the rule)."""
    if not isinstance(section, dict):
        return []
    targets = section.get("targets")
    defined = set(targets) if isinstance(targets, dict) else set()
    issues: list[RouteIssue] = []
    for key in ("notify", "escalate_to"):
        names = section.get(key)
        for index, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in defined:
                line, path = line_at(root, ("critical", key, index))
                issues.append(RouteIssue(line, dotted(path), f"unknown target {name!r}"))
    rules = section.get("rules")
    seen: set[str] = set()
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        name = rule.get("name") if isinstance(rule, dict) else None
        if isinstance(name, str) and name in seen:
            line, path = line_at(root, ("critical", "rules", index, "name"))
            issues.append(RouteIssue(line, dotted(path), f"rule name {name!r} is used twice"))
        seen.add(name)
    return issues


def _resolve_paths(config: RoutesConfig, data_dir: Path, config_dir: Path) -> RoutesConfig:
    destinations = {}
    for name, dest in config.destinations.items():
        updates: dict[str, Any] = {}
        if isinstance(dest, FileDestination):
            updates["directory"] = _absolute(dest.directory, data_dir)
        if isinstance(dest, (FhirDestination, Hl7Destination)):
            updates["tls"] = _resolve_tls(dest.tls, config_dir)
        if isinstance(dest, FhirDestination) and dest.auth is not None:
            updates["auth"] = _resolve_auth(dest.auth, config_dir)
        destinations[name] = dest.model_copy(update=updates)
    critical = config.critical.model_copy(
        update={"targets": _resolve_targets(config.critical.targets, config_dir)}
    )
    return config.model_copy(update={"destinations": destinations, "critical": critical})


def _resolve_targets(targets: dict[str, Target], config_dir: Path) -> dict[str, Target]:
    """Secret and certificate files of notification targets, relative to routes.yaml."""
    resolved: dict[str, Target] = {}
    for name, target in targets.items():
        if isinstance(target, WebhookTarget):
            updates: dict[str, Any] = {"tls": _resolve_tls(target.tls, config_dir)}
            if target.secret is not None:
                updates["secret"] = _resolve_secret(target.secret, config_dir)
        else:
            password = target.password
            updates = {
                "password": password and _resolve_secret(password, config_dir),
                "tls": _resolve_tls(target.tls, config_dir),
            }
        resolved[name] = target.model_copy(update=updates)
    return resolved


def _resolve_tls(tls: TlsOptions, config_dir: Path) -> TlsOptions:
    return TlsOptions(
        ca_file=_absolute_or_none(tls.ca_file, config_dir),
        client_cert=_absolute_or_none(tls.client_cert, config_dir),
        client_key=_absolute_or_none(tls.client_key, config_dir),
    )


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
