#!/usr/bin/env bash
# Time from process start to the first 200 from /ready, for a model file already in page cache.
# Usage: bench/server/ready_time.sh ENCLAVE_BIN MODEL.gguf [PORT]
set -euo pipefail
bin=${1:?enclave binary}
model=${2:?model}
port=${3:-18431}
data=$(mktemp -d)
cat "$model" > /dev/null  # page cache
start=$(date +%s.%N)
ENCLAVE_API_KEY=sk-enclave-bench-key-0000000000000 "$bin" serve --model "$model" --port "$port" \
  --data-dir "$data" > /dev/null 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:${port}/ready" > /dev/null; do sleep 0.005; done
end=$(date +%s.%N)
kill -TERM $pid
wait $pid || true
rm -rf "$data"
echo "start to /ready: $(echo "$end - $start" | bc) s"
