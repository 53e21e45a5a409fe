"""Which rules match a report, and where it goes.

Rules are evaluated in order. A matching rule adds its destinations and ends the
evaluation, unless it says `continue: true` (an "extra" rule, e.g. AFIB to an
urgent inbox). When evaluation runs past the last rule without being ended, the
`default` route applies too, so every report goes somewhere.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass

from gateway.processing.package import ReportPackage
from gateway.routing.schema import EngineName, RoutesConfig, Rule


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
    source: str = ""  # a watched folder's or the upload endpoint's; none for C-STORE
    # the matched order's (gateway/processing/order_match.py); "" for an unordered ECG
    ordering_facility: str = ""
    priority: str = ""
    procedure_code: str = ""

    @classmethod
    def of(cls, package: ReportPackage) -> MatchContext:
        meta = package.metadata
        order = package.order
        return cls(
            calling_ae=package.association.calling_ae,
            called_ae=package.association.called_ae,
            kind=package.kind,
            modality=meta.modality or "",
            institution=meta.institution_name or "",
            station=meta.station_name or "",
            statement_codes=frozenset(package.report.codes),
            source=package.association.source,
            ordering_facility=order.ordering_facility if order is not None else "",
            priority=order.priority if order is not None else "",
            procedure_code=order.procedure_code if order is not None else "",
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
        source: str = "",
    ) -> MatchContext:
        """What is known of an object before it is interpreted: no statement codes yet."""
        return cls(calling_ae, called_ae, kind, modality, institution, station, frozenset(), source)


def rule_matches(rule: Rule, ctx: MatchContext) -> bool:
    m = rule.match
    return (
        _any_glob(m.calling_ae, ctx.calling_ae)
        and _any_glob(m.called_ae, ctx.called_ae)
        and (m.kind is None or ctx.kind in m.kind)
        and _any_glob(m.modality, ctx.modality)
        and _any_glob(m.institution, ctx.institution)
        and _any_glob(m.station, ctx.station)
        and _any_glob(m.source, ctx.source)
        and (m.statement_codes is None or _any_code(m.statement_codes, ctx.statement_codes))
        and _any_glob(m.ordering_facility, ctx.ordering_facility)
        and (m.priority is None or ctx.priority in m.priority)
        and _any_glob(m.procedure_code, ctx.procedure_code)
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
    return key_for_patient(meta.patient_id, meta.patient_id_issuer, package.sop_instance_uid)


def key_for_patient(patient_id: str | None, issuer: str | None, sop_instance_uid: str) -> str:
    """The same key from the header's values, so intake can record it before decoding
    (a patient's later deliveries wait for the ECGs received before them)."""
    if patient_id:
        identity = f"{issuer or ''}\x00{patient_id}"
        return "p:" + hashlib.sha256(identity.encode()).hexdigest()[:20]
    return "u:" + hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:20]


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
