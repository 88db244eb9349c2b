#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1:${PGPORT:-5432} as the postgres user,
# trusting loopback connections, and create the test database. Idempotent.
set -euo pipefail
PGPORT=${PGPORT:-5432}
PGDATA=${PGDATA:-/tmp/flexcharge-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if ! command -v pg_lsclusters >/dev/null 2>&1 && [ ! -x "$BIN/initdb" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if su postgres -c "$BIN/pg_isready -q -h 127.0.0.1 -p $PGPORT" 2>/dev/null; then
  echo "PostgreSQL already running on 127.0.0.1:$PGPORT"
else
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres "$PGDATA"
    su postgres -c "$BIN/initdb -D $PGDATA -U postgres -A trust --no-sync" >/dev/null
  fi
  su postgres -c "$BIN/pg_ctl -D $PGDATA -o '-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200' -l $PGDATA/server.log -w start" >/dev/null
  echo "PostgreSQL started on 127.0.0.1:$PGPORT ($PGDATA)"
fi
exists=$(su postgres -c "$BIN/psql -h 127.0.0.1 -p $PGPORT -tAc \"SELECT 1 FROM pg_database WHERE datname='flexcharge_test'\"")
[ "$exists" = "1" ] || su postgres -c "$BIN/createdb -h 127.0.0.1 -p $PGPORT flexcharge_test"
