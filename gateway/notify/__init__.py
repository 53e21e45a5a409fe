"""Critical-result notifications: who is told that a report met a critical rule.

messages.py builds what is sent (no patient data: job id, link, rule names, times),
senders.py sends it (webhook POST, SMTP mail), sweeper.py works through the store's
critical alerts on the gateway's scheduler: first notice, retries, and the escalation
when nobody opened the report in time.
"""

from gateway.notify.sweeper import CriticalNotifier

__all__ = ["CriticalNotifier"]
