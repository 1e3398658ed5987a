#!/usr/bin/env bash
# Regenerates the H1B-KV quality report: docs/results.md, docs/results_ctx<C>.svg and the raw
# `h1bkv compare --json` output under docs/results/.
#
#   scripts/results.sh                  # the default grid (see the variables below)
#   CHUNKS_512=10 CHUNKS_2048=3 CAL_CHUNKS=16 BITS_2048="64 128 256 512" \
#     ESTS_2048="hamming angle qjl" scripts/results.sh   # the full grid
#   DOC_ONLY=1 scripts/results.sh       # rewrite docs/results.md from the JSON already there
#
# For every context C in CTXS, one `h1bkv compare` run on WikiText-2 (one f16 base per chunk)
# scores: f16, plain:v=int4 (int4 values, f16 keys: the reference point), and h1b:bits=B,est=E
# for B in BITS_<C> and E in ESTS_<C>, each without and with exact tiers (TIERS), each
# uncalibrated and calibrated. The calibration files are made here with `h1bkv calibrate` on
# State of the Union text (never WikiText-2) into calib/, at CAL_CTX tokens per chunk, and
# reused when an up-to-date file exists (same model id, cache options and text, at least as many
# tokens).
# A compare run is reused when docs/results/compare_ctx<C>.cmd holds the same command (FORCE=1
# reruns it). The hand-written analysis between the analysis markers of docs/results.md is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

H1BKV=${H1BKV:-build-res/h1bkv}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
CAL_TAG=${CAL_TAG:-smollm2-135m-q4_1}           # calib/<CAL_TAG>.h1b-<bits>-<est>[-s<S>w<W>].json
TEXT=${TEXT:-/work/shared/data/wikitext-2/wiki.test.raw}
SOTU=${SOTU:-/work/shared/data/sotu}
CAL_TEXT=${CAL_TEXT:-"2010_barack_obama_d.txt 2015_barack_obama_d.txt 2019_donald_j_trump_r.txt"}
CAL_CTX=${CAL_CTX:-512}
CAL_CHUNKS=${CAL_CHUNKS:-3}
THREADS=${THREADS:-2}
CTXS=${CTXS:-"512 2048"}
TIERS=${TIERS:-sink=4,window=64}                # the one exact-tier setting (h1b sink/window)
CHUNKS_512=${CHUNKS_512:-3}
CHUNKS_2048=${CHUNKS_2048:-1}
BITS_512=${BITS_512:-"64 128 256 512"}
ESTS_512=${ESTS_512:-"hamming angle qjl"}
BITS_2048=${BITS_2048:-"128 256"}
ESTS_2048=${ESTS_2048:-"qjl"}
FORCE=${FORCE:-0}
DOC_ONLY=${DOC_ONLY:-0}
OUT=docs/results
DOC=docs/results.md

need() { command -v "$1" >/dev/null || { echo "results.sh: needs $1" >&2; exit 1; }; }
need python3
[ -x "$H1BKV" ] || { echo "results.sh: no binary $H1BKV (build it, or set H1BKV=...)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "results.sh: no model $MODEL (scripts/get_model.sh)" >&2; exit 1; }
mkdir -p "$OUT" calib
log() { echo "[results $(date +%H:%M:%S)] $*" >&2; }

cal_paths=()
for f in $CAL_TEXT; do cal_paths+=("$SOTU/$f"); done
model_id=$("$H1BKV" info -m "$MODEL" --no-tensors --no-metadata | sed -n 's/.*, id \([0-9a-f]*\)).*/\1/p')

# full option string of an h1b spec, as calibrate writes it ("cache" field)
full_spec() {  # $1 = bits, $2 = est, $3 = tiers ("" or sink=S,window=W)
  local sink=0 window=0 kv
  for kv in ${3//,/ }; do case $kv in sink=*) sink=${kv#sink=} ;; window=*) window=${kv#window=} ;; esac; done
  echo "h1b:bits=$1,est=$2,T=0.1,group=0,proj=layer,seed=42,sink=$sink,window=$window"
}
short_spec() { echo "h1b:bits=$1,est=$2${3:+,$3}"; }
cal_file() {
  local suffix=""
  [ -n "$3" ] && suffix=-$(echo "$3" | sed 's/sink=\([0-9]*\)/s\1/; s/window=\([0-9]*\)/w\1/; s/,//g')
  echo "calib/$CAL_TAG.h1b-$1-$2$suffix.json"
}
cal_up_to_date() {  # $1 = file, $2 = full spec
  [ -f "$1" ] || return 1
  python3 - "$1" "$2" "$model_id" "$((CAL_CTX * CAL_CHUNKS))" "${cal_paths[@]}" <<'PY'
import json, sys
f, spec, mid, tokens, text = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
try:
    j = json.load(open(f))
except Exception:
    sys.exit(1)
ok = (j.get("cache") == spec and j.get("model_id") == mid and j.get("tokens", 0) >= tokens and
      j.get("text") == text and j.get("objective") == "kl" and j.get("granularity") == "head")
sys.exit(0 if ok else 1)
PY
}

calibrate_one() {  # $1 bits $2 est $3 tiers
  local spec file
  spec=$(short_spec "$1" "$2" "$3")
  file=$(cal_file "$1" "$2" "$3")
  if cal_up_to_date "$file" "$(full_spec "$1" "$2" "$3")"; then
    log "calibration up to date: $file"
    return
  fi
  log "calibrating $spec -> $file"
  "$H1BKV" calibrate -m "$MODEL" -t "$THREADS" -f "${cal_paths[@]}" --cache "$spec" \
    --granularity head -c "$CAL_CTX" --chunks "$CAL_CHUNKS" -o "$file" >&2
}

run_ctx() {  # $1 = ctx
  local ctx=$1 chunks bits ests caches b e t
  chunks=$(eval echo "\${CHUNKS_$ctx:-3}")
  bits=$(eval echo "\${BITS_$ctx:-256}")
  ests=$(eval echo "\${ESTS_$ctx:-qjl}")
  caches="f16;plain:v=int4"
  for e in $ests; do
    for b in $bits; do
      for t in "" "$TIERS"; do
        caches+=";$(short_spec "$b" "$e" "$t")"
        caches+=";$(short_spec "$b" "$e" "$t")@$(cal_file "$b" "$e" "$t")"
      done
    done
  done
  local cmd=("$H1BKV" compare -m "$MODEL" -f "$TEXT" -c "$ctx" --chunks "$chunks" -t "$THREADS"
    --caches "$caches" --json --plot "docs/results_ctx$ctx.svg"
    --title "SmolLM2-135M Q4_1, WikiText-2, ctx $ctx, $chunks chunks: mean KLD vs bytes/token")
  local cmdline
  cmdline=$(printf '%q ' "${cmd[@]}")
  cmdline="${cmdline% } > $OUT/compare_ctx$ctx.json"
  if [ "$FORCE" != 1 ] && [ -s "$OUT/compare_ctx$ctx.json" ] && [ -f "$OUT/compare_ctx$ctx.cmd" ] &&
    [ "$(cat "$OUT/compare_ctx$ctx.cmd")" = "$cmdline" ]; then
    log "ctx $ctx: reusing $OUT/compare_ctx$ctx.json (same command; FORCE=1 reruns)"
    return
  fi
  if [ "$DOC_ONLY" = 1 ]; then
    log "ctx $ctx: DOC_ONLY=1 and no JSON for the current command, skipped"
    return
  fi
  for e in $ests; do for b in $bits; do for t in "" "$TIERS"; do calibrate_one "$b" "$e" "$t"; done; done; done
  log "ctx $ctx: compare, $chunks chunks, $(echo "$caches" | tr ';' '\n' | wc -l) caches"
  local t0=$SECONDS
  "${cmd[@]}" > "$OUT/compare_ctx$ctx.json.tmp"
  mv "$OUT/compare_ctx$ctx.json.tmp" "$OUT/compare_ctx$ctx.json"
  echo "$cmdline" > "$OUT/compare_ctx$ctx.cmd"
  echo "$((SECONDS - t0))" > "$OUT/compare_ctx$ctx.seconds"
  git describe --always --dirty > "$OUT/compare_ctx$ctx.commit" 2>/dev/null || echo "?" > "$OUT/compare_ctx$ctx.commit"
  log "ctx $ctx: done in $((SECONDS - t0)) s"
}

for ctx in $CTXS; do run_ctx "$ctx"; done

# ---- the document -------------------------------------------------------------------------
INFO_CACHES=(f32 f16 plain:v=int4 h1b:bits=64 h1b:bits=128 h1b:bits=256 h1b:bits=512 h1b:bits=256,est=qjl
  "h1b:bits=128,est=qjl,$TIERS" "h1b:bits=256,est=qjl,$TIERS")
"$H1BKV" info --geometry 32,32,128 --contexts 8192 --caches "${INFO_CACHES[@]}" > "$OUT/info_llama2_7b.md"
"$H1BKV" info -m "$MODEL" --no-tensors --no-metadata --caches "${INFO_CACHES[@]}" > "$OUT/info_smollm2.md"
export H1BKV MODEL TEXT CAL_CTX CAL_CHUNKS THREADS CTXS TIERS CHUNKS_512 CHUNKS_2048 BITS_512 \
  ESTS_512 BITS_2048 ESTS_2048 CAL_TAG SOTU CAL_TEXT
python3 - "$DOC" "$OUT" <<'PY'
import glob, json, math, os, re, subprocess, sys

doc, out = sys.argv[1], sys.argv[2]
E = os.environ
old = open(doc).read() if os.path.exists(doc) else ""
m = re.search(r"<!-- analysis:begin -->\n(.*?)<!-- analysis:end -->", old, re.S)
analysis = m.group(1) if m else "(no written analysis yet)\n"
TARGET_DPPL, TARGET_RATIO = 3.0, 0.25

def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"

def label(row):
    c = row["cache"]
    cal = "@" in c
    spec = c.split("@")[0]
    return spec, cal

def disp(r):
    return r["cache"].split("@")[0] + (" +cal" if "@" in r["cache"] else "")

def table(path):
    return "\n".join(l for l in open(path).read().splitlines() if l.startswith("|")) + "\n"

def total_ratio(row, ctx, f16_bpt):
    return (row["bytes_per_token"] * ctx + row["fixed_bytes"]) / (f16_bpt * ctx)

L = []
w = L.append
w("# H1B-KV results: quality per byte on SmolLM2-135M\n")
w("Generated by `scripts/results.sh` (do not edit the tables by hand; the analysis section is kept "
  "across regenerations). Document written at commit `%s`, binary `%s`, model `%s`, evaluation text `%s`.\n"
  % (git("rev-parse", "--short", "HEAD"), E["H1BKV"], E["MODEL"], E["TEXT"]))
w("Speed (prefill/decode throughput of the caches) is in [speed.md](speed.md); this page is about "
  "quality and memory only.\n")
w("Each `h1bkv compare` run evaluates one f16 base per chunk and then every cache on the same chunk; "
  "PPL and KLD are over the second half of each chunk (as `ppl`). ΔPPL is relative to the f16 base. "
  "\"× f16 bytes\" is the cache's total size at the evaluated context (per-token bytes × ctx + the "
  "fixed exact tiers) over f16's; the issue's target is ΔPPL <= %.0f %% at <= %.2f× f16 bytes with no training.\n"
  % (TARGET_DPPL, TARGET_RATIO))

runs = {}
for ctx in E["CTXS"].split():
    p = f"{out}/compare_ctx{ctx}.json"
    if os.path.exists(p):
        runs[int(ctx)] = (json.load(open(p)), open(f"{out}/compare_ctx{ctx}.cmd").read().strip(),
                          open(f"{out}/compare_ctx{ctx}.seconds").read().strip()
                          if os.path.exists(f"{out}/compare_ctx{ctx}.seconds") else "?")

# ---- automatic summary
w("## Summary (computed from the tables below)\n")
for ctx, (j, _, _) in sorted(runs.items()):
    rows = j["rows"]
    f16 = next(r for r in rows if r["spec"] == "f16")
    f16_bpt = f16["bytes_per_token"]
    h = [r for r in rows if r["spec"].startswith("h1b")]
    if not h:
        continue
    ok = [r for r in rows if r["dppl_pct"] <= TARGET_DPPL and total_ratio(r, ctx, f16_bpt) <= TARGET_RATIO]
    small = [r for r in rows if total_ratio(r, ctx, f16_bpt) <= TARGET_RATIO]
    best_small = min(small, key=lambda r: r["dppl_pct"]) if small else None
    best_h = min(h, key=lambda r: r["dppl_pct"])
    w(f"- ctx {ctx} ({j['chunks']} chunks, f16 PPL {j['base_ppl']:.3f}): target met by "
      + (", ".join(f"`{disp(r)}`" for r in ok) if ok else "**no configuration**") + ". "
      + f"Best h1b: `{disp(best_h)}` ΔPPL {best_h['dppl_pct']:+.1f} % at "
      + f"{total_ratio(best_h, ctx, f16_bpt):.3f}× f16 bytes"
      + (f"; best at <= {TARGET_RATIO}× f16 bytes: `{disp(best_small)}` ΔPPL {best_small['dppl_pct']:+.1f} % "
         f"({total_ratio(best_small, ctx, f16_bpt):.3f}× f16)" if best_small else
         f"; no configuration is at <= {TARGET_RATIO}× f16 bytes at this context") + ".")
    # Pareto frontier of (total bytes, ΔPPL)
    front, best = [], math.inf
    for r in sorted(rows, key=lambda r: (total_ratio(r, ctx, f16_bpt), r["dppl_pct"])):
        if r["dppl_pct"] < best:
            front.append(r)
            best = r["dppl_pct"]
    w(f"  Pareto front (bytes ↑, ΔPPL ↓): " + " → ".join(
        f"`{disp(r)}` "
        f"({total_ratio(r, ctx, f16_bpt):.3f}×, {r['dppl_pct']:+.1f} %)" for r in front))
w("")

w("## Analysis\n")
w("<!-- analysis:begin -->")
w(analysis.rstrip("\n"))
w("<!-- analysis:end -->\n")

# ---- result tables
for ctx, (j, cmd, secs) in sorted(runs.items()):
    rows = j["rows"]
    f16_bpt = next(r for r in rows if r["spec"] == "f16")["bytes_per_token"]
    w(f"## ctx {ctx}: {j['chunks']} chunks, {j['scored']} scored tokens, f16 PPL {j['base_ppl']:.4f}\n")
    w(f"![quality per byte, ctx {ctx}](results_ctx{ctx}.svg)\n")
    cpath = f"{out}/compare_ctx{ctx}.commit"
    commit = open(cpath).read().strip() if os.path.exists(cpath) else "?"
    w("Command (raw output: [`results/compare_ctx%d.json`](results/compare_ctx%d.json); wall time %s s; "
      "source tree when it ran: `%s`):\n" % (ctx, ctx, secs, commit))
    w("```sh\n" + cmd + "\n```\n")
    w("| cache | calib | bits/elem | bytes/token | × f16 bytes @ %d | MB @ 8192 | PPL | ΔPPL %% | mean KLD | KLD p99 | top-1 %% | s/chunk |" % ctx)
    w("|---|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        spec, cal = label(r)
        w("| `%s` | %s | %.2f | %.0f | %.3f | %.2f | %.3f ± %.3f | %+.2f | %.4f | %.3f | %.2f | %.1f |" % (
            spec, "yes" if cal else "", r["bits_per_element"], r["bytes_per_token"],
            total_ratio(r, ctx, f16_bpt), (r["bytes_per_token"] * 8192 + r["fixed_bytes"]) / 1e6,
            r["ppl"], r["ppl_err"], r["dppl_pct"], r["kld_mean"], r["kld_p99"], 100 * r["top1_agree"],
            r["seconds"] / max(j["chunks"], 1)))
    w("")

# ---- calibration files
cal_files = sorted(set(r["cache"].split("@")[1] for j, _, _ in runs.values() for r in j["rows"] if "@" in r["cache"]))
if cal_files:
    w("## Calibration files\n")
    w("Made by the script (skipped when an up-to-date file exists: same model, cache options and text, "
      "at least as many tokens) with, for each cache SPEC and file FILE:\n")
    w("```sh\n%s calibrate -m %s -t %s -f %s --cache SPEC --granularity head -c %s --chunks %s -o FILE\n```\n"
      % (E["H1BKV"], E["MODEL"], E["THREADS"], " ".join(E["SOTU"] + "/" + f for f in E["CAL_TEXT"].split()),
         E["CAL_CTX"], E["CAL_CHUNKS"]))
    w("The multipliers are fitted at ctx %s and applied unchanged at every evaluated context. "
      "Mean KL(exact attention || h1b attention) over the fit samples:\n" % E["CAL_CTX"])
    w("| file | cache | tokens | KL before | KL after |")
    w("|---|---|---:|---:|---:|")
    for f in cal_files:
        c = json.load(open(f))
        w(f"| `{f}` | `{c['cache']}` | {c['tokens']} | {c['kl_before']:.4f} | {c['kl_after']:.4f} |")
    w("")

# ---- memory tables
w("## Memory\n")
w("Llama-2-7B geometry (32 layers × 32 KV heads × head dim 128) at 8192 tokens, "
  "`%s info --geometry 32,32,128 --contexts 8192 --caches ...` (the caches of the table). f16 needs 4.29 GB; int4 values alone "
  "(the value half of every h1b row) are already ~570 MB (8192 × 32 × 32 × (64 + 4) bytes), so a "
  "whole cache \"under 60 MB\" at this size is impossible with int4 values whatever the key sketch.\n"
  % E["H1BKV"])
w(table(f"{out}/info_llama2_7b.md"))
w("SmolLM2-135M (30 layers × 3 KV heads × head dim 64), `%s info -m %s --no-tensors --no-metadata --caches ...`. "
  "With head dim 64 the int4 values cost 36 bytes per layer and KV head against f16's 256 for K+V, "
  "so only h1b with bits <= 128 stays under 1/4 of f16; the exact sink/window tiers add "
  "(sink + window) f16 tokens on top:\n" % (E["H1BKV"], E["MODEL"]))
w(table(f"{out}/info_smollm2.md"))

# ---- grid
w("## Grid that ran, and the full one\n")
w("This run: " + ", ".join(f"`{k}={E[k]}`" for k in
  ["CTXS", "CHUNKS_512", "BITS_512", "ESTS_512", "CHUNKS_2048", "BITS_2048", "ESTS_2048", "TIERS",
   "CAL_CTX", "CAL_CHUNKS", "THREADS"]) + ". Every (bits, est) is run without and with "
  f"`{E['TIERS']}`, each uncalibrated and calibrated, plus f16 and `plain:v=int4`.\n")
w("The full grid (every (bits, est) at both contexts, 10 / 3 chunks, calibrations on 16 chunks as "
  "in calib/README.md); on this 2-core machine, shared with other jobs, that is several hours:\n")
w("```sh\nCHUNKS_512=10 CHUNKS_2048=3 CAL_CHUNKS=16 BITS_2048=\"64 128 256 512\" ESTS_2048=\"hamming angle qjl\" scripts/results.sh\n```")
open(doc, "w").write("\n".join(L) + "\n")
print(f"wrote {doc}", file=sys.stderr)
PY
