#!/usr/bin/env bash
# A Dask scheduler and N single-threaded worker processes on 127.0.0.1 (workers inherit this environment:
# DAGSTER_HOME, SYNAPFLOW_DATA, the database password).
#   dask.sh start STATE_DIR PORT N     scheduler on PORT, N workers; pids in STATE_DIR
#   dask.sh stop STATE_DIR             stop every process it started
set -euo pipefail
command=$1 state=$2
dask=$(dirname "$(command -v python)")/dask
[ -x "$dask" ] || dask=$(command -v dask)
case "$command" in
start)
    port=$3 workers=$4
    mkdir -p "$state"
    "$dask" scheduler --host 127.0.0.1 --port "$port" --no-dashboard > "$state/scheduler.log" 2>&1 &
    echo $! > "$state/scheduler.pid"
    for i in $(seq 1 "$workers"); do
        "$dask" worker "tcp://127.0.0.1:$port" --host 127.0.0.1 --nthreads 1 --nworkers 1 --no-dashboard \
            --name "worker-$i" --local-directory "$state/worker-$i" > "$state/worker-$i.log" 2>&1 &
        echo $! > "$state/worker-$i.pid"
    done
    echo "tcp://127.0.0.1:$port ($workers workers)"
    ;;
stop)
    for pid in "$state"/*.pid; do
        [ -e "$pid" ] || continue
        kill "$(cat "$pid")" 2>/dev/null || true
        rm -f "$pid"
    done
    ;;
*) echo "usage: dask.sh start STATE_DIR PORT N | stop STATE_DIR" >&2; exit 2 ;;
esac
