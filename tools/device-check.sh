#!/usr/bin/env bash
# On the GPU machine: the checks that need a GPU, in one call. Stages (STAGES, default all but before):
#   build     make all + the GPU test programs (cJSON from the carried .deps, tools/device-setup.sh)
#   tests     every GPU test program (tests/run.sh)
#   before    BEFORE=tgz of an older tree: build its bench_int8 / bench_gpu beside ours and run both
#             (the same table before and after a change); BENCH_FILTER limits the shapes
#   bench     build/bench/bench_int8 and bench_gpu (BENCH_FILTER)
#   pipeline  GPU calib -> quantize (quamba, quamba-rot, quamba2 W8A8 and W4A8) -> verify on the proxies present
#   tasks     eval --task lambada / choice on the GPU (FP16 model, the pipeline's quamba artifact) and
#             the artifact on the CPU too (--limit 200): the GPU task path against the CPU
#   makebench `make bench` (tools/bench.sh: every benchmark and the peers of .dev/peers, made by
#             tools/peers-setup.sh): docs/benchmarks.md and docs/bench.json, copied to $OUT
# Expects a copy of ../shared in $MQ_SHARED (default .dev/shared; files may be gzipped: they are
# unpacked first). Logs go to $OUT (or out/), packed into logs.tgz at the end (the device tool
# returns few files); a short summary is printed last.
set -u -o pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}; mkdir -p "$out"; out=$(cd "$out" && pwd)
stages=${STAGES:-build tests bench pipeline}
has() { case " $stages " in *" $1 "*) return 0 ;; esac; return 1; }
export MQ_SHARED=${MQ_SHARED:-.dev/shared} OMP_WAIT_POLICY=passive
tools/device-setup.sh || exit 1
find "$MQ_SHARED" -name '*.gz' -exec gunzip -f {} \; 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
summary=$out/summary.txt; : > "$summary"
note() { echo "$*" | tee -a "$summary"; }
GPU_TESTS="build/tests/test_gpu_ops build/tests/test_gpu_forward build/tests/test_hadamard_cuda build/tests/test_int8 build/tests/test_calib_gpu build/tests/test_quamba2 build/tests/test_w4"

if has build || { has before && [ ! -x /tmp/before/build/bench/bench_int8 ]; }; then
  t0=$(date +%s)
  if has build; then
    make -j12 all $GPU_TESTS > "$out/build.log" 2>&1 && echo ok > "$out/build.rc" || echo fail > "$out/build.rc" &
  fi
  if has before && [ -n "${BEFORE:-}" ] && [ ! -x /tmp/before/build/bench/bench_int8 ]; then
    rm -rf /tmp/before && mkdir -p /tmp/before && tar xzf "$BEFORE" -C /tmp/before && cp -r .deps /tmp/before/ &&
      (cd /tmp/before && make -j4 build/bench/bench_int8 build/bench/bench_gpu > "$out/build_before.log" 2>&1) &&
      echo ok > "$out/build_before.rc" || echo fail > "$out/build_before.rc" &
  fi
  wait
  note "build: $(cat "$out/build.rc" 2>/dev/null) before: $(cat "$out/build_before.rc" 2>/dev/null) ($(( $(date +%s) - t0 )) s)"
  if has build && ! grep -q ok "$out/build.rc" 2>/dev/null; then tail -30 "$out/build.log"; exit 1; fi
fi

if has tests; then
  t0=$(date +%s)
  timeout 420 tests/run.sh $GPU_TESTS > "$out/gpu_tests.log" 2>&1
  grep -E '^(FAIL|SKIP)' "$out/gpu_tests.log" | head -20
  note "gpu tests: $(tail -1 "$out/gpu_tests.log") ($(( $(date +%s) - t0 )) s)"
fi

bench_pair() { # name: before then after, each program's table
  local f=${BENCH_FILTER:-}
  for b in bench_int8 bench_gpu; do
    if [ -x /tmp/before/build/bench/$b ] && has before; then
      case $b in bench_gpu) timeout 300 /tmp/before/build/bench/$b "$out/before_$b.md" $f > "$out/before_$b.txt" 2>&1 ;;
                 *) timeout 300 /tmp/before/build/bench/$b $f > "$out/before_$b.txt" 2>&1 ;; esac
    fi
    if has bench; then
      case $b in bench_gpu) timeout 300 build/bench/$b "$out/after_$b.md" $f > "$out/after_$b.txt" 2>&1 ;;
                 *) timeout 300 build/bench/$b $f > "$out/after_$b.txt" 2>&1 ;; esac
    fi
  done
}
if has bench || has before; then
  t0=$(date +%s)
  bench_pair
  note "bench ($(( $(date +%s) - t0 )) s):"
  for f in "$out"/before_bench_int8.txt "$out"/after_bench_int8.txt "$out"/before_bench_gpu.txt "$out"/after_bench_gpu.txt; do
    [ -s "$f" ] && { note "-- $(basename "$f")"; grep -E '^\| mamba' "$f" | tee -a "$summary"; }
  done
fi

# quantize model $1 with stats $2 into out/$1-$4 (quantize's timeout $3 s, options after $4), then
# verify it on the GPU against its CPU simulation (valid.txt, 32 windows) into the summary
quant_verify() {
  local m=$1 st=$2 tq=$3 name=$4 a=out/$1-$4
  shift 4
  timeout "$tq" bin/mambaq quantize --model "$MQ_SHARED/models/$m" --stats "$st" --out "$a" "$@" \
    --force --record-paths > "$out/quantize-$m-$name.log" 2>&1
  timeout 240 bin/mambaq verify --artifact "$a" --data "$MQ_SHARED/datasets/valid.txt" \
    --tokenizer "$MQ_SHARED/models/tokenizer.json" --windows 32 > "$out/verify-$m-$name.txt" 2>&1
  note "verify $m ${name//-w/ w} (rc $?): $(grep -E '^perplexity' "$out/verify-$m-$name.txt")"
  grep -E 'top-1|max \|logit diff' "$out/verify-$m-$name.txt" | sed 's/^ */    /' | tee -a "$summary"
}
if has pipeline; then
  for m in mamba1-proxy mamba2-proxy; do
    [ -d "$MQ_SHARED/models/$m" ] || continue
    st=$out/$m.stats.safetensors
    timeout 120 bin/mambaq calib --model "$MQ_SHARED/models/$m" --data "$MQ_SHARED/datasets/calib.txt" \
      --tokenizer "$MQ_SHARED/models/tokenizer.json" --device cuda --samples 64 --seqlen 512 --out "$st" --force > "$out/calib-$m.log" 2>&1
    note "calib $m: $(grep '^calib:' "$out/calib-$m.log" | tail -1)"
    for meth in quamba quamba-rot; do
      quant_verify "$m" "$st" 180 "$meth" --method "$meth" --percentile 99.999
    done
    # quamba2 W8A8 (clustered x scales from the GPU's per-channel absmax) and W4A8 (the int8 pass with
    # int4 in_proj / out_proj)
    for bits in w8a8 w4a8; do
      quant_verify "$m" "$st" 240 "quamba2-$bits" --method quamba2 --bits "$bits"
    done
  done
fi
if has tasks; then
  # zero-shot tasks on the GPU (batched), FP16 model and the pipeline's quamba artifact, beside the
  # CPU: the FP32 reference of accuracy_reference.json, and the artifact's CPU simulation on --limit 200
  D=$MQ_SHARED/datasets; T=$MQ_SHARED/models/tokenizer.json
  for m in mamba1-proxy mamba2-proxy; do
    [ -d "$MQ_SHARED/models/$m" ] || continue
    for t in lambada choice; do
      f=$D/lambada_1000.jsonl; [ $t = choice ] && f=$D/story_choice_valid.jsonl
      t0=$(date +%s)
      timeout 240 bin/mambaq eval "$MQ_SHARED/models/$m" --task $t --data "$f" --tokenizer "$T" --device cuda --json \
        > "$out/task-$m-$t-f16.json" 2> "$out/task-$m-$t-f16.log"
      note "task $m $t FP16 cuda (rc $?, $(( $(date +%s) - t0 )) s): $(tr -d ' \n' < "$out/task-$m-$t-f16.json" | cut -c1-400)"
      a=out/$m-quamba
      [ -d "$a" ] || continue
      t0=$(date +%s)
      timeout 240 bin/mambaq eval "$a" --task $t --data "$f" --tokenizer "$T" --device cuda --json \
        > "$out/task-$m-$t-i8.json" 2> "$out/task-$m-$t-i8.log"
      note "task $m $t quamba cuda (rc $?, $(( $(date +%s) - t0 )) s): $(tr -d ' \n' < "$out/task-$m-$t-i8.json" | cut -c1-400)"
      for dev in cuda cpu; do
        t0=$(date +%s)
        timeout 240 bin/mambaq eval "$a" --task $t --data "$f" --tokenizer "$T" --device $dev --limit 200 --json \
          > "$out/task-$m-$t-i8-200-$dev.json" 2> "$out/task-$m-$t-i8-200-$dev.log"
        note "task $m $t quamba $dev --limit 200 (rc $?, $(( $(date +%s) - t0 )) s): $(tr -d ' \n' < "$out/task-$m-$t-i8-200-$dev.json" | cut -c1-400)"
      done
    done
  done
fi
if has makebench; then
  t0=$(date +%s)
  # the device copy's git metadata can be older than its tree: the commit written here before the call
  # (git rev-parse --short HEAD > .dev/commit) names the tree that was measured
  [ -z "${BENCH_COMMIT:-}" ] && [ -s .dev/commit ] && export BENCH_COMMIT=$(cat .dev/commit)
  BENCH_CMD="STAGES=makebench tools/device-check.sh (make bench)" timeout 580 make bench > "$out/make_bench.log" 2>&1
  note "make bench: rc $? ($(( $(date +%s) - t0 )) s)"
  grep '^bench:' "$out/make_bench.log" | tail -12 | tee -a "$summary"
  cp docs/benchmarks.md docs/bench.json "$out/" 2>/dev/null
fi
(cd "$out" && files=$(ls | grep -Ev '^(logs.tgz|summary.txt|benchmarks.md|bench.json)$') &&
  [ -n "$files" ] && tar czf logs.tgz $files && rm -rf $files)
echo "==== summary"
cat "$summary"
