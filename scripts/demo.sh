#!/usr/bin/env bash
# The main job on a fresh machine: install packages, build, fetch SmolLM2-135M-Instruct (Q4_1),
# generate text with it with the f16 cache and with the best h1b cache beside it, and compare their
# WikiText-2 perplexity, KL divergence and bytes (ctx 512, first 40 chunks; q4_0, 2-bit KIVI (4860 B/token) and
# 4-bit KIVI (6300) on either side of h1b's 5760, for reference). The h1b cache, the best at >= 4x per
# token (4.00x; docs/finetune.md): 192-bit centred key sketches whose projection, query decoder and
# per-head multipliers were trained on the attention KL of 2048-token calibration chunks (stage
# 1(c)), 4-bit values, 4 exact sinks and a 128-token exact window (f16), and q4_0 keys in 6 layers
# (those of largest held-out attention KL in the 512-token, 64-token-window fit; calibration text only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/get_model.sh
model=${H1BKV_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
shared=${H1BKV_SHARED:-../shared}
fit="h1b:bits=192,est=qjl,sink=4,window=128,orth=1,center=1,ridge=0.05,kl=200"
h1b="$fit,exact=20+8+21+14+23+5,exact_type=q4"
adapter=calib/smollm2-135m-q4_1.h1b-192-qjl-s4w128-orth-center-ridge-kl-c2048.safetensors
# The adapter (4.5 MB) is not committed: fit it once (5-11 minutes on 2 cores, deterministic; the
# command of docs/finetune-runs.md, session 15).
if [ ! -f "$adapter" ]; then
  echo "== h1bkv calibrate (stage 1(c) adapter for $fit, 8 chunks of 2048 tokens)"
  build/h1bkv calibrate -m "$model" -t 2 -c 2048 --chunks 8 -f "$shared/data/tinystories/sample.txt" \
    -f "$shared/data/sotu/2010_barack_obama_d.txt" -f "$shared/data/sotu/2018_donald_j_trump_r.txt" \
    --cache "$fit" -o "$adapter"
fi
prompt="Write a short story about a robot who learns to paint."
echo "== h1bkv run (greedy, f16 cache)"
build/h1bkv run -m "$model" --chat --temp 0 -n 96 -p "$prompt"
echo
echo "== h1bkv run (greedy, $h1b with $adapter)"
build/h1bkv run -m "$model" --chat --temp 0 -n 96 -p "$prompt" --cache "$h1b" --calib "$adapter"
echo
echo "== h1bkv run, tiny model stories260K from BOS (the llama2.c reference story)"
build/h1bkv run -m "$shared/models/stories260K.gguf" -p "" --temp 0 -n 60
echo
echo "== h1bkv compare on WikiText-2 (ctx 512, ${DEMO_CHUNKS:-40} chunks): f16 beside h1b"
build/h1bkv compare -m "$model" -f "$shared/data/wikitext-2/wiki.test.raw" -c 512 --chunks "${DEMO_CHUNKS:-40}" \
  --caches "f16;q4_0;kivi:bits=2,group=128,vbits=4,vgroup=64;kivi:bits=4,group=128,vgroup=64;$h1b@$adapter"
