"""routes.yaml's `critical:` section as data: the rules that mark a report critical, the
targets told about it (webhook, SMTP), and when nobody opening it is escalated.

Kept beside schema.py rather than in it: the section is a concern of its own (what is
critical and who hears it), and schema.py holds the destinations of ordinary routing.
The defaults, and why each is what it is, are in docs/critical-findings.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, HttpUrl, field_validator, model_validator

from gateway.routing.schema_parts import NAME_PATTERN, Duration, RetryPolicy, SecretRef, TlsOptions
from model.report import MEASUREMENT_KEYS
from model.settings import StrictSettings

Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _upper_codes(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    return [v.strip().upper() for v in value] if isinstance(value, list) else value


Codes = Annotated[list[str], BeforeValidator(_upper_codes)]


class Limit(StrictSettings):
    """Bounds on one measurement; every bound given must hold. A measurement the engine
    could not take (None) meets no bound: an unmeasured QTc is not a critical QTc."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Limit:
        if all(getattr(self, key) is None for key in ("gt", "ge", "lt", "le")):
            raise ValueError("give at least one of gt, ge, lt, le")
        return self

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )


class CriticalRule(StrictSettings):
    """Fires when the report states any of `codes` (if given), none of `without_codes`,
    and every measurement bound holds."""

    name: Name
    text: str = Field(min_length=1, max_length=200, description="what the finding is, in words")
    codes: Codes | None = None
    without_codes: Codes = Field(default_factory=list)
    measurements: dict[str, Limit] = Field(default_factory=dict)

    @field_validator("measurements")
    @classmethod
    def _known_keys(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        unknown = sorted(set(value) - set(MEASUREMENT_KEYS))
        if unknown:
            raise ValueError(
                f"unknown measurement {', '.join(unknown)}; known: {', '.join(MEASUREMENT_KEYS)}"
            )
        return value

    @model_validator(mode="after")
    def _says_something(self) -> CriticalRule:
        if not self.codes and not self.measurements:
            raise ValueError("a critical rule needs codes or measurements (or both)")
        return self


class WebhookTarget(StrictSettings):
    """An HTTPS endpoint (a paging system, a chat bridge) that gets a JSON POST without
    patient data; signed with HMAC-SHA256 when a secret is given."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretRef | None = Field(None, description="HMAC-SHA256 key for X-ECG-Signature")
    tls: TlsOptions = TlsOptions()
    timeout_s: float = Field(10.0, gt=0)


class SmtpTarget(StrictSettings):
    """A mailbox (a ward's, an on-call list); subject and body carry no patient data."""

    type: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(587, gt=0, lt=65536)
    starttls: bool = True
    username: str | None = None
    password: SecretRef | None = None
    sender: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    tls: TlsOptions = Field(TlsOptions(), description="ca_file: the CA that signed the server's")
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _login_pairs(self) -> SmtpTarget:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


Target = Annotated[WebhookTarget | SmtpTarget, Field(discriminator="type")]


class CriticalConfig(StrictSettings):
    rules: list[CriticalRule] | None = Field(
        None, description="omitted: the shipped defaults (DEFAULT_RULES); [] marks nothing"
    )
    targets: dict[Name, Target] = Field(default_factory=dict)
    notify: list[str] = Field(default_factory=list, description="targets of the first notice")
    escalate_after: Duration = timedelta(minutes=15)
    escalate_to: list[str] | None = Field(
        None,
        min_length=1,  # no escalation at all is no safe default: name a target
        description="targets of the escalation; omitted: the notify targets again",
    )
    report_link: str = Field(
        "http://localhost:8443/reports/{job_id}",
        description="the web report view; {job_id} is replaced",
    )
    retry: RetryPolicy = RetryPolicy(max_attempts=50, max_age=timedelta(days=1))

    @field_validator("report_link")
    @classmethod
    def _job_placeholder(cls, value: str) -> str:
        try:
            value.format(job_id=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may use only {{job_id}}: {exc!r}") from None
        return value

    @property
    def active_rules(self) -> list[CriticalRule]:
        return DEFAULT_RULES if self.rules is None else self.rules

    @property
    def escalation_targets(self) -> list[str]:
        return self.notify if self.escalate_to is None else self.escalate_to


# The shipped defaults (docs/critical-findings.md says where each comes from). The rule
# engine (model/statements.py) emits AFIB, AFLT, 3AVB (model/av_block_statements.py) and
# the measurements; STE_ only a VLM engine states; no engine has a ventricular tachycardia code (SCP-ECG as PTB-XL
# codes it has none), so that rule is the measured pattern: a wide-QRS tachycardia
# without a sinus or paced rhythm.
DEFAULT_RULES: list[CriticalRule] = [
    CriticalRule(
        name="afib-flutter-rapid",
        text="Atrial fibrillation or flutter with a ventricular rate over 110/min",
        codes=["AFIB", "AFLT"],
        measurements={"heart_rate_bpm": Limit(gt=110)},
    ),
    CriticalRule(
        name="qtc-500",
        text="QTc (Fridericia) of 500 ms or more",
        measurements={"qtc_fridericia_ms": Limit(ge=500)},
    ),
    CriticalRule(
        name="complete-heart-block",
        text="Complete (third-degree) AV block",
        codes=["3AVB"],
    ),
    CriticalRule(
        name="wide-complex-tachycardia",
        text="Wide-QRS tachycardia without sinus or paced rhythm: possible ventricular tachycardia",
        without_codes=["SR", "STACH", "SBRAD", "SARRH", "PACE"],
        measurements={"heart_rate_bpm": Limit(gt=100), "qrs_ms": Limit(ge=120)},
    ),
    CriticalRule(
        name="st-elevation",
        text="ST elevation",
        codes=["STE_"],
    ),
]
