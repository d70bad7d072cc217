"""Worker process entry points: `python -m workers.etl_worker`, `python -m workers.streaming_worker`."""
