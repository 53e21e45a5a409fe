"""The serial-comparison and critical-alert tables, written once for both backends
(schema.py for SQLite, postgres_schema.py for PostgreSQL fill in their column types).

prior_ecgs indexes finished ECGs by patient key for the comparison (prior_ecgs.py);
critical_alerts holds each critical report's notice, retries, escalation and
acknowledgement (critical_alerts.py).
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
