"""A batch worker (ETLWorker): runs ETLFlow and its extract, transform and load activities.

    python -m workers.etl_worker [--task-queue Q] [--concurrency N]
"""

from etl.runtime.exit import exit_process
from etl.runtime.worker import main

if __name__ == "__main__":
    exit_process(main("batch"))  # see etl/runtime/exit.py
