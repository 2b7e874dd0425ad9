/* CPU references of the int8 GPU kernels (ssm/kern.h), plain C. Each takes the kernel's int8
 * inputs and computes what the kernel must: the exact int32 dot for the GEMMs and conv1d followed
 * by the same FP32 epilogue, and, for the scans and the gated norm, the simulation's own ops
 * (ssm/ops.h) on the dequantized inputs. tests/test_int8_ref.c checks these against the CPU
 * simulation (quantize/sim.c: FP32 ops on dequantized values, then q_fake); tests/test_int8.c checks
 * the GPU kernels against these. Rows are dense unless an ld is given; B sequences are stacked. */
#ifndef MQ_SSM_INT8_REF_H
#define MQ_SSM_INT8_REF_H
#include <stdint.h>
#include "ssm/qmodel.h"
#ifdef __cplusplus
extern "C" {
#endif

/* acc[M x N] = X[M x K] (ld ldx) * W[N x K]^T, exact */
void i8ref_gemm(int32_t *acc, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K);
/* v = (float)acc * (sx * sw[n]) + (bias ? bias[n] : 0); q_out (int8 q(v, qs[n])) or f_out (v). */
void i8ref_epilogue(const int32_t *acc, int M, int N, float sx, const float *sw, const float *bias, const float *qs,
                    int8_t *q_out, float *f_out);
/* resid += delta (may be NULL); v = RMSNorm(resid) * w (op_add_rmsnorm); q = q(v, s); out = v (may be NULL) */
void i8ref_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q,
                       float *out);
/* One sequence of T rows: out[t][c] = q(SiLU(bias[c] + acc * (sw[c] * s_in[c])), s_out[c]) with
 * acc = sum_j w[c][j] * x[t-K+1+j][c] (int32; x before 0 from state [C x (K-1)], NULL = zeros);
 * state (if any) then holds the last K-1 inputs. x [T x C] (ld ldx), out [T x C] (ld ldo). */
void i8ref_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, const int8_t *w, const float *sw,
                  const float *s_in, const float *bias, const float *s_out, int T, int C, int K);
/* Mamba1 x_proj of quamba2's clustered x (a scale per input channel, so no single int8 GEMM scale):
 * out[M x N] = int8 q(x W'^T, qs[n]) in FP32 on the dequantized x (X[m][k] sx[k], ld ldx) and
 * weights (W'[n][k] = W[n][k] sw[n]), as the simulation (k_i8_linear_xcols on the GPU). */
void i8ref_linear_xcols(int8_t *out, const int8_t *X, int ldx, const float *sx, const int8_t *W, const float *sw,
                        const float *qs, int M, int N, int K);
/* Mamba1 scan of one sequence on int8 inputs: op_dt_softplus(dt8*sdt + dt_bias) and op_scan_m1 on
 * the dequantized u, B, C, z (z8 may be NULL). y [T x Di] FP32; state [Di x N] in/out or NULL. */
void i8ref_scan_m1(float *y, const int8_t *u, int ldu, float su, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                   const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di, int N);
/* The same with a scale per channel of u, su [Di] (quamba2's clustered x). */
void i8ref_scan_m1v(float *y, const int8_t *u, int ldu, const float *su, const int8_t *dt, int lddt, float sdt,
                    const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                    const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di,
                    int N);
/* Mamba2 scan of one sequence: dt = clamp(softplus(dt8*sdt + dt_bias), lo, hi) and op_scan_m2. */
void i8ref_scan_m2(float *y, const int8_t *x, int ldx, float sx, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb,
                   float sc, const float *A, const float *D, float *state, int T, int H, int P, int G, int N);
/* The same with a scale per column: sx [H*P] (quamba2's clustered x), sb and sc [G*N] (B / C per SSD
 * group, expanded to columns); i8ref_scan_m2 is this with every column's scale alike. The CPU mirror
 * runs quamba2 W8A8 Mamba2 models through it; the GPU pass has no such kernel yet. */
void i8ref_scan_m2v(float *y, const int8_t *x, int ldx, const float *sx, const int8_t *dt, int lddt, float sdt,
                    const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc,
                    const float *sb, const float *sc, const float *A, const float *D, float *state, int T, int H, int P,
                    int G, int N);
/* op_gated_rmsnorm (one group of D columns) of y [T x D] with the dequantized z (ld ldz). */
void i8ref_gated_rmsnorm(float *out, const float *y, const int8_t *z, int ldz, float sz, const float *w, int T, int D,
                         float eps, int norm_before_gate);


/* ---- the int8 pass's bookkeeping and its CPU mirror ----
 * i8ref_plan: what the GPU upload derives from a q_model, on the host: every activation scale of
 * every layer (checked present), per-column scale arrays (weight scales expanded to one per output
 * row, in_proj's output scales per column segment [x | z] or [z | x | B | C | dt], the conv's
 * input and output scales per channel) and A = -exp(A_log). */
typedef struct {
    float *in_sw, *in_qs, *conv_sw, *conv_sin, *conv_sout, *out_sw; /* [in] [in] [cd] [cd] [cd] [D] */
    float *xp_sw, *xp_qs, *dt_sw, *dt_qs;                            /* Mamba1: [xw] [xw] [E] [E] */
    float *A;                                                        /* M1 [E x N], M2 [H] */
    /* in_proj input, ssm_x, x_proj output (M1), dt, z, B, C, out_proj input, conv input part 0 */
    float s_in, s_u, s_xp, s_dt, s_z, s_B, s_C, s_y, s_conv0;
} i8ref_plan_layer;
typedef struct {
    int n_layer;
    i8ref_plan_layer *layers;
    float *lm_sw;   /* [vocab] when the lm_head is quantized, else NULL */
} i8ref_plan;
/* 0, or -1 + a message naming the layer and the missing scale or mis-shaped weight. */
int i8ref_plan_build(const q_model *qm, i8ref_plan *p);
void i8ref_plan_free(i8ref_plan *p);

/* The int8 pass of one sequence on the CPU, op for op as the GPU runs it (the references above, FP16
 * rounding of y before its quantization and of out_proj's output, FP16 hidden state into lm_head),
 * calling hk with HOST pointers where the GPU pass calls its hooks. hidden: [T x d_model] norm_f
 * output (FP32); nll: NULL or [T-1] per-token NLL. Returns 0 or -1 (bad token). */
int i8ref_forward(const q_model *qm, const i8ref_plan *p, const int32_t *tokens, int T, const mq_hooks *hk, float *hidden,
                  float *nll);

#ifdef __cplusplus
}
#endif
#endif
