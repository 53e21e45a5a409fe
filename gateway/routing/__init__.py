"""Routing: where each report goes, from routes.yaml.

schema.py is the file's shape (destinations, retry policy, rules), match.py decides
which rules match a report, router.py loads the file (every error with its line) and
reloads it when it changes, dry_run.py shows a decision for `ecg-gateway routes test`.
"""

from gateway.routing.critical import critical_findings
from gateway.routing.critical_schema import (
    DEFAULT_RULES,
    CriticalConfig,
    CriticalRule,
    SmtpTarget,
    WebhookTarget,
)
from gateway.routing.match import (
    MatchContext,
    RouteDecision,
    decide,
    engine_for,
    explain,
    key_for_patient,
    patient_key,
    rule_matches,
)
from gateway.routing.router import RouteIssue, Router, RoutesError, check_routes, load_routes
from gateway.routing.schema import (
    OUTBOX_ONLY,
    AnyDestination,
    BasicAuth,
    BearerAuth,
    DicomDestination,
    EngineName,
    FhirDestination,
    FhirOptions,
    FileDestination,
    Hl7Destination,
    Hl7Options,
    Match,
    RetryPolicy,
    RoutesConfig,
    Rule,
    SecretRef,
    TlsOptions,
)

__all__ = [
    "DEFAULT_RULES",
    "OUTBOX_ONLY",
    "AnyDestination",
    "BasicAuth",
    "BearerAuth",
    "CriticalConfig",
    "CriticalRule",
    "DicomDestination",
    "EngineName",
    "FhirDestination",
    "FhirOptions",
    "FileDestination",
    "Hl7Destination",
    "Hl7Options",
    "Match",
    "MatchContext",
    "RetryPolicy",
    "RouteDecision",
    "RouteIssue",
    "Router",
    "RoutesConfig",
    "RoutesError",
    "Rule",
    "SecretRef",
    "SmtpTarget",
    "TlsOptions",
    "WebhookTarget",
    "check_routes",
    "critical_findings",
    "decide",
    "engine_for",
    "explain",
    "key_for_patient",
    "load_routes",
    "patient_key",
    "rule_matches",
]
