# Sourced by scripts/h1b_keys.sh and scripts/h1b_qwen.sh (issue 10's adapters).
# fit_adapter FILE SPEC: fits the h1b key adapter of SPEC into FILE with `calibrate` unless FILE
# exists: on $model with $threads threads, -c 512 --chunks 8 on the text files in ${text[@]},
# running $bin. calibrate's output (with the held-out attention-KL ranking that `exact=` lists
# are taken from) and its wall time, CPU time and peak memory are kept beside it in FILE.log.
fit_adapter() {
  local f=$1 spec=$2
  [ ! -f "$f" ] || return 0
  echo "== calibrate $spec -> $f" >&2
  OMP_WAIT_POLICY=passive /usr/bin/time -v "$bin" calibrate -m "$model" -t "$threads" -c 512 --chunks 8 \
    "${text[@]}" --cache "$spec" -o "$f" > "$f.log" 2> "$f.time" || { cat "$f.log" "$f.time" >&2; return 1; }
  grep -E "Elapsed|Maximum resident|User time" "$f.time" >> "$f.log"
  rm -f "$f.time"
}
