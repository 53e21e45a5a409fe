"""The durable store: jobs (one per received object), their leases, and deliveries.

`Store` is the SQLite backend (sqlite.py); records.py holds what it returns.
"""

from gateway.store.records import (
    Delivery,
    DeliveryState,
    Enqueued,
    Job,
    JobState,
    NewJob,
    StoreError,
)
from gateway.store.sqlite import Store

__all__ = [
    "Delivery",
    "DeliveryState",
    "Enqueued",
    "Job",
    "JobState",
    "NewJob",
    "Store",
    "StoreError",
]
