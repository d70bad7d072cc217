#!/usr/bin/env python3
"""Scaffold a new source, or check and repair an existing one.

    python scripts/new.py SOURCE [FLOW ...] [--key FIELD] [--window days|times] [--template project|person]
                          [--package DIR] [--dry-run]

A new source gets the shape every source has: sources/SOURCE/ (settings.py with its
SOURCE_TOKEN and SOURCE_API_URL, client.py on the kit's HTTP client, query.py with a
@query_type("SOURCE") query, flows/FLOW.py with @extract_method("SOURCE-FLOW"), fixture/ with
a sample API on loopback, README.md) and tests/sources/test_SOURCE.py, which runs every flow
through ETLFlow and StreamingETLFlow against the fixture with faults injected. It passes at
once; then make the fixture, the query and each flow the real API's. With no FLOW a new source
gets one flow, `events`. The query names one thing and a window: `--key` names the thing's field
(`project`, `board`...; `member` makes a person's query, like Launchpad's: the member search
attribute, team expansion) and `--window` the window's type (`days`: data_date_start and
data_date_end, dates; `times`: since and until, datetimes). `--template person` is `--key member
--window days`; `project` (the default) is `--key project --window times`, like GitHub's.

With `--package DIR` the source is a package of its own instead, in DIR: pyproject.toml (the
distribution etl-source-SOURCE and its `etl.sources` entry point), etl_source_SOURCE/ with the
same files as sources/SOURCE/, and tests/test_SOURCE.py on etl.testing's fixtures. `pip install -e
DIR` into the fleet's environment makes it live, with no edit to this project.

On an existing source it adds the flows named, reports what is missing or broken, and
repairs only files that are still the untouched sample (after a timestamped backup,
FILE.bak.YYYYmmdd-HHMMSS); a file with real work in it is never changed.

Exit status: 0 nothing broken (TODOs left are listed), 1 problems left to fix by hand, 2 a name refused.
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
    parser.add_argument("--template", choices=("project", "person"), default="project",
                        help="a new source's shape: project (a project and a time window, like github) or person "
                             "(a member and a window of days, like launchpad); default project")
    parser.add_argument("--key", metavar="FIELD",
                        help="the query's key field, e.g. project, board or member (default: the template's)")
    parser.add_argument("--window", choices=("days", "times"),
                        help="the window's type: days (dates) or times (datetimes) (default: the template's)")
    parser.add_argument("--package", metavar="DIR", type=Path,
                        help="make (or check) the source as a package of its own in DIR: an installable project "
                             "(distribution etl-source-SOURCE, import package etl_source_SOURCE) whose entry point "
                             "makes it live once `pip install -e DIR` puts it in the fleet's environment")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    opts = parser.parse_args(argv)

    from etl.scaffold.command import scaffold

    return scaffold(ROOT, opts.source, opts.flows, dry_run=opts.dry_run, template=opts.template, key=opts.key,
                    window=opts.window, package_dir=opts.package)


if __name__ == "__main__":
    sys.exit(main())
