#!/usr/bin/env bash
# Runs every test program given on the command line and streams their PASS/FAIL/SKIP lines as each
# test finishes (a "== program" line first, its time after), then ends with "N passed, N failed,
# N skipped" over all of them. A program that crashes or exits non-zero without reporting a failure
# counts as one failed test named after the program.
pass=0; fail=0; skip=0
log=$(mktemp "${TMPDIR:-/tmp}/mambaq-test.XXXXXX")
trap 'rm -f "$log"' EXIT
for t in "$@"; do
  name=$(basename "$(dirname "$t")")/$(basename "$t")
  echo "== $name"
  start=$(date +%s%N)
  # the program's output goes to the log and, line by line as it comes, to the terminal
  "$t" 2>&1 | tee "$log" | grep --line-buffered -v '^# '
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $name: exited with status $rc"; f=1; fi
  echo "   ($name: $(( ($(date +%s%N) - start) / 1000000 )) ms)"
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
