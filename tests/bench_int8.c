/* GPU benchmark of the int8 pass (not a test): random int8 weights of the real Mamba shapes (Hadamard
 * on y as quamba), prefill 1x1024 (embedding to norm_f, no lm_head; synchronized call, median of 7)
 * and decode per token at batch 1 (lm_head included; plain steps and CUDA-graph steps, median of
 * 3 x 50 steps), beside the FP16 forward (ssm/gpu.h: same shapes, same protocol: its prefill, and
 * its graph decode). Usage: build/bench/bench_int8 [model-name-filter]; prints a markdown table.
 * build/bench/bench_int8 NAME --steps N: only N plain decode steps of NAME, int8 then FP16, for a
 * kernel profiler (ncu) to time every kernel of a step.
 *
 * Measured (H100 80GB HBM3, sm_90, 132 SMs; int8 and FP16 side by side in one process):
 *
 * | model       | int8 weights | prefill 1x1024 int8 / FP16 | decode b=1 int8 graph / FP16 graph | int8 plain steps |
 * |-------------|--------------|----------------------------|------------------------------------|------------------|
 * | mamba-130m  | 0.17 GB      |  7.79 /  3.14 ms           | 0.808 / 0.619 ms per token         | 1.044 ms         |
 * | mamba-1.4b  | 1.49 GB      | 37.05 / 14.16 ms           | 1.735 / 2.048 ms                   | 2.731 ms         |
 * | mamba-2.8b  | 2.93 GB      | 62.55 / 25.58 ms           | 3.191 / 3.571 ms                   | 4.269 ms         |
 * | mamba2-2.7b | 2.84 GB      | 77.35 / 41.31 ms (1 pass)  | 3.475 / 3.534 ms                   | 4.009 ms         |
 *
 * (Those rows are before the scans took the FP16 scans' structure.) After it (H100, one run, branch
 * i8fast 1997eef): mamba-2.8b prefill 31.14 / 25.65 ms, decode graph 3.415 / 3.585 ms (plain 3.999);
 * mamba2-2.7b prefill 45.04 / 41.05 ms, decode graph 3.494 / 3.539 ms (plain 4.037). Prefill per op:
 * mamba-2.8b scan 15.32 (was 46.7), in_proj 6.07, out_proj 2.81, dt_proj 2.23, y_quant 1.99, conv 1.51,
 * rmsnorm 1.15, x_proj 1.07; mamba2-2.7b scan 29.33, in_proj 6.71, out_proj 2.78, gated_norm 2.46,
 * y_quant 1.94. The scans now cost what the FP16 ones do; int8 prefill still trails FP16 by the ops
 * around them (in_proj, dt_proj, y_quant). Decode of mamba-2.8b lost ~0.2 ms per token: one thread per
 * channel runs its 16 states serially on 40 blocks, where the old kernel split them over 16 lanes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/err.h"
#include "core/gpu.h"
#include "ssm/gpu.h"
#include "ssm/int8.h"

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

enum { PREFILL_REPS = 7, DECODE_REPS = 3, STEPS = 50 };
static char prof[sizeof shapes / sizeof shapes[0]][512]; /* per-op breakdown of one int8 prefill */

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

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *why;
    if (!gpu_available(&why)) {
        printf("bench_int8: no usable GPU (%s)\n", why);
        return 0;
    }
    if (argc > 3 && !strcmp(argv[2], "--steps")) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (!strcmp(shapes[i].name, filter)) return profile_steps(&shapes[i], atoi(argv[3]));
        mq_die("bench_int8: no shape named %s", filter);
    }
    printf("# int8 pass vs FP16 forward, %s\n\n", gpu_describe());
    printf("| model | int8 weights (GB) | prefill 1x1024 int8 (ms) | FP16 (ms) | decode b=1 int8 plain (ms/token) | int8 graph | FP16 graph |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        mq_config c = make_cfg(&shapes[i]);
        int32_t *tok = mq_malloc(sizeof(int32_t) * 1024);
        for (int k = 0; k < 1024; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)c.vocab_size);
        double t[16], pre8 = 0, dec8 = 0, dec8g = 0, pre16 = 0, dec16 = 0;
        size_t bytes8 = 0;
        /* int8 */
        i8g_model *g = i8g_model_random(&c, 1, 1);
        if (!g) mq_die("%s: %s", shapes[i].name, mq_errmsg());
        bytes8 = i8g_model_bytes(g);
        i8g_ws *w = i8g_ws_new(g, 1, 1024);
        i8g_state *s = i8g_state_new(g, 1);
        float *logits = mq_malloc(sizeof(float) * c.vocab_size);
        if (!w || !s) mq_die("%s: %s", shapes[i].name, mq_errmsg());
        for (int r = -2; r < PREFILL_REPS; r++) {
            double t0 = now_ms();
            if (i8g_prefill(g, w, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            if (r >= 0) t[r] = now_ms() - t0;
        }
        pre8 = median(t, PREFILL_REPS);
        i8g_profile(w, 1); /* one more prefill with events between the ops */
        if (i8g_prefill(g, w, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
        i8g_profile(w, 0);
        i8g_profile_report(w, prof[i], sizeof prof[i]);
        for (int graph = 0; graph < 2; graph++) {
            for (int r = -1; r < DECODE_REPS; r++) {
                i8g_state_reset(s);
                double t0 = now_ms();
                for (int k = 0; k < STEPS; k++) {
                    int rc = graph ? i8g_step_graph(g, w, s, tok + k, logits) : i8g_step(g, w, s, tok + k, NULL, logits);
                    if (rc) mq_die("%s", mq_errmsg());
                }
                if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
            }
            if (graph) dec8g = median(t, DECODE_REPS);
            else dec8 = median(t, DECODE_REPS);
        }
        i8g_state_free(s);
        i8g_ws_free(w);
        i8g_model_free(g);
        /* FP16, same protocol */
        ssmg_model *gf = ssmg_model_random(&c, 1);
        ssmg_ws *wf = gf ? ssmg_ws_new(gf, 1, 1024) : NULL;
        ssmg_state *sf = gf ? ssmg_state_new(gf, 1) : NULL;
        if (gf && wf && sf) {
            for (int r = -2; r < PREFILL_REPS; r++) {
                double t0 = now_ms();
                if (ssmg_prefill(gf, wf, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
                if (r >= 0) t[r] = now_ms() - t0;
            }
            pre16 = median(t, PREFILL_REPS);
            for (int r = -1; r < DECODE_REPS; r++) {
                ssmg_state_reset(sf);
                double t0 = now_ms();
                for (int k = 0; k < STEPS; k++)
                    if (ssmg_step(gf, wf, sf, tok + k, NULL, NULL, logits)) mq_die("%s", mq_errmsg());
                if (r >= 0) t[r] = (now_ms() - t0) / STEPS;
            }
            dec16 = median(t, DECODE_REPS);
        }
        ssmg_state_free(sf);
        ssmg_ws_free(wf);
        ssmg_model_free(gf);
        printf("| %s | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f |\n", shapes[i].name, bytes8 / 1e9, pre8, pre16, dec8, dec8g,
               dec16);
        fflush(stdout);
        free(tok), free(logits);
    }
    printf("\nint8 prefill 1x1024, GPU ms per op (CUDA events between the ops):\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        printf("- %s: %s\n", shapes[i].name, prof[i]);
    }
    return 0;
}
