"""Leaving a short-lived command that used a Temporal client, without crashing on the way out.

The SDK's Rust threads can still be running while CPython finalizes, which intermittently
ends the process with SIGSEGV or SIGABRT after all its work is done (temporalio/sdk-python
issue 300; about one run in five here). Skipping finalization avoids the race: flush what
was written, then `os._exit` with the command's own status.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Flush stdout, stderr and logging, then end the process with `code` at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    logging.shutdown()
    os._exit(code)
