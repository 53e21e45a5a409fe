"""The serial-comparison and critical-alert tables, written once for both backends
(schema.py for SQLite, postgres_schema.py for PostgreSQL fill in their column types).

prior_ecgs indexes finished ECGs by patient key for the comparison (prior_ecgs.py);
critical_alerts holds each critical report's notice, retries, escalation and
acknowledgement (critical_alerts.py); critical_notice_targets which targets took each
notice, so that a retry goes only to the others (a later table: its own migration step).
"""

_TABLES = """
CREATE TABLE {new}prior_ecgs (
    job_id {reference} PRIMARY KEY REFERENCES jobs (id){cascade},
    patient_key TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    acquired_at {time},
    report TEXT NOT NULL,
    created_at {time} NOT NULL
);
CREATE INDEX {new}prior_ecgs_by_patient ON prior_ecgs (patient_key, acquired_at);
CREATE TABLE {new}critical_alerts (
    job_id {reference} PRIMARY KEY REFERENCES jobs (id){cascade},
    rules TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'notified', 'escalating', 'closed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {time} NOT NULL,
    lease_expires_at {time},
    last_error TEXT,
    notified_at {time},
    escalated_at {time},
    acknowledged_by TEXT,
    acknowledged_at {time},
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL
);
CREATE INDEX {new}critical_alerts_due ON critical_alerts (state, next_attempt_at)
"""


# One row per target that took a notice (escalation 0: the first notice, 1: the escalation).
_TARGETS = """
CREATE TABLE {new}critical_notice_targets (
    job_id {reference} NOT NULL REFERENCES critical_alerts (job_id){cascade},
    escalation INTEGER NOT NULL CHECK (escalation IN (0, 1)),
    target TEXT NOT NULL,
    sent_at {time} NOT NULL,
    PRIMARY KEY (job_id, escalation, target)
)
"""


def prior_and_critical_tables(*, time: str, reference: str, if_new: bool) -> tuple[str, ...]:
    """The statements that create the tables with a backend's column types; `if_new`:
    CREATE ... IF NOT EXISTS (SQLite's SCHEMA runs on every upgrade)."""
    text = _TABLES.format(
        new="IF NOT EXISTS " if if_new else "",
        time=time,
        reference=reference,
        cascade="" if if_new else " ON DELETE CASCADE",
    )
    return tuple(statement.strip() for statement in text.split(";"))


def critical_target_table(*, time: str, reference: str, if_new: bool) -> tuple[str, ...]:
    """The statement that creates critical_notice_targets, as prior_and_critical_tables."""
    text = _TARGETS.format(
        new="IF NOT EXISTS " if if_new else "",
        time=time,
        reference=reference,
        cascade="" if if_new else " ON DELETE CASCADE",
    )
    return (text.strip(),)
