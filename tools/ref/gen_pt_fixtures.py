# Dev tool (needs torch; Debian's python3-torch is enough): writes tiny random Mamba checkpoints in
# the pickle format of torch.save (pytorch_model.bin), as the original state-spaces checkpoints ship,
# plus expect.json (dtype, shape, sum, first values per tensor) that tests/test_load.c checks.
# Usage: /usr/bin/python3 tools/ref/gen_pt_fixtures.py tests/fixtures/pt
import collections, json, os, sys
import torch

out = sys.argv[1]
torch.manual_seed(0)


def mamba1(d=16, layers=2, vocab=40, di=32, n=8, r=3, k=4):
    sd = collections.OrderedDict()
    emb = torch.randn(vocab, d) * 0.5
    sd["backbone.embedding.weight"] = emb
    for i in range(layers):
        p = f"backbone.layers.{i}."
        sd[p + "mixer.A_log"] = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1) + 0.01 * i
        sd[p + "mixer.D"] = torch.ones(di) + 0.1 * torch.randn(di)
        sd[p + "mixer.in_proj.weight"] = torch.randn(2 * di, d) * 0.2
        sd[p + "mixer.conv1d.weight"] = torch.randn(di, 1, k) * 0.3
        sd[p + "mixer.conv1d.bias"] = torch.randn(di) * 0.1
        sd[p + "mixer.x_proj.weight"] = torch.randn(r + 2 * n, di) * 0.2
        sd[p + "mixer.dt_proj.weight"] = torch.randn(di, r) * 0.3
        sd[p + "mixer.dt_proj.bias"] = torch.randn(di) * 0.1 - 3
        sd[p + "mixer.out_proj.weight"] = torch.randn(d, di) * 0.2
        sd[p + "norm.weight"] = torch.ones(d) + 0.1 * torch.randn(d)
    sd["backbone.norm_f.weight"] = torch.ones(d) + 0.1 * torch.randn(d)
    sd["lm_head.weight"] = emb  # tied: one storage under two names, as MambaLMHeadModel.state_dict() has
    cfg = {"d_model": d, "n_layer": layers, "vocab_size": 37, "ssm_cfg": {"d_state": n, "dt_rank": r},
           "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}
    return sd, cfg


def mamba2(d=16, layers=2, vocab=48, h=4, hd=8, g=2, n=8, k=4):
    di = h * hd
    sd = collections.OrderedDict()
    sd["backbone.embedding.weight"] = torch.randn(vocab, d) * 0.5
    for i in range(layers):
        p = f"backbone.layers.{i}."
        sd[p + "mixer.dt_bias"] = torch.randn(h) * 0.5
        sd[p + "mixer.A_log"] = torch.log(torch.arange(1, h + 1, dtype=torch.float32))
        sd[p + "mixer.D"] = torch.ones(h)
        sd[p + "mixer.in_proj.weight"] = torch.randn(2 * di + 2 * g * n + h, d) * 0.2
        sd[p + "mixer.conv1d.weight"] = torch.randn(di + 2 * g * n, 1, k) * 0.3
        sd[p + "mixer.conv1d.bias"] = torch.randn(di + 2 * g * n) * 0.1
        sd[p + "mixer.norm.weight"] = torch.ones(di) + 0.1 * torch.randn(di)
        sd[p + "mixer.out_proj.weight"] = torch.randn(d, di) * 0.2
        sd[p + "norm.weight"] = torch.ones(d) + 0.1 * torch.randn(d)
    sd["backbone.norm_f.weight"] = torch.ones(d) + 0.1 * torch.randn(d)
    sd["lm_head.weight"] = torch.randn(vocab, d) * 0.5
    cfg = {"d_model": d, "n_layer": layers, "vocab_size": 45, "tie_embeddings": False,
           "ssm_cfg": {"layer": "Mamba2", "d_state": n, "headdim": hd, "ngroups": g},
           "rms_norm": True, "pad_vocab_size_multiple": 16}
    return sd, cfg


def expect(sd):
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    return {k: {"dtype": names[v.dtype], "shape": list(v.shape), "sum": float(v.double().sum()),
                "head": [float(x) for x in v.flatten()[:4].float()]} for k, v in sd.items()}


def write(name, sd, cfg, dtype, shards=1):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    sd = collections.OrderedDict((k, v.to(dtype)) for k, v in sd.items())
    if "lm_head.weight" in sd and cfg.get("tie_embeddings", True):
        sd["lm_head.weight"] = sd["backbone.embedding.weight"]
    if shards == 1:
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    else:  # the layout transformers writes: pytorch_model-0000i-of-0000n.bin + index
        keys, wm = list(sd), {}
        for s in range(shards):
            part = collections.OrderedDict((k, sd[k]) for k in keys[s::shards])
            fn = f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
            torch.save(part, os.path.join(d, fn))
            wm.update({k: fn for k in part})
        json.dump({"metadata": {}, "weight_map": dict(sorted(wm.items()))},
                  open(os.path.join(d, "pytorch_model.bin.index.json"), "w"), indent=1)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    json.dump({"torch": torch.__version__, "tensors": expect(sd)}, open(os.path.join(d, "expect.json"), "w"), indent=1)


sd1, cfg1 = mamba1()
write("mamba1-f32", sd1, cfg1, torch.float32)
sd2, cfg2 = mamba2()
write("mamba2-bf16-sharded", sd2, cfg2, torch.bfloat16, shards=2)
write("mamba2-f16", sd2, cfg2, torch.float16)
