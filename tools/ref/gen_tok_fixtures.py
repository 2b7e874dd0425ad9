# Dev tool, run on the device machine only (it has `tokenizers`): writes the tokenizer parity
# fixtures (ids as little-endian uint16, gzip) and times HF tokenizers single-threaded.
# Usage: python3 tools/ref/gen_tok_fixtures.py TOKENIZER_JSON OUT_DIR TEXT...
import gzip, json, os, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer
import tokenizers
tok = Tokenizer.from_file(sys.argv[1])
out = sys.argv[2]
report = {"tokenizers_version": tokenizers.__version__, "files": {}}
for path in sys.argv[3:]:
    text = open(path, encoding="utf-8", newline="").read()
    ids = tok.encode(text, add_special_tokens=False).ids
    t = []
    for _ in range(3):
        t0 = time.perf_counter(); tok.encode(text, add_special_tokens=False); t.append(time.perf_counter() - t0)
    name = os.path.basename(path)
    assert max(ids) < 65536
    with gzip.open(os.path.join(out, name + ".ids.u16.gz"), "wb", 9) as f:
        f.write(b"".join(i.to_bytes(2, "little") for i in ids))
    dec = tok.decode(ids, skip_special_tokens=False)
    nbytes = len(text.encode("utf-8"))
    report["files"][name] = {"bytes": nbytes, "tokens": len(ids), "roundtrip": dec == text,
                             "median_s": sorted(t)[1], "MB_per_s": nbytes / 1e6 / sorted(t)[1]}
    print(name, report["files"][name], flush=True)
json.dump(report, open(os.path.join(out, "hf_tokenizers_report.json"), "w"), indent=1)
