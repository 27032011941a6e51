#!/bin/sh
# Initialise the cluster on first start (user, password, database from the environment),
# then run PostgreSQL in the foreground, listening on every address.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  secret=$(mktemp) && printf '%s\n' "$POSTGRES_PASSWORD" > "$secret" && chown postgres "$secret"
  runuser -u postgres -- initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$secret" \
    --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 > /dev/null
  rm -f "$secret"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  runuser -u postgres -- pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start > /dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    runuser -u postgres -- createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
  fi
  runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
fi
exec runuser -u postgres -- postgres -D "$PGDATA" -c listen_addresses='*'
