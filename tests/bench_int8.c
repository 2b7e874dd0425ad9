/* GPU benchmark of the int8 pass (not a test): random int8 weights of the real Mamba shapes (Hadamard
 * on y as quamba, synthetic scales, i8g_model_random) beside the FP16 forward (ssm/gpu.h, random FP16
 * weights of the same shapes), same protocol for both (ssm/backend.h: BE_CUDA_INT8 and BE_CUDA_F16), one
 * process:
 *   prefill 1x1024 and 8x1024: embedding to norm_f (no lm_head), one synchronized call, median of 7;
 *   decode b = 1, 16, 64: ms per step (one token per sequence) through the CUDA graph with lm_head
 *     into the workspace and no host copy (be_step_async), median of 3 x 50 steps;
 *   memory: device memory the weights, a workspace of 8 x 1024 and one of 64 x 1 and the decode state
 *     of batch 64 hold (the backends' byte counts);
 *   floor: bytes of weights one batch-1 decode step reads / 2.97 TB/s (the H100 copy rate).
 * Usage: build/bench/bench_int8 [model-name-filter] prints a markdown table and, for the int8 pass,
 * a per-op breakdown of one 1x1024 prefill. build/bench/bench_int8 NAME --steps N: only N plain
 * decode steps of NAME, int8 then FP16, for a kernel profiler (ncu) to time every kernel of a step.
 * build/bench/bench_int8 --artifact ART MODEL: the same prefill 1x1024 and batch-1 decode for an
 * artifact (mambaq quantize) beside the FP16 forward of its source checkpoint MODEL: the whole
 * artifact path at full size (tests/bench_random_model.c makes such checkpoints).
 * Results: docs/benchmarks.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/err.h"
#include "core/gpu.h"
#include "export/art.h"
#include "ssm/backend.h"

#include "tests/bench_shapes.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

enum { PREFILL_REPS = 7, DECODE_REPS = 3, STEPS = 50, NB = 3 };
static const int batches[NB] = {1, 16, 64};
static char prof[sizeof shapes / sizeof shapes[0]][512]; /* per-op breakdown of one int8 prefill */
#define FLOOR_TBPS 2.97

/* one pass (int8 or FP16) of one shape: prefill ms [2], decode ms [NB], memory GB */
typedef struct { double pre[2], dec[NB], mem_gb, weights_gb, decode_gb; } pass_times;

/* median ms of prefills of B x T tokens (after two warm-ups: cuBLAS heuristics, module load) */
static double time_prefill(be *b, const int32_t *tok, int B, int T) {
    double t[PREFILL_REPS];
    for (int r = -2; r < PREFILL_REPS; r++) {
        double t0 = now_ms();
        if (be_prefill(b, tok, B, T, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
        if (r >= 0) t[r] = now_ms() - t0;
    }
    return median(t, PREFILL_REPS);
}

/* ms per graph decode step of s's batch, lm_head into the workspace: median of DECODE_REPS x STEPS */
static double time_decode(be *b, be_state *s, const int32_t *tok) {
    double t[DECODE_REPS];
    for (int r = -1; r < DECODE_REPS; r++) {
        be_state_reset(s);
        double t0 = now_ms();
        for (int i = 0; i < STEPS; i++)
            if (be_step_async(b, s, tok + i * be_max_batch(b), 1)) mq_die("%s", mq_errmsg());
        be_sync(b);
        if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
    }
    return median(t, DECODE_REPS);
}

/* A random model of c's shapes (int8: the y rotation as quamba) */
static be *open_random(const mq_config *c, be_kind kind, int batch, int seqlen) {
    be *b = be_open_random(c, kind, 1, 1, batch, seqlen);
    if (!b) mq_die("%s: %s", c->source, mq_errmsg());
    return b;
}

static void time_pass(const mq_config *c, be_kind kind, const int32_t *tok, pass_times *pt) {
    be *b = open_random(c, kind, 8, 1024);
    pt->weights_gb = be_weight_bytes(b) / 1e9;
    pt->decode_gb = be_decode_bytes(b) / 1e9;
    pt->mem_gb = (be_weight_bytes(b) + be_ws_bytes(b)) / 1e9;
    pt->pre[0] = time_prefill(b, tok, 1, 1024);
    pt->pre[1] = time_prefill(b, tok, 8, 1024);
    be_free(b);
    for (int k = 0; k < NB; k++) { /* decode workspaces of batch x 1 token */
        be *d = open_random(c, kind, batches[k], 1);
        be_state *s = be_state_new(d, batches[k]);
        if (!s) mq_die("%s", mq_errmsg());
        pt->dec[k] = time_decode(d, s, tok);
        if (k == NB - 1) {
            const size_t state = (size_t)batches[k] * c->n_layer *
                                 (cfg_conv_dim(c) * (c->d_conv - 1) * (kind == BE_CUDA_INT8 ? 1 : 4) +
                                  (size_t)c->d_inner * c->d_state * 4);
            pt->mem_gb += (be_ws_bytes(d) + state) / 1e9;
        }
        be_state_free(s);
        be_free(d);
    }
}

/* N decode steps of one shape op by op (a no-op hook: no graph), int8 then FP16, for a kernel
 * profiler (ncu) to time every kernel of a step; no timing here */
static int nop_hook(void *ctx, const mq_act *a) {
    (void)ctx, (void)a;
    return 0;
}
static int profile_steps(const shape *sh, int n) {
    mq_config c = make_cfg(sh);
    int32_t tok[64];
    for (int k = 0; k < 64; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)c.vocab_size);
    float *logits = mq_malloc(sizeof(float) * c.vocab_size);
    const be_kind kinds[2] = {BE_CUDA_INT8, BE_CUDA_F16};
    for (int p = 0; p < 2; p++) {
        be *b = open_random(&c, kinds[p], 1, 16);
        be_state *s = be_state_new(b, 1);
        mq_hooks nop = {nop_hook, NULL};
        if (!s) mq_die("%s: %s", sh->name, mq_errmsg());
        /* int8: the fused batch-1 kernels run without hooks; they are what a profile should show */
        for (int k = 0; k < n && k < 64; k++)
            if (be_step(b, s, tok + k, p ? &nop : NULL, NULL, logits)) mq_die("%s", mq_errmsg());
        be_state_free(s);
        be_free(b);
    }
    free(logits);
    return 0;
}

/* prefill 1x1024 and batch-1 graph decode of an artifact and of its FP16 source */
static int bench_artifact(const char *art_dir, const char *model_dir) {
    art_artifact art;
    mq_model m;
    if (art_open(art_dir, &art)) mq_die("%s", mq_errmsg());
    if (ssm_load(model_dir, &m)) mq_die("%s", mq_errmsg());
    const mq_config *c = &art.qm.cfg;
    int32_t *tok = mq_malloc(sizeof(int32_t) * 1024);
    for (int k = 0; k < 1024; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)c->vocab_size);
    double pre[2], dec[2];
    be *b[2] = {be_open_qmodel(&art.qm, BE_CUDA_INT8, 1, 1024), be_open_model(&m, BE_CUDA_F16, 1, 1024)};
    if (!b[0] || !b[1]) mq_die("upload: %s", mq_errmsg());
    for (int p = 0; p < 2; p++) {
        be_state *s = be_state_new(b[p], 1);
        if (!s) mq_die("%s", mq_errmsg());
        pre[p] = time_prefill(b[p], tok, 1, 1024);
        dec[p] = time_decode(b[p], s, tok);
        be_state_free(s);
    }
    printf("| artifact | int8 model.safetensors GB | prefill 1x1024 ms int8 / FP16 | decode b=1 ms/token int8 / FP16 |\n");
    printf("|---|---|---|---|\n");
    printf("| %s (%s) | %.2f | %.2f / %.2f (%.2fx) | %.3f / %.3f (%.2fx) |\n", art_dir, c->source, art.model_bytes / 1e9,
           pre[0], pre[1], pre[1] / pre[0], dec[0], dec[1], dec[1] / dec[0]);
    be_free(b[0]), be_free(b[1]);
    art_close(&art);
    ssm_free(&m);
    free(tok);
    return 0;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *why;
    if (!gpu_available(&why)) {
        printf("bench_int8: no usable GPU (%s)\n", why);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--artifact")) return bench_artifact(argv[2], argv[3]);
    if (argc > 3 && !strcmp(argv[2], "--steps")) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (!strcmp(shapes[i].name, filter)) return profile_steps(&shapes[i], atoi(argv[3]));
        mq_die("bench_int8: no shape named %s", filter);
    }
    printf("# int8 pass vs FP16 forward, %s\n\n", gpu_describe());
    printf("Each cell: int8 / FP16 (ratio = FP16 time / int8 time; > 1 means int8 is faster).\n\n");
    printf("| model | weights GB int8 / FP16 | prefill 1x1024 ms | prefill 8x1024 ms | decode b=1 ms/token | "
           "b=1 floor ms (reached) | decode b=16 ms/step | decode b=64 ms/step | GPU memory GB |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        mq_config c = make_cfg(&shapes[i]);
        int32_t *tok = mq_malloc(sizeof(int32_t) * 8 * 1024);
        for (int k = 0; k < 8 * 1024; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)c.vocab_size);
        pass_times a, b;
        memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
        time_pass(&c, BE_CUDA_INT8, tok, &a);
        { /* one more int8 prefill with events between the ops, for the breakdown */
            be *g = open_random(&c, BE_CUDA_INT8, 1, 1024);
            be_profile(g, 1);
            if (be_prefill(g, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            be_profile(g, 0);
            be_profile_report(g, prof[i], sizeof prof[i]);
            be_free(g);
        }
        time_pass(&c, BE_CUDA_F16, tok, &b);
        const double f8 = a.decode_gb / FLOOR_TBPS, f16 = b.decode_gb / FLOOR_TBPS;
        printf("| %s | %.2f / %.2f | %.2f / %.2f (%.2fx) | %.2f / %.2f (%.2fx) | %.3f / %.3f (%.2fx) | "
               "%.3f (%.0f%%) / %.3f (%.0f%%) | %.3f / %.3f (%.2fx) | %.3f / %.3f (%.2fx) | %.2f / %.2f |\n",
               shapes[i].name, a.weights_gb, b.weights_gb, a.pre[0], b.pre[0], b.pre[0] / a.pre[0], a.pre[1], b.pre[1],
               b.pre[1] / a.pre[1], a.dec[0], b.dec[0], b.dec[0] / a.dec[0], f8, 100 * f8 / a.dec[0], f16,
               100 * f16 / b.dec[0], a.dec[1], b.dec[1], b.dec[1] / a.dec[1], a.dec[2], b.dec[2], b.dec[2] / a.dec[2],
               a.mem_gb, b.mem_gb);
        fflush(stdout);
        free(tok);
    }
    printf("\nint8 prefill 1x1024, GPU ms per op (CUDA events between the ops):\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        printf("- %s: %s\n", shapes[i].name, prof[i]);
    }
    return 0;
}
