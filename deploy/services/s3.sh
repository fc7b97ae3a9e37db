#!/usr/bin/env bash
# A local S3-compatible server (moto in server mode) on 127.0.0.1.
#   s3.sh start STATE_DIR PORT    start it; pid in STATE_DIR
#   s3.sh stop STATE_DIR          stop it
set -euo pipefail
source "$(dirname "$0")/wait_http.sh"
command=$1 state=$2
server=$(dirname "$(command -v python)")/moto_server
case "$command" in
start)
    mkdir -p "$state"
    "$server" -H 127.0.0.1 -p "$3" > "$state/s3.log" 2>&1 &
    echo $! > "$state/s3.pid"
    wait_http "http://127.0.0.1:$3" "s3.sh: the S3 server" "$state/s3.log"
    ;;
stop)
    [ -e "$state/s3.pid" ] && { kill "$(cat "$state/s3.pid")" 2>/dev/null || true; rm -f "$state/s3.pid"; }
    ;;
*) echo "usage: s3.sh start STATE_DIR PORT | stop STATE_DIR" >&2; exit 2 ;;
esac
