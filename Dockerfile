# The worker image of the ETL fleet: one image for both kinds of worker. docker-compose.yml runs
# it as `batch-worker` (python -m workers.etl_worker) and `streaming-worker`
# (python -m workers.streaming_worker), each scalable with `--scale`.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the metadata alone, so editing code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir etl sources workers && touch etl/__init__.py sources/__init__.py workers/__init__.py \
    && pip install . && pip uninstall -y temporal-etl-fleet

COPY etl ./etl
COPY sources ./sources
COPY workers ./workers
RUN pip install --no-deps .

# Never run as root; the worker needs no privileges and writes nothing to the image.
RUN useradd --create-home --uid 10001 etl
USER etl

# /healthz and /metrics (etl/health.py). 0.0.0.0 so Prometheus in the compose network can
# scrape them; the healthcheck in docker-compose.yml calls 127.0.0.1.
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8000
EXPOSE 8000

# SIGTERM (docker stop) drains: in-flight activities get 60 s to finish (etl/worker.py).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "workers.etl_worker"]
