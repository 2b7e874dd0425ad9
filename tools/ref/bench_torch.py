#!/usr/bin/env python3
"""PyTorch + transformers baseline for tools/bench.sh (a dev tool for the GPU machine, never part of
mambaq): random-weight MambaForCausalLM / Mamba2ForCausalLM of the shapes tests/bench_gpu.c times
(mamba-130m, mamba-1.4b, mamba-2.8b, mamba2-2.7b), FP16 on the GPU, and the same two measurements:

  prefill 1 x 1024 tokens: model.backbone(ids) (embedding to norm_f, no lm_head, as bench_gpu);
  decode per token at batch 1: model.generate with the cache, greedy, lm_head included, timed as
      (time of 1 + N2 new tokens - time of 1 + N1 new tokens) / (N2 - N1), so the prompt's prefill
      and generate's set-up cancel out.

Medians of repeats with torch.cuda.synchronize() around every timed call; slow cases get fewer
repeats. mamba-ssm and causal-conv1d are not installed on that machine, so transformers runs its
slow (pure PyTorch) path: Mamba1 through the config's default scan (torch's associative_scan when
MambaConfig.use_associative_scan, else a Python loop over time steps), Mamba2 through its chunked
torch_forward. The path taken is printed. A time budget skips what would not fit.

Usage: python3 tools/ref/bench_torch.py [OUT.md] [--budget SECONDS]
Prints a markdown table (and writes it to OUT.md) with one row per model:
| model | torch prefill 1x1024 (ms) | torch decode b=1 (ms/token) | torch path |
"""
import math
import os
import statistics
import sys
import time

SHAPES = [  # name, arch, d_model, n_layer, d_state, head_dim, vocab (as tests/bench_gpu.c)
    ("mamba-130m", 1, 768, 24, 16, 0, 50280),
    ("mamba2-2.7b", 2, 2560, 64, 128, 64, 50288),
    ("mamba-1.4b", 1, 2048, 48, 16, 0, 50280),
    ("mamba-2.8b", 1, 2560, 64, 16, 0, 50280),
]
ORDER = ["mamba-130m", "mamba-1.4b", "mamba-2.8b", "mamba2-2.7b"]  # rows as bench_gpu prints them


def main():
    args = sys.argv[1:]
    budget = 170.0
    if "--budget" in args:
        i = args.index("--budget")
        budget = float(args[i + 1])
        del args[i:i + 2]
    out = args[0] if args else None
    t_start = time.time()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, Mamba2Config, MambaConfig

    transformers.logging.set_verbosity_error()
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)

    def left():
        return budget - (time.time() - t_start)

    def timed(fn, reps):
        ts = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)

    def fast_path_note(arch):
        try:
            if arch == 1:
                from transformers.models.mamba import modeling_mamba as mm
            else:
                from transformers.models.mamba2 import modeling_mamba2 as mm
            fast = bool(getattr(mm, "is_fast_path_available", False))
        except Exception:  # noqa: BLE001 (only a label)
            fast = False
        return "fast path (mamba-ssm kernels)" if fast else "slow path (mamba-ssm / causal-conv1d not installed)"

    rows = {}
    for name, arch, d, n_layer, d_state, head_dim, vocab in SHAPES:
        if left() < 20:
            rows[name] = ("skipped (time budget)", "skipped", "")
            continue
        t_model = time.time()
        try:
            if arch == 1:
                cfg = MambaConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=n_layer, state_size=d_state,
                                  expand=2, conv_kernel=4, use_bias=False, use_conv_bias=True,
                                  time_step_rank=math.ceil(d / 16), tie_word_embeddings=True)
                scan = ("torch associative_scan" if getattr(cfg, "use_associative_scan", False)
                        else "sequential scan over time (Python loop)")
            else:
                cfg = Mamba2Config(vocab_size=vocab, hidden_size=d, num_hidden_layers=n_layer, state_size=d_state,
                                   head_dim=head_dim, num_heads=2 * d // head_dim, expand=2, n_groups=1,
                                   conv_kernel=4, chunk_size=256, use_bias=False, use_conv_bias=True,
                                   tie_word_embeddings=True)
                scan = "chunked torch_forward (SSD in PyTorch ops)"
            cfg.eos_token_id = None
            cfg.pad_token_id = 0
            with torch.device(dev):
                try:
                    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
                except TypeError:
                    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float16)
            model = model.to(dev, torch.float16).eval()
            path = f"{fast_path_note(arch)}; {scan}; transformers {transformers.__version__}, torch {torch.__version__}"
            g = torch.Generator(device="cpu").manual_seed(0)
            ids = torch.randint(0, vocab, (1, 1024), generator=g).to(dev)
            prompt = ids[:, :1]
            with torch.inference_mode():
                t0 = time.time()
                model.backbone(input_ids=ids)                        # warm-up (and any compilation)
                torch.cuda.synchronize()
                warm = time.time() - t0
                reps = 5 if warm < 0.5 else 3 if warm < 3 else 1
                prefill = timed(lambda: model.backbone(input_ids=ids), reps)

                def gen(n):
                    return model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                          use_cache=True, pad_token_id=0, eos_token_id=None)

                gen(2)                                               # warm-up
                t1 = timed(lambda: gen(1), 1)
                n1, n2 = 8, 8 + (32 if t1 < 200 else 16)
                reps = 3 if left() > 60 else 1
                a = timed(lambda: gen(n1), reps)
                b = timed(lambda: gen(n2), reps)
                decode = (b - a) / (n2 - n1)
            rows[name] = (f"{prefill:.1f}", f"{decode:.2f}", path)
            print(f"{name}: prefill {prefill:.1f} ms (warm-up {warm:.1f} s), decode {decode:.2f} ms/token "
                  f"({time.time() - t_model:.0f} s)", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 (report and go on with the next model)
            rows[name] = ("failed", "failed", f"{type(e).__name__}: {str(e)[:160]}")
            print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            model = None
            torch.cuda.empty_cache()

    lines = [f"GPU: {gpu} (PyTorch {torch.__version__}, transformers {transformers.__version__})", "",
             "| model | torch prefill 1x1024 (ms) | torch decode b=1 (ms/token) | torch path |", "|---|---|---|---|"]
    for name in ORDER:
        p, dcd, path = rows.get(name, ("-", "-", ""))
        lines.append(f"| {name} | {p} | {dcd} | {path} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(f"bench_torch: {time.time() - t_start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
