#!/usr/bin/env python3
"""Scaffold a new source, or check and repair an existing one.

    python scripts/new.py SOURCE [FLOW ...] [--dry-run]

A new source gets the shape every source has: sources/SOURCE/ (query.py with a
@query_type("SOURCE") query, flows/FLOW.py with @extract_method("SOURCE-FLOW"), README.md)
and tests/sources/test_SOURCE.py. Each flow yields a small SAMPLE page, so it runs end to end
and its test passes at once; then fill in two things: the query and the extract method.
With no FLOW a new source gets one flow, `events`.

On an existing source it adds the flows named, reports what is missing or broken, and
repairs only files that are still the untouched sample (after a timestamped backup,
FILE.bak.YYYYmmdd-HHMMSS); a file with real work in it is never changed.

Exit status: 0 healthy (or made so), 1 problems left to fix by hand, 2 a name refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The project this script belongs to, whatever the working directory or installed copy:
# the generator must read and write this tree, and import its etl and sources.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Checking imports the sources; a dry run must leave no __pycache__ behind.
sys.dont_write_bytecode = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", help="the source's name, e.g. acme (a package under sources/)")
    parser.add_argument("flows", metavar="FLOW", nargs="*",
                        help="flows to create or check, e.g. issues pull_requests (strategies SOURCE-FLOW)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    opts = parser.parse_args(argv)

    from etl.scaffold.command import scaffold

    return scaffold(ROOT, opts.source, opts.flows, dry_run=opts.dry_run)


if __name__ == "__main__":
    sys.exit(main())
