/* The CUDA parts of ssm/ in a build without CUDA (NOCUDA=1 or no nvcc): opening a CUDA backend and
 * every kernel-test entry point fail with a message saying so, and the callers take their CPU paths
 * or skip. */
#ifndef MQ_CUDA
#include "core/err.h"
#include "ssm/be_impl.h"
#include "ssm/gpu_ops.h"

#define NOCUDA mq_fail("the GPU passes: built without CUDA (nvcc not found, or NOCUDA=1)")

be *be_cuda_open_f16(const mq_model *m, int batch, int seqlen) { NOCUDA; return NULL; }
be *be_cuda_open_int8(const q_model *qm, int batch, int seqlen) { NOCUDA; return NULL; }
be *be_cuda_open_random(const mq_config *cfg, be_kind kind, int hadamard, uint64_t seed, int batch, int seqlen) {
    NOCUDA;
    return NULL;
}
be *be_cuda_open_w4a16(const q_model *qm, int batch, int seqlen) { NOCUDA; return NULL; }
be *be_cuda_open_random_q2(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen) {
    NOCUDA;
    return NULL;
}
be *be_cuda_open_random_w4a16(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen) {
    NOCUDA;
    return NULL;
}
int be_cuda_act_download(const mq_act *a, float *dst) { return NOCUDA; }

int gop_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab) { return NOCUDA; }
int gop_w4a16_gemv(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group, const float *bias,
                   int M, int N, int K, int reps, double *us) { return NOCUDA; }
int gop_w4a8_mma(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q, const float *scales,
                 int group, const float *bias, const float *qs, int M, int N, int K, int reps, double *us) {
    return NOCUDA;
}
int gop_w4a8_gemv(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q, const float *scales,
                  int group, const float *bias, const float *qs, int M, int N, int K, int reps, double *us) { return NOCUDA; }
int gop_w4a16_mma(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group, const float *bias,
                  int M, int N, int K, int reps, double *us) { return NOCUDA; }
int gop_w4_dequant(float *W, const int8_t *q, const float *scales, int group, int N, int K) { return NOCUDA; }
int gop_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V) { return NOCUDA; }
int gop_f16_add_rmsnorm(float *resid, const float *x, float *out16, float *out32, const float *w, int T, int D,
                        float eps) { return NOCUDA; }
int gop_f16_conv1d_silu(float *y, const float *x, const float *w, const float *bias, float *state, int B, int T, int C,
                        int K) { return NOCUDA; }
int gop_f16_scan_m1(float *y, const float *u, const float *dt, const float *dt_bias, const float *A, const float *Bm,
                    const float *Cm, const float *D, const float *z, float *state, int B, int T, int Di, int N,
                    int n_chunks, int par) { return NOCUDA; }
int gop_f16_scan_m2(float *y, const float *x, const float *dt, const float *dt_bias, float lo, float hi, const float *A,
                    const float *Bm, const float *Cm, const float *D, float *state, int B, int T, int H, int P, int G,
                    int N, int n_chunks, int ssd_q) { return NOCUDA; }
int gop_f16_gated_rmsnorm(float *out, const float *y, const float *z, const float *w, int T, int D, int group, float eps,
                          int norm_before_gate) { return NOCUDA; }
int gop_f16_gemm(float *Y, const float *X, const float *W, const float *bias, int M, int N, int K, int pad, int y_f32) {
    return NOCUDA;
}
void gop_i8_set_route(int route) {}
void gop_i8_route_counts(long counts[GOP_NROUTES]) { for (int i = 0; i < GOP_NROUTES; i++) counts[i] = 0; }
void gop_i8_set_decode_fused(int on) {}
int gop_pdl_on(void) { return 0; }
int gop_i8_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route, int *taken) {
    return NOCUDA;
}
int gop_i8_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N, int K, int pad,
                  float sx, const float *sw, const float *bias, const float *qs, int route) { return NOCUDA; }
int gop_i8_linear_xcols(int8_t *q_out, const int8_t *X, const float *sx, const int8_t *W, const float *sw, const float *qs,
                        int M, int N, int K, int pad) {
    return NOCUDA;
}
int gop_i8_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q) {
    return NOCUDA;
}
int gop_i8_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                  const float *bias, const float *s_out, int B, int T, int C, int K) { return NOCUDA; }
int gop_i8_scan_m1(float *y, const int8_t *u, float su, const float *su_col, const int8_t *dt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, float sb, float sc, const int8_t *z, float sz,
                   const float *A, const float *D, float *state, int B, int T, int Di, int N, int n_chunks, int par) {
    return NOCUDA;
}
int gop_i8_scan_m2(float *y, const int8_t *x, float sx, const float *sx_col, const int8_t *dt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, float sb, float sc,
                   const float *sb_col, const float *sc_col, const float *A, const float *D, float *state, int B, int T,
                   int H, int P, int G, int N, int n_chunks, int ssd_q) {
    return NOCUDA;
}
int gop_i8_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D, float eps,
                         int norm_before_gate) { return NOCUDA; }
int gop_i8_yquant_rows(int8_t *q, const float *y, int rows, int E, float s) { return NOCUDA; }
#endif
