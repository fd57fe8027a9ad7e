# shellcheck shell=bash
# A throw-away PostgreSQL for the login service's tests and bench: initdb in a temp
# directory as the `postgres` user (PostgreSQL refuses root), on a free loopback port,
# password (SCRAM) authentication. Source it after scripts/tools.sh, then:
#   pg_start            → exports TOLLGATE_AUTH_TEST_PG_URL=postgres://tollgate:…@127.0.0.1:PORT/tollgate
#   pg_stop             → stops the server and removes the directory
# Needs ensure_postgres (PG_BIN). Every wait is bounded.

pg_start() {
  ensure_postgres
  PG_DIR=$(mktemp -d -t tollgate-pg-XXXXXX)
  chmod 755 "$PG_DIR"
  local pw port as_pg
  pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  printf '%s\n' "$pw" >"$PG_DIR/pw"
  chown -R postgres "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); else as_pg=(); fi
  PG_AS=("${as_pg[@]}")
  timeout 120 "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U tollgate --pwfile="$PG_DIR/pw" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  timeout 60 "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 50 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" start >/dev/null ||
    { cat "$PG_DIR/server.log" >&2; return 1; }
  PGPASSWORD="$pw" timeout 30 "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U tollgate -d postgres -qc 'CREATE DATABASE tollgate' >/dev/null
  export TOLLGATE_AUTH_TEST_PG_URL="postgres://tollgate:$pw@127.0.0.1:$port/tollgate"
  export PG_PORT=$port PG_PASSWORD=$pw
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  timeout 60 "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 50 stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  unset PG_DIR
}
