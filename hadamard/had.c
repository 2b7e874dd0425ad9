/* CPU Hadamard transforms (see had.h for the matrix and the convention): factorization of the
 * order, the dense matrix for tests and weight fusion, and the fast O(n log n) row transform:
 * a Walsh-Hadamard butterfly on each of the m segments of length 2^k, then the m x m block. */
#include "hadamard/had.h"
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/qrule.h"
#include "hadamard/had_sign.h"

int had_factor(int n, int *m_out, int *k_out) {
    if (n <= 0) return mq_fail("Hadamard dimension %d: must be positive", n);
    int k = __builtin_ctz((unsigned)n), odd = n >> k, m;
    if (odd == 1) m = 1;
    else if (odd == 3 && k >= 2) m = 12;
    else if (odd == 5 && k >= 2) m = 20;
    else if (odd == 7 && k >= 2) m = 28;
    else
        return mq_fail("Hadamard dimension %d is not supported: it must be m * 2^k with m in "
                       "{1, 12, 20, 28}, but %d = %d * 2^%d", n, n, odd, k);
    if (m > 1) k -= 2;
    if (m_out) *m_out = m;
    if (k_out) *k_out = k;
    return 0;
}

static float had_norm(int n) { return (float)(1.0 / sqrt((double)n)); }

float *had_dense(int n) {
    int m = 1, k = 0;
    if (had_factor(n, &m, &k)) return NULL;
    if (n > 16384) {
        mq_fail("had_dense: order %d is too large for a dense matrix (at most 16384)", n);
        return NULL;
    }
    int P = 1 << k;
    float s = had_norm(n), *H = mq_malloc((size_t)n * n * sizeof *H);
    #pragma omp parallel for schedule(static) if (n >= 512)
    for (int i = 0; i < n; i++) {
        /* row i = A[a][.] (x) S[b][.]: block c of the row is A[a][c] times Sylvester row b */
        int a = i / P, b = i % P;
        float *row = H + (size_t)i * n;
        for (int j = 0; j < P; j++) row[j] = (__builtin_popcount((unsigned)(b & j)) & 1) ? -s : s;
        for (int c = m - 1; c >= 0; c--) {
            float sign = (float)had_block_sign(m, a, c);
            for (int j = 0; j < P; j++) row[(size_t)c * P + j] = sign * row[j];
        }
    }
    return H;
}

/* In-place unnormalized Walsh-Hadamard transform of x[0..P) (Sylvester order). */
static void fwht(float *x, int P) {
    for (int h = 1; h < P; h <<= 1)
        for (int i = 0; i < P; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* One row: butterflies on the m segments, the m x m block across segments (through tmp[n]),
 * then the 1/sqrt(n) scale. */
static void transform_row(float *x, float *tmp, int m, int P, const signed char *A, float s) {
    int n = m * P;
    for (int a = 0; a < m; a++) fwht(x + (size_t)a * P, P);
    if (m == 1) {
        for (int t = 0; t < n; t++) x[t] *= s;
        return;
    }
    for (int a = 0; a < m; a++) {
        float *o = tmp + (size_t)a * P;
        for (int b = 0; b < P; b++) o[b] = 0;
        for (int c = 0; c < m; c++) {
            const float *xc = x + (size_t)c * P;
            if (A[a * m + c] > 0)
                for (int b = 0; b < P; b++) o[b] += xc[b];
            else
                for (int b = 0; b < P; b++) o[b] -= xc[b];
        }
    }
    for (int t = 0; t < n; t++) x[t] = tmp[t] * s;
}

/* Runs the transform over rows; with q != NULL also quantizes each row (x then holds a copy). */
static int transform_rows(float *x, const float *src, int8_t *q, int rows, int n, float scale) {
    int m = 1, k = 0;
    if (had_factor(n, &m, &k)) return -1;
    if (rows < 0) return mq_fail("Hadamard transform of order %d: row count %d is negative", n, rows);
    if (rows == 0) return 0;
    signed char A[28 * 28];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) A[i * m + j] = (signed char)had_block_sign(m, i, j);
    int P = 1 << k;
    float s = had_norm(n);
    #pragma omp parallel if (rows > 1 && (size_t)rows * n >= 8192)
    {
        float *tmp = mq_malloc((size_t)n * sizeof *tmp), *own = q ? mq_malloc((size_t)n * sizeof *own) : NULL;
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *row = q ? own : x + (size_t)r * n;
            if (q) memcpy(own, src + (size_t)r * n, (size_t)n * sizeof *own);
            transform_row(row, tmp, m, P, A, s);
            if (q)
                for (int t = 0; t < n; t++) q[(size_t)r * n + t] = qr_quant_i8(own[t], scale);
        }
        free(tmp);
        free(own);
    }
    return 0;
}

int had_transform_f32(float *x, int rows, int n) { return transform_rows(x, NULL, NULL, rows, n, 1); }

int had_transform_quant_f32(const float *x, int8_t *q, int rows, int n, float scale) {
    if (!(scale > 0) || isinf(scale))
        return mq_fail("Hadamard quantize of order %d: scale %g must be positive and finite", n, scale);
    return transform_rows(NULL, x, q, rows, n, scale);
}
