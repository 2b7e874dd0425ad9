/* CPU reference ops of the Mamba mixers (see ops.h). The scan and the element-wise activations run
 * eight lanes at a time with GCC vector extensions; exp and log are Cephes-style polynomials in
 * those vectors, because libm's scalar expf would dominate the Mamba1 scan (d_inner * d_state exps
 * per token and layer). Loops over channels are shared out with OpenMP. */
#include "ssm/ops.h"
#include "core/err.h"
#include "core/mat.h"
#include "core/st.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Builds without -mavx (the ASan tests) warn that passing v8 by value changes the ABI; these are
 * static helpers, so no call ever crosses an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
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

/* Lane groups (8 channels each) per scan task. A task walks t with all its groups side by side, so
 * each row of u, delta, z, x is read as whole cache lines; one group per task strides through
 * memory a row apart and misses cache on every access. */
/* ---------------------------------------------------------------- state storage format */

static int g_state_fmt = OP_STATE_F32;
void op_set_state_format(int fmt) { g_state_fmt = fmt; }
int op_state_format(void) { return g_state_fmt; }

static const char *const state_fmt_names[OP_STATE_NFMT] = {"fp32", "fp16", "bf16", "int8", "int8g16"};
int op_state_format_parse(const char *name) {
    for (int i = 0; name && i < OP_STATE_NFMT; i++)
        if (!strcmp(name, state_fmt_names[i])) return i;
    return -1;
}
const char *op_state_format_name(int fmt) { return fmt >= 0 && fmt < OP_STATE_NFMT ? state_fmt_names[fmt] : "?"; }

static float round_bf16(float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    if ((b & 0x7f800000u) != 0x7f800000u) b += 0x7fffu + ((b >> 16) & 1u); /* nearest even; Inf/NaN kept */
    b &= 0xffff0000u;
    memcpy(&v, &b, 4);
    return v;
}

void op_state_round(float *row, int n, int fmt) {
    if (fmt == OP_STATE_F16) {
        for (int i = 0; i < n; i++) row[i] = st_f16_to_f32(st_f32_to_f16(row[i]));
    } else if (fmt == OP_STATE_BF16) {
        for (int i = 0; i < n; i++) row[i] = round_bf16(row[i]);
    } else if (fmt == OP_STATE_I8 || fmt == OP_STATE_I8G) {
        const int step = fmt == OP_STATE_I8 ? n : OP_STATE_I8_GROUP;
        for (int i0 = 0; i0 < n; i0 += step) { /* one scale per row, or per group of the row */
            const int i1 = i0 + step < n ? i0 + step : n;
            float m = 0.0f;
            for (int i = i0; i < i1; i++) m = fmaxf(m, fabsf(row[i]));
            if (!(m > 0.0f) || isinf(m)) continue; /* all zero (or not finite: left for the NaN checks) */
            const float s = m / 127.0f;
            for (int i = i0; i < i1; i++) row[i] = rintf(row[i] / s) * s;
        }
    }
}

/* The rows of 8 lanes (channels) x N states of a scan group, rounded as op_state_round does */
static void round_rows8(v8 *h, int N, int w, int fmt) {
    float row[256];
    for (int l = 0; l < w; l++) {
        for (int n = 0; n < N; n++) row[n] = h[n][l];
        op_state_round(row, N, fmt);
        for (int n = 0; n < N; n++) h[n][l] = row[n];
    }
}

enum { SCAN_GROUPS = 4 };

void op_scan_m1(float *y, int ldy, const float *u, int ldu, const float *delta, int ldd,
                const float *A, const float *B, int ldb, const float *C, int ldc, const float *D,
                const float *z, int ldz, float *state, int T, int Di, int N) {
    int ngroups = (Di + 7) / 8, ntasks = (ngroups + SCAN_GROUPS - 1) / SCAN_GROUPS, fmt = g_state_fmt;
    if (fmt && N > 256) mq_die("op_scan_m1: state format %s for d_state %d > 256", op_state_format_name(fmt), N);
    /* Lanes run over channels: h[g*N + n] holds state n of the 8 channels of group g, so the sum
     * over n is a chain of vector FMAs with no horizontal reduction. */
#pragma omp parallel for schedule(static) if ((long)T * Di * N > PAR_MIN)
    for (int task = 0; task < ntasks; task++) {
        int g0 = task * SCAN_GROUPS, ng = ngroups - g0 < SCAN_GROUPS ? ngroups - g0 : SCAN_GROUPS;
        v8 h[SCAN_GROUPS * N], a[SCAN_GROUPS * N], Dv[SCAN_GROUPS];
        for (int g = 0; g < ng; g++) {
            int d0 = (g0 + g) * 8, w = Di - d0 < 8 ? Di - d0 : 8;
            for (int n = 0; n < N; n++)
                for (int l = 0; l < 8; l++) {
                    a[g * N + n][l] = l < w ? A[(size_t)(d0 + l) * N + n] : 0.0f;
                    h[g * N + n][l] = l < w && state ? state[(size_t)(d0 + l) * N + n] : 0.0f;
                }
            Dv[g] = D ? load8(D + d0, w) : splat(0.0f);
        }
        for (int t = 0; t < T; t++) {
            const float *Bt = B + (size_t)t * ldb, *Ct = C + (size_t)t * ldc;
            for (int g = 0; g < ng; g++) {
                int d0 = (g0 + g) * 8, w = Di - d0;
                v8 dl = load8(delta + (size_t)t * ldd + d0, w), uu = load8(u + (size_t)t * ldu + d0, w);
                v8 *hg = h + g * N, *ag = a + g * N, acc = {0};
                for (int n = 0; n < N; n++) {
                    v8 dA = exp8(dl * ag[n]);
                    hg[n] = dA * hg[n] + (dl * Bt[n]) * uu;
                    acc += hg[n] * Ct[n];
                }
                v8 out = acc + uu * Dv[g];
                if (z) out = out * silu8(load8(z + (size_t)t * ldz + d0, w));
                store8(y + (size_t)t * ldy + d0, out, w);
                if (fmt) round_rows8(hg, N, w < 8 ? w : 8, fmt);
            }
        }
        if (state)
            for (int g = 0; g < ng; g++) {
                int d0 = (g0 + g) * 8, w = Di - d0 < 8 ? Di - d0 : 8;
                for (int n = 0; n < N; n++)
                    for (int l = 0; l < w; l++) state[(size_t)(d0 + l) * N + n] = h[g * N + n][l];
            }
    }
}

void op_scan_m2(float *y, int ldy, const float *x, int ldx, const float *dt, int lddt, const float *A,
                const float *B, int ldb, const float *C, int ldc, const float *D, float *state,
                int T, int H, int P, int G, int N) {
    int npg = (P + 7) / 8, nchunk = (npg + SCAN_GROUPS - 1) / SCAN_GROUPS, heads_per_group = H / G, fmt = g_state_fmt;
    if (fmt && N > 256) mq_die("op_scan_m2: state format %s for d_state %d > 256", op_state_format_name(fmt), N);
    /* Tasks are (head, up to SCAN_GROUPS groups of 8 of its channels); lanes run over channels p. */
#pragma omp parallel for schedule(static) if ((long)T * H * P * N > PAR_MIN)
    for (int task = 0; task < H * nchunk; task++) {
        int hd = task / nchunk, q0 = (task % nchunk) * SCAN_GROUPS;
        int ng = npg - q0 < SCAN_GROUPS ? npg - q0 : SCAN_GROUPS, g = hd / heads_per_group;
        v8 h[SCAN_GROUPS * N];
        for (int q = 0; q < ng; q++) {
            int p0 = (q0 + q) * 8, w = P - p0 < 8 ? P - p0 : 8, col = hd * P + p0;
            for (int n = 0; n < N; n++)
                for (int l = 0; l < 8; l++)
                    h[q * N + n][l] = l < w && state ? state[(size_t)(col + l) * N + n] : 0.0f;
        }
        float Dh = D ? D[hd] : 0.0f;
        for (int t = 0; t < T; t++) {
            float dtv = dt[(size_t)t * lddt + hd], dA = expf(dtv * A[hd]);
            const float *Bt = B + (size_t)t * ldb + (size_t)g * N, *Ct = C + (size_t)t * ldc + (size_t)g * N;
            for (int q = 0; q < ng; q++) {
                int p0 = (q0 + q) * 8, w = P - p0, col = hd * P + p0;
                v8 xv = load8(x + (size_t)t * ldx + col, w), xdt = xv * dtv, *hq = h + q * N, acc = {0};
                for (int n = 0; n < N; n++) {
                    hq[n] = hq[n] * dA + xdt * Bt[n];
                    acc += hq[n] * Ct[n];
                }
                store8(y + (size_t)t * ldy + col, acc + xv * Dh, w);
                if (fmt) round_rows8(hq, N, w < 8 ? w : 8, fmt);
            }
        }
        if (state)
            for (int q = 0; q < ng; q++) {
                int p0 = (q0 + q) * 8, w = P - p0 < 8 ? P - p0 : 8, col = hd * P + p0;
                for (int n = 0; n < N; n++)
                    for (int l = 0; l < w; l++) state[(size_t)(col + l) * N + n] = h[q * N + n][l];
            }
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

double op_logsumexp(const float *x, int n) {
    v8 m8 = splat(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v = load8(x + i, 8);
        m8 = blend(v > m8, v, m8);
    }
    float mx = -INFINITY;
    for (int l = 0; l < 8; l++) mx = m8[l] > mx ? m8[l] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (!isfinite(mx)) return mx;  /* all -inf, or an inf/NaN logit: nothing to normalize */
    /* eight float lanes over runs of 512 values, runs added in double */
    double sum = 0;
    for (int r0 = 0; r0 < n; r0 += 512) {
        int r1 = r0 + 512 < n ? r0 + 512 : n;
        v8 s8 = {0};
        for (int j = r0; j < r1; j += 8) {
            int w = r1 - j;
            v8 e = exp8(load8(x + j, w) - mx);
            if (w < 8)
                for (int l = w; l < 8; l++) e[l] = 0.0f;
            s8 += e;
        }
        for (int l = 0; l < 8; l++) sum += s8[l];
    }
    return mx + log(sum);
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
