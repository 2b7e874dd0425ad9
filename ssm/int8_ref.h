/* CPU references of the int8 GPU kernels (ssm/int8_kern.h), plain C. Each takes the kernel's int8
 * inputs and computes what the kernel must: the exact int32 dot for the GEMMs and conv1d followed
 * by the same FP32 epilogue, and, for the scans and the gated norm, the simulation's own ops
 * (ssm/ops.h) on the dequantized inputs. tests/test_int8_ref.c checks these against the CPU
 * simulation (quantize/sim.c: FP32 ops on dequantized values, then q_fake); tests/test_int8.c checks
 * the GPU kernels against these. Rows are dense unless an ld is given; B sequences are stacked. */
#ifndef MQ_SSM_INT8_REF_H
#define MQ_SSM_INT8_REF_H
#include <stdint.h>

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
/* Mamba1 scan of one sequence on int8 inputs: op_dt_softplus(dt8*sdt + dt_bias) and op_scan_m1 on
 * the dequantized u, B, C, z (z8 may be NULL). y [T x Di] FP32; state [Di x N] in/out or NULL. */
void i8ref_scan_m1(float *y, const int8_t *u, int ldu, float su, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                   const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di, int N);
/* Mamba2 scan of one sequence: dt = clamp(softplus(dt8*sdt + dt_bias), lo, hi) and op_scan_m2. */
void i8ref_scan_m2(float *y, const int8_t *x, int ldx, float sx, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb,
                   float sc, const float *A, const float *D, float *state, int T, int H, int P, int G, int N);
/* op_gated_rmsnorm (one group of D columns) of y [T x D] with the dequantized z (ld ldz). */
void i8ref_gated_rmsnorm(float *out, const float *y, const int8_t *z, int ldz, float sz, const float *w, int T, int D,
                         float eps, int norm_before_gate);

#endif
