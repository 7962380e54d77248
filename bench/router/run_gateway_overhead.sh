#!/usr/bin/env bash
# Gateway overhead: p50/p99 latency of a canned completion served by nginx (1) directly, (2)
# through nginx proxy_pass in the same nginx worker, (3) through `enclave serve` with the routing
# gateway (scanner on, default policy -> cloud = that nginx), (4) through a second nginx process
# that proxy_passes to the first (a separate proxy process, as the gateway is: the floor for one
# on this machine), each at fixed rates, in the same run.
#   RATES="1000 5000" bench/router/run_gateway_overhead.sh [BUILD_DIR] [DURATION_S]
# AUDIT_FSYNC (default batch): the server's audit/usage durability. The server default, always,
# puts an fdatasync (~3.6 ms p50 on this machine's disk) into every chat request before its answer,
# which alone is 30x the 100 us target; batch fsyncs every 20 ms in the background.
# SLICE_MS (default 100): the four targets are measured in one run per rate, the load
# generator rotating between them every SLICE_MS (each gets the full rate during its slices, and
# DURATION_S of schedule in all, the 2 s warm-up included), so the machine's drifts and stalls
# fall on all four alike. SEQUENTIAL=1 measures them one after another instead (as PERF_OUT and
# CALLGRIND_OUT do).
# ENCLAVE_BIN (optional): the enclave binary to measure instead of BUILD_DIR's (A/B runs of a
# copied old binary against the new one, same load generator).
# IO_THREADS (default 1): HTTP io threads of `enclave serve` (2 cores shared with nginx and the
# load generator).
# PERF_OUT (optional): `perf record -g` of the serve process during its run at the first rate,
# written to that file (read it with `perf report -i FILE --no-children`); PERF_CALL_GRAPH
# replaces -g (e.g. "--call-graph dwarf -F 2000": the binary has no frame pointers).
# After each rate: CPU time per request of the enclave process (all threads) and of the separate
# nginx proxy's worker (from /proc/PID/stat, 10 ms ticks).
# TRACE_OUT=PREFIX (optional): a 4 s kernel trace (`perf record -a -k mono`: scheduler switches,
# wake-ups, migrations, softirqs) during each rate's run, PREFIX.RATE.data, and the load
# generator's per-request times, PREFIX.RATE.samples; `bench/router/slow_requests.py PREFIX.RATE`
# then shows what the slowest requests waited for.
# KEEP_AWAKE=1 (optional): one SCHED_IDLE busy loop per CPU for the whole run (all four
# targets alike). On a VM each blocking wait halts the vCPU and every wake-up then costs a host
# reschedule (tens to hundreds of µs, the dominant p99 term here); the loops keep the vCPUs
# running but yield to any other thread at once. A diagnostic, not a cleaner condition: fully
# busy vCPUs get millisecond preemptions from the host (bench/router/README.md).
# CALLGRIND_OUT (optional): runs the serve process under valgrind's callgrind and counts the
# instructions it executes (all threads) during its run at the first rate, written to FILE.1
# (`callgrind_annotate --inclusive=yes FILE.1`). Unlike latency it does not depend on other load
# on the machine; use a low rate (e.g. RATES=50 ... 12: 8 s counted, ~400 requests).
# CALLGRIND_OPTS (optional): more valgrind options, e.g. "--separate-threads=yes" (one file per
# thread, FILE.1-NN: the io thread's own cost per request).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-router}
DUR=${2:-10}
read -r -a RATES <<<"${RATES:-1000 5000}"
LOAD=$BUILD/bench/router/fixed_rate_load
ENCLAVE=${ENCLAVE_BIN:-$BUILD/src/cli/enclave}
MODEL=${MODEL:-$ROOT/../shared/fixtures/models/llama-tiny-F32.gguf}
WORK=$(mktemp -d)
P_UP=18081 P_PROXY=18082 P_GW=18083 P_SEP=18084
cleanup() {
  for p in ${AWAKE_PIDS:-}; do kill "$p" 2>/dev/null || true; done
  [[ -n ${NGINX_PID:-} ]] && kill "$NGINX_PID" 2>/dev/null || true
  [[ -n ${SEP_PID:-} ]] && kill "$SEP_PID" 2>/dev/null || true
  [[ -n ${GW_PID:-} ]] && kill "$GW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ANSWER='{"id":"chatcmpl-static","object":"chat.completion","created":1700000000,"model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}'
mkdir -p "$WORK/logs" "$WORK/up" "$WORK/sep"
# Writes $1/nginx.conf: one worker (pid, error log and temp files in $1), the upstream `canned`
# (the answering server) and the server blocks in $2.
write_nginx_conf() {
  cat >"$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  keepalive_requests 1000000;
  upstream canned { server 127.0.0.1:$P_UP; keepalive 64; }
$2
}
CONF
}
PROXY_LOCATION='location / { proxy_pass http://canned; proxy_http_version 1.1; proxy_set_header Connection ""; }'
# The answering server and, in the same worker, the proxy to it; then a separate proxy process.
write_nginx_conf "$WORK/up" "  server {
    listen 127.0.0.1:$P_UP;
    location / { default_type application/json; return 200 '$ANSWER'; }
  }
  server { listen 127.0.0.1:$P_PROXY; $PROXY_LOCATION }"
write_nginx_conf "$WORK/sep" "  server { listen 127.0.0.1:$P_SEP; $PROXY_LOCATION }"
AWAKE_PIDS=
if [[ ${KEEP_AWAKE:-0} == 1 ]]; then
  for _ in $(seq "$(nproc)"); do
    chrt --idle 0 bash -c 'while :; do :; done' &
    AWAKE_PIDS+=" $!"
  done
fi
nginx -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" &
NGINX_PID=$!
nginx -c "$WORK/sep/nginx.conf" -e "$WORK/sep/error.log" &
SEP_PID=$!

cat >"$WORK/gateway.yaml" <<CONF
backends:
  - {name: local, type: local}
  - {name: cloud, preset: deepseek, base_url: "http://127.0.0.1:$P_UP", api_key: sk-bench-0000000000000000000000}
CONF
KEY=sk-enclave-bench-key-000000000000000000
WRAP=()
if [[ -n ${CALLGRIND_OUT:-} ]]; then
  WRAP=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$CALLGRIND_OUT")
  # shellcheck disable=SC2206  # CALLGRIND_OPTS holds several options
  WRAP+=(${CALLGRIND_OPTS:-})
fi
ENCLAVE_API_KEY=$KEY "${WRAP[@]}" "$ENCLAVE" serve --model "$MODEL" --port $P_GW --data-dir "$WORK/data" \
  --gateway "$WORK/gateway.yaml" --threads 1 --io-threads "${IO_THREADS:-1}" \
  --audit-fsync "${AUDIT_FSYNC:-batch}" >"$WORK/logs/serve.log" 2>&1 &
GW_PID=$!
for _ in $(seq "$([[ -n ${CALLGRIND_OUT:-} ]] && echo 900 || echo 100)"); do
  curl -sf "http://127.0.0.1:$P_GW/health" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$P_UP/" >/dev/null 2>&1 &&
    curl -sf "http://127.0.0.1:$P_SEP/" >/dev/null 2>&1 && break
  sleep 0.1
done

BODY=$WORK/body.json
echo '{"model":"deepseek-chat","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"What is the capital of France? Answer in one short sentence please."}],"max_tokens":32}' >"$BODY"
echo "enclave serve: --io-threads ${IO_THREADS:-1} --audit-fsync ${AUDIT_FSYNC:-batch}"
echo "check: $(curl -s -D - -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data @"$BODY" http://127.0.0.1:$P_GW/v1/chat/completions | grep -i '^x-enclave' | tr -d '\r' | tr '\n' ' ')"

# The gateway's own time per request (its enclave_gateway_overhead_seconds histogram; upstream
# waits excluded), as percentiles interpolated within the buckets, for the requests since $1 (a
# previous /metrics text).
gateway_metrics() { curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$P_GW/metrics"; }
overhead_since() {
  gateway_metrics |
    awk -v before="$1" '
      BEGIN { n = split(before, lines, "\n")
              for (i = 1; i <= n; i++) if (lines[i] ~ /^enclave_gateway_overhead_seconds_bucket/) {
                split(lines[i], f, " "); base[f[1]] = f[2] } }
      /^enclave_gateway_overhead_seconds_bucket/ {
        le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
        k++; bound[k] = (le == "+Inf") ? 1e9 : le + 0; cum[k] = $2 - base[$1] }
      END {
        total = cum[k]; if (total <= 0) { print "enclave-overhead count=0"; exit }
        printf "enclave-overhead count=%d", total
        split("0.5 0.9 0.99", qs, " "); split("50 90 99", names, " ")
        for (j = 1; j <= 3; j++) {
          want = qs[j] * total; lo = 0; prev = 0
          for (i = 1; i <= k; i++) {
            if (cum[i] >= want) {
              frac = (cum[i] - prev) > 0 ? (want - prev) / (cum[i] - prev) : 0
              printf " p%s_us~%.0f", names[j], (lo + frac * (bound[i] - lo)) * 1e6; break }
            lo = bound[i]; prev = cum[i] } }
        print " (in-process; interpolated within buckets)" }'
}

# CPU ticks (user + system) of the given processes, all their threads.
cpu_ticks() {
  local t=0 pid
  for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$t"
}
SEP_WORKER=
for _ in $(seq 50); do
  SEP_WORKER=$(pgrep -P "$SEP_PID" nginx | head -1) && [[ -n $SEP_WORKER ]] && break
  sleep 0.1
done
# Prints the CPU per request since $1 ("enclave_ticks nginx_ticks"); $2 requests per target.
cpu_per_request_since() {
  local e0 n0 hz
  read -r e0 n0 <<<"$1"
  hz=$(getconf CLK_TCK)
  awk -v e="$(($(cpu_ticks "$GW_PID") - e0))" -v n="$(($(cpu_ticks "$SEP_WORKER") - n0))" \
    -v hz="$hz" -v r="$2" 'BEGIN { printf "cpu-per-request enclave_us=%.1f nginx-separate_us=%.1f (all threads; %d requests each)\n", e / hz / r * 1e6, n / hz / r * 1e6, r }'
}

SEQ=${SEQUENTIAL:-0}
[[ -n ${PERF_OUT:-}${CALLGRIND_OUT:-} ]] && SEQ=1
for rate in "${RATES[@]}"; do
  if [[ $SEQ != 1 ]]; then
    BEFORE=$(gateway_metrics)
    CPU_BEFORE="$(cpu_ticks "$GW_PID") $(cpu_ticks "$SEP_WORKER")"
    TRACE_ARGS=() TRACE_PID=
    if [[ -n ${TRACE_OUT:-} ]]; then
      TRACE_ARGS=(--samples-out "$TRACE_OUT.$rate.samples")
      (sleep 4 && perf record -q -a -k mono -e sched:sched_switch -e sched:sched_waking \
        -e sched:sched_migrate_task -e irq:softirq_entry -e irq:softirq_exit \
        -o "$TRACE_OUT.$rate.data" -- sleep 4 >/dev/null 2>&1) &
      TRACE_PID=$!
    fi
    "$LOAD" --target "direct=$P_UP" --target "nginx-proxy=$P_PROXY" --target "enclave-gateway=$P_GW" \
      --target "nginx-separate=$P_SEP" --slice-ms "${SLICE_MS:-100}" --rate "$rate" \
      --duration "$((DUR * 4))" --warmup 2 --connections 64 --body-file "$BODY" \
      --header "Authorization: Bearer $KEY" "${TRACE_ARGS[@]}"
    if [[ -n $TRACE_PID ]]; then wait "$TRACE_PID"; fi
    overhead_since "$BEFORE"
    # Each target gets a quarter of the schedule (warm-up included): rate * DUR requests.
    cpu_per_request_since "$CPU_BEFORE" "$((rate * DUR))"
    continue
  fi
  for target in "direct:$P_UP" "nginx-proxy:$P_PROXY" "enclave-gateway:$P_GW" "nginx-separate:$P_SEP"; do
    name=${target%%:*} port=${target##*:}
    PERF_PID=
    if [[ -n ${PERF_OUT:-} && $name == enclave-gateway && $rate == "${RATES[0]}" ]]; then
      # shellcheck disable=SC2086  # PERF_CALL_GRAPH holds several options
      perf record -q ${PERF_CALL_GRAPH:--g} -p "$GW_PID" -o "$PERF_OUT" -- sleep "$((DUR + 2))" 2>/dev/null &
      PERF_PID=$!
    fi
    if [[ -n ${CALLGRIND_OUT:-} && $name == enclave-gateway && $rate == "${RATES[0]}" ]]; then
      (sleep 3 && callgrind_control -i on "$GW_PID" >/dev/null 2>&1 && sleep "$((DUR - 4))" &&
        callgrind_control -i off "$GW_PID" >/dev/null 2>&1 && callgrind_control -d "$GW_PID" >/dev/null 2>&1
        echo "callgrind: $((DUR - 4)) s counted (~$((rate * (DUR - 4))) requests) -> $CALLGRIND_OUT.1") &
      PERF_PID=$!
    fi
    printf '%-16s ' "$name"
    "$LOAD" --port "$port" --rate "$rate" --duration "$DUR" --warmup 2 \
      --connections 64 --body-file "$BODY" --header "Authorization: Bearer $KEY"
    if [[ -n $PERF_PID ]]; then wait "$PERF_PID"; fi
  done
done
