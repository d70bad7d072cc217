#!/usr/bin/env python3
"""What the source archive holds: the answers flows started with `--archive` (or on workers with
SOURCE_ARCHIVE=on) read from their sources, which `run_flow.py ... --replay` reads instead.

    python scripts/archive.py list [--source S] [--json]           per source and strategy: answers,
                                                                   flows, sizes, oldest and newest
    python scripts/archive.py list --answers [N] [--source S]      the newest N answers, with their ids
    python scripts/archive.py show ID [--raw]                      one answer: its request, status,
                                                                   headers and body (--raw: the body alone)
    python scripts/archive.py prune --older-than DAYS [--source S] remove answers fetched more than DAYS
                                                                   days ago (the workers' sweep does this
                                                                   after ARCHIVE_RETENTION_DAYS)

The archive is the table `<EVENTS_TABLE>_archive`, next to the events table. Requests are kept
without their headers and with secret-looking query parameters masked; bodies LZ4-compressed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from etl.core.errors import ConfigError, EtlError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/archive.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="what is archived per source and strategy")
    listing.add_argument("--source", help="only this source (query type), e.g. github")
    listing.add_argument("--answers", nargs="?", type=int, const=20, metavar="N",
                         help="list the newest N answers (default 20) with the ids `show` takes")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one archived answer, body and all")
    show.add_argument("id", type=int, metavar="ID", help="an answer's id (see list --answers)")
    show.add_argument("--raw", action="store_true", help="write the body alone, as the source sent it")
    prune = sub.add_parser("prune", help="remove answers older than DAYS days")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="days; 0 removes every answer (of --source, when given)")
    prune.add_argument("--source", help="only this source's answers")
    return parser


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def list_shelves(archive, opts) -> int:
    if opts.answers is not None:
        if not 1 <= opts.answers <= 10_000:
            raise ConfigError("--answers", opts.answers, "a number of answers from 1 to 10,000")
        entries = archive.entries(opts.source, opts.answers)
        if opts.json:
            print(json.dumps([{"id": e.id, "source": e.source, "strategy": e.strategy, "workflow_id": e.workflow_id,
                               "request": str(e.request), "status": e.status, "fetched_at": e.fetched_at.isoformat()}
                              for e in entries]))
            return 0
        for e in entries:
            print(f"{e.id:>8}  {e.fetched_at:%Y-%m-%d %H:%M:%S}  {e.source:10} {e.status}  {e.request}")
        if not entries:
            print("the archive holds no answers" + (f" from {opts.source}" if opts.source else ""))
        return 0
    shelves = archive.shelves(opts.source)
    if opts.json:
        print(json.dumps([{**dataclasses.asdict(s), "oldest": s.oldest.isoformat(), "newest": s.newest.isoformat()}
                          for s in shelves]))
        return 0
    if not shelves:
        print("the archive holds no answers" + (f" from {opts.source}" if opts.source else "")
              + "; run a flow with --archive to fill it")
        return 0
    print(f"{'source':12} {'strategy':28} {'answers':>8} {'flows':>6} {'stored':>11} {'as sent':>11}  oldest .. newest")
    for s in shelves:
        print(f"{s.source:12} {s.strategy:28} {s.answers:>8,} {s.flows:>6,} {_size(s.stored_bytes):>11} "
              f"{_size(s.body_bytes):>11}  {s.oldest:%Y-%m-%d %H:%M} .. {s.newest:%Y-%m-%d %H:%M}")
    return 0


def show_entry(archive, opts) -> int:
    entry = archive.entry(opts.id)
    if entry is None:
        print(f"error: the archive holds no answer with id {opts.id}; see `archive.py list --answers`",
              file=sys.stderr)
        return 2
    if opts.raw:
        sys.stdout.buffer.write(entry.body)
        return 0
    print(f"{entry.request}\nsource {entry.source} · strategy {entry.strategy} · flow {entry.workflow_id} · "
          f"fetched {entry.fetched_at.isoformat()}\nstatus {entry.status}")
    for name, value in entry.headers.items():
        print(f"{name}: {value}")
    print()
    text = entry.body.decode("utf-8", "replace")
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    print(text)
    return 0


def prune(archive, opts) -> int:
    if not 0 <= opts.older_than <= 36_500:
        raise ConfigError("--older-than", opts.older_than, "a number of days from 0 to 36,500")
    removed = archive.prune(opts.older_than, opts.source)
    print(f"removed {removed:,} archived answers older than {opts.older_than:g} days"
          + (f" from {opts.source}" if opts.source else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = _parser().parse_args(argv)
    try:
        from etl.core.settings import load_settings
        from etl.store.archive import Archive
        from etl.store.db import Database

        settings = load_settings()
        archive = Archive(Database.get(settings))
        return {"list": list_shelves, "show": show_entry, "prune": prune}[opts.command](archive, opts)
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the database away or refusing: one line, never a traceback
        print(f"error: {type(exc).__name__}: {str(exc).strip()[:500]} (database {settings_url()})", file=sys.stderr)
        return 1


def settings_url() -> str:
    try:
        from etl.core.settings import load_settings

        return load_settings().public_database_url()
    except EtlError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
