/* Host-array entry points to each CUDA kernel of the two GPU passes, for the kernel tests
 * (tests/test_gpu_ops.c, tests/test_int8.c): each uploads dense row-major host inputs into device
 * buffers whose rows are padded (so the kernels' leading dimensions are exercised as the forward's
 * column slices exercise them), runs the one kernel as the forward does and downloads the result.
 * FP16 inputs are rounded to FP16 on upload (the tests round them first, so the CPU op sees the same
 * values) and FP16 outputs come back widened to FP32. Batched calls take B sequences of T rows
 * stacked ([B*T x C]); states are [B x ...]. All return 0, or -1 + mq_errmsg() when no GPU is
 * usable (built without CUDA: ssm/nocuda.c). Allocation is per call: tests, not speed. */
#ifndef MQ_SSM_GPU_OPS_H
#define MQ_SSM_GPU_OPS_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* ---- shared ---- */
/* out[T x D] = embed[tokens[t]] through the FP16 table (embed is rounded). */
int gop_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab);
/* nll[r] = logsumexp(logits[r]) - logits[r][targets[r]] (0 where targets[r] < 0); FP32 throughout. */
int gop_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V);

/* ---- the FP16 pass ---- */
/* resid[T x D] += x (FP16, may be NULL); out16 = RMSNorm(resid) * w as FP16; out32 as FP32 (each may be NULL). */
int gop_f16_add_rmsnorm(float *resid, const float *x, float *out16, float *out32, const float *w, int T, int D,
                        float eps);
/* y = SiLU(conv1d(x) + bias) per sequence; state [B x C x (K-1)] in/out or NULL. */
int gop_f16_conv1d_silu(float *y, const float *x, const float *w, const float *bias, float *state, int B, int T, int C,
                        int K);
/* Mamba1 scan on raw dt: delta = softplus(dt + dt_bias) (dt_bias may be NULL), y FP16 [B*T x Di];
 * state [B x Di x N] FP32 in/out (NULL: zeros, dropped). n_chunks: time chunks to use (>= 1); par:
 * the kernel parallel over time instead (d_state <= 16), 1 on rows of odd strides (its scalar
 * loads), 2 on rows aligned as the passes' (its vector loads). */
int gop_f16_scan_m1(float *y, const float *u, const float *dt, const float *dt_bias, const float *A, const float *Bm,
                    const float *Cm, const float *D, const float *z, float *state, int B, int T, int Di, int N,
                    int n_chunks, int par);
/* Mamba2 scan on raw dt: dt = clamp(softplus(dt + dt_bias), lo, hi); x [B*T x H*P], dt [B*T x H],
 * B, C [B*T x G*N]; y FP16 [B*T x H*P]; state [B x H x P x N] in/out or NULL. ssd_q > 0: the
 * chunked SSD kernels with chunks of ssd_q tokens (n_chunks unused). */
int gop_f16_scan_m2(float *y, const float *x, const float *dt, const float *dt_bias, float lo, float hi, const float *A,
                    const float *Bm, const float *Cm, const float *D, float *state, int B, int T, int H, int P, int G,
                    int N, int n_chunks, int ssd_q);
/* Gated RMSNorm, out FP16 [T x D]. */
int gop_f16_gated_rmsnorm(float *out, const float *y, const float *z, const float *w, int T, int D, int group, float eps,
                          int norm_before_gate);
/* Y[M x N] = X[M x K] W[N x K]^T + bias (k_f16_gemm: the GEMV for M <= 8 when K and the row stride
 * K + pad are multiples of 8, else cuBLAS); X and W rounded to FP16; bias [N] or NULL (FP16 Y only);
 * Y FP16, or FP32 when y_f32. */
int gop_f16_gemm(float *Y, const float *X, const float *W, const float *bias, int M, int N, int K, int pad, int y_f32);

/* ---- 4-bit weights (Quamba2 W4A16 / W4A8, ssm/w4_gemv.cu) ----
 * Y[M x N] = X[M x K] (q * s)^T for decode (1 <= M <= 8; K and group multiples of 32, group dividing K;
 * else -1 + message): q [N x K] int4 codes one per int8 (-7..7, as ssm/qmodel.h's q_weight holds
 * them), scales [N x K / group], bias [N] or NULL. kind GOP_OUT_F16: FP16 output widened into Y,
 * GOP_OUT_F32: FP32 Y; W4A8 also GOP_OUT_I8: int8 q(y, qs[n]) into q_out. W4A16: X rounded to FP16 on
 * upload; W4A8: X int8 codes, y = sum * sx + bias. With reps > 0 the kernel also runs 3 warm-up and
 * then reps timed calls, cycling through copies of the weights larger than the L2 cache together,
 * and *us gets the mean microseconds a timed call (the benchmarks). */
enum { GOP_OUT_I8 = 0, GOP_OUT_F16 = 1, GOP_OUT_F32 = 2 };
/* The W4A16 pass's tensor-core GEMV (its own weight layout, k_w4_repack_mma): as gop_w4a16_gemv for
 * 1 <= M <= 16 rows, K and group multiples of 64. */
int gop_w4a16_mma(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group, const float *bias,
                  int M, int N, int K, int reps, double *us);
/* W[N x K] = q * s as the W4A16 prefill dequantizes it for cuBLAS (FP16, widened into W; K and group
 * multiples of 64). */
int gop_w4_dequant(float *W, const int8_t *q, const float *scales, int group, int N, int K);
int gop_w4a16_gemv(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group, const float *bias,
                   int M, int N, int K, int reps, double *us);
int gop_w4a8_gemv(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q, const float *scales,
                  int group, const float *bias, const float *qs, int M, int N, int K, int reps, double *us);
/* The same on the tensor cores (k_w4a8_mma): any M >= 1, K and group multiples of 64. */
int gop_w4a8_mma(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q, const float *scales,
                 int group, const float *bias, const float *qs, int M, int N, int K, int reps, double *us);

/* ---- the int8 pass ---- */
/* GEMM routes of the int8 linear layers: auto (cuBLASLt for prefill, the GEMV for <= 8 rows, the
 * tensor-core MMA kernel for 9-64 rows, the tiled kernel for shapes cuBLASLt refuses), or one forced
 * where its shape allows. The one the forward uses from now on, and the counts of the routes taken
 * so far [unused, cuBLASLt, tiled, GEMV, MMA]. */
enum { GOP_ROUTE_AUTO = 0, GOP_ROUTE_LT = 1, GOP_ROUTE_TILED = 2, GOP_ROUTE_GEMV = 3, GOP_ROUTE_MMA = 4, GOP_NROUTES = 5 };
void gop_i8_set_route(int route);
void gop_i8_route_counts(long counts[GOP_NROUTES]);
/* Decode steps of one sequence take the fused kernels where the shapes allow (default on); off: the
 * general kernels, which the fused ones are tested against. A captured graph keeps its path. */
void gop_i8_set_decode_fused(int on);
/* 1 when the kernels launch as programmatic dependent launches (sm_90 code loaded, MQ_PDL not 0), else 0 */
int gop_pdl_on(void);
/* acc[M x N] = X W^T by route (1 cuBLASLt, 2 tiled; auto = cuBLASLt where it applies); *taken: the
 * route that ran. X row stride K + pad. */
int gop_i8_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route, int *taken);
/* The linear layer as the forward runs it (k_i8_linear with `route`): kind 0 int8 out (q_out
 * [M x N], per-column qs), 1 FP16 out, 2 FP32 out (f_out [M x N]); bias may be NULL. */
int gop_i8_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N, int K, int pad,
                  float sx, const float *sw, const float *bias, const float *qs, int route);
/* Mamba1 x_proj of a clustered x (k_i8_linear_xcols): q_out [M x N] = int8 q(sw[n] sum_k W[n][k]
 * X[m][k] sx[k], qs[n]); X rows padded by `pad`. */
int gop_i8_linear_xcols(int8_t *q_out, const int8_t *X, const float *sx, const int8_t *W, const float *sw, const float *qs,
                        int M, int N, int K, int pad);
/* resid[T x D] += delta (rounded to FP16 first, as the forward's out_proj output; may be NULL);
 * q = int8 q(RMSNorm(resid) * w, s). */
int gop_i8_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q);
/* int8 conv1d + SiLU + requantization; state [B x C x (K-1)] int8 in/out or NULL. */
int gop_i8_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                  const float *bias, const float *s_out, int B, int T, int C, int K);
/* Mamba1 scan: u, dt, z [B*T x Di], B, C [B*T x N] (int8); y [B*T x Di] (FP16 widened); state
 * [B x Di x N] in/out or NULL; n_chunks: time chunks (1 = one pass); par as gop_f16_scan_m1's.
 * su_col: NULL, or a scale of u per channel [Di] (quamba2's clustered x) used instead of su. */
int gop_i8_scan_m1(float *y, const int8_t *u, float su, const float *su_col, const int8_t *dt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, float sb, float sc, const int8_t *z, float sz,
                   const float *A, const float *D, float *state, int B, int T, int Di, int N, int n_chunks, int par);
/* Mamba2 scan: x [B*T x H*P], dt [B*T x H], B, C [B*T x G*N]; y FP32; state [B x H x P x N] or NULL;
 * ssd_q as gop_f16_scan_m2's. sx_col [H*P], sb_col and sc_col [G*N]: NULL, or a scale per column
 * used instead of sx, sb, sc (quamba2: clustered x; B and C one value per SSD group, repeated over
 * its N columns, which the SSD kernels assume). */
int gop_i8_scan_m2(float *y, const int8_t *x, float sx, const float *sx_col, const int8_t *dt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, float sb, float sc,
                   const float *sb_col, const float *sc_col, const float *A, const float *D, float *state, int B, int T,
                   int H, int P, int G, int N, int n_chunks, int ssd_q);
/* gated RMSNorm of FP32 y [T x D] with int8 z; out FP16 widened. */
int gop_i8_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D, float eps,
                         int norm_before_gate);
/* The decode batches' y rotation + quantize (k_i8_yquant_rows): q [rows x E] = int8 q(H y, s) of y
 * rounded to FP16; E = m 2^k (had.h) with k >= 1 and at most 12288. */
int gop_i8_yquant_rows(int8_t *q, const float *y, int rows, int E, float s);

#ifdef __cplusplus
}
#endif
#endif
