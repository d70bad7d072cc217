#!/bin/sh
# Prepares the running server for the ETL fleet: creates the namespace and registers the
# search attributes every flow carries (etl/workflows/search_attributes.py), without which
# starting a flow fails with "no mapping defined for search attribute". Run by the one-shot
# `temporal-setup` service in docker-compose.yml once the server is healthy; safe to run again.
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${NAMESPACE_RETENTION:=7d}"
export TEMPORAL_ADDRESS

until temporal operator cluster health >/dev/null 2>&1; do
  echo "waiting for Temporal at $TEMPORAL_ADDRESS"
  sleep 1
done

temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$NAMESPACE_RETENTION"

# name:type pairs; keep in step with etl/workflows/search_attributes.py (tests/test_compose.py checks).
for attr in EtlSource:Keyword EtlStrategy:Keyword EtlMember:Keyword EtlFlowKind:Keyword EtlQuery:Text; do
  name=${attr%%:*}
  type=${attr##*:}
  if temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "namespace $TEMPORAL_NAMESPACE is ready for the ETL fleet"
