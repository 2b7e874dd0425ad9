/* Random-weight FP16 tensors for the tiny checkpoints that tests (tests/test_cli.h) and the fuzz
 * seeds (fuzz/seeds.c) write: one deterministic generator (splitmix64) and one tensor adder, so a
 * seed checkpoint and a test checkpoint are made the same way. Header only. */
#ifndef MQ_TESTS_ST_FILL_H
#define MQ_TESTS_ST_FILL_H
#include <math.h>
#include <stdint.h>
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

#endif
