#!/usr/bin/env bash
# Runs every test program given on the command line, shows their PASS/FAIL/SKIP lines, and ends with
# "N passed, N failed, N skipped" over all of them. A program that crashes or exits non-zero
# without reporting a failure counts as one failed test named after the program.
pass=0; fail=0; skip=0
for t in "$@"; do
  name=$(basename "$(dirname "$t")")/$(basename "$t")
  echo "== $name"
  start=$(date +%s%N)
  out=$("$t" 2>&1); rc=$?
  echo "$out" | grep -v '^# ' 
  p=$(echo "$out" | grep -c '^PASS '); f=$(echo "$out" | grep -c '^FAIL '); s=$(echo "$out" | grep -c '^SKIP ')
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $name: exited with status $rc"; f=1; fi
  echo "   ($name: $(( ($(date +%s%N) - start) / 1000000 )) ms)"
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
