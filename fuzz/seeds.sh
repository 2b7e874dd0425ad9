#!/usr/bin/env bash
# Makes the fuzzers' seed corpora and data under OUT (default build/fuzz) from the real files in
# ../shared (or $MQ_SHARED) and tests/fixtures: build/fuzz/seedgen writes the tiny checkpoints, the
# real-file seeds and the data the harnesses read; bin/mambaq then calibrates and quantizes the tiny
# checkpoints for the stats and artifact seeds. Nothing here is tracked in git. Usage: seeds.sh [OUT]
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/fuzz}
shared=${MQ_SHARED:-../shared}
rm -rf "$out/seeds" "$out/data" "$out/work"
build/fuzz/seedgen base "$out" "$shared" .
w=$out/work
tok=$out/data/tokenizer.json
for m in 1 2; do
  bin/mambaq calib --model "$w/tiny$m" --data "$w/ids.bin" --samples 4 --seqlen 64 --out "$w/stats$m.safetensors" --quiet --force >/dev/null
  mkdir -p "$out/seeds/stats"
  cp "$w/stats$m.safetensors" "$out/seeds/stats/tiny$m.safetensors"
  build/fuzz/seedgen strip "$w/stats$m.safetensors" "$out/seeds/stats/tiny${m}_nohist.safetensors"
done
bin/mambaq quantize --model "$w/tiny1" --stats "$w/stats1.safetensors" --out "$w/art1n" --method naive --tokenizer "$tok" --calib "$w/ids.bin" --quiet --force >/dev/null
bin/mambaq quantize --model "$w/tiny1" --stats "$w/stats1.safetensors" --out "$w/art1q" --method quamba --weight-granularity channel \
    --tokenizer "$tok" --calib "$w/ids.bin" --quiet --force >/dev/null
bin/mambaq quantize --model "$w/tiny2" --stats "$w/stats2.safetensors" --out "$w/art2r" --method quamba-rot --quantize-head \
    --tokenizer "$tok" --calib "$w/ids.bin" --quiet --force >/dev/null
for a in art1n art1q art2r; do
  build/fuzz/seedgen pack "$w/$a" "$out/seeds/artifact/$a"
  cp "$w/$a/model.safetensors" "$out/seeds/safetensors/$a.safetensors"
  cp "$w/$a/quant_config.json" "$out/seeds/config/$a.quant_config.json"
done
for h in "$out"/seeds/*; do echo "seeds: $(basename "$h"): $(ls "$h" | wc -l) files, $(du -sh "$h" | cut -f1)"; done
