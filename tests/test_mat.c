/* core/mat: mat_linear against a naive double-precision GEMM on odd sizes (edges of every block,
 * T = 1 decode, tiny K), RMSNorm/SiLU/softplus against double formulas, and a throughput figure. */
#include "tests/test.h"
#include "core/err.h"
#include "core/mat.h"
#include <stdint.h>
#include <time.h>
#include <omp.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {  /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}
static float *rand_vec(size_t n) {
    float *v = mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = frand();
    return v;
}
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Max error relative to the scale of the products (sum |x||w|), which is what FP32 rounding tracks. */
static double linear_err(int T, int N, int K, int with_bias) {
    float *x = rand_vec((size_t)T * K), *W = rand_vec((size_t)N * K), *b = with_bias ? rand_vec(N) : NULL;
    float *y = mq_malloc((size_t)T * N * sizeof(float));
    for (size_t i = 0; i < (size_t)T * N; i++) y[i] = NAN;
    mat_linear(y, x, W, b, T, N, K);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0, scale = b ? fabs(b[n]) : 0;
            for (int k = 0; k < K; k++) {
                s += (double)x[(size_t)t * K + k] * W[(size_t)n * K + k];
                scale += fabs((double)x[(size_t)t * K + k] * W[(size_t)n * K + k]);
            }
            double e = fabs(y[(size_t)t * N + n] - s) / (scale + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    free(x); free(W); free(b); free(y);
    return worst;
}

static void test_linear_odd_sizes(void) {
    static const int sizes[][3] = {
        {1, 1, 1}, {1, 50, 192}, {2, 37, 19}, {3, 17, 5}, {4, 16, 8}, {5, 33, 7}, {6, 16, 16},
        {7, 31, 257}, {13, 44, 384}, {97, 259, 513}, {200, 384, 12}, {101, 768, 192}, {64, 1, 300},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int b = 0; b < 2; b++) {
            const int *s = sizes[i];
            double e = linear_err(s[0], s[1], s[2], b);
            T_CHECK(e < 2e-6, "T=%d N=%d K=%d bias=%d: relative error %.3g", s[0], s[1], s[2], b, e);
        }
}

static void test_rmsnorm_silu_softplus(void) {
    int T = 5, D = 193;
    float *x = rand_vec((size_t)T * D), *w = rand_vec(D), *y = mq_malloc((size_t)T * D * sizeof(float));
    mat_rmsnorm(y, x, w, T, D, 1e-5f);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[t * D + i] * x[t * D + i];
        double r = 1.0 / sqrt(ss / D + 1e-5);
        for (int i = 0; i < D; i++) worst = fmax(worst, fabs(y[t * D + i] - w[i] * x[t * D + i] * r));
    }
    T_CHECK(worst < 1e-5, "rmsnorm max abs error %.3g", worst);
    mat_rmsnorm(x, x, w, T, D, 1e-5f);  /* in place gives the same result */
    T_CHECK(!memcmp(x, y, (size_t)T * D * sizeof(float)), "in-place rmsnorm differs");

    static const float pts[] = {-30, -5, -1, -1e-3f, 0, 0.5f, 3, 19.9f, 20, 20.1f, 40};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double v = pts[i];
        double sp = v > 20 ? v : log1p(exp(v)), si = v / (1 + exp(-v));
        T_NEAR(mat_softplus(pts[i]), sp, 2e-7 * fmax(1, fabs(sp)), "softplus");
        T_NEAR(mat_silu(pts[i]), si, 2e-7 * fmax(1, fabs(si)), "silu");
    }
    free(x); free(w); free(y);
}

/* Not a check: prints the throughput on shapes the proxies use (in_proj, lm_head): wall clock with
 * all threads, and one thread's own CPU time with one thread, which other processes sharing the
 * cores do not distort. */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_linear_throughput(void) {
    static const int shapes[][3] = {{1024, 768, 192}, {256, 50280, 192}};
    for (size_t s = 0; s < 2; s++) {
        int T = shapes[s][0], N = shapes[s][1], K = shapes[s][2], nth = mat_threads();
        float *x = rand_vec((size_t)T * K), *W = rand_vec((size_t)N * K), *y = mq_malloc((size_t)T * N * sizeof(float));
        double flop = 2.0 * T * N * K, rate[2];
        for (int one = 0; one < 2; one++) {
            omp_set_num_threads(one ? 1 : nth);
            double (*clk)(void) = one ? thread_cpu : now;
            mat_linear(y, x, W, NULL, T, N, K);
            int reps = 0;
            double t0 = clk(), t1;
            do { mat_linear(y, x, W, NULL, T, N, K); reps++; } while ((t1 = clk()) - t0 < 0.15);
            rate[one] = flop * reps / (t1 - t0) * 1e-9;
        }
        omp_set_num_threads(nth);
        printf("    mat_linear T=%d N=%d K=%d: %.1f GFLOP/s with %d threads (wall), %.1f GFLOP/s per core (CPU time)\n",
               T, N, K, rate[0], nth, rate[1]);
        free(x); free(W); free(y);
    }
}

int main(void) {
    T_RUN(test_linear_odd_sizes);
    T_RUN(test_rmsnorm_silu_softplus);
    T_RUN(test_linear_throughput);
    return t_summary();
}
