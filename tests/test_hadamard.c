/* CPU Hadamard tests: the m x m blocks, H H^T = I and H = H^T for every order m * 2^k <= 8192,
 * the fast transform against the dense matrix, transform twice = identity, the out_proj fusion
 * identity, the int8 rounding rule and the errors for unsupported orders. */
#include "tests/test.h"
#include "core/err.h"
#include "hadamard/had.h"
#include "core/qrule.h"
#include "hadamard/had_sign.h"

#define MAX_ORDER 8192

/* Every supported order up to MAX_ORDER, ascending; returns the count. */
static int all_orders(int *out) {
    static const int ms[] = {1, 12, 20, 28};
    int cnt = 0;
    for (int i = 0; i < 4; i++)
        for (int p = 1; ms[i] * p <= MAX_ORDER; p *= 2) out[cnt++] = ms[i] * p;
    for (int i = 1; i < cnt; i++)  /* insertion sort: ascending orders */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) { int t = out[j]; out[j] = out[j - 1]; out[j - 1] = t; }
    return cnt;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) {  /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) / 8388608.0 - 1.0);
}
static void fill_random(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * (i % 17 == 0 ? 20.0f : 1.0f);  /* a few outliers */
}

static void test_factor(void) {
    static const struct { int n, m, k; } ok[] = {
        {1, 1, 0}, {2, 1, 1}, {12, 12, 0}, {20, 20, 0}, {28, 28, 0}, {384, 12, 5}, {448, 28, 4},
        {1536, 12, 7}, {2048, 1, 11}, {2560, 20, 7}, {3072, 12, 8}, {4096, 1, 12}, {5120, 20, 8},
        {7168, 28, 8}, {8192, 1, 13}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int m = -1, k = -1;
        T_CHECK(had_factor(ok[i].n, &m, &k) == 0, "n=%d: %s", ok[i].n, mq_errmsg());
        T_CHECK(m == ok[i].m && k == ok[i].k, "n=%d: got m=%d k=%d", ok[i].n, m, k);
    }
    static const int bad[] = {100, 36, 0, -4, -12, 3, 6, 10, 14, 24 * 3, 44, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "dimension %d", bad[i]);
        mq_clear_error();
        T_CHECK(had_factor(bad[i], NULL, NULL) == -1, "n=%d must be rejected", bad[i]);
        T_CHECK(strstr(mq_errmsg(), want) != NULL, "message names %d: %s", bad[i], mq_errmsg());
    }
}

static void test_blocks(void) {
    static const int qs[] = {11, 13, 19};
    for (int i = 0; i < 3; i++) {
        uint32_t mask = 0;
        for (int y = 1; y < qs[i]; y++) mask |= 1u << (y * y % qs[i]);
        T_CHECK(mask == had_qr_mask(qs[i]), "squares mod %d: %#x vs table %#x", qs[i], mask, had_qr_mask(qs[i]));
    }
    static const int ms[] = {12, 20, 28};
    for (int t = 0; t < 3; t++) {
        int m = ms[t], bad = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                int s = had_block_sign(m, i, j), dot = 0;
                if ((s != 1 && s != -1) || s != had_block_sign(m, j, i)) bad++;
                for (int c = 0; c < m; c++) dot += had_block_sign(m, i, c) * had_block_sign(m, j, c);
                if (dot != (i == j ? m : 0)) bad++;
            }
        T_CHECK(bad == 0, "A_%d: %d entries off (want +-1, symmetric, A A^T = %d I)", m, bad, m);
    }
}

/* H = H^T and H H^T = I: all rows up to order 512, 6 sampled rows (against all rows) beyond. */
static void check_orthogonal(const float *H, int n) {
    int nsample = n <= 512 ? n : 6, asym = 0;
    double worst = 0;
    #pragma omp parallel for schedule(dynamic) reduction(max : worst) reduction(+ : asym)
    for (int s = 0; s < nsample; s++) {
        int i = n <= 512 ? s : (int)(((uint64_t)s * 2654435761u + 7) % (unsigned)n);
        const float *hi = H + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            const float *hj = H + (size_t)j * n;
            double dot = 0;  /* double: measure H, not the check's own rounding */
            #pragma omp simd reduction(+ : dot)
            for (int c = 0; c < n; c++) dot += (double)hi[c] * hj[c];
            double err = fabs(dot - (i == j ? 1.0 : 0.0));
            if (err > worst) worst = err;
            if (hi[j] != hj[i]) asym++;
        }
    }
    T_CHECK(worst < 1e-5, "n=%d: max |H H^T - I| = %.3g", n, worst);
    T_CHECK(asym == 0, "n=%d: %d entries with H[i][j] != H[j][i]", n, asym);
}

/* had_transform_f32 on random rows == x_row H^T computed densely in double:
 * max |fast - dense| / max |dense| < 1e-5 per row. */
static void check_fast_vs_dense(const float *H, int n) {
    int rows = n <= 2048 ? 3 : 2;
    float *x = mq_malloc((size_t)rows * n * sizeof *x), *x0 = mq_malloc((size_t)rows * n * sizeof *x0);
    double *ref = mq_malloc((size_t)n * sizeof *ref), worst = 0;
    fill_random(x, (size_t)rows * n);
    memcpy(x0, x, (size_t)rows * n * sizeof *x);
    T_CHECK(had_transform_f32(x, rows, n) == 0, "n=%d: %s", n, mq_errmsg());
    for (int r = 0; r < rows; r++) {
        const float *xr = x0 + (size_t)r * n, *got = x + (size_t)r * n;
        #pragma omp parallel for schedule(static) if (n >= 1024)
        for (int i = 0; i < n; i++) {  /* ref[i] = sum_j H[i][j] x[j] */
            const float *hi = H + (size_t)i * n;
            double s = 0;
            for (int j = 0; j < n; j++) s += (double)hi[j] * xr[j];
            ref[i] = s;
        }
        double d = 0, m = 0;
        for (int i = 0; i < n; i++) { d = fmax(d, fabs(got[i] - ref[i])); m = fmax(m, fabs(ref[i])); }
        worst = fmax(worst, d / m);
    }
    T_CHECK(worst < 1e-5, "n=%d: fast vs dense rel err %.3g", n, worst);
    free(x); free(x0); free(ref);
}

/* Every order up to 8192, one dense matrix each: orthogonal, symmetric, equal to the fast path. */
static void test_dense_matrix(void) {
    int orders[64], cnt = all_orders(orders);
    for (int o = 0; o < cnt; o++) {
        int n = orders[o];
        float *H = had_dense(n);
        T_CHECK(H != NULL, "n=%d: %s", n, mq_errmsg());
        if (!H) continue;
        check_orthogonal(H, n);
        check_fast_vs_dense(H, n);
        free(H);
    }
}

/* H is symmetric and orthogonal, so the transform is its own inverse. */
static void test_twice_is_identity(void) {
    int orders[64], cnt = all_orders(orders), rows = 5;
    for (int o = 0; o < cnt; o++) {
        int n = orders[o];
        float *x = mq_malloc((size_t)rows * n * sizeof *x), *x0 = mq_malloc((size_t)rows * n * sizeof *x0);
        fill_random(x0, (size_t)rows * n);
        memcpy(x, x0, (size_t)rows * n * sizeof *x);
        T_CHECK(had_transform_f32(x, rows, n) == 0 && had_transform_f32(x, rows, n) == 0, "n=%d: %s", n, mq_errmsg());
        double d = 0, r = 0;
        for (size_t i = 0; i < (size_t)rows * n; i++) { d = fmax(d, fabs(x[i] - x0[i])); r = fmax(r, fabs(x0[i])); }
        T_CHECK(d / r < 1e-5, "n=%d: H(H x) vs x rel err %.3g", n, d / r);
        free(x); free(x0);
    }
}

/* The quantizer's fusion: rows of W transformed (W' = W H^T) and y rotated (y' = H y) keep W y. */
static void test_out_proj_fusion(void) {
    static const int ns[] = {448, 1536, 2560};
    for (int t = 0; t < 3; t++) {
        int n = ns[t], dout = 7;
        float *W = mq_malloc((size_t)dout * n * sizeof *W), *y = mq_malloc((size_t)n * sizeof *y);
        fill_random(W, (size_t)dout * n);
        fill_random(y, n);
        double before[7], worst = 0;
        for (int o = 0; o < dout; o++) {
            before[o] = 0;
            for (int j = 0; j < n; j++) before[o] += (double)W[(size_t)o * n + j] * y[j];
        }
        T_CHECK(had_transform_f32(W, dout, n) == 0 && had_transform_f32(y, 1, n) == 0, "%s", mq_errmsg());
        for (int o = 0; o < dout; o++) {
            double after = 0, mag = 0;
            for (int j = 0; j < n; j++) {
                after += (double)W[(size_t)o * n + j] * y[j];
                mag += fabs((double)W[(size_t)o * n + j] * y[j]);
            }
            worst = fmax(worst, fabs(after - before[o]) / mag);
        }
        T_CHECK(worst < 1e-5, "n=%d: W' y' vs W y rel err %.3g", n, worst);
        free(W); free(y);
    }
}

static void test_quant_rule(void) {
    T_CHECK(qr_quant_i8(2.5f, 1) == 2 && qr_quant_i8(3.5f, 1) == 4 && qr_quant_i8(-2.5f, 1) == -2,
            "half to even: %d %d %d", qr_quant_i8(2.5f, 1), qr_quant_i8(3.5f, 1), qr_quant_i8(-2.5f, 1));
    T_CHECK(qr_quant_i8(1.26f, 0.5f) == 3 && qr_quant_i8(-0.74f, 0.5f) == -1, "scaled rounding");
    T_CHECK(qr_quant_i8(1000, 1) == 127 && qr_quant_i8(-1000, 1) == -127, "clamp to +-127");
    T_CHECK(qr_quant_i8(INFINITY, 1) == 127 && qr_quant_i8(-INFINITY, 1) == -127 && qr_quant_i8(NAN, 1) == 0,
            "inf and NaN");
    int rows = 3, n = 1536;
    float *x = mq_malloc((size_t)rows * n * sizeof *x), *y = mq_malloc((size_t)rows * n * sizeof *y);
    int8_t *q = mq_malloc((size_t)rows * n);
    fill_random(x, (size_t)rows * n);
    memcpy(y, x, (size_t)rows * n * sizeof *x);
    float scale = 0.05f;
    T_CHECK(had_transform_quant_f32(x, q, rows, n, scale) == 0, "%s", mq_errmsg());
    had_transform_f32(y, rows, n);
    int bad = 0, saturated = 0;
    for (size_t i = 0; i < (size_t)rows * n; i++) {
        if (q[i] != (int8_t)fminf(fmaxf(rintf(y[i] / scale), -127), 127)) bad++;
        if (q[i] == 127 || q[i] == -127) saturated++;
    }
    T_CHECK(bad == 0, "%d of %d quantized values differ from rint(transform / scale)", bad, rows * n);
    T_CHECK(saturated > 0 && saturated < rows * n / 10, "test data should saturate a few values: %d", saturated);
    T_CHECK(had_transform_quant_f32(x, q, rows, n, 0) == -1 && strstr(mq_errmsg(), "scale"), "scale 0: %s", mq_errmsg());
    T_CHECK(had_transform_quant_f32(x, q, rows, n, NAN) == -1, "scale NaN must be rejected");
    free(x); free(y); free(q);
}

static void test_errors(void) {
    float x[100] = {0};
    T_CHECK(had_transform_f32(x, 1, 100) == -1 && strstr(mq_errmsg(), "100"), "n=100: %s", mq_errmsg());
    T_CHECK(had_transform_f32(x, 1, 36) == -1 && strstr(mq_errmsg(), "36"), "n=36: %s", mq_errmsg());
    T_CHECK(had_transform_f32(x, 1, 0) == -1 && strstr(mq_errmsg(), "dimension 0"), "n=0: %s", mq_errmsg());
    T_CHECK(had_transform_f32(x, -1, 64) == -1 && strstr(mq_errmsg(), "-1"), "rows=-1: %s", mq_errmsg());
    T_CHECK(had_transform_f32(x, 0, 64) == 0, "zero rows is a no-op");
    T_CHECK(had_dense(36) == NULL && strstr(mq_errmsg(), "36"), "dense 36: %s", mq_errmsg());
    T_CHECK(had_dense(-8) == NULL && strstr(mq_errmsg(), "-8"), "dense -8: %s", mq_errmsg());
    int8_t q[100];
    T_CHECK(had_transform_quant_f32(x, q, 1, 100, 1) == -1 && strstr(mq_errmsg(), "100"), "quant n=100: %s", mq_errmsg());
}

int main(void) {
    T_RUN(test_factor);
    T_RUN(test_blocks);
    T_RUN(test_dense_matrix);
    T_RUN(test_twice_is_identity);
    T_RUN(test_out_proj_fusion);
    T_RUN(test_quant_rule);
    T_RUN(test_errors);
    return t_summary();
}
