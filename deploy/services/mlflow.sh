#!/usr/bin/env bash
# An MLflow tracking server on 127.0.0.1: PostgreSQL backend, artifacts proxied to an S3 bucket.
#   mlflow.sh start STATE_DIR PORT BACKEND_URI ARTIFACTS_URI   (S3 endpoint and keys from MLFLOW_S3_ENDPOINT_URL,
#                                                              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
#   mlflow.sh stop STATE_DIR
set -euo pipefail
source "$(dirname "$0")/wait_http.sh"
command=$1 state=$2
mlflow=$(dirname "$(command -v python)")/mlflow
case "$command" in
start)
    mkdir -p "$state"
    "$mlflow" server --host 127.0.0.1 --port "$3" --backend-store-uri "$4" --artifacts-destination "$5" \
        --workers 1 > "$state/mlflow.log" 2>&1 &
    echo $! > "$state/mlflow.pid"
    wait_http "http://127.0.0.1:$3/health" "mlflow.sh: the tracking server" "$state/mlflow.log"
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
