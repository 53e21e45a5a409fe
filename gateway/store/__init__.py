"""The durable store: jobs (one per received object), their leases, and deliveries.

`Store` is the interface (queries.py, the SQL both backends share); `SqliteStore` the
embedded default (one file in the data directory), `PostgresStore` the database several
gateway nodes share. `open_store` picks one from gateway.yaml's `store:`; records.py
holds what they return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.queries import Store
from gateway.store.records import (
    Delivery,
    DeliveryState,
    Enqueued,
    Job,
    JobState,
    NewJob,
    StoreError,
)
from gateway.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

__all__ = [
    "Delivery",
    "DeliveryState",
    "Enqueued",
    "Job",
    "JobState",
    "NewJob",
    "SqliteStore",
    "Store",
    "StoreError",
    "open_store",
]


def open_store(config: GatewayConfig, node: str = "") -> Store:
    """The store gateway.yaml names: PostgreSQL for `store: postgresql://...`, else the
    SQLite file in the data directory. `node` names a serving gateway node (see
    PostgresStore); a CLI leaves it out. Raises StoreError naming what went wrong."""
    settings = config.store
    if settings.url is None:
        return SqliteStore(config.store_path)
    from gateway.store.postgres import PostgresStore  # psycopg: only when configured

    return PostgresStore(
        settings.conninfo(),
        config.data_dir / "cache",
        node=node,
        max_connections=settings.max_connections,
    )
