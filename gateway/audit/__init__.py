"""The audit trail (IHE ATNA): DICOM audit messages, a hash-chained local file, and an
RFC 5424/5425 syslog forwarder. The gateway's parts call `Auditor`'s event methods."""

from gateway.audit.auditor import CONFIGURATION, RESTRICTED, Auditor
from gateway.audit.messages import SOURCE, Instance, Participant, patient_object

__all__ = [
    "CONFIGURATION",
    "RESTRICTED",
    "SOURCE",
    "Auditor",
    "Instance",
    "Participant",
    "patient_object",
]
