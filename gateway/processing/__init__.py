"""Processing: the workers (workers.py) lease jobs from the store and, in helper
processes, turn each received object into a report package (job.py, package.py)."""
