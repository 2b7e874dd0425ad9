/* Dense FP32 linear algebra for the CPU reference, multithreaded with OpenMP.
 * Layouts follow PyTorch: activations are row-major [rows x features], a weight is [out x in]. */
#ifndef MQ_MAT_H
#define MQ_MAT_H
#ifdef __cplusplus
extern "C" {
#endif

/* y[T x N] = x[T x K] * W[N x K]^T (+ bias[N] if bias != NULL). y must not alias x. */
void mat_linear(float *y, const float *x, const float *W, const float *bias, int T, int N, int K);
/* RMSNorm of each row: y = x / sqrt(mean(x^2) + eps) * w. y may alias x. */
void mat_rmsnorm(float *y, const float *x, const float *w, int T, int D, float eps);
float mat_silu(float x);
float mat_softplus(float x);
/* Threads OpenMP will use (1 without OpenMP). */
int mat_threads(void);

#ifdef __cplusplus
}
#endif
#endif
