#!/usr/bin/env bash
# Builds and runs the weight-streaming GEMM harness (dev/cuda/wstream.cu) on one sm_90 GPU (H100/H200).
#   dev/cuda/run.sh                 correctness + tuning sweep + timing table (printed last), ~1-2 min
#   QUICK=1 dev/cuda/run.sh         mamba-2.8b shapes only, fewer tuning points
#   SANITIZE=1 dev/cuda/run.sh      first compute-sanitizer memcheck + racecheck on a quick correctness pass
#   dev/cuda/run.sh --no-pdl        extra arguments go to the harness (--max-ck N, --check-only, ...)
#   dev/cuda/run.sh --cpu-selftest  no GPU needed
# When $OUT is a directory (the device runner's output folder), the log and ptxas report are copied there.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_LIB=$(cd "$(dirname "$NVCC")/.." && pwd)/lib64
BUILD=${BUILD_DIR:-build/dev}
mkdir -p "$BUILD"
t0=$(date +%s)
"$NVCC" -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -lineinfo -I. \
    -Xcompiler -O3,-march=native,-ffp-contract=off,-Wall,-Wextra -Xptxas -v \
    -o "$BUILD/wstream" dev/cuda/wstream.cu -L"$CUDA_LIB" -Xlinker -rpath -Xlinker "$CUDA_LIB" -lcublasLt -lcublas \
    2> "$BUILD/ptxas.txt" || {
    cat "$BUILD/ptxas.txt"
    exit 1
}
grep -vE "ptxas info|bytes stack frame|^\s*$" "$BUILD/ptxas.txt" || true # warnings, if any
echo "build: $(($(date +%s) - t0)) s; spills: $(grep -c 'bytes spill stores' "$BUILD/ptxas.txt") kernels reported," \
    "$(grep -E 'spill stores' "$BUILD/ptxas.txt" | grep -vc ' 0 bytes spill stores, 0 bytes spill loads') with spills"
args=("$@")
[ "${QUICK:-0}" = 1 ] && args+=(--quick)
if [ "${SANITIZE:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
    compute-sanitizer --tool memcheck --print-limit 20 "$BUILD/wstream" --check-only --quick || true
    compute-sanitizer --tool racecheck --print-limit 20 "$BUILD/wstream" --check-only --quick || true
fi
log=$BUILD/wstream.log
rc=0
if [ "${#args[@]}" -eq 0 ]; then args=(--tune); fi
"$BUILD/wstream" "${args[@]}" 2>&1 | tee "$log" || rc=$?
echo "total: $(($(date +%s) - t0)) s"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$log" "$BUILD/ptxas.txt" "$OUT/" || true; fi
exit $rc
