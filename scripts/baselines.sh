#!/usr/bin/env bash
# The quality-per-byte comparison of every cache type (issue 4): one `h1bkv compare` run per
# context on WikiText-2 with SmolLM2-135M, writing
#   docs/baselines_ctx<C>.md   the table (the command that made it on top)
#   docs/baselines_ctx<C>.svg  the plot (mean KLD against bytes per token held)
#   docs/baselines/compare_ctx<C>.json
# The calibration files come from calib/ (h1b: scripts/results.sh makes them; loki: made here
# with `h1bkv calibrate --cache loki` on State of the Union text when missing).
#   scripts/baselines.sh                      # ctx 512 (10 chunks) and 2048 (3 chunks)
#   CTXS=512 CHUNKS_512=2 scripts/baselines.sh
#   REPLOT=1 scripts/baselines.sh             # redo tables and plots from the saved JSON only
set -euo pipefail
cd "$(dirname "$0")/.."

H1BKV=${H1BKV:-build/h1bkv}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SHARED=${H1BKV_SHARED:-../shared}
TEXT=${TEXT:-$SHARED/data/wikitext-2/wiki.test.raw}
THREADS=${THREADS:-2}
CTXS=${CTXS:-"512 2048"}
CHUNKS_512=${CHUNKS_512:-10}
CHUNKS_2048=${CHUNKS_2048:-3}
TAG=smollm2-135m-q4_1
LOKI=${LOKI:-calib/$TAG.loki.json}

[ -x "$H1BKV" ] || { echo "baselines.sh: no binary $H1BKV (scripts/setup.sh, or set H1BKV=...)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "baselines.sh: no model $MODEL (scripts/get_model.sh)" >&2; exit 1; }
if [ ! -f "$LOKI" ] && [ "${REPLOT:-0}" != 1 ]; then
  "$H1BKV" calibrate -m "$MODEL" -t "$THREADS" --cache loki -o "$LOKI" \
    -f "$SHARED/data/sotu/2010_barack_obama_d.txt" -f "$SHARED/data/sotu/2015_barack_obama_d.txt"
fi

CACHES="f16;q8_0;q4_0;plain:k=q8_0,v=q4_0;kivi:bits=4;kivi:bits=2"
CACHES+=";evict:keep=0.5;evict:keep=0.25;evict:keep=0.125"
CACHES+=";loki:r=32,k=0.25@$LOKI;loki:r=16,k=0.125@$LOKI;loki:r=16,k=0.125,sink=1@$LOKI"
CACHES+=";plain:v=int4"
CACHES+=";h1b:bits=512,est=qjl,sink=4,window=64@calib/$TAG.h1b-512-qjl-s4w64.json"
CACHES+=";h1b:bits=512,est=qjl@calib/$TAG.h1b-512-qjl.json"
CACHES+=";h1b:bits=256,est=qjl@calib/$TAG.h1b-256-qjl.json"
CACHES+=";h1b:bits=128,est=qjl@calib/$TAG.h1b-128-qjl.json"
CACHES+=";h1b:bits=256@calib/$TAG.h1b-256-hamming.json"

mkdir -p docs/baselines
for C in $CTXS; do
  chunks_var=CHUNKS_$C
  N=${!chunks_var:-3}
  cmd=("$H1BKV" compare -m "$MODEL" -f "$TEXT" -c "$C" --chunks "$N" -t "$THREADS" --caches "$CACHES"
       --plot "docs/baselines_ctx$C.svg" --title "SmolLM2-135M, WikiText-2, ctx $C: KLD vs bytes"
       --json-out "docs/baselines/compare_ctx$C.json")
  echo "[baselines $(date +%H:%M:%S)] ctx $C, $N chunks" >&2
  if [ "${REPLOT:-0}" = 1 ]; then
    table=$("$H1BKV" compare --replot "docs/baselines/compare_ctx$C.json" --plot "docs/baselines_ctx$C.svg" \
            --title "SmolLM2-135M, WikiText-2, ctx $C: KLD vs bytes")
  else
    table=$(OMP_WAIT_POLICY=passive "${cmd[@]}")
  fi
  made="Made by \`scripts/baselines.sh\` ($(git rev-parse --short HEAD) on $(date -u +%Y-%m-%d)), which ran:"
  if [ "${REPLOT:-0}" = 1 ] && [ -f "docs/baselines_ctx$C.md" ]; then
    made="$(head -1 "docs/baselines_ctx$C.md" | sed "s/ Table and plot.*//") Table and plot redone from its JSON by \`h1bkv compare --replot\`."
  fi
  {
    echo "$made"
    echo
    echo '```'
    printf '%q ' "${cmd[@]}" | sed "s|$SHARED|../shared|g; s|^$H1BKV |build/h1bkv |; s| $||"
    echo
    echo '```'
    echo
    echo "$table"
  } > "docs/baselines_ctx$C.md"
done
echo "[baselines $(date +%H:%M:%S)] done: docs/baselines_ctx*.md" >&2
