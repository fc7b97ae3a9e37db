#!/usr/bin/env bash
# An MLflow tracking server on 127.0.0.1: PostgreSQL backend, artifacts proxied to an S3 bucket.
#   mlflow.sh start STATE_DIR PORT BACKEND_URI ARTIFACTS_URI   (S3 endpoint and keys from MLFLOW_S3_ENDPOINT_URL,
#                                                              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
#   mlflow.sh stop STATE_DIR
set -euo pipefail
command=$1 state=$2
mlflow=$(dirname "$(command -v python)")/mlflow
case "$command" in
start)
    mkdir -p "$state"
    "$mlflow" server --host 127.0.0.1 --port "$3" --backend-store-uri "$4" --artifacts-destination "$5" \
        --workers 1 > "$state/mlflow.log" 2>&1 &
    echo $! > "$state/mlflow.pid"
    for _ in $(seq 1 150); do
        python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$3/health', timeout=2)" 2>/dev/null && { echo "http://127.0.0.1:$3"; exit 0; }
        sleep 0.2
    done
    echo "mlflow.sh: the tracking server did not start (see $state/mlflow.log)" >&2; exit 2
    ;;
stop)
    if [ -e "$state/mlflow.pid" ]; then
        pid=$(cat "$state/mlflow.pid")
        pkill -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        rm -f "$state/mlflow.pid"
    fi
    ;;
*) echo "usage: mlflow.sh start STATE_DIR PORT BACKEND_URI ARTIFACTS_URI | stop STATE_DIR" >&2; exit 2 ;;
esac
