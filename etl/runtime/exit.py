"""Leaving a short-lived command that used a Temporal client, without crashing on the way out.

The SDK's Rust threads can still be running while CPython finalizes, which intermittently
ends the process with SIGSEGV or SIGABRT after all its work is done (temporalio/sdk-python
issue 300; about one run in five here). Skipping finalization avoids the race: flush what
was written, then `os._exit` with the command's own status.

A command's `__main__` is `run_command(main)`: whatever way `main` ends (a status, `sys.exit`,
`TemporalUnreachable`, an error it did not expect), the process ends through `exit_process`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable, NoReturn


def exit_process(code: int) -> NoReturn:
    """Flush stdout, stderr and logging, then end the process with `code` at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    logging.shutdown()
    os._exit(code)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError):
        pass


def run_command(main: Callable[[], int | None]) -> NoReturn:
    """Run a command's `main()` and end the process with its status, never through finalization.

    `SystemExit` (`sys.exit`, argparse, `TemporalUnreachable`) keeps its status and prints its text
    as Python would; any other escaping error prints its traceback and ends with status 1."""
    try:
        code = main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            _say(str(exc.code))
            code = 1
    except KeyboardInterrupt:
        _say("interrupted")
        code = 130
    except BaseException as exc:  # noqa: BLE001 - reported here, then the process ends cleanly
        _say("".join(traceback.format_exception(exc)).rstrip())
        code = 1
    exit_process(code if isinstance(code, int) else 0)
