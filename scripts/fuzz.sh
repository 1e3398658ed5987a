#!/usr/bin/env bash
# Fuzzes the input parsers with libFuzzer + ASan + UBSan for a bounded time in total:
#   fuzz_gguf        the GGUF reader (fuzz/fuzz_gguf.cpp)                      40 % of the time
#   fuzz_cache_spec  the cache-spec parser and the caches it builds            15 %
#   fuzz_calib_json  the h1b calibration, Loki basis and adapter loaders      15 %
#   fuzz_tokenizer   the tokenizers (stories260K SPM, SmolLM2 BPE) on any bytes 15 %
#   fuzz_serve_request  the server's OpenAI request parser (serve/api.h)      15 %
#   scripts/fuzz.sh            # 60 s in all;   FUZZ_SECONDS=600 scripts/fuzz.sh for longer
#   FUZZ_TARGETS="fuzz_tokenizer" scripts/fuzz.sh   # one target, all the time
# Builds the fuzz targets with clang in build-fuzz, seeds a corpus per target (tiny valid GGUF
# files made here plus the first 64 KiB of stories260K.gguf; valid specs; small JSON files; text),
# and exits non-zero when a fuzzer finds a crash, UB, leak, OOM (> 2 GiB) or a timeout; the
# reproducer lands in build-fuzz/artifacts/<target>/. Replay one with: build-fuzz/<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
shared=${H1BKV_SHARED:-../shared}
read -r -a targets <<< "${FUZZ_TARGETS:-fuzz_gguf fuzz_cache_spec fuzz_calib_json fuzz_tokenizer fuzz_serve_request}"

# -O1 with line tables only: the instrumented build compiles several times faster than -O2 -g
CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DH1BKV_FUZZ=ON -DH1BKV_TESTS=OFF -DH1BKV_BENCH=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"

seeds="$build/seeds/fuzz_gguf"
rm -rf "$build/seeds"
mkdir -p "$seeds" "$build/seeds/fuzz_cache_spec" "$build/seeds/fuzz_calib_json" "$build/seeds/fuzz_tokenizer" \
  "$build/seeds/fuzz_serve_request"
if [ -f "$shared/models/stories260K.gguf" ]; then
  head -c 65536 "$shared/models/stories260K.gguf" > "$seeds/stories260K-head64k.gguf"
  head -c 1024 "$shared/models/stories260K.gguf" > "$seeds/stories260K-head1k.gguf"
fi
# Tiny valid files written field by field (the same layout as tests/io/gguf_builder.h).
python3 - "$seeds" <<'PY'
import struct, sys, os
out = sys.argv[1]
def s(x): x = x.encode(); return struct.pack('<Q', len(x)) + x
def kv(key, t, payload): return s(key) + struct.pack('<I', t) + payload
def gguf(version, kvs, tensors, align=32):
    # tensors: (name, dims, type, nbytes); offsets are laid out aligned, data is a byte pattern
    head = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs)) + b''.join(kvs)
    off, infos, data = 0, b'', []
    for name, dims, typ, nbytes in tensors:
        infos += s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
        infos += struct.pack('<IQ', typ, off)
        data.append((off, bytes((i * 7 + 1) & 255 for i in range(nbytes))))
        off = (off + nbytes + align - 1) // align * align
    img = bytearray(head + infos)
    if tensors:
        base = (len(img) + align - 1) // align * align
        img += bytes(base - len(img))
        for o, d in data:
            img += bytes(base + o - len(img)) + d
    return bytes(img)
all_types = [
    kv('general.architecture', 8, s('llama')), kv('a.u8', 0, b'\xc8'), kv('a.i8', 1, b'\xfb'),
    kv('a.u16', 2, struct.pack('<H', 65000)), kv('a.i16', 3, struct.pack('<h', -3)),
    kv('a.u32', 4, struct.pack('<I', 7)), kv('a.i32', 5, struct.pack('<i', -7)),
    kv('a.f32', 6, struct.pack('<f', 0.5)), kv('a.bool', 7, b'\x01'),
    kv('a.u64', 10, struct.pack('<Q', 1 << 40)), kv('a.i64', 11, struct.pack('<q', -1)),
    kv('a.f64', 12, struct.pack('<d', 1.25)),
    kv('a.arr_i32', 9, struct.pack('<IQ', 5, 3) + struct.pack('<3i', 1, -2, 3)),
    kv('a.arr_str', 9, struct.pack('<IQ', 8, 2) + s('x') + s('')),
]
tensors = [('a.weight', [4, 3], 0, 48), ('b.weight', [64, 2], 2, 72), ('c.weight', [8], 1, 16)]
files = {
    'v3_all_types.gguf': gguf(3, all_types, tensors),
    'v2_all_types.gguf': gguf(2, all_types, tensors),
    'v3_align64.gguf': gguf(3, [kv('general.alignment', 4, struct.pack('<I', 64))], tensors, 64),
    'v3_align1.gguf': gguf(3, [kv('general.alignment', 4, struct.pack('<I', 1))], tensors[:1], 1),
    'v3_meta_only.gguf': gguf(3, all_types[:3], []),
    'v3_empty.gguf': gguf(3, [], []),
    'v3_q8_k4.gguf': gguf(3, [], [('q', [32, 1, 1, 2], 8, 68), ('k', [256], 12, 144)]),
}
for name, data in files.items():
    with open(os.path.join(out, name), 'wb') as f: f.write(data)
PY

# Valid cache specs of every type, some with every option.
printf '%s\n' f16 f32 q8_0 q4_0 plain:k=f16,v=int4 h1b:bits=64 h1b:bits=256,est=qjl,T=2 \
  h1b:bits=128,group=32,proj=head,seed=3,sink=4,window=16 kivi:bits=2 kivi:bits=4,group=32 \
  evict:keep=0.25 evict:keep=8 loki:r=2,k=0.5 loki:r=4,k=3,sink=1 |
  while read -r spec; do printf '%s' "$spec" > "$build/seeds/fuzz_cache_spec/${spec//[:=,]/_}"; done
# A calibration and a Loki basis for the fuzzer's geometry (2 layers, 4 heads, 2 KV heads, dim 8).
python3 - "$build/seeds/fuzz_calib_json" <<'PY'
import base64, json, os, struct, sys
out = sys.argv[1]
def b64(xs): return base64.b64encode(struct.pack('<%df' % len(xs), *xs)).decode()
calib = {"format": "h1bkv-calib", "version": 1, "model_id": "", "model": "m.gguf",
         "cache": "h1b:bits=64", "granularity": "head", "objective": "kl", "text": ["t.txt"],
         "tokens": 64, "mult": [[1.0, 1.1, 0.9, 1.2], [1.0, 1.0, 1.0, 1.0]],
         "kl_before": 0.2, "kl_after": 0.1}
eye = [1.0 if i == j else 0.0 for i in range(8) for j in range(8)]
loki = {"format": "h1bkv-loki-basis", "version": 1, "model_id": "", "model": "m.gguf",
        "n_layer": 2, "n_kv_head": 2, "head_dim": 8, "text": ["t.txt"], "tokens": 64,
        "centered": True, "explained_mean": [0.125 * (i + 1) for i in range(8)],
        "basis": b64(eye * 4), "mean": b64([0.0] * 32), "explained": b64([0.125 * (i % 8 + 1) for i in range(32)])}
for name, j in (("calib.json", calib), ("loki.json", loki)):
    with open(os.path.join(out, name), "w") as f: json.dump(j, f)
# an adapter (safetensors): k_mean of layer 0, temperature
data = struct.pack('<16f', *[0.1 * i for i in range(16)]) + struct.pack('<f', 0.5)
head = json.dumps({"blk.0.k_mean": {"dtype": "F32", "shape": [2, 8], "data_offsets": [0, 64]},
                   "temperature": {"dtype": "F32", "shape": [1], "data_offsets": [64, 68]},
                   "__metadata__": {"format": "h1bkv-adapter", "version": "1", "model_id": "",
                                    "cache": "h1b:bits=64,center=1", "stage": "0", "tokens": "64"}}).encode()
with open(os.path.join(out, "adapter.safetensors"), "wb") as f: f.write(struct.pack('<Q', len(head)) + head + data)
PY
# Text: plain, multilingual, control-token markup, invalid UTF-8.
tok_seeds="$build/seeds/fuzz_tokenizer"
printf '\000Once upon a time, there was a little girl.' > "$tok_seeds/plain"
printf '\001<|im_start|>user\nHi <|im_end|>\n\t  x = 1e9;' > "$tok_seeds/chatml"
printf '\000na\303\257ve caf\303\251 \346\227\245\346\234\254 \360\237\230\200 \316\261\316\262' > "$tok_seeds/unicode"
printf '\001abc\377\376 \300\200' > "$tok_seeds/invalid"
[ -f "$shared/data/tinystories/sample.txt" ] && head -c 2000 "$shared/data/tinystories/sample.txt" > "$tok_seeds/sample"
# Request bodies: a chat and a completion with every field, and broken ones.
req_seeds="$build/seeds/fuzz_serve_request"
printf '%s' '{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":3,"seed":9,"stop":["a","b"],"stream":true,"stream_options":{"include_usage":true}}' > "$req_seeds/chat"
printf '%s' '{"prompt":["Once upon a time"],"max_tokens":16,"stop":"\n","n":1}' > "$req_seeds/completion"
printf '%s' '{"messages":[],"max_tokens":0,"seed":-1,"temperature":1e999}' > "$req_seeds/bad"

# Time per target: fuzz_gguf 40 %, the others share the rest (all of it when it runs alone).
share() {
  if [ ${#targets[@]} -eq 1 ]; then echo "$seconds"
  elif [ "$1" = fuzz_gguf ]; then echo $(( seconds * 2 / 5 ))
  else echo $(( (seconds - seconds * 2 / 5) / (${#targets[@]} - 1) )); fi
}
failed=0
for t in "${targets[@]}"; do
  s=$(share "$t")
  corpus="$build/corpus/$t" artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [ "$t" = fuzz_gguf ] && dict=(-dict=fuzz/gguf.dict)
  echo "$t: ${s}s, corpus $corpus, seeds $build/seeds/$t ($(ls "$build/seeds/$t" | wc -l) files)"
  # -timeout: one input taking > 10 s is a hang; -rss_limit_mb / -malloc_limit_mb: huge allocations.
  set +e
  "$build/$t" "$corpus" "$build/seeds/$t" "${dict[@]}" -max_total_time="$s" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" > "$build/$t.log" 2>&1
  rc=$?
  set -e
  # the seed-loading summary, the last progress lines and the final stats (full log: $t.log)
  grep -E 'INITED|DONE|ERROR|SUMMARY|^stat::|Test unit written' "$build/$t.log" || true
  grep -E '^#[0-9]+' "$build/$t.log" | tail -n 2 || true
  if [ "$rc" -ne 0 ]; then
    echo "$t FAILED (exit $rc); reproducer(s) in $artifacts/:" >&2
    ls -l "$artifacts" >&2
    # the report (a CI log is all there is to read there): the first frames and the input in base64
    sed -n '/ERROR: /,/SUMMARY: /p' "$build/$t.log" | grep -vE 'libFuzzer|_start|std::__invoke' | head -n 25 >&2 || true
    grep -m 3 '^Base64: ' "$build/$t.log" >&2 || true
    failed=1
  else
    echo "$t: no crash in ${s}s"
  fi
done
exit "$failed"
