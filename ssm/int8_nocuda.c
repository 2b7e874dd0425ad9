/* The int8 GPU pass (ssm/int8.h, ssm/int8_ops.h) in a build without CUDA: every entry point fails
 * with a message saying so, and the callers take their CPU paths or skip. */
#ifndef MQ_CUDA
#include "core/err.h"
#include "ssm/int8.h"
#include "ssm/int8_ops.h"

#define NOCUDA mq_fail("int8 GPU pass: built without CUDA (nvcc not found)")

i8g_model *i8g_upload(const q_model *qm) { NOCUDA; return NULL; }
i8g_model *i8g_model_random(const mq_config *cfg, int hadamard, uint64_t seed) { NOCUDA; return NULL; }
void i8g_model_free(i8g_model *g) {}
const mq_config *i8g_config(const i8g_model *g) { return NULL; }
size_t i8g_model_bytes(const i8g_model *g) { return 0; }
size_t i8g_decode_bytes(const i8g_model *g) { return 0; }
i8g_ws *i8g_ws_new(const i8g_model *g, int batch, int seqlen) { NOCUDA; return NULL; }
void i8g_ws_free(i8g_ws *w) {}
i8g_state *i8g_state_new(const i8g_model *g, int batch) { NOCUDA; return NULL; }
void i8g_state_reset(i8g_state *s) {}
void i8g_state_free(i8g_state *s) {}
int i8g_prefill(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int batch, int T, i8g_state *s,
                const i8g_hooks *hk, float *hidden) { return NOCUDA; }
int i8g_logits(const i8g_model *g, i8g_ws *w, int row0, int nrows, float *logits) { return NOCUDA; }
int i8g_step(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *hidden, float *logits) {
    return NOCUDA;
}
int i8g_step_graph(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *logits) {
    return NOCUDA;
}
int i8g_nll(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int batch, int T, const i8g_hooks *hk, float *nll,
            double *sum) { return NOCUDA; }
void i8g_set_gemm_route(i8g_gemm_route r) {}
void i8g_set_decode_fused(int on) {}
int i8g_step_async(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, int with_logits) {
    return NOCUDA;
}
void i8g_sync(i8g_ws *w) {}
void i8g_profile(i8g_ws *w, int on) {}
int i8g_profile_report(i8g_ws *w, char *buf, size_t n) { if (n) buf[0] = 0; return 0; }
void i8g_gemm_counts(long counts[4]) { for (int i = 0; i < 4; i++) counts[i] = 0; }

int i8op_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route, int *taken) {
    return NOCUDA;
}
int i8op_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N, int K, int pad,
                float sx, const float *sw, const float *bias, const float *qs, int route) { return NOCUDA; }
int i8op_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q) {
    return NOCUDA;
}
int i8op_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                const float *bias, const float *s_out, int B, int T, int C, int K) { return NOCUDA; }
int i8op_scan_m1(float *y, const int8_t *u, float su, const int8_t *dt, float sdt, const float *dt_bias,
                 const int8_t *Bm, const int8_t *Cm, float sb, float sc, const int8_t *z, float sz, const float *A,
                 const float *D, float *state, int B, int T, int Di, int N, int n_chunks) { return NOCUDA; }
int i8op_scan_m2(float *y, const int8_t *x, float sx, const int8_t *dt, float sdt, const float *dt_bias, float lo,
                 float hi, const int8_t *Bm, const int8_t *Cm, float sb, float sc, const float *A, const float *D,
                 float *state, int B, int T, int H, int P, int G, int N, int n_chunks) { return NOCUDA; }
int i8op_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D, float eps,
                       int norm_before_gate) { return NOCUDA; }
int i8op_download(float *dst, const void *x, int dtype, int rows, int cols, int ld, void *stream) { return NOCUDA; }
#endif
