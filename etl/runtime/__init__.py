"""Running the fleet: worker processes, the Temporal client, the payload codec, health and history.

    worker.py   build and serve a worker (`python -m workers.*`)
    client.py   connect to Temporal with the project's data converter
    codec.py    optional AES-256-GCM payload encryption
    health.py   /healthz and /metrics
    history.py  reading flows' histories: payload sizes, event counts, exports
    exit.py     leaving a short-lived command that used a Temporal client
"""
