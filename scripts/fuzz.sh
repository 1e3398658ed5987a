#!/usr/bin/env bash
# Fuzzes the GGUF reader (fuzz/fuzz_gguf.cpp) with libFuzzer + ASan + UBSan for a bounded time.
#   scripts/fuzz.sh            # 60 s;   FUZZ_SECONDS=600 scripts/fuzz.sh for longer
# Builds only the fuzz target with clang in build-fuzz, seeds a corpus (tiny valid GGUF files
# made here, plus the first 64 KiB of stories260K.gguf when the shared models are present),
# and exits non-zero when the fuzzer finds a crash, UB, leak, OOM (> 2 GiB) or a timeout; the
# reproducer lands in build-fuzz/artifacts/. Replay one with: build-fuzz/fuzz_gguf <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
shared=${H1BKV_SHARED:-../shared}

CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DH1BKV_FUZZ=ON -DH1BKV_TESTS=OFF -DH1BKV_BENCH=OFF >/dev/null
cmake --build "$build" --target fuzz_gguf -j"$(nproc)"

seeds="$build/seeds" corpus="$build/corpus" artifacts="$build/artifacts"
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
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

echo "fuzz_gguf: ${seconds}s, corpus $corpus, seeds $seeds ($(ls "$seeds" | wc -l) files)"
# -timeout: one input taking > 10 s is a hang; -rss_limit_mb / -malloc_limit_mb: huge allocations.
set +e
"$build/fuzz_gguf" "$corpus" "$seeds" -dict=fuzz/gguf.dict -max_total_time="$seconds" \
  -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" > "$build/fuzz.log" 2>&1
rc=$?
set -e
# the seed-loading summary, the last progress lines and the final stats (full log: fuzz.log)
grep -E 'INITED|DONE|ERROR|SUMMARY|^stat::|Test unit written' "$build/fuzz.log" || true
grep -E '^#[0-9]+' "$build/fuzz.log" | tail -n 3 || true
if [ "$rc" -ne 0 ]; then
  echo "fuzz_gguf FAILED (exit $rc); reproducer(s) in $artifacts/:" >&2
  ls -l "$artifacts" >&2
  exit "$rc"
fi
echo "fuzz_gguf: no crash in ${seconds}s"
