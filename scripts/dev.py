#!/usr/bin/env python3
"""Start, stop and show the embedded stack: a Temporal dev server with its UI, and PostgreSQL.

    python scripts/dev.py up [--workers N]   start (or reuse) both, wait until they answer
    python scripts/dev.py down               stop what `up` started; the data stays in .etl/
    python scripts/dev.py status [--json]    addresses and whether each answers
    python scripts/dev.py env-example        write .env.example from every declared setting

Ports come from the settings: TEMPORAL_HOST (7233), TEMPORAL_UI_PORT (8233), DB_PORT (55432).
"""

from __future__ import annotations

import argparse
import json
import sys

from etl.core.errors import EtlError
from etl.core.settings import load_settings
from etl.devstack.local import DevStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (idempotent) and print its addresses")
    up.add_argument("--workers", type=int, default=0, metavar="N",
                    help="also start N batch and N streaming worker processes (logs in .etl/workers/)")
    sub.add_parser("down", help="stop the stack and its workers; keep the data")
    status = sub.add_parser("status", help="show the addresses and whether each server answers")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("env-example", help="write .env.example: the framework's and every source's settings")
    args = parser.parse_args(argv)
    if args.command == "env-example":
        from etl.core.settings import PROJECT_ROOT, env_example

        (PROJECT_ROOT / ".env.example").write_text(env_example())
        print(f"wrote {PROJECT_ROOT / '.env.example'}")
        return 0

    try:
        stack = DevStack(load_settings())
        if args.command == "up":
            stack.up(workers=args.workers)
            info = stack.status()
            print(f"Temporal:   {info['temporal_address']}")
            print(f"Temporal UI: {info['ui_url']}")
            print(f"PostgreSQL: {info['database_url']}")
            if args.workers:
                print(f"Workers:    {info['workers']} running (logs in {stack.workers_dir})")
        elif args.command == "down":
            stack.down()
            print(f"stopped; data kept in {stack.state}")
        else:
            info = stack.status()
            if args.json:
                print(json.dumps(info))
            else:
                for key, value in info.items():
                    print(f"{key:17} {value}")
            return 0 if info["temporal_ok"] and info["postgres_ok"] else 1
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
