#!/usr/bin/env bash
# `make bench`: runs the GPU benchmarks and writes docs/benchmarks.md from what they print.
#   build/bench/bench_gpu        FP16 prefill / decode of random-weight real shapes, bandwidth floor
#   build/bench/bench_hadamard   GPU Hadamard transforms (if built)
#   build/bench/bench_int8       int8 vs FP16 prefill / decode (batch 1, 16, 64), quamba2 W4A16 and W4A8, beside the peers of
#                                ../shared/bench (PyTorch, mamba_ssm), run first in the same call;
#                                writes docs/bench.json
#   bin/mambaq calib             tokens/s of the calibration on the proxies, GPU and CPU
#   build/bench/bench_calib_gpu  the GPU calibration of a random mamba-2.8b-shaped model, 512 x 512 tokens
#   tools/ref/bench_torch.py     transformers' slow pure-PyTorch path on the same shapes (only with
#                                BENCH_TRANSFORMERS=1: the peers above are the strong baselines)
# Without a GPU it says so and exits 0, leaving docs/benchmarks.md as it is.
# Environment: MQ_SHARED (default ../shared: proxies, datasets/calib.txt, models/tokenizer.json),
# BENCH_OUT (default docs/benchmarks.md), BENCH_COMMIT (recorded; default git rev-parse HEAD),
# CPU_SAMPLES (CPU calibration samples, default 16), BENCH_CMD (the command recorded), TORCH_BUDGET
# (seconds for the PyTorch baseline, default 170), CALIB_MEASURED (samples of the random mamba-2.8b
# calibration that are timed, default 512; fewer are extrapolated to 512), BENCH_KEEP (a folder for
# the raw outputs), BENCH_FROM (rewrite the document from such a folder without running anything),
# BENCH_JSON (default docs/bench.json), BENCH_PEERS (a folder with torch_decode_peer.py,
# mamba_ssm_peer.py and mssm/ or mssm.tgz: tools/peers-setup.sh makes .dev/peers, the default when
# it exists; else $MQ_SHARED/bench, whose mamba_ssm peer then needs mssm/ beside it).
set -u
cd "$(dirname "$0")/.."
OUT_MD=${BENCH_OUT:-docs/benchmarks.md}
SHARED=${MQ_SHARED:-../shared}
CPU_SAMPLES=${CPU_SAMPLES:-16}
OUT_JSON=${BENCH_JSON:-docs/bench.json}
if [ -n "${BENCH_PEERS:-}" ]; then PEERS=$BENCH_PEERS
elif [ -d .dev/peers ]; then PEERS=.dev/peers
else PEERS=$SHARED/bench; fi

if [ -n "${BENCH_FROM:-}" ]; then :  # only rewrite the document from a kept run (BENCH_KEEP)
elif ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "bench: no GPU on this machine (nvidia-smi finds none): nothing to benchmark; $OUT_MD is unchanged"
  exit 0
fi
for b in build/bench/bench_gpu build/bench/bench_int8 build/bench/bench_calib_gpu bin/mambaq; do
  [ -n "${BENCH_FROM:-}" ] || [ -x "$b" ] || { echo "bench: $b is not built (run make all)"; exit 1; }
done
log() { echo "bench: $*" >&2; }

# calibration tokens/s on the proxies, from mambaq's summary: "... in 4.1s, 62.3k tok/s on ..."
calib_row() {  # model device samples
  local m=$1 dev=$2 n=$3 out dur rate batch=1
  out=$(timeout 300 bin/mambaq calib --model "$SHARED/models/$m" --data "$SHARED/datasets/calib.txt" \
        --tokenizer "$SHARED/models/tokenizer.json" --samples "$n" --seqlen 512 --device "$dev" --quiet \
        --out "$T/$m-$dev.safetensors" --force 2>&1)
  log "$out"
  out=$(echo "$out" | grep '^calib:')
  if [ -z "$out" ]; then echo "| $m | $dev | $n x 512 | - | failed | - | |"; return; fi
  dur=$(echo "$out" | sed -n 's/.* in \([^,]*\), \([^ ]*\) tok\/s.*/\1/p')
  rate=$(echo "$out" | sed -n 's/.* in \([^,]*\), \([^ ]*\) tok\/s.*/\2/p')
  [ "$dev" = cuda ] && batch=$(echo "$out" | sed -n 's/.*, batch \([0-9]*\).*/\1/p')
  echo "| $m | $dev | $n x 512 | $batch | $dur | $rate | real weights and data (datasets/calib.txt) |"
}

# the peers of ../shared/bench into $T/peers (their JSON files; bench_int8 reads them)
run_peers() {
  mkdir -p "$T/peers"
  if ! python3 -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    log "no python3 with CUDA PyTorch: the peers do not run"; return
  fi
  for f in torch_decode_peer.py mamba_ssm_peer.py; do
    [ -f "$PEERS/$f" ] && cp "$PEERS/$f" "$T/peers/" || log "no $PEERS/$f"
  done
  if [ -d "$PEERS/mssm" ]; then cp -r "$PEERS/mssm" "$T/peers/"
  elif [ -f "$PEERS/mssm.tgz" ]; then tar -xzf "$PEERS/mssm.tgz" -C "$T/peers"; fi
  if [ -f "$T/peers/torch_decode_peer.py" ]; then
    log "PyTorch peer ($PEERS/torch_decode_peer.py)"
    OUT="$T/peers" timeout 400 python3 "$T/peers/torch_decode_peer.py" > "$T/peers/torch.out" 2>&1 ||
      log "torch_decode_peer failed: $(tail -3 "$T/peers/torch.out")"
  fi
  if [ -f "$T/peers/mamba_ssm_peer.py" ] && [ -d "$T/peers/mssm/mamba_ssm" ]; then
    log "mamba_ssm peer ($PEERS/mamba_ssm_peer.py)"
    OUT="$T/peers" timeout 400 python3 "$T/peers/mamba_ssm_peer.py" > "$T/peers/mssm.out" 2>&1 ||
      log "mamba_ssm_peer failed: $(tail -3 "$T/peers/mssm.out")"
  elif [ -f "$T/peers/mamba_ssm_peer.py" ]; then
    log "no mssm/ beside $PEERS/mamba_ssm_peer.py (tools/peers-setup.sh makes one): the mamba_ssm peer does not run"
  fi
}

# every program, its output into $T
measure() {
  log "FP16 forward (build/bench/bench_gpu)"
  timeout 600 build/bench/bench_gpu "$T/fp16.md" > "$T/fp16.out" 2>&1 || log "bench_gpu failed: $(tail -3 "$T/fp16.out")"
  if grep -q "^no GPU" "$T/fp16.out"; then  # e.g. built without CUDA
    echo "bench: $(head -1 "$T/fp16.out"); $OUT_MD is unchanged"
    exit 0
  fi
  if [ -x build/bench/bench_hadamard ]; then
    log "Hadamard (build/bench/bench_hadamard)"
    timeout 120 build/bench/bench_hadamard > "$T/had.txt" 2>&1 || log "bench_hadamard failed"
  fi
  run_peers
  log "int8 and FP16 beside the peers (build/bench/bench_int8)"
  timeout 400 build/bench/bench_int8 --peers "$T/peers" --json "$T/bench.json" > "$T/int8.md" 2> "$T/int8.err" ||
    log "bench_int8 failed: $(tail -3 "$T/int8.err")"
  : > "$T/calib.md"
  if [ -d "$SHARED/models/mamba1-proxy" ] && [ -f "$SHARED/datasets/calib.txt" ]; then
    for m in mamba1-proxy mamba2-proxy; do
      log "calib $m (GPU 512 x 512, CPU $CPU_SAMPLES x 512)"
      calib_row "$m" cuda 512 >> "$T/calib.md"
      calib_row "$m" cpu "$CPU_SAMPLES" >> "$T/calib.md"
    done
  else
    log "no proxies or datasets/calib.txt under $SHARED: proxy calibration skipped"
  fi
  log "calibration of random-weight models (build/bench/bench_calib_gpu)"
  : > "$T/calib_rand.md"
  timeout 300 build/bench/bench_calib_gpu mamba-2.8b "${CALIB_MEASURED:-512}" 512 512 8 >> "$T/calib_rand.md" 2>> "$T/calib_rand.err" ||
    log "bench_calib_gpu mamba-2.8b failed: $(tail -2 "$T/calib_rand.err")"
  timeout 300 build/bench/bench_calib_gpu mamba2-2.7b 128 512 512 8 >> "$T/calib_rand.md" 2>> "$T/calib_rand.err" ||
    log "bench_calib_gpu mamba2-2.7b failed: $(tail -2 "$T/calib_rand.err")"
  if [ "${BENCH_TRANSFORMERS:-0}" = 1 ] && python3 -c "import torch, transformers" >/dev/null 2>&1; then
    log "PyTorch + transformers baseline (tools/ref/bench_torch.py)"
    timeout $((${TORCH_BUDGET:-170} + 120)) python3 tools/ref/bench_torch.py "$T/torch.md" --budget "${TORCH_BUDGET:-170}" \
      > "$T/torch.out" 2>&1 || log "bench_torch failed: $(tail -3 "$T/torch.out")"
  else
    log "no transformers baseline columns (BENCH_TRANSFORMERS=1 and python3 with torch + transformers add them)"
  fi
}

T=$(mktemp -d)
if [ -n "${BENCH_FROM:-}" ]; then cp -r "$BENCH_FROM"/. "$T"/; else measure; fi
gpu=$(sed -n 's/^GPU: //p' "$T/fp16.md" 2>/dev/null | head -1)

# ---- docs/benchmarks.md
commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
{
  echo "# Benchmarks"
  echo
  echo "Written by \`tools/bench.sh\` (\`make bench\`); every number below comes from that one run."
  echo
  echo "- device: ${gpu:-unknown GPU}; host: $(nproc) CPU cores"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- command: \`${BENCH_CMD:-make bench}\` at commit $commit"
  [ -s "$T/torch.md" ] && echo "- baseline: $(head -1 "$T/torch.md" | sed 's/^GPU: [^(]*(//; s/)$//')"
  echo
  echo "## FP16 forward (BE_CUDA_F16, build/bench/bench_gpu)"
  echo
  echo "Random weights of the real shapes, FP16. Prefill = embedding to norm_f (no lm_head), one synchronized call,"
  echo "median. Decode = batch 1, ms per token with lm_head (mambaq: one CUDA graph per step). Floor = bytes of"
  echo "weights one decode step reads / the device-to-device copy rate measured in the same run (read + write bytes);"
  echo "floor / decode is the fraction of that bandwidth bound reached. The torch columns (only with"
  echo "BENCH_TRANSFORMERS=1) are transformers' slow pure-PyTorch path; the strong peers are in the int8 section below."
  echo
  echo "| model | weights (GB) | prefill 1x1024 ms (tok/s) | torch prefill ms | speed-up | prefill 8x1024 ms (tok/s) | decode ms/token | torch decode ms/token | speed-up | floor ms | floor / decode |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'|' -v tf="$T/torch.md" '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function ratio(a, b) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%.1fx", a / b) : "-" }
    FILENAME == tf { if (NF == 6 && $2 ~ /mamba/) { n = trim($2); tp[n] = trim($3); td[n] = trim($4) } next }
    NF == 9 && $2 ~ /mamba/ {
      n = trim($2); split(trim($4), p1, ", "); split(trim($5), p8, ", "); d = trim($6)
      t1 = (n in tp) ? tp[n] : "-"; t2 = (n in td) ? td[n] : "-"
      printf "| %s | %s | %s (%s) | %s | %s | %s (%s) | %s | %s | %s | %s | %s |\n", n, trim($3), p1[1], p1[2], t1,
             ratio(t1, p1[1]), p8[1], p8[2], d, t2, ratio(t2, d), trim($7), trim($8)
    }' $( [ -s "$T/torch.md" ] && echo "$T/torch.md") "$T/fp16.md"
  if [ -s "$T/torch.md" ]; then
    echo
    echo "The torch path, as tools/ref/bench_torch.py reports it: mamba-ssm and causal-conv1d are not installed on"
    echo "this machine, so transformers runs its slow pure-PyTorch path (no fused scan or conv kernels). Its decode"
    echo "time is (generate of 1 + N2 tokens - generate of 1 + N1 tokens) / (N2 - N1), so it includes generate's own"
    echo "per-step work; prefill is a median of up to 5 calls after a warm-up (fewer for slow cases)."
    echo
    awk -F'|' 'NF == 6 && $2 ~ /mamba/ { for (i = 2; i <= 5; i++) gsub(/^ +| +$/, "", $i); print "- " $2 ": " ($5 != "" ? $5 : $3) }' "$T/torch.md"
  fi
  echo
  echo "Where the time goes (bench_gpu, CUDA events between the ops):"
  echo
  awk -F'|' 'NF == 5' "$T/fp16.md"
  echo
  echo "## Calibration"
  echo
  echo "\`mambaq calib\` over consecutive 512-token windows of datasets/calib.txt (GPU: FP16 forward + the observers on"
  echo "the GPU, calib/gpu.h; CPU: FP32 reference forward + observers on $(nproc) cores; a smaller CPU run, since the"
  echo "rate does not depend on the sample count), and \`build/bench/bench_calib_gpu\`: every Quamba observer of a"
  echo "random-weight model over random tokens, with the same prefill calls without hooks for comparison."
  echo
  echo "| model | device | samples x seqlen | batch | time | tok/s | |"
  echo "|---|---|---|---|---|---|---|"
  cat "$T/calib.md"
  echo
  echo "| model | samples x seqlen | batch | observed activations | time | calib tok/s | forward alone | share of time in the observers |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$T/calib_rand.md"
  if grep -q '^profile:' "$T/calib_rand.err" 2>/dev/null; then
    echo
    echo "Where the GPU calibration time goes (CUDA events around the observers' launches, a few more calls):"
    echo
    sed -n 's/^profile: /- /p' "$T/calib_rand.err"
  fi
  if [ -s "$T/had.txt" ]; then
    echo
    echo "## Hadamard transforms (build/bench/bench_hadamard)"
    echo
    echo '```'
    cat "$T/had.txt"
    echo '```'
  fi
  if [ -s "$T/int8.md" ]; then
    echo
    cat "$T/int8.md"
  fi
  echo
  echo "## docs/bench.json"
  echo
  echo "The same run's decode and prefill figures, machine-readable: \`{gpu, gpu_detail, date, commit, copy_tbps,"
  echo "models: {NAME: {decode_ms: {KIND: {\"1\", \"16\", \"64\"}}, prefill_ms: {KIND: {\"1x1024\", \"8x1024\"}},"
  echo "floor_ms: {int8, fp16, w4a16, w4a8}, decode_weights_gb: {int8, fp16, w4a16, w4a8}, prefill_gemm_only_ms}}, notes}\`;"
  echo "KIND is int8, fp16, w4a16 (quamba2's int4 in_proj / out_proj, group 128, FP16 activations), w4a8 (the same"
  echo "int4 weights, int8 activations with quamba2's scales), torch_compiled_fp16,"
  echo "torch_eager_fp16 or mamba_ssm_fp16 (the peers, mamba-2.8b and mamba2-2.7b shapes)."
  echo "A peer's figure that failed or did not run is absent, with the reason in notes."
  echo
  echo "One-off measurements, before/after comparisons and what was tried: docs/performance.md."
} > "$OUT_MD.tmp" && mv "$OUT_MD.tmp" "$OUT_MD"
log "wrote $OUT_MD"
if [ -s "$T/bench.json" ]; then cp "$T/bench.json" "$OUT_JSON.tmp" && mv "$OUT_JSON.tmp" "$OUT_JSON" && log "wrote $OUT_JSON"; fi
[ -n "${BENCH_KEEP:-}" ] && cp -r "$T"/. "$BENCH_KEEP"/
rm -rf "$T"
cat "$OUT_MD"
