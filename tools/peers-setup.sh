#!/usr/bin/env bash
# Prepares the benchmark peers for a GPU call: .dev/peers/ (ignored; carry it) holding
# ../shared/bench's torch_decode_peer.py and mamba_ssm_peer.py, and mssm.tgz: state-spaces/mamba's
# mamba_ssm/ package (Python + Triton only) set up as mamba_ssm_peer.py's docstring asks: its
# __init__.py emptied (it imports compiled extensions) and the Mamba3 import made optional.
# Usage: tools/peers-setup.sh SRC [OUT]   SRC: a state-spaces/mamba checkout, or its bare git
# directory (the fetch tool's /work/.mirror/state-spaces+mamba/repo); OUT default .dev/peers.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: tools/peers-setup.sh STATE_SPACES_MAMBA_CHECKOUT_OR_GIT_DIR [OUT]}
out=${2:-.dev/peers}
shared=${MQ_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/mssm"
if [ -d "$src/mamba_ssm" ]; then cp -r "$src/mamba_ssm" "$tmp/mssm/"
elif git --git-dir="$src" rev-parse HEAD >/dev/null 2>&1; then git --git-dir="$src" archive HEAD mamba_ssm | tar -x -C "$tmp/mssm"
else echo "peers-setup: $src is neither a state-spaces/mamba checkout nor its git directory" >&2; exit 1; fi
pkg=$tmp/mssm/mamba_ssm
: > "$pkg/__init__.py"
f=$pkg/models/mixer_seq_simple.py
grep -q '^from mamba_ssm.modules.mamba3 import Mamba3$' "$f" &&
  sed -i 's/^from mamba_ssm.modules.mamba3 import Mamba3$/try:\n    from mamba_ssm.modules.mamba3 import Mamba3\nexcept Exception:  # needs kernels this peer does not use\n    Mamba3 = None/' "$f"
mkdir -p "$out"
cp "$shared/bench/torch_decode_peer.py" "$shared/bench/mamba_ssm_peer.py" "$out/"
tar -czf "$out/mssm.tgz" -C "$tmp" mssm
echo "peers-setup: $out ($(du -sh "$out" | cut -f1)): the two peer scripts and mssm.tgz"
