/* GPU benchmark of the FP16 forward (not a test): random-weight models of the real Mamba shapes,
 * timing prefill (1x1024, 8x1024; embedding to norm_f, no lm_head) and decode per token (batch 1,
 * CUDA graph, lm_head included) beside the bandwidth floor of decode = weight bytes / copy rate
 * (gpu_copy_tbps, measured here), and where the time goes op by op.
 * Usage: build/bench/bench_gpu [out.md] [model-name-filter]; prints a markdown table (and writes it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/gpu.h"
#include "ssm/backend.h"

#include "tests/bench_shapes.h"
#include "tests/bench_time.h"

static int nop_hook(void *ctx, const mq_act *a) {
    (void)ctx, (void)a;
    return 0;
}

int main(int argc, char **argv) {
    const char *why;
    if (!gpu_available(&why)) { printf("no GPU (%s): nothing to benchmark\n", why); return 0; }
    const char *out = argc > 1 ? argv[1] : NULL, *filter = argc > 2 ? argv[2] : NULL;
    char table[8192], breakdown[8192];
    const double tbps = gpu_copy_tbps((size_t)1 << 30);
    int nb = snprintf(breakdown, sizeof breakdown, "\n| model | prefill | GPU ms per op (CUDA events) |\n|---|---|---|\n");
    int n = snprintf(table, sizeof table,
                     "GPU: %s\n\n"
                     "| model | weights (GB, FP16) | prefill 1x1024 (ms, tok/s) | prefill 8x1024 (ms, tok/s) "
                     "| decode b=1 (ms/token) | floor (ms) | floor / decode |\n|---|---|---|---|---|---|---|\n",
                     gpu_describe());
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        mq_config c = make_cfg(&shapes[i]);
        be *g = be_open_random(&c, BE_CUDA_F16, 0, 1234 + i, 8, 1024);
        if (!g) { printf("%s: %s\n", shapes[i].name, mq_errmsg()); continue; }
        int32_t *tok = bt_tokens(8 * 1024, c.vocab_size);
        double p1 = bt_prefill_ms(g, tok, 1, 1024), p8 = bt_prefill_ms(g, tok, 8, 1024), d1;
        {
            be_state *s = be_state_new(g, 1);
            if (!s) mq_die("%s", mq_errmsg());
            d1 = bt_decode_ms(g, s, tok);
            be_state_free(s);
        }
        /* where prefill time goes: one profiled call of each shape (events between the ops) */
        be_profile(g, 1);
        for (int b = 1; b <= 8; b += 7) {
            if (be_prefill(g, tok, b, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            char rep[512];
            be_profile_report(g, rep, sizeof rep);
            nb += snprintf(breakdown + nb, sizeof breakdown - nb, "| %s | %dx1024 | %s |\n", shapes[i].name, b, rep);
        }
        /* and a decode step, without the graph (a no-op hook forces the plain path), so each op's
         * event time includes the host's launch gaps: only the larger ops read true */
        {
            be_state *s = be_state_new(g, 1);
            float *lg = mq_malloc(sizeof(float) * c.vocab_size);
            mq_hooks nop = {nop_hook, NULL};
            for (int k = 0; k < 20; k++)
                if (be_step(g, s, tok + k, &nop, NULL, lg)) mq_die("%s", mq_errmsg());
            char rep[512];
            be_profile_report(g, rep, sizeof rep);
            nb += snprintf(breakdown + nb, sizeof breakdown - nb, "| %s | decode, 20 steps, no graph | %s |\n",
                           shapes[i].name, rep);
            free(lg);
            be_state_free(s);
        }
        be_profile(g, 0);
        free(tok);
        double gb = be_decode_bytes(g) / 1e9, floor_ms = gb / tbps; /* GB / (TB/s) = ms */
        n += snprintf(table + n, sizeof table - n, "| %s | %.2f | %.2f, %.0f | %.2f, %.0f | %.3f | %.3f | %.0f%% |\n",
                      shapes[i].name, gb, p1, 1024 / p1 * 1e3, p8, 8192 / p8 * 1e3, d1, floor_ms,
                      100 * floor_ms / d1);
        fprintf(stderr, "%s done (workspace %.2f GB)\n", shapes[i].name, be_ws_bytes(g) / 1e9);
        be_free(g);
    }
    n += snprintf(table + n, sizeof table - n, "%s", breakdown);
    n += snprintf(table + n, sizeof table - n,
                  "\nPrefill: embedding to norm_f (no lm_head), host clock around synchronized calls, median of %d. "
                  "Decode: batch 1, CUDA graph including lm_head, median of %d x %d steps. Floor: bytes of weights "
                  "one step reads / %.2f TB/s (device-to-device copy rate measured in this run, read + write).\n",
                  BT_PREFILL_REPS, BT_DECODE_REPS, BT_STEPS, tbps);
    fputs(table, stdout);
    if (out && mq_write_file_atomic(out, table, strlen(table))) { fprintf(stderr, "%s\n", mq_errmsg()); return 1; }
    return 0;
}
