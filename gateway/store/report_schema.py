"""The report-version tables' schema (gateway/overread), written once for both backends
(schema.py for SQLite, postgres_schema.py for PostgreSQL fill in their identity, time
and reference column types).

report_versions: every version of a job's report as sent (JSON) and who made it;
report_changes: every change and refused attempt (before/after JSON); report_worklist:
one row per report with what the over-read worklist filters and sorts on, indexed so
that 10,000 open reports cost one index scan. A worklist row holds the patient's name
and ID, like orders: store data, never logged.
"""

_TABLES = """
CREATE TABLE {new}report_versions (
    job_id {reference} NOT NULL REFERENCES jobs (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    report_json TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at {time} NOT NULL,
    UNIQUE (job_id, version)
);
CREATE TABLE {new}report_changes (
    id {identity},
    job_id {reference} NOT NULL REFERENCES jobs (id),
    version INTEGER NOT NULL,
    at {time} NOT NULL,
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    before_json TEXT NOT NULL DEFAULT '{{}}',
    after_json TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX {new}report_changes_by_job ON report_changes (job_id, id);
CREATE TABLE {new}report_worklist (
    job_id {reference} PRIMARY KEY REFERENCES jobs (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    critical INTEGER NOT NULL DEFAULT 0,
    critical_texts TEXT NOT NULL DEFAULT '[]',
    priority_rank INTEGER NOT NULL DEFAULT 2,
    site TEXT NOT NULL DEFAULT '',
    station TEXT NOT NULL DEFAULT '',
    received_at {time} NOT NULL,
    acquired_at {time},
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    opened_at {time},
    opened_by TEXT,
    updated_at {time} NOT NULL
);
CREATE INDEX {new}report_worklist_open
    ON report_worklist (status, critical DESC, priority_rank, received_at);
CREATE INDEX {new}report_worklist_all ON report_worklist (critical DESC, priority_rank, received_at)
"""


def report_tables(*, identity: str, time: str, reference: str, if_new: bool) -> tuple[str, ...]:
    """The statements that create the report tables with a backend's column types;
    `if_new`: CREATE ... IF NOT EXISTS (SQLite's SCHEMA runs on every upgrade)."""
    text = _TABLES.format(
        new="IF NOT EXISTS " if if_new else "", identity=identity, time=time, reference=reference
    )
    return tuple(statement.strip() for statement in text.split(";"))
