/* The real public Mamba shapes the GPU benchmarks time with random weights (mamba-130m, -1.4b,
 * -2.8b, mamba2-2.7b), and the mq_config each one stands for. Shared by tests/bench_*.c so every
 * benchmark table measures the same models. */
#ifndef MQ_BENCH_SHAPES_H
#define MQ_BENCH_SHAPES_H
#include <stdio.h>
#include <string.h>
#include "core/cfg.h"

typedef struct { const char *name; int arch, d_model, n_layer, d_state, head_dim, vocab; } shape;
static const shape shapes[] = {
    {"mamba-130m", 1, 768, 24, 16, 0, 50280},
    {"mamba-1.4b", 1, 2048, 48, 16, 0, 50280},
    {"mamba-2.8b", 1, 2560, 64, 16, 0, 50280},
    {"mamba2-2.7b", 2, 2560, 64, 128, 64, 50288},
};

/* mamba_ssm's defaults for these checkpoints: expand 2, d_conv 4, dt_rank ceil(d/16), tied head. */
static inline mq_config make_cfg(const shape *s) {
    mq_config c;
    memset(&c, 0, sizeof c);
    c.arch = s->arch == 1 ? MQ_MAMBA1 : MQ_MAMBA2;
    c.d_model = s->d_model;
    c.n_layer = s->n_layer;
    c.vocab_size = s->vocab;
    c.d_inner = 2 * s->d_model;
    c.d_state = s->d_state;
    c.d_conv = 4;
    c.dt_rank = (s->d_model + 15) / 16;
    c.conv_bias = 1;
    c.tie_embeddings = 1;
    c.norm_eps = 1e-5f;
    if (s->arch == 2) {
        c.head_dim = s->head_dim;
        c.n_heads = c.d_inner / s->head_dim;
        c.n_groups = 1;
        c.chunk_size = 256;
        c.dt_limit_min = 0.f;
        c.dt_limit_max = 1.f / 0.f;
    }
    snprintf(c.source, sizeof c.source, "random %s", s->name);
    return c;
}

#endif
