#!/bin/sh
# One-shot (temporalio/admin-tools), run once the Temporal server is up:
#   1. the namespace exists, with a retention for audits (years; the CLI default is 72 h);
#   2. the project's custom search attributes are registered in it.
# The attribute list comes from SPOTCHECK_SEARCH_ATTRIBUTES ("Name=Type ..."), set in ONE place:
# docker-compose.yml (x-spotcheck-search-attributes). It must equal the code's list
# (workflows/common.py SEARCH_ATTRIBUTES); tests/integration/test_compose.py checks that.
# Safe to re-run: the retention is (re)applied, existing attributes are left alone, and an
# attribute that exists with another type is an error.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
: "${SPOTCHECK_SEARCH_ATTRIBUTES:?SPOTCHECK_SEARCH_ATTRIBUTES is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-3650d}"
MAX_ATTEMPTS="${INIT_MAX_ATTEMPTS:-30}"
SLEEP_SECONDS="${INIT_SLEEP_SECONDS:-5}"
t() {  # the Temporal CLI against this server
  temporal "$@" --address "$TEMPORAL_ADDRESS"
}

retry() {  # retry CMD...: run until it succeeds, at most MAX_ATTEMPTS times
  n=1
  until "$@"; do
    if [ "$n" -ge "$MAX_ATTEMPTS" ]; then
      echo "giving up after $n attempts: $*" >&2
      return 1
    fi
    echo "not ready yet (attempt $n/$MAX_ATTEMPTS): $*"
    n=$((n + 1))
    sleep "$SLEEP_SECONDS"
  done
}

echo "Waiting for the Temporal server at $TEMPORAL_ADDRESS..."
retry t operator cluster health >/dev/null

if t operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "Namespace '$NAMESPACE' exists; setting retention $RETENTION"
  retry t operator namespace update -n "$NAMESPACE" --retention "$RETENTION"
else
  echo "Creating namespace '$NAMESPACE' with retention $RETENTION"
  retry t operator namespace create -n "$NAMESPACE" --retention "$RETENTION"
fi
# A new namespace takes a few seconds to be usable everywhere.
retry t operator search-attribute list -n "$NAMESPACE" >/dev/null

for pair in $SPOTCHECK_SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if [ -z "$name" ] || [ "$name" = "$pair" ] || [ -z "$type" ]; then
    echo "bad entry '$pair' in SPOTCHECK_SEARCH_ATTRIBUTES (expected Name=Type)" >&2
    exit 1
  fi
  current=$(t operator search-attribute list -n "$NAMESPACE" | awk -v n="$name" '$1 == n {print $2}')
  if [ -z "$current" ]; then
    echo "Registering search attribute $name ($type)"
    retry t operator search-attribute create -n "$NAMESPACE" --name "$name" --type "$type"
  elif [ "$current" = "$type" ]; then
    echo "Search attribute $name ($type) already registered"
  else
    echo "search attribute $name is registered as $current, expected $type" >&2
    exit 1
  fi
done

t operator namespace describe -n "$NAMESPACE"
echo "Temporal namespace '$NAMESPACE' is ready"
