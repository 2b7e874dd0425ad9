/* For the benchmarks, not a test: writes a random-weight FP16 checkpoint of one of the real shapes
 * (tests/bench_shapes.h) as a transformers model directory (config.json + model.safetensors), so
 * calib -> quantize -> artifact -> int8 GPU pass can run at full size where the real checkpoints
 * cannot be fetched. Usage: build/bench/bench_random_model NAME DIR (mamba-2.8b: 5.5 GB).
 * Weights: uniform with standard deviation 1/sqrt(fan-in) for the projections and the conv, 0.05 for
 * the embedding; norms 1; A_log = log(1..N) (Mamba2: log(1..16) by head); D 1; dt biases -4. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/st.h"
#include "tests/bench_shapes.h"

static uint64_t g_state = 0x9e3779b97f4a7c15ull;
static float uniform(float bound) { /* splitmix64 -> [-bound, bound) */
    uint64_t z = (g_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return bound * ((float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

typedef enum { INIT_RANDOM, INIT_CONST, INIT_ALOG1, INIT_ALOG2 } init_kind;

/* adds an FP16 tensor [d0 x d1 x d2] (ndim of them) filled by kind */
static void add(st_writer *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, init_kind kind,
                float v) {
    const int64_t shape[3] = {d0, d1, d2}, n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    uint16_t *buf = mq_malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float x = kind == INIT_RANDOM ? uniform(v * sqrtf(3.0f))
                  : kind == INIT_CONST ? v
                  : kind == INIT_ALOG1 ? logf((float)(i % d1 + 1))
                                       : logf((float)(i % 16 + 1));
        buf[i] = st_f32_to_f16(x);
    }
    if (st_writer_add(w, name, MQ_F16, ndim, shape, buf)) mq_die("%s", mq_errmsg());
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME DIR   (NAME: mamba-130m, mamba-1.4b, mamba-2.8b, mamba2-2.7b)\n", argv[0]);
        return 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, argv[1])) sh = &shapes[i];
    if (!sh) mq_die("no shape named %s", argv[1]);
    const mq_config c = make_cfg(sh);
    const int D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, V = c.vocab_size;
    char path[4200], js[2048];
    snprintf(path, sizeof path, "%s/config.json", argv[2]);
    if (mq_mkdir_parents(path)) mq_die("%s", mq_errmsg());
    if (c.arch == MQ_MAMBA1)
        snprintf(js, sizeof js,
                 "{\"model_type\": \"mamba\", \"architectures\": [\"MambaForCausalLM\"], \"hidden_size\": %d, "
                 "\"num_hidden_layers\": %d, \"vocab_size\": %d, \"state_size\": %d, \"intermediate_size\": %d, "
                 "\"time_step_rank\": %d, \"conv_kernel\": %d, \"expand\": 2, \"layer_norm_epsilon\": 1e-05, "
                 "\"tie_word_embeddings\": true, \"use_bias\": false, \"use_conv_bias\": true, \"dtype\": \"float16\"}\n",
                 D, c.n_layer, V, N, E, c.dt_rank, K);
    else
        snprintf(js, sizeof js,
                 "{\"model_type\": \"mamba2\", \"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": %d, "
                 "\"num_hidden_layers\": %d, \"vocab_size\": %d, \"state_size\": %d, \"num_heads\": %d, \"head_dim\": %d, "
                 "\"n_groups\": %d, \"expand\": 2, \"conv_kernel\": %d, \"chunk_size\": 256, \"layer_norm_epsilon\": 1e-05, "
                 "\"norm_before_gate\": false, \"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}], "
                 "\"tie_word_embeddings\": true, \"use_bias\": false, \"use_conv_bias\": true, \"dtype\": \"float16\"}\n",
                 D, c.n_layer, V, N, c.n_heads, c.head_dim, c.n_groups, K);
    if (mq_write_file_atomic(path, js, strlen(js))) mq_die("%s", mq_errmsg());
    st_writer *w = st_writer_new();
    char nm[256];
    add(w, "backbone.embeddings.weight", 2, V, D, 0, INIT_RANDOM, 0.05f);
    add(w, "backbone.norm_f.weight", 1, D, 0, 0, INIT_CONST, 1.f);
    for (int l = 0; l < c.n_layer; l++) {
#define T(suffix, ...) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, suffix), add(w, nm, __VA_ARGS__))
        T("norm.weight", 1, D, 0, 0, INIT_CONST, 1.f);
        if (c.arch == MQ_MAMBA1) {
            const int R = c.dt_rank;
            T("mixer.in_proj.weight", 2, 2 * E, D, 0, INIT_RANDOM, 1.f / sqrtf((float)D));
            T("mixer.conv1d.weight", 3, E, 1, K, INIT_RANDOM, 1.f / sqrtf((float)K));
            T("mixer.conv1d.bias", 1, E, 0, 0, INIT_CONST, 0.f);
            T("mixer.x_proj.weight", 2, R + 2 * N, E, 0, INIT_RANDOM, 1.f / sqrtf((float)E));
            T("mixer.dt_proj.weight", 2, E, R, 0, INIT_RANDOM, 1.f / sqrtf((float)R));
            T("mixer.dt_proj.bias", 1, E, 0, 0, INIT_CONST, -4.f);
            T("mixer.A_log", 2, E, N, 0, INIT_ALOG1, 0.f);
            T("mixer.D", 1, E, 0, 0, INIT_CONST, 1.f);
        } else {
            const int H = c.n_heads, GN = c.n_groups * N, cd = E + 2 * GN;
            T("mixer.in_proj.weight", 2, 2 * E + 2 * GN + H, D, 0, INIT_RANDOM, 1.f / sqrtf((float)D));
            T("mixer.conv1d.weight", 3, cd, 1, K, INIT_RANDOM, 1.f / sqrtf((float)K));
            T("mixer.conv1d.bias", 1, cd, 0, 0, INIT_CONST, 0.f);
            T("mixer.dt_bias", 1, H, 0, 0, INIT_CONST, -4.f);
            T("mixer.A_log", 1, H, 0, 0, INIT_ALOG2, 0.f);
            T("mixer.D", 1, H, 0, 0, INIT_CONST, 1.f);
            T("mixer.norm.weight", 1, E, 0, 0, INIT_CONST, 1.f);
        }
        T("mixer.out_proj.weight", 2, D, E, 0, INIT_RANDOM, 1.f / sqrtf((float)E));
#undef T
    }
    snprintf(path, sizeof path, "%s/model.safetensors", argv[2]);
    if (st_writer_write(w, path)) mq_die("%s", mq_errmsg());
    st_writer_free(w);
    printf("wrote %s (random FP16 %s)\n", argv[2], sh->name);
    return 0;
}
