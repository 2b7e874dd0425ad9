/* Random-weight FP16 tensors and the config.json of the tiny checkpoints that tests
 * (tests/test_cli.h) and the fuzz seeds (fuzz/seeds.c) write: one deterministic generator
 * (splitmix64), one tensor adder and one config, so a seed checkpoint and a test checkpoint are
 * made the same way. Header only. */
#ifndef MQ_TESTS_ST_FILL_H
#define MQ_TESTS_ST_FILL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/err.h"
#include "core/st.h"

static uint64_t sf_rng = 0x9e3779b97f4a7c15ull;
/* uniform in [-bound, bound) */
__attribute__((unused)) static float sf_uniform(float bound) {
    uint64_t z = (sf_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return bound * ((float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

/* An F16 tensor [d0 (x d1 (x d2))] into w: kind 'r' uniform with std v, 'c' constant v,
 * 'a' log(1 + i % d1) (an A_log). Dies on a writer error. */
__attribute__((unused)) static void sf_add(st_writer *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                                           char kind, float v) {
    const int64_t shape[3] = {d0, d1, d2}, n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    uint16_t *buf = mq_malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        buf[i] = st_f32_to_f16(kind == 'r' ? sf_uniform(v * 1.7320508f) : kind == 'c' ? v : logf((float)(1 + i % (ndim > 1 ? d1 : 16))));
    if (st_writer_add(w, name, MQ_F16, ndim, shape, buf)) mq_die("%s: %s", name, mq_errmsg());
    free(buf);
}

/* config.json of a tiny Mamba1 (arch 1) or Mamba2 (arch 2) checkpoint into js[n]: d_model D, L layers,
 * vocabulary V, d_state N, d_inner 2 D, conv kernel 4; Mamba1 dt_rank D / 4, Mamba2 2 heads of D. */
__attribute__((unused)) static void sf_tiny_config(char *js, size_t n, int arch, int D, int L, int V, int N, int tied, int bias) {
    const char *t = tied ? "true" : "false", *b = bias ? "true" : "false";
    if (arch == 1)
        snprintf(js, n, "{\"model_type\": \"mamba\", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"vocab_size\": %d, "
                 "\"state_size\": %d, \"intermediate_size\": %d, \"time_step_rank\": %d, \"conv_kernel\": 4, \"expand\": 2, "
                 "\"tie_word_embeddings\": %s, \"use_bias\": %s, \"use_conv_bias\": true}\n", D, L, V, N, 2 * D, D / 4, t, b);
    else
        snprintf(js, n, "{\"model_type\": \"mamba2\", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"vocab_size\": %d, "
                 "\"state_size\": %d, \"num_heads\": 2, \"head_dim\": %d, \"n_groups\": 1, \"expand\": 2, \"conv_kernel\": 4, "
                 "\"chunk_size\": 256, \"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}], \"tie_word_embeddings\": %s, "
                 "\"use_bias\": %s, \"use_conv_bias\": true}\n", D, L, V, N, D, t, b);
}

#endif
