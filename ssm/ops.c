/* CPU reference ops of the Mamba mixers (see ops.h). The scan and the element-wise activations run
 * eight lanes at a time with GCC vector extensions; exp and log are Cephes-style polynomials in
 * those vectors, because libm's scalar expf would dominate the Mamba1 scan (d_inner * d_state exps
 * per token and layer). Loops over channels are shared out with OpenMP. */
#include "ssm/ops.h"
#include "core/err.h"
#include "core/mat.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* Work below this many multiply-adds stays on one thread: a decode step is too small to split. */
#define PAR_MIN 131072

static inline v8 splat(float a) { return (v8){a, a, a, a, a, a, a, a}; }
static inline v8 blend(v8i mask, v8 yes, v8 no) { return (v8)((mask & (v8i)yes) | (~mask & (v8i)no)); }

/* Lanes past n read as 0 and are not written: channel counts need not be multiples of 8. */
typedef float v8u __attribute__((vector_size(32), aligned(4)));
static inline v8 load8(const float *p, int n) {
    if (n >= 8) return *(const v8u *)p;
    v8 v = {0};
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
static inline void store8(float *p, v8 v, int n) {
    if (n >= 8) { *(v8u *)p = v; return; }
    for (int i = 0; i < n; i++) p[i] = v[i];
}

/* exp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n*ln2 is exact), e^r by a degree-7
 * polynomial, 2^n assembled in the exponent bits. Rounding of x*log2(e) uses the 1.5*2^23 trick,
 * which also leaves n in the low mantissa bits. */
static inline v8 exp8(v8 x) {
    v8i under = x < -87.33654f, over = x > 88.72283f;
    x = blend(under, splat(-87.33654f), blend(over, splat(88.72283f), x));
    v8 t = x * 1.44269504088896341f + 12582912.0f;
    v8 n = t - 12582912.0f;
    v8 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8 p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v8 e = p * (r * r) + r + 1.0f;
    v8i bits = (((v8i)t - 0x4B400000) + 127) << 23;
    e = e * (v8)bits;
    return blend(under, splat(0.0f), blend(over, splat(INFINITY), e));
}

/* log for positive normal x: x = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) by polynomial. */
static inline v8 log8(v8 x) {
    v8i xi = (v8i)x;
    v8i e = ((xi >> 23) & 0xff) - 126;
    v8 m = (v8)((xi & 0x007fffff) | 0x3f000000);  /* [0.5, 1) */
    v8i small = m < 0.707106781186547524f;
    e = e + small;                                 /* small is -1 where true */
    m = blend(small, m + m - 1.0f, m - 1.0f);
    v8 z = m * m;
    v8 p = splat(7.0376836292e-2f);
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    v8 fe = __builtin_convertvector(e, v8);
    v8 y = p * m * z;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return m + y + fe * 0.693359375f;
}

static inline v8 silu8(v8 x) { return x / (1.0f + exp8(-x)); }

/* torch softplus (threshold 20). log1p(e) as log(1+e) * e / ((1+e) - 1), which cancels the
 * rounding of 1+e (Goldberg's trick), so tiny outputs keep full relative precision. */
static inline v8 softplus8(v8 x) {
    v8 e = exp8(x), u = 1.0f + e;
    v8 l = blend(u == 1.0f, e, log8(u) * e / (u - 1.0f));
    return blend(x > 20.0f, x, l);
}

void op_exp(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 8) store8(y + i, exp8(load8(x + i, n - i)), n - i);
}

void op_silu(float *x, int n) {
    for (int i = 0; i < n; i += 8) store8(x + i, silu8(load8(x + i, n - i)), n - i);
}

void op_dt_softplus(float *dst, int ldd, const float *src, int lds, const float *bias, int T, int C,
                    float lo, float hi) {
#pragma omp parallel for schedule(static) if ((long)T * C > PAR_MIN)
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c += 8) {
            v8 v = load8(src + (size_t)t * lds + c, C - c);
            if (bias) v += load8(bias + c, C - c);
            v = softplus8(v);
            v = blend(v < lo, splat(lo), blend(v > hi, splat(hi), v));
            store8(dst + (size_t)t * ldd + c, v, C - c);
        }
}

void op_conv1d(float *y, int ldy, const float *x, int ldx, const float *w, const float *bias,
               float *state, int T, int C, int K, int silu) {
    int H = K - 1;
    float *wt = mq_malloc((size_t)K * C * sizeof(float));  /* [K x C]: the channel loop is contiguous */
    for (int c = 0; c < C; c++)
        for (int j = 0; j < K; j++) wt[(size_t)j * C + c] = w[(size_t)c * K + j];
    enum { CB = 64 };
#pragma omp parallel for schedule(static) if ((long)T * C * K > PAR_MIN)
    for (int c0 = 0; c0 < C; c0 += CB) {
        int c1 = c0 + CB < C ? c0 + CB : C;
        for (int t = 0; t < T; t++) {
            float *yt = y + (size_t)t * ldy;
            for (int c = c0; c < c1; c++) yt[c] = bias ? bias[c] : 0.0f;
            for (int j = 0; j < K; j++) {
                int s = t - H + j;
                const float *wj = wt + (size_t)j * C;
                if (s >= 0) {
                    const float *xs = x + (size_t)s * ldx;
                    for (int c = c0; c < c1; c++) yt[c] += wj[c] * xs[c];
                } else if (state) {
                    for (int c = c0; c < c1; c++) yt[c] += wj[c] * state[(size_t)c * H + H + s];
                }
            }
            if (silu) op_silu(yt + c0, c1 - c0);
        }
        /* New history = the last H inputs. Reading index T+i while writing i, ascending, never
         * reads an entry already overwritten. */
        if (state)
            for (int c = c0; c < c1; c++)
                for (int i = 0; i < H; i++) {
                    int s = T - H + i;
                    state[(size_t)c * H + i] = s >= 0 ? x[(size_t)s * ldx + c] : state[(size_t)c * H + H + s];
                }
    }
    free(wt);
}

void op_scan_m1(float *y, int ldy, const float *u, int ldu, const float *delta, int ldd,
                const float *A, const float *B, int ldb, const float *C, int ldc, const float *D,
                const float *z, int ldz, float *state, int T, int Di, int N) {
    int ngroups = (Di + 7) / 8;
    /* Eight channels per lane group; state h[n] holds state n of those channels, so the sum over n
     * is a chain of vector FMAs with no horizontal reduction. */
#pragma omp parallel for schedule(static) if ((long)T * Di * N > PAR_MIN)
    for (int gi = 0; gi < ngroups; gi++) {
        int d0 = gi * 8, w = Di - d0 < 8 ? Di - d0 : 8;
        v8 h[N], a[N];
        for (int n = 0; n < N; n++)
            for (int l = 0; l < 8; l++) {
                a[n][l] = l < w ? A[(size_t)(d0 + l) * N + n] : 0.0f;
                h[n][l] = l < w && state ? state[(size_t)(d0 + l) * N + n] : 0.0f;
            }
        v8 Dv = D ? load8(D + d0, w) : splat(0.0f);
        for (int t = 0; t < T; t++) {
            v8 dl = load8(delta + (size_t)t * ldd + d0, w), uu = load8(u + (size_t)t * ldu + d0, w);
            const float *Bt = B + (size_t)t * ldb, *Ct = C + (size_t)t * ldc;
            v8 acc = {0};
            for (int n = 0; n < N; n++) {
                v8 dA = exp8(dl * a[n]);
                h[n] = dA * h[n] + (dl * Bt[n]) * uu;
                acc += h[n] * Ct[n];
            }
            v8 out = acc + uu * Dv;
            if (z) out = out * silu8(load8(z + (size_t)t * ldz + d0, w));
            store8(y + (size_t)t * ldy + d0, out, w);
        }
        if (state)
            for (int n = 0; n < N; n++)
                for (int l = 0; l < w; l++) state[(size_t)(d0 + l) * N + n] = h[n][l];
    }
}

void op_scan_m2(float *y, int ldy, const float *x, int ldx, const float *dt, int lddt, const float *A,
                const float *B, int ldb, const float *C, int ldc, const float *D, float *state,
                int T, int H, int P, int G, int N) {
    int npg = (P + 7) / 8, heads_per_group = H / G;
    /* Tasks are (head, 8 channels of the head); lanes run over channels p, as in op_scan_m1. */
#pragma omp parallel for schedule(static) if ((long)T * H * P * N > PAR_MIN)
    for (int task = 0; task < H * npg; task++) {
        int hd = task / npg, p0 = (task % npg) * 8, w = P - p0 < 8 ? P - p0 : 8;
        int g = hd / heads_per_group, col = hd * P + p0;
        v8 h[N];
        for (int n = 0; n < N; n++)
            for (int l = 0; l < 8; l++) h[n][l] = l < w && state ? state[(size_t)(col + l) * N + n] : 0.0f;
        float Dh = D ? D[hd] : 0.0f;
        for (int t = 0; t < T; t++) {
            float dtv = dt[(size_t)t * lddt + hd], dA = expf(dtv * A[hd]);
            v8 xv = load8(x + (size_t)t * ldx + col, w), xdt = xv * dtv;
            const float *Bt = B + (size_t)t * ldb + (size_t)g * N, *Ct = C + (size_t)t * ldc + (size_t)g * N;
            v8 acc = {0};
            for (int n = 0; n < N; n++) {
                h[n] = h[n] * dA + xdt * Bt[n];
                acc += h[n] * Ct[n];
            }
            store8(y + (size_t)t * ldy + col, acc + xv * Dh, w);
        }
        if (state)
            for (int n = 0; n < N; n++)
                for (int l = 0; l < w; l++) state[(size_t)(col + l) * N + n] = h[n][l];
    }
}

void op_gated_rmsnorm(float *out, int ldo, const float *y, int ldy, const float *z, int ldz,
                      const float *w, int T, int D, int group, float eps, int norm_before_gate) {
#pragma omp parallel for schedule(static) if ((long)T * D > PAR_MIN)
    for (int t = 0; t < T; t++) {
        const float *yt = y + (size_t)t * ldy, *zt = z + (size_t)t * ldz;
        float *ot = out + (size_t)t * ldo;
        for (int g0 = 0; g0 < D; g0 += group) {
            /* v = the normalized quantity: y gated first (transformers, mamba_ssm default) or y alone */
            double ss = 0;
            for (int c = g0; c < g0 + group; c += 8) {
                int n = g0 + group - c;
                v8 v = load8(yt + c, n);
                if (!norm_before_gate) v = v * silu8(load8(zt + c, n));
                store8(ot + c, v, n);
                for (int l = 0; l < (n < 8 ? n : 8); l++) ss += (double)v[l] * v[l];
            }
            float r = 1.0f / sqrtf((float)(ss / group) + eps);
            for (int c = g0; c < g0 + group; c += 8) {
                int n = g0 + group - c;
                v8 v = load8(w + c, n) * (load8(ot + c, n) * r);
                if (norm_before_gate) v = v * silu8(load8(zt + c, n));
                store8(ot + c, v, n);
            }
        }
    }
}

int op_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab) {
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= vocab)
            return mq_fail("token %d at position %d is outside the vocabulary [0, %d)", tokens[t], t, vocab);
        memcpy(out + (size_t)t * D, embed + (size_t)tokens[t] * D, (size_t)D * sizeof(float));
    }
    return 0;
}

void op_add_rmsnorm(float *resid, const float *x, float *out, const float *w, int T, int D, float eps) {
    if (x)
        for (size_t i = 0; i < (size_t)T * D; i++) resid[i] += x[i];
    mat_rmsnorm(out, resid, w, T, D, eps);
}
