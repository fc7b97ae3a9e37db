# Sourced by the service scripts: wait_http URL NAME LOG waits up to 30 s for URL to answer, then prints it.
wait_http() {
    for _ in $(seq 1 150); do
        python -c "import urllib.request as u; u.urlopen('$1', timeout=2)" 2>/dev/null && { echo "${1%/health}"; return 0; }
        sleep 0.2
    done
    echo "$2 did not start (see $3)" >&2
    return 2
}
