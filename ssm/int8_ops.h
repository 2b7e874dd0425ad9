/* Host-array entry points to each int8 GPU kernel, for the kernel tests (tests/test_int8.c): each
 * uploads dense row-major host inputs into buffers whose rows are `pad` elements longer than needed
 * (so the kernels' leading dimensions are exercised as the forward's column slices exercise them),
 * runs the one kernel as the forward does, and downloads the result (FP16 outputs widened to FP32).
 * Batched calls take B sequences of T rows stacked; states are [B x ...]. All return 0, or -1 +
 * mq_errmsg() when no GPU is usable. */
#ifndef MQ_SSM_INT8_OPS_H
#define MQ_SSM_INT8_OPS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* acc[M x N] = X W^T; route: i8g_gemm_route LT / TILED (AUTO = LT where it applies); *taken: the
 * route that ran. X row stride K + pad. */
int i8op_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route, int *taken);
/* The linear layer as the forward runs it (i8_linear with route as i8g_set_gemm_route): kind 0 int8
 * out (q_out [M x N], per-column qs), 1 FP16 out, 2 FP32 out (f_out [M x N]); bias may be NULL. */
int i8op_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N, int K, int pad,
                float sx, const float *sw, const float *bias, const float *qs, int route);
/* resid[T x D] += delta (rounded to FP16 first, as the forward's out_proj output; may be NULL);
 * q = int8 q(RMSNorm(resid) * w, s). */
int i8op_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q);
/* int8 conv1d + SiLU + requantization; state [B x C x (K-1)] int8 in/out or NULL. */
int i8op_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                const float *bias, const float *s_out, int B, int T, int C, int K);
/* Mamba1 scan: u, dt, z [B*T x Di], B, C [B*T x N] (int8); y [B*T x Di] (FP16 widened); state
 * [B x Di x N] in/out or NULL; n_chunks: time chunks (1 = one pass). */
int i8op_scan_m1(float *y, const int8_t *u, float su, const int8_t *dt, float sdt, const float *dt_bias,
                 const int8_t *Bm, const int8_t *Cm, float sb, float sc, const int8_t *z, float sz, const float *A,
                 const float *D, float *state, int B, int T, int Di, int N, int n_chunks);
/* Mamba2 scan: x [B*T x H*P], dt [B*T x H], B, C [B*T x G*N]; y FP32; state [B x H x P x N] or NULL. */
int i8op_scan_m2(float *y, const int8_t *x, float sx, const int8_t *dt, float sdt, const float *dt_bias, float lo,
                 float hi, const int8_t *Bm, const int8_t *Cm, float sb, float sc, const float *A, const float *D,
                 float *state, int B, int T, int H, int P, int G, int N, int n_chunks);
/* gated RMSNorm of FP32 y [T x D] with int8 z; out FP16 widened. */
int i8op_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D, float eps,
                       int norm_before_gate);

/* For hooks: waits for `stream`, copies x (device; int8, FP16 or FP32 as dtype 0/1/2) [rows x cols]
 * with row stride ld into host dst as FP32 (int8 values as they are, not scaled). */
int i8op_download(float *dst, const void *x, int dtype, int rows, int cols, int ld, void *stream);

#ifdef __cplusplus
}
#endif
#endif
