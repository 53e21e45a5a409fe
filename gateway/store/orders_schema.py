"""The orders tables' schema, written once for both backends (schema.py for SQLite,
postgres_schema.py for PostgreSQL fill in their identity and time column types).

Orders (HL7 ORM/OMG from the EHR) feed the worklist and matching; patient_merges records
each ADT^A40 merge applied to them. The partial index serves the worklist: however many
closed orders accumulate, it scans only open ones, in scheduled order.
"""

_TABLES = """
CREATE TABLE {new}orders (
    id {identity},
    placer_order_number TEXT NOT NULL,
    placer_authority TEXT NOT NULL DEFAULT '',
    filler_order_number TEXT NOT NULL DEFAULT '',
    filler_authority TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    procedure_code TEXT NOT NULL DEFAULT '',
    procedure_text TEXT NOT NULL DEFAULT '',
    procedure_coding_system TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT 'routine' CHECK (priority IN ('stat', 'asap', 'routine')),
    ordering_facility TEXT NOT NULL DEFAULT '',
    reconciled INTEGER NOT NULL DEFAULT 0,
    patient_id TEXT NOT NULL,
    patient_id_issuer TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    scheduled_at {time},
    station_ae TEXT NOT NULL DEFAULT '',
    study_instance_uid TEXT NOT NULL,
    requested_procedure_id TEXT NOT NULL DEFAULT '',
    sending_application TEXT NOT NULL DEFAULT '',
    sending_facility TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'scheduled' CHECK (state IN
        ('scheduled', 'in_progress', 'completed', 'cancelled', 'discontinued')),
    job_id {reference} REFERENCES jobs (id),
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL,
    UNIQUE (placer_authority, placer_order_number)
);
CREATE INDEX {new}orders_open_by_time ON orders (scheduled_at)
    WHERE state IN ('scheduled', 'in_progress');
CREATE INDEX {new}orders_by_patient ON orders (patient_id, patient_id_issuer);
CREATE INDEX {new}orders_by_study ON orders (study_instance_uid);
CREATE INDEX {new}orders_by_accession ON orders (accession_number);
CREATE TABLE {new}patient_merges (
    id {identity},
    prior_id TEXT NOT NULL,
    prior_issuer TEXT NOT NULL,
    new_id TEXT NOT NULL,
    new_issuer TEXT NOT NULL,
    orders_moved INTEGER NOT NULL,
    merged_at {time} NOT NULL
)
"""


def orders_tables(*, identity: str, time: str, reference: str, if_new: bool) -> tuple[str, ...]:
    """The statements that create the orders tables with a backend's column types;
    `if_new`: CREATE ... IF NOT EXISTS (SQLite's SCHEMA runs on every upgrade)."""
    text = _TABLES.format(
        new="IF NOT EXISTS " if if_new else "", identity=identity, time=time, reference=reference
    )
    return tuple(statement.strip() for statement in text.split(";"))
