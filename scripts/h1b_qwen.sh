#!/usr/bin/env bash
# Issue 10 on Qwen2.5-Coder-1.5B-Instruct Q4_K_M (docs/finetune-qwen.md): fits the h1b key adapters
# on the calibration text SmolLM2's use (TinyStories sample + two State of the Union addresses,
# -c 512 --chunks 8; never WikiText), then one `ppl` per row on WikiText-2 (ctx 2048, first 2
# chunks) against a saved f16 run (`--kl-base`: KLD and top-1), and prints the table.
# Resumable: each row's JSON goes to $RES/<row>.json and is not rerun while present; adapters in
# calib/ (qwen prefix) are kept if present, and each fit's output (with the held-out attention-KL
# ranking that `exact=` lists are taken from) is kept beside it as .log.
#   scripts/h1b_qwen.sh                 # every row below
#   ROWS="f16 s256-0 s256-1c" scripts/h1b_qwen.sh   # some rows (names as in the list below)
#   TABLE=1 scripts/h1b_qwen.sh         # only print the table of the rows measured so far
#   ROWS=s256-1c FIT_ONLY=1 scripts/h1b_qwen.sh    # only fit the adapters of those rows
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${H1BKV_SHARED:-../shared}
model=${MODEL:-${H1BKV_MODELS:-models}/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
ctx=${CTX:-2048}
chunks=${CHUNKS:-2}
threads=${THREADS:-2}
bin=${H1BKV_BIN:-build/h1bkv}
out=${OUT:-calib}
res=${RES:-out/h1b_qwen_c${ctx}x${chunks}}
base=$res/f16.lp   # the f16 run's log-probabilities (fp16, 0.6 GB at ctx 2048 x 2 chunks: not in git)
text=(-f "$shared/data/tinystories/sample.txt" -f "$shared/data/sotu/2010_barack_obama_d.txt"
      -f "$shared/data/sotu/2018_donald_j_trump_r.txt")
pre=qwen2.5-coder-1.5b-q4_k_m.h1b
mkdir -p "$res" "$out"

source scripts/lib/fit_adapter.sh
# adapter NAME SPEC: the adapter file for SPEC (fitted unless present)
adapter() {
  local f="$out/$pre-$1.safetensors"
  fit_adapter "$f" "$2" || exit 1
  echo "$f"
}
# top NAME K: the first K layers of the held-out attention-KL ranking calibrate printed for NAME, as 'a+b+c'
top() {
  local l
  l=$(grep "largest first:" "$out/$pre-$1.safetensors.log" | sed 's/.*largest first: *//')
  echo "$l" | tr ' ' '\n' | head -n "$2" | paste -sd+
}

# want NAME: whether ROWS selects the row and it is not measured yet (so its adapter is fitted only then)
want() {
  case " ${ROWS:-all} " in *" all "*|*" $1 "*) ;; *) return 1 ;; esac
  [ ! -f "$res/$1.json" ]
}
# row NAME SPEC [ADAPTER]: ppl of the cache against the f16 base, into $res/NAME.json
row() {
  local name=$1 spec=$2 cal=${3:-} j="$res/$1.json"
  want "$name" || return 0
  [ -z "${FIT_ONLY:-}" ] || return 0
  echo "== $(date -u +%H:%M:%S) row $name: $spec ${cal:+@ $cal}" >&2
  local extra=(--kl-base "$base")
  [ "$name" = f16 ] && extra=(--save-logits "$base")
  OMP_WAIT_POLICY=passive "$bin" ppl -m "$model" -f "$shared/data/wikitext-2/wiki.test.raw" -c "$ctx" \
    --chunks "$chunks" -t "$threads" --cache "$spec" ${cal:+--calib "$cal"} "${extra[@]}" --json > "$j.tmp"
  mv "$j.tmp" "$j"
}

if [ -z "${TABLE:-}" ]; then
  s="h1b:bits=256,est=qjl,sink=4,window=64"
  row f16 f16
  # stage 0 first: does centering fix Qwen's keys (K biases: large per-channel offsets)?
  want s256-0 && row s256-0 "$s,orth=1,center=1" "$(adapter 256-qjl-s4w64-orth-center "$s,orth=1,center=1")"
  # stage 1(c): R, A and per-head multipliers trained on attention KL from the ridge start
  if want s256-1c || want s256-1c-top3f16; then
    a1c=$(adapter 256-qjl-s4w64-orth-center-ridge-kl "$s,orth=1,center=1,ridge=0.05,kl=200")
  fi
  row s256-1c "$s,orth=1,center=1,ridge=0.05,kl=200" "${a1c:-}"
  # the 3 layers of largest held-out attention KL after the fit keep f16 keys: 7044 B, 4.07x
  want s256-1c-top3f16 && row s256-1c-top3f16 "$s,orth=1,center=1,ridge=0.05,kl=200,exact=$(top 256-qjl-s4w64-orth-center-ridge-kl 3),exact_type=f16" "$a1c"
  # about equal bytes: 2-bit per-channel keys, 4-bit values in groups of 128 as h1b's (5824 B per token; h1b b=256: 5712)
  row kivi2eq kivi:bits=2,group=128,vbits=4,vgroup=128
  row kivi4 kivi:bits=4
  row q4_0 q4_0
  row kivi2 kivi:bits=2
  row s256 "$s"
  # stage 1(a) alone
  want s256-1a && row s256-1a "$s,orth=1,center=1,ridge=0.05" "$(adapter 256-qjl-s4w64-orth-center-ridge "$s,orth=1,center=1,ridge=0.05")"
  # b=128 stage 1(c) (4816 B, 5.95x), and with the 4 layers of largest held-out KL in f16 (6720 B, 4.27x)
  s1="h1b:bits=128,est=qjl,sink=4,window=64,orth=1,center=1,ridge=0.05,kl=200"
  if want s128-1c || want s128-1c-top4f16; then
    a128=$(adapter 128-qjl-s4w64-orth-center-ridge-kl "$s1")
  fi
  row s128-1c "$s1" "${a128:-}"
  want s128-1c-top4f16 && row s128-1c-top4f16 "$s1,exact=$(top 128-qjl-s4w64-orth-center-ridge-kl 4),exact_type=f16" "$a128"
fi

python3 - "$res" <<'EOF'
import json, sys, pathlib
res = pathlib.Path(sys.argv[1])
rows = {p.stem: json.loads(p.read_text()) for p in sorted(res.glob("*.json"), key=lambda p: p.stat().st_mtime)}  # in the order measured
f16 = rows.get("f16")
print("| row | cache | bytes/token | vs f16 | PPL | ΔPPL % | KLD | top-1 % | s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    b = r["bytes_per_token"]
    vs = f16["bytes_per_token"] / b if f16 else float("nan")
    d = 100 * (r["ppl"] / f16["ppl"] - 1) if f16 else float("nan")
    kl = r.get("kl", {})
    kld = kl.get("mean", 0.0) if name != "f16" else 0.0
    top = 100 * kl.get("top1_agree", 1.0) if name != "f16" else 100.0
    cal = " @" + pathlib.Path(r["calib"]).name if r.get("calib") else ""
    print(f"| {name} | `{r['cache']}`{cal} | {b:.0f} | {vs:.2f}x | {r['ppl']:.4f} | {d:+.2f} | {kld:.4f} | {top:.2f} | {r['seconds']:.0f} |")
EOF
