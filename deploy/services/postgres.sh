#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for the scale test (Debian's package; installed when missing and root).
#   postgres.sh start STATE_DIR PORT PASSWORD   initdb in STATE_DIR/pg, start, create databases dagster, mlflow,
#                                               features and writes (DuckLake catalogs)
#   postgres.sh stop STATE_DIR                  stop it (the data directory stays until STATE_DIR is removed)
set -euo pipefail
command=$1 state=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] && [ "$command" = start ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$command" in
start)
    port=$3 password=$4
    mkdir -p "$state"
    [ "$(id -u)" = 0 ] && chown postgres "$state"
    printf '%s\n' "$password" > "$state/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$state/pwfile"
    as_owner "$bin/initdb" -D "$state/pg" -U synapflow --pwfile="$state/pwfile" --auth=scram-sha-256 >/dev/null
    rm -f "$state/pwfile"
    as_owner "$bin/pg_ctl" -D "$state/pg" -l "$state/postgres.log" -w \
        -o "-p $port -h 127.0.0.1 -k $state -c max_connections=200" start >/dev/null
    for db in dagster mlflow features writes; do
        PGPASSWORD=$password "$bin/createdb" -h 127.0.0.1 -p "$port" -U synapflow "$db"
    done
    echo "postgresql://synapflow@127.0.0.1:$port (data in $state/pg)"
    ;;
stop)
    [ -d "$state/pg" ] && as_owner "$bin/pg_ctl" -D "$state/pg" -m fast -w stop >/dev/null || true
    ;;
*) echo "usage: postgres.sh start STATE_DIR PORT PASSWORD | stop STATE_DIR" >&2; exit 2 ;;
esac
