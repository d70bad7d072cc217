"""A batch worker (ETLWorker): runs ETLFlow and its extract, transform and load activities.

    python -m workers.etl_worker [--task-queue Q] [--concurrency N]
"""

from etl.runtime.exit import run_command
from etl.runtime.worker import main

if __name__ == "__main__":
    run_command(lambda: main("batch"))  # see etl/runtime/exit.py
