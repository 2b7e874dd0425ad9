#!/usr/bin/env bash
# The layer check (run by `make test`): each library folder may include only folders of lower layers
# (and itself): core -> datasets, hadamard -> ssm -> calib -> quantize -> export -> cli. Folders of one
# layer (datasets, hadamard) do not include each other either. Prints a PASS/FAIL line per folder,
# the way tests/run.sh counts them, and exits 1 on any include that goes up or sideways.
cd "$(dirname "$0")/.." || exit 1
layer() {
  case $1 in
    core) echo 0 ;; datasets|hadamard) echo 1 ;; ssm) echo 2 ;; calib) echo 3 ;; quantize) echo 4 ;;
    export) echo 5 ;; cli) echo 6 ;; *) echo -1 ;;
  esac
}
bad_total=0
for dir in core datasets hadamard ssm calib quantize export cli; do
  own=$(layer "$dir")
  bad=""
  for f in "$dir"/*.c "$dir"/*.h "$dir"/*.cu "$dir"/*.cuh; do
    [ -f "$f" ] || continue
    while IFS= read -r inc; do
      top=${inc%%/*}
      l=$(layer "$top")
      [ "$l" -lt 0 ] && continue            # a system or third-party header
      if [ "$top" != "$dir" ] && [ "$l" -ge "$own" ]; then
        bad="$bad $f includes $inc (layer $l, $dir is layer $own);"
      fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done
  if [ -n "$bad" ]; then
    echo "FAIL layers_$dir:$bad"
    bad_total=$((bad_total + 1))
  else
    echo "PASS layers_$dir"
  fi
done
exit $((bad_total > 0))
