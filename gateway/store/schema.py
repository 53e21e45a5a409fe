"""The store's SQLite schema, and the steps that bring an older store up to it.

Kept apart from the queries (sqlite.py) so a schema change reads as one diff here plus
one migration step.
"""

SCHEMA_VERSION = 5
# Each delivery sends one version of a job's report (version 1: the preliminary one;
# later ones: a physician's confirmation or correction, gateway/overread); a newer
# version supersedes the unsent older ones of the same job and destination.
_DELIVERIES = """CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    destination TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    report_version INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'dead', 'superseded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_expires_at REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sent_at REAL,
    UNIQUE (job_id, destination, report_version)
)"""
# The report versions of gateway/overread: every version as sent (JSON), who made it;
# every change and refused attempt (before/after JSON); and the over-read worklist, one
# row per report with what the worklist filters and sorts on (it holds the patient's
# name and ID, like orders: store data, never logged).
_REPORT_TABLES = """
CREATE TABLE IF NOT EXISTS report_versions (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    report_json TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (job_id, version)
);
CREATE TABLE IF NOT EXISTS report_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    version INTEGER NOT NULL,
    at REAL NOT NULL,
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    before_json TEXT NOT NULL DEFAULT '{}',
    after_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS report_changes_by_job ON report_changes (job_id, id);
CREATE TABLE IF NOT EXISTS report_worklist (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    critical INTEGER NOT NULL DEFAULT 0,
    critical_texts TEXT NOT NULL DEFAULT '[]',
    priority_rank INTEGER NOT NULL DEFAULT 2,
    site TEXT NOT NULL DEFAULT '',
    station TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    acquired_at REAL,
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    opened_at REAL,
    opened_by TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS report_worklist_open
    ON report_worklist (status, critical DESC, priority_rank, received_at);
CREATE INDEX IF NOT EXISTS report_worklist_all
    ON report_worklist (critical DESC, priority_rank, received_at);
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    spool_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    called_ae TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    institution TEXT NOT NULL DEFAULT '',
    station TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'leased', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_deaths INTEGER NOT NULL DEFAULT 0,
    patient_key TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    available_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires_at REAL,
    error TEXT,
    is_correction INTEGER NOT NULL DEFAULT 0,
    report_dir TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (sop_instance_uid, content_sha256)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, available_at);
CREATE INDEX IF NOT EXISTS jobs_by_patient ON jobs (patient_key, id);
{deliveries};
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_in_receipt_order
    ON deliveries (destination, patient_key, job_id);
{reports}""".format(deliveries=_DELIVERIES.format(name="deliveries"), reports=_REPORT_TABLES)
# Each step takes a store of the version before it to the next one.
MIGRATIONS = {
    2: (
        "ALTER TABLE jobs ADD COLUMN modality TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN institution TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN station TEXT NOT NULL DEFAULT ''",
    ),
    # Worker-process deaths counted apart from attempts; the patient known at intake, so
    # deliveries wait for a patient's earlier-received ECGs (jobs of older stores have
    # no key and hold nothing up); deliveries ordered by job (receipt), not by completion.
    3: (
        "ALTER TABLE jobs ADD COLUMN worker_deaths INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN patient_key TEXT NOT NULL DEFAULT ''",
        "DROP INDEX IF EXISTS deliveries_order",
    ),
    # The source name of a watched folder or upload endpoint, which routes match on.
    4: ("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT ''",),
    # Report versions: a delivery names the version it sends (existing ones: 1), so the
    # table is rebuilt (SQLite changes no UNIQUE or CHECK in place); the report tables
    # and the deliveries' indexes are then created by SCHEMA.
    5: (
        _DELIVERIES.format(name="deliveries_v5"),
        (
            "INSERT INTO deliveries_v5 (id, job_id, destination, patient_key, state, attempts,"
            " next_attempt_at, lease_expires_at, last_error, created_at, updated_at, sent_at)"
            " SELECT id, job_id, destination, patient_key, state, attempts, next_attempt_at,"
            " lease_expires_at, last_error, created_at, updated_at, sent_at FROM deliveries"
        ),
        "DROP TABLE deliveries",
        "ALTER TABLE deliveries_v5 RENAME TO deliveries",
    ),
}
