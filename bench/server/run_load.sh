#!/usr/bin/env bash
# Starts `enclave serve` on MODEL with 4 slots, runs load.mjs with 1 and 4 concurrent streaming
# clients (128 generated tokens each, 2 requests per client; prompts of about 64 tokens, as in the
# llama-server anchor: PROMPT_WORDS=48 padding words), prints aggregate tokens/s, aggregate decode
# tokens/s and TTFT p50/p99 as JSON lines, and stops the server.
#   bench/server/run_load.sh [ENCLAVE_BIN] [MODEL]
# MODEL defaults to an R1-Distill-Qwen-1.5B-shaped Q4_0 file made with
#   enclave synth --preset r1-distill-qwen-1.5b --type Q4_0 \
#     --vocab ../shared/fixtures/tokenizer/ggml-vocab-deepseek-llm.gguf /tmp/r1q15-q4_0.gguf
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../build/release/src/cli/enclave}
model=${2:-/tmp/r1q15-q4_0.gguf}
port=${PORT:-18181}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ENCLAVE_API_KEY="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
# Audit fsync 'batch': the default 'always' adds one fdatasync per request (see bench/router).
"$bin" serve -m "$model" --port "$port" --data-dir "$work/data" --parallel 4 --ctx 1024 -t 2 \
  --audit-fsync batch >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
for c in 1 4; do
  node "$here/load.mjs" --base "http://127.0.0.1:$port" --key "$ENCLAVE_API_KEY" --clients "$c" \
    --requests 2 --max-tokens 128 --prompt-words "${PROMPT_WORDS:-48}"
done
kill -TERM "$pid"
wait "$pid" || true
