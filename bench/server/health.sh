#!/usr/bin/env bash
# /health requests per second with wrk (keep-alive) against a running `enclave serve`.
# Usage: bench/server/health.sh PORT [SECONDS] [CONNECTIONS]
set -euo pipefail
port=${1:?port}
secs=${2:-10}
conns=${3:-64}
wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:${port}/health"
