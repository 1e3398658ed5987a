#!/usr/bin/env bash
# The main job on a fresh machine: install packages, build, fetch SmolLM2-135M-Instruct (Q4_1),
# generate text with it, and measure its WikiText-2 perplexity (ctx 512, f16 cache, first 40 chunks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/get_model.sh
model=${H1BKV_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
shared=${H1BKV_SHARED:-../shared}
echo "== h1bkv run (greedy, f16 cache)"
build/h1bkv run -m "$model" --chat --temp 0 -n 96 \
  -p "Write a short story about a robot who learns to paint."
echo
echo "== h1bkv run, tiny model stories260K from BOS (the llama2.c reference story)"
build/h1bkv run -m "$shared/models/stories260K.gguf" -p "" --temp 0 -n 60
echo
echo "== h1bkv ppl on WikiText-2 (ctx 512, f16 cache, ${DEMO_CHUNKS:-40} chunks)"
build/h1bkv ppl -m "$model" -f "$shared/data/wikitext-2/wiki.test.raw" -c 512 --chunks "${DEMO_CHUNKS:-40}"
