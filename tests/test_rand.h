/* Random test inputs for the int8 kernel tests (tests/test_int8.c, test_int8_ref.c): a xorshift64
 * generator seeded per test program (define T_RNG_SEED before including), int8 codes in [-127, 127],
 * floats in a range, and the int8 comparison both files report with. Buffers are one element longer
 * than asked, so a test may pass n = 0; the caller frees them. */
#ifndef MQ_TEST_RAND_H
#define MQ_TEST_RAND_H
#include <stdint.h>
#include <stdlib.h>
#include "core/err.h"

#ifndef T_RNG_SEED
#define T_RNG_SEED 0x2545F4914F6CDD1Dull
#endif
static uint64_t g_rng = T_RNG_SEED;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}
static float frand(void) { return (float)(rnd() >> 8) * (2.0f / 16777216.0f) - 1.0f; }  /* [-1, 1) */
__attribute__((unused)) static int8_t *rand_i8(size_t n) {
    int8_t *q = mq_malloc(n + 1);
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int)(rnd() % 255u) - 127);
    return q;
}
static float *rand_f(size_t n, float lo, float hi) {
    float *v = mq_malloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * 0.5f * (frand() + 1.0f);
    return v;
}
/* int8 outputs: the largest |a - b| in steps and the number of entries that differ */
__attribute__((unused)) static void cmp_q(const int8_t *a, const int8_t *b, size_t n, int *maxd, size_t *nd) {
    *maxd = 0, *nd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > *maxd) *maxd = d;
        if (d) (*nd)++;
    }
}
#endif
