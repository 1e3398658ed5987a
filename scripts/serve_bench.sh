#!/usr/bin/env bash
# The load tables of docs/serving.md: one fresh server per row (h1bkv serve, or llama.cpp's
# llama-server when LLAMA_SERVER names its binary), scripts/serve_load.py against it, on loopback.
# Usage: scripts/serve_bench.sh batching|memory [ROW...]   (rows: see below; default all)
# Env: MODEL (SmolLM2 Q4_1 GGUF), PY (python with openai), LLAMA_SERVER (llama-server binary; its
# rows are skipped without it), T (threads, 2), PORT (18431), REQUESTS (memory rows: 8),
# LOAD_ARGS (more serve_load.py options, e.g. --no-stream).
# Prints each row's Markdown line (serve_load.py's columns) as it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
table=${1:?usage: $0 batching|memory [ROW...]}
shift
MODEL=${MODEL:-${H1BKV_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf}
PY=${PY:-.venv/bin/python}
T=${T:-2}
PORT=${PORT:-18431}
# the best h1b at >= 4x (README; its adapter is not committed: scripts/demo.sh fits it), and the
# b=256 one with 2 exact q4 layers (3.65x; committed adapter)
H1B='h1b:bits=128,est=qjl,sink=4,window=64,orth=1,center=1,ridge=0.05,kl=200'
H1B_CALIB=calib/smollm2-135m-q4_1.h1b-128-qjl-s4w64-orth-center-ridge-kl.safetensors
H1B256='h1b:bits=256,est=qjl,sink=4,window=64,orth=1,center=1,exact_layers=2,exact_type=q4'
H1B256_CALIB=calib/smollm2-135m-q4_1.h1b-256-qjl-s4w64-orth-center.safetensors
pid=
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; pid=; }
trap cleanup EXIT
trap "exit 130" INT TERM

# row LABEL SERVER_KIND LOAD_ARGS -- SERVER_ARGS...
row() {
  local label=$1 kind=$2 load=$3
  shift 4
  if [ "$kind" = llama ]; then
    [ -n "${LLAMA_SERVER:-}" ] || { echo "| $label | skipped: LLAMA_SERVER is not set |"; return; }
    "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -t "$T" --metrics "$@" >/tmp/serve_bench_server.log 2>&1 &
  else
    build/h1bkv serve -m "$MODEL" --port "$PORT" -t "$T" "$@" 2>/tmp/serve_bench_server.log &
  fi
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break
    kill -0 "$pid" 2>/dev/null || { cat /tmp/serve_bench_server.log >&2; return 1; }
    sleep 0.2
  done
  # shellcheck disable=SC2086
  "$PY" scripts/serve_load.py "http://127.0.0.1:$PORT" $load ${LOAD_ARGS:-} --label "$label" | tail -1
  cleanup
}

want() { [ ${#rows[@]} -eq 0 ] || [[ " ${rows[*]} " == *" $1 "* ]]; }
rows=("$@")
case $table in
  batching)  # 8 requests of a ~60-token prompt + 240 max_tokens, 1 or 8 at a time
    for c in 1 8; do
      l="--requests 8 --concurrency $c --prompt-tokens 64 --context 320 --time-limit 300"
      want "f16-$c" && row "f16, $c" h1bkv "$l" -- --cache f16 -c 320 -np 8 --kv-budget 1024
      want "h1b-$c" && row "h1b best, $c" h1bkv "$l" -- --cache "$H1B" --calib "$H1B_CALIB" -c 320 -np 8 --kv-budget 1024
      want "h1b256-$c" && row "h1b b=256, $c" h1bkv "$l" -- --cache "$H1B256" --calib "$H1B256_CALIB" -c 320 -np 8 --kv-budget 1024
      want "llama-f16-$c" && row "llama-server f16, $c" llama "$l" -- -np "$c" -c $((c * 2048)) -ctk f16
      want "llama-q4_0-$c" && row "llama-server q4_0, $c" llama "$l" -- -np "$c" -c $((c * 2048)) -ctk q4_0 -ctv q4_0 -fa
    done
    ;;
  memory)  # REQUESTS (8) conversations of 2048 tokens (~1896 prompt + 132 max_tokens), 8 at a time, at --kv-budget 64
    l="--requests ${REQUESTS:-8} --concurrency 8 --prompt-tokens 1900 --context 2048 --time-limit 600"
    for cache in f16 q8_0 kivi:bits=2; do
      want "$cache" && row "$cache" h1bkv "$l" -- --cache "$cache" -c 2048 -np 8 --kv-budget 64
    done
    want h1b && row "h1b best" h1bkv "$l" -- --cache "$H1B" --calib "$H1B_CALIB" -c 2048 -np 8 --kv-budget 64
    want h1b256 && row "h1b b=256" h1bkv "$l" -- --cache "$H1B256" --calib "$H1B256_CALIB" -c 2048 -np 8 --kv-budget 64
    # llama-server has no budget: the slots 64 MB holds at 2048 tokens each (f16 47.2 MB, q4_0 13.3 MB)
    want llama-f16 && row "llama-server f16, -np 1" llama "$l" -- -np 1 -c 2048 -ctk f16
    want llama-q4_0 && row "llama-server q4_0, -np 4" llama "$l" -- -np 4 -c 8192 -ctk q4_0 -ctv q4_0 -fa
    ;;
  *) echo "usage: $0 batching|memory [ROW...]" >&2; exit 2 ;;
esac
