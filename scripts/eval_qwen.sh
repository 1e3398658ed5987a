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
#   scripts/eval_qwen.sh caches       # every cache family at ~4x on HumanEval and GSM8K, first 50 each
#   scripts/eval_qwen.sh caches-report
#   scripts/eval_qwen.sh passkey      # passkey grid (PASSKEY_LENGTHS x 5 depths x PASSKEY_KEYS keys)
#   scripts/eval_qwen.sh passkey-report    # per cache in PASSKEY_CACHES: keys found per cell
# `caches` fits what its caches need when missing (the best h1b adapter with scripts/h1b_qwen.sh,
# ~5 min; loki's basis with calibrate, on State of the Union text) and writes
# OUT/<task>.<label>.samples.jsonl; its f16 row is the first 50 items of the f16 run's samples.
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
PARALLEL_GSM8K=${PARALLEL_GSM8K:-4}
NICE=${NICE:-19}
TASKS=${TASKS:-"humaneval_chat gsm8k mmlu arc_challenge hellaswag"}
MODE=${1:-run}

# label -> cache spec of the every-cache table (`caches`): ~4x fewer bytes than f16, or as close as
# the family gets (loki keeps every key and value; it saves attention reads, not memory)
LOKI=${LOKI:-calib/qwen2.5-coder-1.5b-q4_k_m.loki.json}
H1B=${H1B:-calib/qwen2.5-coder-1.5b-q4_k_m.h1b-256-qjl-s4w64-orth-center-ridge-kl.safetensors}
H1B_W128=${H1B_W128:-calib/qwen2.5-coder-1.5b-q4_k_m.h1b-256-qjl-s4w128-orth-center-ridge-kl.safetensors}
H1B_C2048=${H1B_C2048:-calib/qwen2.5-coder-1.5b-q4_k_m.h1b-256-qjl-s4w64-orth-center-ridge-kl-c2048.safetensors}
H1B_W128_C2048=${H1B_W128_C2048:-calib/qwen2.5-coder-1.5b-q4_k_m.h1b-256-qjl-s4w128-orth-center-ridge-kl-c2048.safetensors}
CACHE_LIST=${CACHE_LIST:-"h1b kivi2 q4_0 kivi4 evict25 loki"}
declare -A SPEC=([q4_0]=q4_0 [kivi2]=kivi:bits=2 [kivi4]=kivi:bits=4 [evict25]=evict:keep=0.25
                 [loki]="loki:r=32,k=0.25@$LOKI"
                 [h1b]="h1b:bits=256,est=qjl,sink=4,window=64,orth=1,center=1,ridge=0.05,kl=200@$H1B"
                 # issue 10's levers on GSM8K: the 3 layers of largest held-out KL in f16 (4.07x); a
                 # 128-token window (KIVI's residual); the 1(c) fit on 2048-token chunks; both
                 [h1b_ex3]="h1b:bits=256,est=qjl,sink=4,window=64,orth=1,center=1,ridge=0.05,kl=200,exact=16+27+12,exact_type=f16@$H1B"
                 [h1b_w128]="h1b:bits=256,est=qjl,sink=4,window=128,orth=1,center=1,ridge=0.05,kl=200@$H1B_W128"
                 [h1b_c2048]="h1b:bits=256,est=qjl,sink=4,window=64,orth=1,center=1,ridge=0.05,kl=200@$H1B_C2048"
                 [h1b_w128_c2048]="h1b:bits=256,est=qjl,sink=4,window=128,orth=1,center=1,ridge=0.05,kl=200@$H1B_W128_C2048")
CACHE_TASKS=${CACHE_TASKS:-"humaneval_chat gsm8k"}
CACHE_ITEMS=${CACHE_ITEMS:-50}
SPEC[f16]=f16
# the passkey grid: one eval per cache, items decoded one at a time (-np 1) so each item reuses the
# filler before its key from the item before (the keys of a cell, then the next depth)
PASSKEY_CACHES=${PASSKEY_CACHES:-"f16 h1b_w128"}
PASSKEY_LENGTHS=${PASSKEY_LENGTHS:-4096,8192,16384}
PASSKEY_KEYS=${PASSKEY_KEYS:-3}
# PASSKEY_LIMIT=N scores the first N items of each cache's grid only (depth 100 % first)

declare -A SUBSET=([humaneval_chat]=164 [gsm8k]=100 [mmlu]=570 [arc_challenge]=500 [hellaswag]=500 [passkey]=0)
mkdir -p "$OUT"
log() { echo "[eval_qwen $(date -u +%H:%M:%S)] $*" >&2; }

report() {
  python3 - "$OUT" $TASKS <<'EOF'
import json, sys, os
sys.path.insert(0, "scripts/lib")
from samples import read_samples
out, tasks = sys.argv[1], sys.argv[2:]
subset = {"humaneval_chat": 164, "gsm8k": 100, "mmlu": 570, "arc_challenge": 500, "hellaswag": 500}
print("| task | cache | items done | acc % | acc_norm % | wall s/item | CPU s/item | rest at that wall rate | rest on an idle core |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for t in tasks:
    path = f"{out}/{t}.f16.samples.jsonl"
    groups, last = {}, None
    for j in read_samples(path):
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

# run_task TASK LABEL SPEC [LIMIT]: eval (or resume) TASK on one cache into OUT/TASK.LABEL.*
run_task() {
  local t=$1 label=$2 spec=$3 limit=${4:-}
  [ -n "${SUBSET[$t]:-}" ] || { echo "eval_qwen.sh: unknown task $t" >&2; exit 1; }
  local stem="$OUT/$t.$label" np=$PARALLEL
  # each of the N caches computes GSM8K's 8-shot prefix (~1500 tokens) once: 4 in flight decode
  # about as fast as 8 (docs/speed.md) and pay half of that
  [ "$t" != gsm8k ] || np=$PARALLEL_GSM8K
  local extra=()
  [ "$t" != passkey ] || { np=1; extra=(--passkey-lengths "$PASSKEY_LENGTHS" --passkey-keys "$PASSKEY_KEYS"); }
  local cmd=(nice -n "$NICE" "$H1BKV" eval -m "$MODEL" -t "$THREADS" -np "$np" --tasks "$t" --caches "$spec"
             ${limit:+--limit "$limit"} "${extra[@]}" --samples "$stem.samples.jsonl" --json-out "$stem.json")
  log "$t $label: ${cmd[*]}"
  { echo "[$(date -u +%FT%TZ)] ${cmd[*]}"; } >> "$stem.log"
  OMP_WAIT_POLICY=passive "${cmd[@]}" > "$stem.md" 2>> "$stem.log"
  log "$t $label: done"
}

caches_report() {
  python3 - "$OUT" "$CACHE_ITEMS" "$CACHE_TASKS" f16 $CACHE_LIST <<'EOF'
import json, sys, os
sys.path.insert(0, "scripts/lib")
from samples import read_samples
out, m, tasks, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
# paired with f16 on the same items: f16 right and the cache wrong / the cache right and f16 wrong
print("| cache | bytes/token | " + " | ".join(f"{t} % (first {m})" for t in tasks)
      + " | " + " | ".join(f"{t} lost / gained vs f16" for t in tasks)
      + " | " + " | ".join(f"{t} s/item" for t in tasks) + " |")
print("|---|---:|" + "---:|" * (3 * len(tasks)))
base = {}
for label in labels:
    cells, secs, flips, spec, bpt = [], [], [], None, None
    for t in tasks:
        path = f"{out}/{t}.{label}.samples.jsonl"
        rows = {}
        for j in read_samples(path):
            if j["item"] < m:
                rows[j["item"]] = j
                spec = j["spec"]
        n = len(rows)
        if label == "f16":
            base[t] = {i: r["correct"] for i, r in rows.items()}
        if n == 0:
            cells.append("–"); secs.append("–"); flips.append("–"); continue
        b = base.get(t, {})
        lost = sum(1 for i, r in rows.items() if i in b and b[i] and not r["correct"])
        gained = sum(1 for i, r in rows.items() if i in b and not b[i] and r["correct"])
        flips.append("–" if label == "f16" else f"{lost} / {gained}")
        acc = 100 * sum(r["correct"] for r in rows.values()) / n
        se = 100 * (acc / 100 * (1 - acc / 100) / n) ** 0.5
        cells.append(f"{acc:.1f} ± {se:.1f}" + ("" if n >= m else f" ({n} of {m})"))
        secs.append(f"{sum(r['seconds'] for r in rows.values()) / n:.1f}")
        js = f"{out}/{t}.{label}.json"
        if os.path.exists(js):
            for r in json.load(open(js))["rows"]:
                bpt = r["bytes_per_token"]
    name = f"{label} (`{spec}`)" if spec else label
    print(f"| {name} | " + (f"{bpt:.0f}" if bpt else "–") + " | " + " | ".join(cells) + " | "
          + " | ".join(flips) + " | " + " | ".join(secs) + " |")
EOF
}

passkey_report() {
  python3 - "$OUT" $PASSKEY_CACHES <<'EOF'
import sys, collections
sys.path.insert(0, "scripts/lib")
from samples import read_samples
out, labels = sys.argv[1], sys.argv[2:]
# keys found / items per cell over every run in the file: a cell's items are the same whatever
# lengths a run had (a key depends on the seed, length, depth and key index), so runs of other
# lengths add cells; an item seen twice counts once (the last line)
print("| cache | length | depth 100 % | 75 % | 50 % | 25 % | 0 % | all | s/item |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for label in labels:
    path = f"{out}/passkey.{label}.samples.jsonl"
    rows = list({(r["group"], r["sample"]["key"]): r for r in read_samples(path)}.values())
    if not rows:
        print(f"| {label} | – | | | | | | | |")
        continue
    cells = collections.defaultdict(lambda: [0, 0])
    secs = collections.defaultdict(float)
    for r in rows:
        length, depth = r["group"].replace("ctx ", "").split(" depth ")
        cells[(int(length), depth)][0] += int(r["correct"])
        cells[(int(length), depth)][1] += 1
        secs[int(length)] += r["seconds"]
    for length in sorted({k[0] for k in cells}):
        got = [cells[(length, f"{d}%")] for d in (100, 75, 50, 25, 0)]
        n = sum(c[1] for c in got)
        if n == 0:
            continue
        ok = sum(c[0] for c in got)
        print(f"| {label} (`{rows[-1]['spec']}`) | {length} | " + " | ".join(
            f"{c[0]}/{c[1]}" if c[1] else "–" for c in got) + f" | {ok}/{n} | {secs[length] / n:.0f} |")
EOF
}

need_model() {
  [ -x "$H1BKV" ] || { echo "eval_qwen.sh: no binary $H1BKV" >&2; exit 1; }
  [ -f "$MODEL" ] || { echo "eval_qwen.sh: no model $MODEL (scripts/get_model.sh qwen2.5-coder-1.5b)" >&2; exit 1; }
}

case "$MODE" in
  run)
    need_model
    echo $$ > "$OUT/run.pid"
    for t in $TASKS; do run_task "$t" f16 f16; done
    rm -f "$OUT/run.pid"
    report ;;
  caches)
    need_model
    echo $$ > "$OUT/run.pid"
    shared=${H1BKV_SHARED:-../shared}
    if [[ " $CACHE_LIST " == *" loki "* && ! -f "$LOKI" ]]; then
      log "loki basis -> $LOKI"
      "$H1BKV" calibrate -m "$MODEL" -t "$THREADS" --cache loki -o "$LOKI" \
        -f "$shared/data/sotu/2010_barack_obama_d.txt" -f "$shared/data/sotu/2015_barack_obama_d.txt" >&2
    fi
    if [[ " $CACHE_LIST " == *" h1b "* && ! -f "$H1B" ]]; then
      log "h1b adapter -> $H1B (scripts/h1b_qwen.sh, stage 1(c))"
      ROWS=s256-1c FIT_ONLY=1 MODEL="$MODEL" H1BKV_BIN="$H1BKV" OUT="$(dirname "$H1B")" THREADS="$THREADS" \
        scripts/h1b_qwen.sh > /dev/null
    fi
    for label in $CACHE_LIST; do
      [ -n "${SPEC[$label]:-}" ] || { echo "eval_qwen.sh: unknown cache label $label" >&2; exit 1; }
      for t in $CACHE_TASKS; do run_task "$t" "$label" "${SPEC[$label]}" "$CACHE_ITEMS"; done
    done
    rm -f "$OUT/run.pid"
    caches_report ;;
  passkey)
    need_model
    echo $$ > "$OUT/run.pid"
    for label in $PASSKEY_CACHES; do
      [ -n "${SPEC[$label]:-}" ] || { echo "eval_qwen.sh: unknown cache label $label" >&2; exit 1; }
      run_task passkey "$label" "${SPEC[$label]}" "${PASSKEY_LIMIT:-}"
    done
    rm -f "$OUT/run.pid"
    passkey_report ;;
  report) report ;;
  caches-report) caches_report ;;
  passkey-report) passkey_report ;;
  *) echo "eval_qwen.sh: unknown mode $MODE (run, caches, report, caches-report, passkey, passkey-report)" >&2; exit 1 ;;
esac
