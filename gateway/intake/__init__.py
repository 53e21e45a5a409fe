"""Intake: what modalities send in. The DICOM SCP (dicom_scp.py) hands each received
object to accept.py, which checks it, makes it durable in the spool (spool.py) and
queues its job in the store before the sender hears 'success'."""
