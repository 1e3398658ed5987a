#!/usr/bin/env bash
# Issue 9's downstream suite on Qwen2.5-Coder-1.5B-Instruct with the f16 cache, resumable across
# sessions: each task appends one line per scored item to OUT/<task>.f16.samples.jsonl
# (`eval --samples`), and a rerun scores only the items not there yet. Order and subsets:
#   humaneval_chat (all 164), gsm8k (8-shot CoT, first 100), mmlu (5-shot, 10 per subject = 570),
#   arc_challenge (first 500), hellaswag (first 500)
# Then (and with `report` alone) the table from the samples files: items done of the subset,
# accuracy so far, wall and CPU seconds per item (the eval's own CPU time, the sandboxed tests not
# included), and the time the rest needs at that wall rate.
#   scripts/eval_qwen.sh              # run / resume every task, then the table
#   scripts/eval_qwen.sh report       # the table only
#   TASKS="gsm8k mmlu" scripts/eval_qwen.sh
# Defaults: nice 19 and 1 thread (the machine is shared; nice 19 only takes idle CPU), and
# PARALLEL=8 generations decoded at once (eval --parallel: the same samples as one at a time,
# ~1.8x the items per hour on HumanEval at 2 threads; the likelihood tasks ignore it). Run it from
# a copy of the binary (H1BKV=...), so rebuilding does not change a running job, and stop it with
# `kill -- -$(cat OUT/run.pid)` when started under setsid (see docs/qwen_eval.md).
# OUT defaults to docs/eval/qwen, which git tracks (samples, json, md; logs and run.pid ignored):
# commit its samples before a session ends, since a session's machine does not outlive it.
set -euo pipefail
cd "$(dirname "$0")/.."

H1BKV=${H1BKV:-build/h1bkv}
MODEL=${MODEL:-models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
OUT=${OUT:-docs/eval/qwen}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-8}
NICE=${NICE:-19}
TASKS=${TASKS:-"humaneval_chat gsm8k mmlu arc_challenge hellaswag"}
MODE=${1:-run}

declare -A SUBSET=([humaneval_chat]=164 [gsm8k]=100 [mmlu]=570 [arc_challenge]=500 [hellaswag]=500)
mkdir -p "$OUT"
log() { echo "[eval_qwen $(date -u +%H:%M:%S)] $*" >&2; }

report() {
  python3 - "$OUT" $TASKS <<'EOF'
import json, sys, os
out, tasks = sys.argv[1], sys.argv[2:]
subset = {"humaneval_chat": 164, "gsm8k": 100, "mmlu": 570, "arc_challenge": 500, "hellaswag": 500}
print("| task | cache | items done | acc % | acc_norm % | wall s/item | CPU s/item | rest at that wall rate | rest on an idle core |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for t in tasks:
    path = f"{out}/{t}.f16.samples.jsonl"
    groups, last = {}, None
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            if not line.strip():
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue  # a half-written last line: eval cuts it on the next run
            last = (j["cache"], j["settings"])
            groups.setdefault(last, []).append(j)
    m = subset.get(t, 0)
    if not groups:
        print(f"| {t} | f16 | 0 of {m} | – | – | – | – | – | – |")
    # the settings of the file's last line are the current run's; lines of others are not counted
    for key in sorted(groups, key=lambda k: k != last):
        rows = groups[key]
        n = len(rows)
        acc = 100 * sum(r["correct"] for r in rows) / n
        se = 100 * (acc / 100 * (1 - acc / 100) / n) ** 0.5
        norm = f"{100 * sum(r['correct_norm'] for r in rows) / n:.1f}" if "correct_norm" in rows[0] else "–"
        sec = sum(r["seconds"] for r in rows) / n
        timed = [r["cpu_seconds"] for r in rows if "cpu_seconds" in r]
        cpu = sum(timed) / len(timed) if timed else None
        rest = max(0, m - n)
        name = t if key == last else f"{t} (old settings {key[1]}, not counted)"
        done = f"{n} of {m}" + ("" if n >= m else " (partial)")
        print(f"| {name} | {key[0]} | {done} | {acc:.1f} ± {se:.1f} | {norm} | {sec:.1f} | "
              + (f"{cpu:.1f}" if cpu is not None else "–") + f" | {rest * sec / 3600:.1f} h | "
              + (f"{rest * cpu / 3600:.1f} h" if cpu is not None else "–") + " |")
EOF
}

if [ "$MODE" = run ]; then
  [ -x "$H1BKV" ] || { echo "eval_qwen.sh: no binary $H1BKV" >&2; exit 1; }
  [ -f "$MODEL" ] || { echo "eval_qwen.sh: no model $MODEL (scripts/get_model.sh qwen2.5-coder-1.5b)" >&2; exit 1; }
  echo $$ > "$OUT/run.pid"
  for t in $TASKS; do
    [ -n "${SUBSET[$t]:-}" ] || { echo "eval_qwen.sh: unknown task $t" >&2; exit 1; }
    stem="$OUT/$t.f16"
    cmd=(nice -n "$NICE" "$H1BKV" eval -m "$MODEL" -t "$THREADS" -np "$PARALLEL" --tasks "$t" --caches f16
         --samples "$stem.samples.jsonl" --json-out "$stem.json")
    log "$t: ${cmd[*]}"
    { echo "[$(date -u +%FT%TZ)] ${cmd[*]}"; } >> "$stem.log"
    OMP_WAIT_POLICY=passive "${cmd[@]}" > "$stem.md" 2>> "$stem.log"
    log "$t: done"
  done
  rm -f "$OUT/run.pid"
elif [ "$MODE" != report ]; then
  echo "eval_qwen.sh: unknown mode $MODE (run, report)" >&2
  exit 1
fi
report
