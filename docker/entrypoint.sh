#!/usr/bin/env bash
# The annota container's entrypoint: wait for the database and the search engine (bounded
# retries, no fixed sleep), upgrade the schema (`annota server upgrade --include schema`:
# it finishes the jobs of any release gate on the way; safe with several replicas starting
# at once, as migrations take a lock and the later ones find nothing to do; the other
# backfills are left to the operator or the workers, scheduled async migrations to
# `async-migrations run`), create the owner user from USERNAME / PASSWORD / API_KEY when
# set, reindex when REINDEX_DATASETS is true or 1, then serve. Arguments, if any, replace
# the final command (e.g. `worker`).
set -euo pipefail

annota=${ANNOTA_COMMAND:-annota}
wait_seconds=${ANNOTA_WAIT_SECONDS:-120}

log() { printf '[entrypoint] %s\n' "$*" >&2; }

# retry COMMAND until it exits with a code other than the given "not reachable yet" one
wait_until_reachable() {
  local what=$1 unreachable=$2; shift 2
  local deadline=$((SECONDS + wait_seconds)) delay=1 code
  while :; do
    code=0
    "$@" >/dev/null 2>&1 || code=$?
    if [ "$code" -ne "$unreachable" ]; then
      log "$what is reachable"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$what still unreachable after ${wait_seconds}s; giving up"
      "$@" >/dev/null || true  # say why, once, with the password masked
      exit "$code"
    fi
    sleep "$delay"
    delay=$((delay < 8 ? delay * 2 : 8))
  done
}

wait_until_reachable "the database" 5 $annota server database current
$annota server upgrade --include schema

if [ -n "${USERNAME:-}" ] && [ -n "${PASSWORD:-}" ]; then
  # the password goes through stdin, never the command line; a generated API key is not
  # logged (set API_KEY to choose the owner's key)
  # ANNOTA_NEW_USER_API_KEY only when API_KEY is set: a blank setting is an error
  if [ -n "${API_KEY:-}" ]; then export ANNOTA_NEW_USER_API_KEY="$API_KEY"; fi
  created=$($annota server database users create \
    --username "$USERNAME" --role owner --password-stdin \
    --workspace "${WORKSPACE:-default}" <<<"$PASSWORD")
  unset ANNOTA_NEW_USER_API_KEY
  printf '%s\n' "$created" | grep -v '^API key' >&2 || true
fi

case "${REINDEX_DATASETS:-}" in
  true|TRUE|True|1)
    wait_until_reachable "the search engine" 8 $annota server search-engine status
    log "REINDEX_DATASETS=${REINDEX_DATASETS}: reindexing every dataset"
    $annota server search-engine reindex
    ;;
esac

# the role, for the image's HEALTHCHECK (the image sets ANNOTA_ROLE_FILE)
role=${1:-start}
if [ -n "${ANNOTA_ROLE_FILE:-}" ]; then
  printf '%s\n' "$role" > "$ANNOTA_ROLE_FILE"
fi
if [ "$#" -gt 0 ]; then
  exec $annota server "$@"
fi
exec $annota server start --host "${ANNOTA_SERVER_HOST:-0.0.0.0}" --port "${ANNOTA_SERVER_PORT:-6900}"
