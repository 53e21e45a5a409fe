"""The reliability campaign: nothing acknowledged is ever lost or garbled.

corpus.py makes the objects (valid ECGs and malformed ones, from the real files),
senders.py sends them (dcmtk storescu and pynetdicom), faults.py scripts the destination
faults and the kills, audit.py decides each object's fate and searches the logs for
patient data, campaign.py runs the phases. bench/reliability.py is the command line;
tests/test_reliability.py runs a reduced campaign through the same code.
"""
