/* GPU benchmark of the int8 pass (not a test): random int8 weights of the real Mamba shapes (Hadamard
 * on y as quamba, synthetic scales, i8g_model_random) beside the FP16 forward (ssm/gpu.h, random FP16
 * weights of the same shapes), same protocol for both, one process:
 *   prefill 1x1024 and 8x1024: embedding to norm_f (no lm_head), one synchronized call, median of 7;
 *   decode b = 1, 16, 64: ms per step (one token per sequence) through the CUDA graph with lm_head
 *     into the workspace and no host copy (i8g_step_async / ssmg_step_async), median of 3 x 50 steps;
 *   memory: device memory the model, a workspace of 8 x 1024 and one of 64 x 1 and the decode states
 *     hold (cudaMemGetInfo before and after);
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
#include <cuda_runtime_api.h>
#include "core/err.h"
#include "core/gpu.h"
#include "ssm/gpu.h"
#include "ssm/int8.h"
#include "export/art.h"
#include "ssm/model.h"

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

static double used_gb(void) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) return 0;
    return (double)(tot - fr) / 1e9;
}

/* one pass (int8 or FP16) of one shape: prefill ms [2], decode ms [NB], memory GB */
typedef struct { double pre[2], dec[NB], mem_gb, weights_gb, decode_gb; } pass_times;

static void time_int8(const mq_config *c, const int32_t *tok, pass_times *pt) {
    double t[16], base = used_gb();
    i8g_model *g = i8g_model_random(c, 1, 1);
    if (!g) mq_die("%s: %s", c->source, mq_errmsg());
    pt->weights_gb = i8g_model_bytes(g) / 1e9;
    pt->decode_gb = i8g_decode_bytes(g) / 1e9;
    i8g_ws *w = i8g_ws_new(g, 8, 1024), *wd = i8g_ws_new(g, 64, 1);
    if (!w || !wd) mq_die("%s: %s", c->source, mq_errmsg());
    for (int p = 0; p < 2; p++) {
        const int B = p ? 8 : 1;
        for (int r = -2; r < PREFILL_REPS; r++) {
            double t0 = now_ms();
            if (i8g_prefill(g, w, tok, B, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            if (r >= 0) t[r] = now_ms() - t0;
        }
        pt->pre[p] = median(t, PREFILL_REPS);
    }
    for (int k = 0; k < NB; k++) {
        i8g_state *s = i8g_state_new(g, batches[k]);
        if (!s) mq_die("%s", mq_errmsg());
        for (int r = -1; r < DECODE_REPS; r++) {
            i8g_state_reset(s);
            double t0 = now_ms();
            for (int i = 0; i < STEPS; i++)
                if (i8g_step_async(g, wd, s, tok + i * batches[k], 1)) mq_die("%s", mq_errmsg());
            i8g_sync(wd);
            if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
        }
        pt->dec[k] = median(t, DECODE_REPS);
        if (k == NB - 1) pt->mem_gb = used_gb() - base;
        i8g_state_free(s);
    }
    i8g_ws_free(wd);
    i8g_ws_free(w);
    i8g_model_free(g);
}

static void time_fp16(const mq_config *c, const int32_t *tok, pass_times *pt) {
    double t[16], base = used_gb();
    ssmg_model *g = ssmg_model_random(c, 1);
    if (!g) mq_die("%s: %s", c->source, mq_errmsg());
    pt->weights_gb = ssmg_model_bytes(g) / 1e9;
    pt->decode_gb = ssmg_decode_bytes(g) / 1e9;
    ssmg_ws *w = ssmg_ws_new(g, 8, 1024), *wd = ssmg_ws_new(g, 64, 1);
    if (!w || !wd) mq_die("%s: %s", c->source, mq_errmsg());
    for (int p = 0; p < 2; p++) {
        const int B = p ? 8 : 1;
        for (int r = -2; r < PREFILL_REPS; r++) {
            double t0 = now_ms();
            if (ssmg_prefill(g, w, tok, B, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            if (r >= 0) t[r] = now_ms() - t0;
        }
        pt->pre[p] = median(t, PREFILL_REPS);
    }
    for (int k = 0; k < NB; k++) {
        ssmg_state *s = ssmg_state_new(g, batches[k]);
        if (!s) mq_die("%s", mq_errmsg());
        for (int r = -1; r < DECODE_REPS; r++) {
            ssmg_state_reset(s);
            double t0 = now_ms();
            for (int i = 0; i < STEPS; i++)
                if (ssmg_step_async(g, wd, s, tok + i * batches[k], 1)) mq_die("%s", mq_errmsg());
            ssmg_sync(wd);
            if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
        }
        pt->dec[k] = median(t, DECODE_REPS);
        if (k == NB - 1) pt->mem_gb = used_gb() - base;
        ssmg_state_free(s);
    }
    ssmg_ws_free(wd);
    ssmg_ws_free(w);
    ssmg_model_free(g);
}

/* N plain decode steps of one shape, int8 then FP16 (for ncu; no timing here) */
static int profile_steps(const shape *sh, int n) {
    mq_config c = make_cfg(sh);
    int32_t tok[64];
    for (int k = 0; k < 64; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)c.vocab_size);
    float *logits = mq_malloc(sizeof(float) * c.vocab_size);
    i8g_model *g = i8g_model_random(&c, 1, 1);
    i8g_ws *w = g ? i8g_ws_new(g, 1, 16) : NULL;
    i8g_state *s = g ? i8g_state_new(g, 1) : NULL;
    if (!g || !w || !s) mq_die("%s: %s", sh->name, mq_errmsg());
    for (int k = 0; k < n && k < 64; k++)
        if (i8g_step(g, w, s, tok + k, NULL, logits)) mq_die("%s", mq_errmsg());
    i8g_state_free(s), i8g_ws_free(w), i8g_model_free(g);
    ssmg_model *gf = ssmg_model_random(&c, 1);
    ssmg_ws *wf = gf ? ssmg_ws_new(gf, 1, 16) : NULL;
    ssmg_state *sf = gf ? ssmg_state_new(gf, 1) : NULL;
    if (!gf || !wf || !sf) mq_die("%s: %s", sh->name, mq_errmsg());
    for (int k = 0; k < n && k < 64; k++)
        if (ssmg_step(gf, wf, sf, tok + k, NULL, NULL, logits)) mq_die("%s", mq_errmsg());
    ssmg_state_free(sf), ssmg_ws_free(wf), ssmg_model_free(gf);
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
    double t[16], pre[2], dec[2];
    i8g_model *g = i8g_upload(&art.qm);
    ssmg_model *gf = ssmg_upload(&m);
    if (!g || !gf) mq_die("upload: %s", mq_errmsg());
    i8g_ws *w = i8g_ws_new(g, 1, 1024);
    ssmg_ws *wf = ssmg_ws_new(gf, 1, 1024);
    i8g_state *s = i8g_state_new(g, 1);
    ssmg_state *sf = ssmg_state_new(gf, 1);
    if (!w || !wf || !s || !sf) mq_die("%s", mq_errmsg());
    for (int p = 0; p < 2; p++) {
        for (int r = -2; r < PREFILL_REPS; r++) {
            double t0 = now_ms();
            if (p ? ssmg_prefill(gf, wf, tok, 1, 1024, NULL, NULL, NULL) : i8g_prefill(g, w, tok, 1, 1024, NULL, NULL, NULL))
                mq_die("%s", mq_errmsg());
            if (r >= 0) t[r] = now_ms() - t0;
        }
        pre[p] = median(t, PREFILL_REPS);
        for (int r = -1; r < DECODE_REPS; r++) {
            if (p) ssmg_state_reset(sf);
            else i8g_state_reset(s);
            double t0 = now_ms();
            for (int i = 0; i < STEPS; i++)
                if (p ? ssmg_step_async(gf, wf, sf, tok + i, 1) : i8g_step_async(g, w, s, tok + i, 1))
                    mq_die("%s", mq_errmsg());
            if (p) ssmg_sync(wf);
            else i8g_sync(w);
            if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
        }
        dec[p] = median(t, DECODE_REPS);
    }
    printf("| artifact | int8 model.safetensors GB | prefill 1x1024 ms int8 / FP16 | decode b=1 ms/token int8 / FP16 |\n");
    printf("|---|---|---|---|\n");
    printf("| %s (%s) | %.2f | %.2f / %.2f (%.2fx) | %.3f / %.3f (%.2fx) |\n", art_dir, c->source, art.model_bytes / 1e9,
           pre[0], pre[1], pre[1] / pre[0], dec[0], dec[1], dec[1] / dec[0]);
    i8g_state_free(s), i8g_ws_free(w), i8g_model_free(g);
    ssmg_state_free(sf), ssmg_ws_free(wf), ssmg_model_free(gf);
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
        time_int8(&c, tok, &a);
        { /* one more int8 prefill with events between the ops, for the breakdown */
            i8g_model *g = i8g_model_random(&c, 1, 1);
            i8g_ws *w = g ? i8g_ws_new(g, 1, 1024) : NULL;
            if (!w) mq_die("%s", mq_errmsg());
            i8g_profile(w, 1);
            if (i8g_prefill(g, w, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            i8g_profile(w, 0);
            i8g_profile_report(w, prof[i], sizeof prof[i]);
            i8g_ws_free(w);
            i8g_model_free(g);
        }
        time_fp16(&c, tok, &b);
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
