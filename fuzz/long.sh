#!/usr/bin/env bash
# The long runs recorded in docs/reliability.md: each fuzzer (or those named) for RUNS executions
# (default 1,000,000, at most MAX_SECONDS each, default 3600), one after another, from its seeds and
# corpus. Prints a markdown table row per fuzzer: executions, seconds, corpus size, crashes.
# Usage: fuzz/long.sh [name...]   (names without fuzz_, e.g. config stats)
cd "$(dirname "$0")/.."
runs=${RUNS:-1000000}; max=${MAX_SECONDS:-3600}
names=("$@")
[ ${#names[@]} -gt 0 ] || for f in fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
mkdir -p build/fuzz/long build/fuzz/crashes
echo "| harness | executions | time | exec/s | corpus | crashes |"
echo "|---|---|---|---|---|---|"
for n in "${names[@]}"; do
  mkdir -p "build/fuzz/corpus/$n"
  log=build/fuzz/long/$n.log
  start=$(date +%s)
  build/fuzz/fuzz_$n -runs="$runs" -max_total_time="$max" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/crashes/long-$n-" "build/fuzz/corpus/$n" "build/fuzz/seeds/$n" > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  crashes=$(ls build/fuzz/crashes/long-$n-* 2>/dev/null | wc -l)
  echo "| fuzz_$n | ${execs:-?} | ${secs} s | $(( ${execs:-0} / (secs > 0 ? secs : 1) )) | $(ls "build/fuzz/corpus/$n" | wc -l) | $crashes (exit $rc) |"
done
