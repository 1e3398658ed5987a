#!/usr/bin/env bash
# The downstream tables of the README (issue 5), SmolLM2-135M-Instruct Q4_1:
#   STAGE=f16     every task on its standard subset with the f16 cache  -> docs/eval/f16_<task>.json/.md
#   STAGE=caches  every cache type on the first 100 items of the multiple-choice tasks and LAMBADA,
#                 and the passkey grid up to CAP_CTX tokens               -> docs/eval/caches.json/.md/.svg
# TASKS_F16 picks tasks of the f16 stage (one eval run per task, so each can be redone alone).
#   scripts/eval_report.sh                 # both stages (about 1.5 h on 2 cores)
#   STAGE=f16 TASKS_F16="gsm8k humaneval" scripts/eval_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

H1BKV=${H1BKV:-build/h1bkv}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
STAGE=${STAGE:-"f16 caches"}
TASKS_F16=${TASKS_F16:-"arc_easy arc_challenge piqa hellaswag mmlu lambada gsm8k humaneval passkey"}
LIMIT=${LIMIT:-100}
CAP_CTX=${CAP_CTX:-2048}
TAG=smollm2-135m-q4_1
CACHES=${CACHES:-"f16;q8_0;q4_0;kivi:bits=2;evict:keep=0.25;loki:r=32,k=0.25@calib/$TAG.loki.json;h1b:bits=512,est=qjl,sink=4,window=64@calib/$TAG.h1b-512-qjl-s4w64.json;h1b:bits=256@calib/$TAG.h1b-256-hamming.json"}

[ -x "$H1BKV" ] || { echo "eval_report.sh: no binary $H1BKV" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "eval_report.sh: no model $MODEL (scripts/get_model.sh)" >&2; exit 1; }
mkdir -p docs/eval
log() { echo "[eval_report $(date +%H:%M:%S)] $*" >&2; }
run() {  # $1 = output stem, rest = eval arguments; writes <stem>.md (command on top) and <stem>.json
  local stem=$1; shift
  local cmd=("$H1BKV" eval -m "$MODEL" -t "$THREADS" "$@" --json-out "$stem.json")
  log "$stem"
  local table
  table=$(OMP_WAIT_POLICY=passive "${cmd[@]}")
  { echo '```'; printf '%q ' "${cmd[@]}" | sed "s|^$H1BKV |build/h1bkv |; s| $||"; echo; echo '```'; echo; echo "$table"; } > "$stem.md"
}

for s in $STAGE; do
  case $s in
    f16) for t in $TASKS_F16; do run "docs/eval/f16_$t" --tasks "$t" --caches f16; done ;;
    caches) run docs/eval/caches --tasks arc_easy,arc_challenge,piqa,hellaswag,lambada,passkey \
              --limit "$LIMIT" -c "$CAP_CTX" --caches "$CACHES" --plot docs/eval/caches.svg \
              --title "SmolLM2-135M-Instruct: accuracy vs KV bytes per token" ;;
    *) echo "eval_report.sh: unknown stage $s" >&2; exit 1 ;;
  esac
done
log done
