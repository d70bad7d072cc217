"""A streaming worker (StreamingETLWorker): runs StreamingETLFlow and its chunk activities,
taking no new chunks while its memory is above MEMORY_LIMIT_MIB.

    python -m workers.streaming_worker [--task-queue Q] [--concurrency N]
"""

from etl.runtime.exit import exit_process
from etl.runtime.worker import main

if __name__ == "__main__":
    exit_process(main("streaming"))  # see etl/runtime/exit.py
