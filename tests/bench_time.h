/* The GPU benchmarks' one timing protocol (tests/bench_*.c), so every table measures alike:
 * host clock around synchronized calls, medians, two warm-ups for prefill (cuBLAS heuristics,
 * module load) and one untimed round for decode (graph capture). Static inline: header only. */
#ifndef MQ_BENCH_TIME_H
#define MQ_BENCH_TIME_H
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "core/err.h"
#include "ssm/backend.h"

static inline double bt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static inline int bt_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
/* median of v[0..n) (sorts v) */
static inline double bt_median(double *v, int n) {
    qsort(v, n, sizeof *v, bt_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

enum { BT_PREFILL_REPS = 7, BT_DECODE_REPS = 3, BT_STEPS = 50 };

/* median ms of prefills of B x T tokens tok[B*T] (embedding to norm_f; be_prefill synchronizes) */
static inline double bt_prefill_ms(be *b, const int32_t *tok, int B, int T) {
    double t[BT_PREFILL_REPS];
    for (int r = -2; r < BT_PREFILL_REPS; r++) {
        double t0 = bt_now_ms();
        if (be_prefill(b, tok, B, T, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
        if (r >= 0) t[r] = bt_now_ms() - t0;
    }
    return bt_median(t, BT_PREFILL_REPS);
}

/* ms per decode step of s's batch (one token per sequence, tok[BT_STEPS * max batch]) through the
 * CUDA graph with lm_head into the workspace, no host copy (be_step_async): median of
 * BT_DECODE_REPS rounds of BT_STEPS steps from a reset state */
static inline double bt_decode_ms(be *b, be_state *s, const int32_t *tok) {
    double t[BT_DECODE_REPS];
    for (int r = -1; r < BT_DECODE_REPS; r++) {
        be_state_reset(s);
        double t0 = bt_now_ms();
        for (int i = 0; i < BT_STEPS; i++)
            if (be_step_async(b, s, tok + i * be_max_batch(b), 1)) mq_die("%s", mq_errmsg());
        be_sync(b);
        if (r >= 0) t[r] = (bt_now_ms() - t0) / BT_STEPS;
    }
    return bt_median(t, BT_DECODE_REPS);
}

/* n tokens spread over the vocabulary (deterministic; the benchmarks' inputs) */
static inline int32_t *bt_tokens(size_t n, int vocab) {
    int32_t *tok = mq_malloc(sizeof(int32_t) * n);
    for (size_t k = 0; k < n; k++) tok[k] = (int32_t)((k * 7919u + 13) % (unsigned)vocab);
    return tok;
}

#endif
