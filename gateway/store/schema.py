"""The store's SQLite schema, and the steps that bring an older store up to it.

Kept apart from the queries (sqlite.py) so a schema change reads as one diff here plus
one migration step.
"""

from gateway.store.orders_schema import orders_tables
from gateway.store.prior_critical_schema import critical_target_table, prior_and_critical_tables
from gateway.store.report_schema import report_tables

SCHEMA_VERSION = 9
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
SCHEMA = (
    """
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
    priority TEXT NOT NULL DEFAULT 'routine',
    lease_rank REAL NOT NULL DEFAULT 0,
    UNIQUE (sop_instance_uid, content_sha256)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, available_at);
CREATE INDEX IF NOT EXISTS jobs_by_patient ON jobs (patient_key, id);
CREATE INDEX IF NOT EXISTS jobs_by_rank ON jobs (lease_rank, id);
{deliveries};
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_in_receipt_order
    ON deliveries (destination, patient_key, job_id);
""".format(deliveries=_DELIVERIES.format(name="deliveries"))
    + ";\n".join(
        orders_tables(
            identity="INTEGER PRIMARY KEY AUTOINCREMENT",
            time="REAL",
            reference="INTEGER",
            if_new=True,
        )
        + prior_and_critical_tables(time="REAL", reference="INTEGER", if_new=True)
        + critical_target_table(time="REAL", reference="INTEGER", if_new=True)
        + report_tables(
            identity="INTEGER PRIMARY KEY AUTOINCREMENT",
            time="REAL",
            reference="INTEGER",
            if_new=True,
        )
    )
)
# Which order a job fulfilled (order matching); after the orders table, hence not above.
SCHEMA += ";\nCREATE INDEX IF NOT EXISTS orders_by_job ON orders (job_id)"
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
    # Orders from the EHR and patient merges: new tables, created by SCHEMA above.
    5: (),
    # The priority of the ECG's order, and the time it is leased by: its receipt, less the
    # head start of a STAT or ASAP order (jobs of older stores keep their receipt order);
    # and orders_by_job, which SCHEMA creates.
    6: (
        "ALTER TABLE jobs ADD COLUMN priority TEXT NOT NULL DEFAULT 'routine'",
        "ALTER TABLE jobs ADD COLUMN lease_rank REAL NOT NULL DEFAULT 0",
        "UPDATE jobs SET lease_rank = created_at",
    ),
    # Serial comparison's prior index and the critical alerts: created by SCHEMA above.
    7: (),
    # Report versions: a delivery names the version it sends (existing ones: 1), so the
    # table is rebuilt (SQLite changes no UNIQUE or CHECK in place); the report tables
    # and the deliveries' indexes are then created by SCHEMA.
    8: (
        _DELIVERIES.format(name="deliveries_rebuilt"),
        (
            "INSERT INTO deliveries_rebuilt (id, job_id, destination, patient_key, state, attempts,"
            " next_attempt_at, lease_expires_at, last_error, created_at, updated_at, sent_at)"
            " SELECT id, job_id, destination, patient_key, state, attempts, next_attempt_at,"
            " lease_expires_at, last_error, created_at, updated_at, sent_at FROM deliveries"
        ),
        "DROP TABLE deliveries",
        "ALTER TABLE deliveries_rebuilt RENAME TO deliveries",
    ),
    # Which targets took each critical notice (a retry goes to the others only): a new
    # table, created by SCHEMA above; a notice under way when the store is upgraded has
    # no rows, so its next try goes to every target, as before.
    9: (),
}
