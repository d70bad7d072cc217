"""PostgreSQL: the pooled, thread-safe database layer, the tables and their DDL, and ETLFlow's staging.

    db.py       `Database`: the singleton pool per (database, events table); idempotent loads
    schema.py   the tables named from EVENTS_TABLE
    staging.py  claim checks between ETLFlow's activities
"""
