"""The embedded stack for a laptop and for tests: PostgreSQL and Temporal from wheels, on loopback.

    servers.py        `EmbeddedPostgres`, `TemporalDevServer`, ports, `private_stack()` for tests and the benchmark
    local.py          `DevStack`: what `scripts/dev.py up/down/status` manages under `.etl/`
    local_workers.py  the stack's worker processes: started, scaled, restarted, each with its /healthz
"""
