"""The ETL framework, as packages whose names are the architecture (README, "How it fits together").

    core/        the source contract: errors, query types, extract methods, the event model, settings
    kit/         what sources build on: an HTTP client, paginators, a fixture server
    store/       PostgreSQL: pool, schema, staging
    workflows/   sandbox-safe workflow code
    activities/  the activities, heartbeats, backpressure
    runtime/     workers, client, codec, health, history
    launch/      planning and starting flows, flow files, teams, fan-outs, schedules
    devstack/    the embedded PostgreSQL and Temporal
    scaffold/    the source generator behind scripts/new.py
    metrics.py   the fleet's counters, at the top because every layer counts its work
"""
