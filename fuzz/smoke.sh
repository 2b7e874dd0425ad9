#!/usr/bin/env bash
# Runs every fuzzer (build/fuzz/fuzz_*, made by `make fuzz`) for FUZZ_SECONDS (default 10) from its
# seeds and its growing corpus, one line each for tests/run.sh: PASS (with the executions), FAIL
# (the sanitizer's summary and the input saved under build/fuzz/crashes/), or SKIP when clang with
# libFuzzer is not installed. `smoke.sh --available` only says (exit status) whether it is.
cd "$(dirname "$0")/.."
cc=${FUZZ_CC:-clang}
available() {
  local d
  d=$(mktemp -d) || return 1
  printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' > "$d/t.c"
  "$cc" -fsanitize=fuzzer,address,undefined "$d/t.c" -o "$d/t" >/dev/null 2>&1
  local rc=$?
  rm -rf "$d"
  return $rc
}
if [ "${1:-}" = --available ]; then available; exit $?; fi
secs=${FUZZ_SECONDS:-10}
have=1; available || have=0
fail=0
mkdir -p build/fuzz/crashes
for src in fuzz/fuzz_*.c; do
  h=$(basename "$src" .c)
  bin=build/fuzz/$h
  if [ ! -x "$bin" ] || [ ! -f build/fuzz/seeds.stamp ]; then
    if [ $have = 0 ]; then echo "SKIP $h: $cc with libFuzzer (-fsanitize=fuzzer) is not installed; apt-get install clang"
    elif [ ! -f "${MQ_SHARED:-../shared}/models/tokenizer.json" ]; then echo "SKIP $h: no seeds without ../shared (set MQ_SHARED)"
    else echo "FAIL $h: not built (see make fuzz)"; fail=1; fi
    continue
  fi
  name=${h#fuzz_}
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  log=build/fuzz/$h.smoke.log
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/crashes/$h-" "$corpus" "build/fuzz/seeds/$name" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    echo "PASS $h (${execs:-?} executions in ${secs} s, corpus $(ls "$corpus" | wc -l))"
  else
    why=$(grep -m1 -E 'SUMMARY|ERROR: libFuzzer|runtime error|deadly signal' "$log")
    saved=$(grep -o 'Test unit written to [^ ]*' "$log" | head -1 | sed 's/Test unit written to //')
    echo "FAIL $h: ${why:-exit status $rc} (input: ${saved:-none}; log: $log)"
    fail=1
  fi
done
exit $fail
