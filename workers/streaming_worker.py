"""A streaming worker (StreamingETLWorker): runs StreamingETLFlow and its chunk activities,
taking no new chunks while its memory is above MEMORY_LIMIT_MIB.

    python -m workers.streaming_worker [--task-queue Q] [--concurrency N]
"""

from etl.runtime.exit import run_command
from etl.runtime.worker import main

if __name__ == "__main__":
    run_command(lambda: main("streaming"))  # see etl/runtime/exit.py
