#!/bin/sh
# Starts Postgres on $PGDATA (default /data/pg), creating the cluster on first start: superuser `postgres` with the
# password in XR_POSTGRES_PASSWORD (required), password auth (scram) over TCP, trust only on the local socket.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${XR_POSTGRES_PASSWORD:?set XR_POSTGRES_PASSWORD to initialise the cluster}"
  umask 077
  printf '%s\n' "$XR_POSTGRES_PASSWORD" > /tmp/pgpass
  initdb --pgdata="$PGDATA" --username=postgres --pwfile=/tmp/pgpass --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-instructions >/dev/null
  python3 -c "import os; os.remove('/tmp/pgpass')"  # (no coreutils in the image)
  printf "host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n" >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
  -c recovery_init_sync_method=syncfs "$@"
