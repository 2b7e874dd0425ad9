/* Dense FP32 kernels of the CPU reference (see mat.h). mat_linear dominates the runtime: it packs
 * blocks of W into 16-column panels and runs a 6x16 register-tiled micro-kernel (12 AVX
 * accumulators, written with GCC vector extensions) over cache blocks shared out with OpenMP.
 * One or two rows (decode) skip the packing and take a dot-product path that streams W once. */
#include "core/mat.h"
#include "core/err.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Builds without -mavx (the ASan tests) warn that passing v8 by value changes the ABI; these are
 * static helpers, so no call ever crosses an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  /* unaligned access */

enum {
    MR = 6,    /* rows of the micro-tile: 6 x 2 accumulators + 2 B vectors + 1 broadcast = 15 ymm */
    NR = 16,   /* columns of the micro-tile = width of a packed panel */
    KC = 256,  /* depth of a block: a 16 x KC panel (16 KiB) stays in L1 across the row sweep */
    MC = 96,   /* rows of a block: MC x KC of x (96 KiB) stays in L2 across the panels */
    NC = 256,  /* columns of a block (16 panels) */
    SMALL_T = 3,
};
/* Below this many multiply-adds a product runs on one thread: forking costs microseconds, and far
 * more when other processes share the cores. */
#define PAR_MIN_MACS 262144L

int mat_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Packed block of W: columns [n0, n1) x depth [k0, k0+kc) as panels of 16 columns, each kc rows of
 * 16 floats (zero past n1), so the micro-kernel reads B with two aligned vector loads per k. One
 * buffer per thread (NC x KC floats = 256 KiB, sized for L2), reused across calls. */
static _Thread_local float *g_pack;

static float *pack_buffer(void) {
    if (!g_pack && posix_memalign((void **)&g_pack, 64, (size_t)NC * KC * sizeof(float)))
        mq_die("out of memory allocating the GEMM packing buffer");
    return g_pack;
}

static void pack_block(float *dst, const float *W, int K, int n0, int n1, int k0, int kc) {
    for (int p0 = n0; p0 < n1; p0 += NR) {
        int nr = n1 - p0 < NR ? n1 - p0 : NR;
        for (int j = 0; j < nr; j++) {
            const float *w = W + (size_t)(p0 + j) * K + k0;
            for (int k = 0; k < kc; k++) dst[k * NR + j] = w[k];
        }
        for (int j = nr; j < NR; j++)
            for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
        dst += (size_t)kc * NR;
    }
}

/* A broadcast GCC emits as one vbroadcastss from memory ((v8){0} + a would add a scalar first). */
static inline v8 splat(float a) { return (v8){a, a, a, a, a, a, a, a}; }

/* C[mr x nr] (=|+=) A[mr x kc] * Bp[kc x 16] (+ bias on the first K block). Rows past mr reuse
 * row 0 of A so the loop needs no branches; their results are simply not stored. */
static void kernel_6x16(int kc, const float *A, int lda, const float *Bp, float *C, int ldc,
                        int mr, int nr, int first, const float *bias) {
    const float *a0 = A, *a1 = mr > 1 ? A + lda : A, *a2 = mr > 2 ? A + 2 * lda : A,
                *a3 = mr > 3 ? A + 3 * lda : A, *a4 = mr > 4 ? A + 4 * lda : A, *a5 = mr > 5 ? A + 5 * lda : A;
    v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    v8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (int k = 0; k < kc; k++) {
        v8 b0 = *(const v8 *)(Bp + k * NR), b1 = *(const v8 *)(Bp + k * NR + 8), a;
        a = splat(a0[k]); c00 += a * b0; c01 += a * b1;
        a = splat(a1[k]); c10 += a * b0; c11 += a * b1;
        a = splat(a2[k]); c20 += a * b0; c21 += a * b1;
        a = splat(a3[k]); c30 += a * b0; c31 += a * b1;
        a = splat(a4[k]); c40 += a * b0; c41 += a * b1;
        a = splat(a5[k]); c50 += a * b0; c51 += a * b1;
    }
    v8 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (nr == NR) {
        v8 bb0 = {0}, bb1 = {0};
        if (first && bias) { bb0 = *(const v8u *)bias; bb1 = *(const v8u *)(bias + 8); }
        for (int i = 0; i < mr; i++) {
            v8u *c = (v8u *)(C + (size_t)i * ldc);
            if (first) { c[0] = acc[i][0] + bb0; c[1] = acc[i][1] + bb1; }
            else { c[0] += acc[i][0]; c[1] += acc[i][1]; }
        }
        return;
    }
    float tile[MR][NR];
    memcpy(tile, acc, sizeof tile);
    for (int i = 0; i < mr; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < nr; j++)
            c[j] = first ? tile[i][j] + (bias ? bias[j] : 0.0f) : c[j] + tile[i][j];
    }
}

static float hsum(v8 v) {
    float s = 0;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

/* Few rows: each W row is read once and dotted with every x row; no packing. */
static void linear_small(float *y, const float *x, const float *W, const float *bias, int T, int N, int K) {
    int K8 = K & ~7;
#pragma omp parallel for schedule(static) if ((long)T * N * K >= PAR_MIN_MACS)
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * K;
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * K;
            v8 s0 = {0}, s1 = {0};
            int k = 0;
            for (; k + 16 <= K8; k += 16) {
                s0 += *(const v8u *)(xt + k) * *(const v8u *)(w + k);
                s1 += *(const v8u *)(xt + k + 8) * *(const v8u *)(w + k + 8);
            }
            for (; k < K8; k += 8) s0 += *(const v8u *)(xt + k) * *(const v8u *)(w + k);
            float s = hsum(s0 + s1);
            for (; k < K; k++) s += xt[k] * w[k];
            y[(size_t)t * N + n] = s + (bias ? bias[n] : 0.0f);
        }
    }
}

void mat_linear(float *y, const float *x, const float *W, const float *bias, int T, int N, int K) {
    if (T <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) y[(size_t)t * N + n] = bias ? bias[n] : 0.0f;
        return;
    }
    if (T <= SMALL_T) { linear_small(y, x, W, bias, T, N, K); return; }

    /* Tasks are (column block, row range). With enough column blocks to share out, a task takes all
     * T rows, so each block of W is packed exactly once and stays in L2 while every row passes
     * over it (the lm_head case); otherwise rows are split too. */
    int nblocks = (N + NC - 1) / NC;
    int mrows = nblocks >= 2 * mat_threads() ? T : MC;
    int mblocks = (T + mrows - 1) / mrows;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if ((long)T * N * K >= PAR_MIN_MACS)
    for (int nb = 0; nb < nblocks; nb++)
        for (int mb = 0; mb < mblocks; mb++) {
            float *Bp = pack_buffer();
            int n0 = nb * NC, n1 = n0 + NC < N ? n0 + NC : N;
            int r0 = mb * mrows, r1 = r0 + mrows < T ? r0 + mrows : T;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC;
                pack_block(Bp, W, K, n0, n1, k0, kc);
                for (int m0 = r0; m0 < r1; m0 += MC) {  /* MC x kc of x stays in L2 */
                    int m1 = m0 + MC < r1 ? m0 + MC : r1;
                    for (int j = n0; j < n1; j += NR) {
                        const float *Bj = Bp + (size_t)(j - n0) * kc;
                        int nr = n1 - j < NR ? n1 - j : NR;
                        for (int i = m0; i < m1; i += MR)
                            kernel_6x16(kc, x + (size_t)i * K + k0, K, Bj, y + (size_t)i * N + j, N,
                                        m1 - i < MR ? m1 - i : MR, nr, k0 == 0, bias ? bias + j : NULL);
                    }
                }
            }
        }
}

void mat_rmsnorm(float *y, const float *x, const float *w, int T, int D, float eps) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * D;
        float *yt = y + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xt[i] * xt[i];
        /* torch: x * rsqrt(mean(x^2) + eps), then * weight, all in FP32 */
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        for (int i = 0; i < D; i++) yt[i] = w[i] * (xt[i] * r);
    }
}

float mat_silu(float x) { return x / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus with beta 1, threshold 20: linear above the threshold. */
float mat_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
