/* Host-array entry points to each CUDA kernel of the FP16 forward, for the kernel tests: each uploads
 * its inputs, runs the one kernel as the forward does and downloads the result. Arrays are dense
 * row-major host FP32; inputs the kernel reads as FP16 are rounded to FP16 on upload (the tests
 * round them first, so the CPU op sees the same values) and FP16 outputs come back widened to FP32.
 * Inside, activations sit in buffers with a padded row stride, as the forward's column slices do.
 * Batched calls take B sequences of T rows stacked ([B*T x C]); states are [B x ...]. All return 0,
 * or -1 + mq_errmsg() when no GPU is usable. */
#ifndef MQ_SSM_GPU_OPS_H
#define MQ_SSM_GPU_OPS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[T x D] = embed[tokens[t]] through the FP16 table (embed is rounded). */
int gpuop_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab);
/* resid[T x D] += x (FP16, may be NULL); out16 = RMSNorm(resid) * w as FP16; out32 as FP32 (each may be NULL). */
int gpuop_add_rmsnorm(float *resid, const float *x, float *out16, float *out32, const float *w, int T, int D,
                      float eps);
/* y = SiLU(conv1d(x) + bias) per sequence; state [B x C x (K-1)] in/out or NULL. */
int gpuop_conv1d_silu(float *y, const float *x, const float *w, const float *bias, float *state, int B, int T,
                      int C, int K);
/* Mamba1 scan on raw dt: delta = softplus(dt + dt_bias) (dt_bias may be NULL), y FP16 [B*T x Di];
 * state [B x Di x N] FP32 in/out (NULL: zeros, dropped). n_chunks: time chunks to use (>= 1). */
int gpuop_scan_m1(float *y, const float *u, const float *dt, const float *dt_bias, const float *A,
                  const float *Bm, const float *Cm, const float *D, const float *z, float *state, int B, int T,
                  int Di, int N, int n_chunks);
/* Mamba2 scan on raw dt: dt = clamp(softplus(dt + dt_bias), lo, hi); x [B*T x H*P], dt [B*T x H],
 * B, C [B*T x G*N]; y FP16 [B*T x H*P]; state [B x H x P x N] in/out or NULL. */
int gpuop_scan_m2(float *y, const float *x, const float *dt, const float *dt_bias, float lo, float hi,
                  const float *A, const float *Bm, const float *Cm, const float *D, float *state, int B, int T,
                  int H, int P, int G, int N, int n_chunks);
/* Gated RMSNorm, out FP16 [T x D]. */
int gpuop_gated_rmsnorm(float *out, const float *y, const float *z, const float *w, int T, int D, int group,
                        float eps, int norm_before_gate);
/* Y[M x N] = X[M x K] W[N x K]^T + bias (gemm_f16: the GEMV for M <= 8 when K and the row stride
 * K + pad are multiples of 8, else cuBLAS); X and W rounded to FP16; bias [N] or NULL (FP16 Y only);
 * Y FP16, or FP32 when y_f32. */
int gpuop_gemm(float *Y, const float *X, const float *W, const float *bias, int M, int N, int K, int pad,
               int y_f32);
/* nll[r] = logsumexp(logits[r]) - logits[r][targets[r]] (0 where targets[r] < 0); FP32 throughout. */
int gpuop_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V);

/* For hooks (tests, calibration on the host): waits for `stream` (the hook's), then copies the
 * activation x (device, FP16, or FP32 when f32) [rows x cols] with row stride ld into host dst
 * [rows x cols] as FP32. */
int gpuop_download_act(float *dst, const void *x, int f32, int rows, int cols, int ld, void *stream);

#ifdef __cplusplus
}
#endif
#endif
