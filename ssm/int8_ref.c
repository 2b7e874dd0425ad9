/* CPU references of the int8 kernels (see int8_ref.h). */
#include "ssm/int8_ref.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "quantize/q.h"
#include "ssm/ops.h"

void i8ref_gemm(int32_t *acc, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K) {
#pragma omp parallel for schedule(static) if ((long)M * N * K > (1L << 20))
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *x = X + (size_t)m * ldx, *w = W + (size_t)n * K;
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)x[k] * w[k];
            acc[(size_t)m * N + n] = s;
        }
}

void i8ref_epilogue(const int32_t *acc, int M, int N, float sx, const float *sw, const float *bias, const float *qs,
                    int8_t *q_out, float *f_out) {
    for (size_t i = 0; i < (size_t)M * N; i++) {
        int n = (int)(i % N);
        float v = (float)acc[i] * (sx * sw[n]);
        if (bias) v += bias[n];
        if (q_out) q_out[i] = q_quant1(v, qs[n]);
        if (f_out) f_out[i] = v;
    }
}

void i8ref_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q,
                       float *out) {
    float *v = mq_malloc((size_t)T * D * sizeof(float));
    op_add_rmsnorm(resid, delta, v, w, T, D, eps);
    for (size_t i = 0; i < (size_t)T * D; i++) q[i] = q_quant1(v[i], s);
    if (out) memcpy(out, v, (size_t)T * D * sizeof(float));
    free(v);
}

void i8ref_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, const int8_t *w, const float *sw,
                  const float *s_in, const float *bias, const float *s_out, int T, int C, int K) {
    const int H = K - 1;
    for (int c = 0; c < C; c++) {
        for (int t = 0; t < T; t++) {
            int32_t acc = 0;
            for (int j = 0; j < K; j++) {
                int s = t - H + j, v = 0;
                if (s >= 0) v = x[(size_t)s * ldx + c];
                else if (state) v = state[(size_t)c * H + H + s];
                acc += (int32_t)w[(size_t)c * K + j] * v;
            }
            float v = (bias ? bias[c] : 0.f) + (float)acc * (sw[c] * s_in[c]);
            out[(size_t)t * ldo + c] = q_quant1(v / (1.0f + expf(-v)), s_out[c]);
        }
        if (state && H > 0) {
            int8_t nv[8];
            for (int j = 0; j < H; j++) {
                int tt = T - H + j;
                nv[j] = tt >= 0 ? x[(size_t)tt * ldx + c] : state[(size_t)c * H + H + tt];
            }
            memcpy(state + (size_t)c * H, nv, (size_t)H);
        }
    }
}

/* dense float copy of an int8 [T x C] (ld) block times s, plus bias[c] when given */
static float *deq(const int8_t *q, int ld, int T, int C, float s, const float *bias) {
    float *f = mq_malloc((size_t)T * C * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            float v = (float)q[(size_t)t * ld + c] * s;
            f[(size_t)t * C + c] = bias ? v + bias[c] : v;
        }
    return f;
}

void i8ref_scan_m1(float *y, const int8_t *u, int ldu, float su, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                   const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di, int N) {
    float *fu = deq(u, ldu, T, Di, su, NULL), *fd = deq(dt, lddt, T, Di, sdt, dt_bias);
    float *fb = deq(Bm, ldbc, T, N, sb, NULL), *fc = deq(Cm, ldbc, T, N, sc, NULL);
    float *fz = z ? deq(z, ldz, T, Di, sz, NULL) : NULL;
    /* the simulation: dt_proj's output (bias included) -> op_dt_softplus(lo 0, hi inf) */
    op_dt_softplus(fd, Di, fd, Di, NULL, T, Di, 0.0f, INFINITY);
    op_scan_m1(y, Di, fu, Di, fd, Di, A, fb, N, fc, N, D, fz, Di, state, T, Di, N);
    free(fu), free(fd), free(fb), free(fc), free(fz);
}

void i8ref_scan_m2(float *y, const int8_t *x, int ldx, float sx, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb,
                   float sc, const float *A, const float *D, float *state, int T, int H, int P, int G, int N) {
    const int Di = H * P, GN = G * N;
    float *fx = deq(x, ldx, T, Di, sx, NULL), *fd = deq(dt, lddt, T, H, sdt, NULL);
    float *fb = deq(Bm, ldbc, T, GN, sb, NULL), *fc = deq(Cm, ldbc, T, GN, sc, NULL);
    op_dt_softplus(fd, H, fd, H, dt_bias, T, H, lo, hi);
    op_scan_m2(y, Di, fx, Di, fd, H, A, fb, GN, fc, GN, D, state, T, H, P, G, N);
    free(fx), free(fd), free(fb), free(fc);
}

void i8ref_gated_rmsnorm(float *out, const float *y, const int8_t *z, int ldz, float sz, const float *w, int T, int D,
                         float eps, int norm_before_gate) {
    float *fz = deq(z, ldz, T, D, sz, NULL);
    op_gated_rmsnorm(out, D, y, D, fz, D, w, T, D, D, eps, norm_before_gate);
    free(fz);
}
