/* The per-op CPU reference of the Mamba mixers: one call per op, shared by ssm/forward.c and by the
 * CUDA kernel tests (each kernel is checked against the op here on random, odd-sized inputs).
 * Activations are row-major [T x C] with an explicit row stride (ld) so that ops can read views
 * into a wider buffer (x, z, B, C are column slices of in_proj / x_proj / conv outputs) without
 * copies. Everything is FP32; the numerics follow transformers' slow paths (modeling_mamba.py
 * slow_forward, modeling_mamba2.py torch_forward), which produced the reference files. */
#ifndef MQ_OPS_H
#define MQ_OPS_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = exp(x[i]) for n values (y may alias x). Vectorized, within 2 ulp of expf for
 * x in [-87, 88]; 0 below -87.34 (where expf goes subnormal), +inf above 88.72. */
void op_exp(float *y, const float *x, int n);
/* x[i] = SiLU(x[i]) = x / (1 + exp(-x)), in place, vectorized. */
void op_silu(float *x, int n);

/* dst[T x C] (ld ldd) = clamp(softplus(src + bias), lo, hi); src [T x C] (ld lds); bias [C] or NULL.
 * softplus as torch (threshold 20). Mamba1 dt: bias NULL (dt_proj added it), lo 0, hi +inf;
 * Mamba2 dt: bias dt_bias, [lo, hi] = time_step_limit. dst may alias src when ldd == lds. */
void op_dt_softplus(float *dst, int ldd, const float *src, int lds, const float *bias, int T, int C,
                    float lo, float hi);

/* Causal depthwise conv1d over time (nn.Conv1d, groups = C, padding K-1, first T outputs):
 *   y[t][c] = bias[c] + sum_j w[c][j] * in[t - (K-1) + j][c],  then SiLU when silu != 0,
 * where in[s] for s < 0 comes from the carried state.
 * x [T x C] (ld ldx) input; y [T x C] (ld ldy), must not overlap x; w [C x K]; bias [C] or NULL.
 * state [C x (K-1)]: the K-1 inputs before x[0] per channel, oldest first; updated in place to the
 * last K-1 inputs (for T < K-1 the older entries shift). NULL = zero history, nothing kept. */
void op_conv1d(float *y, int ldy, const float *x, int ldx, const float *w, const float *bias,
               float *state, int T, int C, int K, int silu);

/* Mamba1 selective scan (selective_scan_ref / transformers slow_forward), per channel d and state n:
 *   h[d][n] = exp(delta[t][d] * A[d][n]) * h[d][n] + (delta[t][d] * B[t][n]) * u[t][d]
 *   y[t][d] = (sum_n h[d][n] * C[t][n] + D[d] * u[t][d]) * (z ? SiLU(z[t][d]) : 1)
 * u, delta, z: [T x Di] (ld ldu, ldd, ldz); delta is already softplus'ed; A [Di x N] (= -exp(A_log));
 * B, C [T x N] (ld ldb, ldc); D [Di] or NULL; z may be NULL (no gate).
 * state [Di x N] FP32, read as the initial state and left as the final one; NULL = zeros.
 * y [T x Di] (ld ldy). Parallel over channels; the N exps per (t, d) are vectorized. */
void op_scan_m1(float *y, int ldy, const float *u, int ldu, const float *delta, int ldd,
                const float *A, const float *B, int ldb, const float *C, int ldc, const float *D,
                const float *z, int ldz, float *state, int T, int Di, int N);

/* Mamba2 scan (SSD as a recurrence; exact in exact arithmetic to the chunked form), per head h of
 * H, its group g = h / (H / G), each of its P channels p (column h*P + p) and state n of N:
 *   h[h][p][n] = exp(dt[t][h] * A[h]) * h[h][p][n] + (x[t][hP+p] * dt[t][h]) * B[t][gN+n]
 *   y[t][hP+p] = sum_n h[h][p][n] * C[t][gN+n] + D[h] * x[t][hP+p]
 * x [T x H*P] (ld ldx); dt [T x H] (ld lddt) after bias + softplus + clamp; A [H] (= -exp(A_log));
 * B, C [T x G*N] (ld ldb, ldc); D [H] or NULL. state [H x P x N], in/out, NULL = zeros.
 * y [T x H*P] (ld ldy). No gate here: Mamba2 gates in op_gated_rmsnorm. */
void op_scan_m2(float *y, int ldy, const float *x, int ldx, const float *dt, int lddt, const float *A,
                const float *B, int ldb, const float *C, int ldc, const float *D, float *state,
                int T, int H, int P, int G, int N);

/* Storage format of the SSM state between tokens, to measure what a cheaper decode state costs (a
 * decode step reads and writes the whole state: at batch 64 mamba2-2.7b moves 10.7 GB of FP32
 * state per step). With a format other than FP32 both scans round every state row (a channel's N
 * states) after each token, as a decode loop storing it in that format would: FP16 or BF16 (round
 * to nearest even), or int8 with one FP32 scale per row (int8) or per group of OP_STATE_I8_GROUP
 * consecutive states of a row (int8g16), absmax / 127, symmetric, round to nearest even. y of the
 * token is computed before the rounding. Process-wide, set before a forward; FP32 (the default)
 * leaves the scans exactly as they are. The GPU passes do not implement it. */
enum { OP_STATE_F32 = 0, OP_STATE_F16 = 1, OP_STATE_BF16 = 2, OP_STATE_I8 = 3, OP_STATE_I8G = 4, OP_STATE_NFMT = 5 };
#define OP_STATE_I8_GROUP 16
void op_set_state_format(int fmt);
int op_state_format(void);
/* "fp32" | "fp16" | "bf16" | "int8" | "int8g16" -> the format, or -1 */
int op_state_format_parse(const char *name);
const char *op_state_format_name(int fmt);
/* row[0..n) rounded in place as stored in fmt */
void op_state_round(float *row, int n, int fmt);

/* Mamba2 gated RMSNorm, per row and per group of `group` consecutive columns (D % group == 0):
 *   norm_before_gate = 0:  v = y * SiLU(z);  out = w * v / sqrt(mean_group(v^2) + eps)
 *   norm_before_gate = 1:  out = w * y / sqrt(mean_group(y^2) + eps) * SiLU(z)
 * y, z [T x D] (ld ldy, ldz); w [D]; out [T x D] (ld ldo), may alias y but not z.
 * transformers' MambaRMSNormGated normalizes over the whole row (group = D) whatever n_groups is;
 * mamba_ssm's RMSNormGated uses group = D / n_groups. The two agree when n_groups == 1. */
void op_gated_rmsnorm(float *out, int ldo, const float *y, int ldy, const float *z, int ldz,
                      const float *w, int T, int D, int group, float eps, int norm_before_gate);

/* log(sum_i exp(x[i])) over n values, shifted by the maximum and summed with double accumulation
 * (a 50k-entry vocabulary loses nothing measurable). */
double op_logsumexp(const float *x, int n);

/* out[t] = embed[tokens[t]] for T tokens; embed [vocab x D]; out [T x D].
 * Returns 0, or -1 (mq_fail naming the position) for an id outside [0, vocab). */
int op_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab);

/* Residual stream update and pre-norm, in FP32 (residual_in_fp32):
 * resid[T x D] += x (x may be NULL: only the norm), then out[T x D] = RMSNorm(resid) * w. */
void op_add_rmsnorm(float *resid, const float *x, float *out, const float *w, int T, int D, float eps);

#ifdef __cplusplus
}
#endif
#endif
