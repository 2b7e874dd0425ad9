#!/usr/bin/env bash
# On the GPU machine: build, run every GPU test program, then the whole pipeline on both proxies
# (GPU calib -> quantize -> verify, for quamba and quamba-rot) and the tokenizer speed beside HF's. Logs go to $OUT (or out/).
# Expects a copy of ../shared in $MQ_SHARED (files may be gzipped there: they are unpacked first).
set -u -o pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}; mkdir -p "$out"
tools/device-setup.sh || exit 1
: "${MQ_SHARED:?set MQ_SHARED to the shared copy}"
find "$MQ_SHARED" -name '*.gz' -exec gunzip -kf {} \;
export MQ_SHARED OMP_WAIT_POLICY=passive
make -j16 all build/tests/test_gpu_ops build/tests/test_gpu_forward build/tests/test_hadamard_cuda \
    build/tests/test_int8 build/tests/test_calib_gpu > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
tests/run.sh build/tests/test_gpu_ops build/tests/test_gpu_forward build/tests/test_hadamard_cuda \
    build/tests/test_int8 build/tests/test_calib_gpu 2>&1 | tee "$out/gpu_tests.log" | grep -E '^(FAIL|SKIP)|passed,|ms\)'
for m in mamba1-proxy mamba2-proxy; do
  echo "== pipeline $m"
  bin/mambaq calib --model "$MQ_SHARED/models/$m" --data "$MQ_SHARED/datasets/calib.txt" \
      --tokenizer "$MQ_SHARED/models/tokenizer.json" --device cuda --samples 64 --seqlen 512 --out "$out/$m.stats.safetensors" --force 2>&1 | tail -2
  bin/mambaq quantize --model "$MQ_SHARED/models/$m" --stats "$out/$m.stats.safetensors" --out "out/$m-w8a8" --force --record-paths 2>&1 | tail -2
  bin/mambaq verify --artifact "out/$m-w8a8" --data "$MQ_SHARED/datasets/valid.txt" \
      --tokenizer "$MQ_SHARED/models/tokenizer.json" --windows 32 2>&1 | tee "$out/verify-$m.txt" | tail -14
  echo "== pipeline $m, quamba-rot (same stats: the extra pass supplies the rotated statistics)"
  bin/mambaq quantize --model "$MQ_SHARED/models/$m" --stats "$out/$m.stats.safetensors" --out "out/$m-w8a8-rot" \
      --method quamba-rot --force --record-paths 2>&1 | tail -2
  bin/mambaq verify --artifact "out/$m-w8a8-rot" --data "$MQ_SHARED/datasets/valid.txt" \
      --tokenizer "$MQ_SHARED/models/tokenizer.json" --windows 32 2>&1 | tee "$out/verify-$m-rot.txt" | tail -14
done
echo "== tokenizer speed (this machine, one thread)"
for f in calib valid; do
  bin/mambaq tokenize --tokenizer "$MQ_SHARED/models/tokenizer.json" --data "$MQ_SHARED/datasets/$f.txt" --stats 2>&1 | tail -3
done
