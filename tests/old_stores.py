"""Stores as older releases of the gateway created them, for the migration tests."""

# The first released schema, as a gateway of that version created it.
SQLITE_SCHEMA_V1 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sop_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL, content_sha256 TEXT NOT NULL, spool_path TEXT NOT NULL,
    kind TEXT NOT NULL, calling_ae TEXT NOT NULL DEFAULT '', called_ae TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0, available_at REAL NOT NULL, lease_owner TEXT,
    lease_expires_at REAL, error TEXT, is_correction INTEGER NOT NULL DEFAULT 0,
    report_dir TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    UNIQUE (sop_instance_uid, content_sha256)
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL REFERENCES jobs (id),
    destination TEXT NOT NULL, patient_key TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_expires_at REAL,
    last_error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, sent_at REAL,
    UNIQUE (job_id, destination)
);
INSERT INTO jobs (sop_instance_uid, sop_class_uid, content_sha256, spool_path, kind,
    available_at, created_at, updated_at)
    VALUES ('1.2.3.9', '1.2.840.10008.5.1.4.1.1.9.1.1', 'b', '/spool/x.dcm', 'ecg-waveform',
    1, 1, 1);
PRAGMA user_version = 1;
"""
