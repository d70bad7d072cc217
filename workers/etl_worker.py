"""A batch worker (ETLWorker): runs ETLFlow and its extract, transform and load activities.

    python -m workers.etl_worker [--task-queue Q] [--concurrency N]
"""

import sys

from etl.worker import main

if __name__ == "__main__":
    sys.exit(main("batch"))
