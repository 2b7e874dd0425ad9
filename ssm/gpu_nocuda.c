/* ssm/gpu.h for builds without CUDA (NOCUDA=1 or no nvcc): every entry point fails cleanly, so
 * callers can test gpu_available() or the NULL/-1 result and take their CPU path. */
#include "ssm/gpu.h"
#include "ssm/gpu_ops.h"
#ifndef MQ_CUDA
#include "core/err.h"

static const char *no_cuda = "GPU forward: built without CUDA";
ssmg_model *ssmg_upload(const mq_model *m) { (void)m; mq_fail("%s", no_cuda); return NULL; }
ssmg_model *ssmg_model_random(const mq_config *c, uint64_t seed) { (void)c; (void)seed; mq_fail("%s", no_cuda); return NULL; }
void ssmg_model_free(ssmg_model *g) { (void)g; }
const mq_config *ssmg_config(const ssmg_model *g) { (void)g; return NULL; }
size_t ssmg_decode_bytes(const ssmg_model *g) { (void)g; return 0; }
size_t ssmg_model_bytes(const ssmg_model *g) { (void)g; return 0; }
ssmg_ws *ssmg_ws_new(const ssmg_model *g, int b, int t) { (void)g; (void)b; (void)t; mq_fail("%s", no_cuda); return NULL; }
void ssmg_ws_free(ssmg_ws *w) { (void)w; }
size_t ssmg_ws_bytes(const ssmg_ws *w) { (void)w; return 0; }
ssmg_state *ssmg_state_new(const ssmg_model *g, int b) { (void)g; (void)b; mq_fail("%s", no_cuda); return NULL; }
void ssmg_state_reset(ssmg_state *s) { (void)s; }
void ssmg_state_free(ssmg_state *s) { (void)s; }
int ssmg_prefill(const ssmg_model *g, ssmg_ws *w, const int32_t *tk, int b, int t, ssmg_state *s,
                 const ssmg_hooks *h, float *hid) {
    (void)g; (void)w; (void)tk; (void)b; (void)t; (void)s; (void)h; (void)hid;
    return mq_fail("%s", no_cuda);
}
int ssmg_logits(const ssmg_model *g, ssmg_ws *w, int r0, int n, float *l) {
    (void)g; (void)w; (void)r0; (void)n; (void)l;
    return mq_fail("%s", no_cuda);
}
int ssmg_step(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tk, const ssmg_hooks *h,
              float *hid, float *l) {
    (void)g; (void)w; (void)s; (void)tk; (void)h; (void)hid; (void)l;
    return mq_fail("%s", no_cuda);
}
int ssmg_step_async(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tk, int wl) {
    (void)g; (void)w; (void)s; (void)tk; (void)wl;
    return mq_fail("%s", no_cuda);
}
void ssmg_sync(ssmg_ws *w) { (void)w; }
void ssmg_profile(ssmg_ws *w, int on) { (void)w; (void)on; }
int ssmg_profile_report(ssmg_ws *w, char *buf, size_t n) { (void)w; if (n) buf[0] = 0; return 0; }
int ssmg_nll(const ssmg_model *g, ssmg_ws *w, const int32_t *tk, int b, int t, const ssmg_hooks *h,
             float *nll, double *sum) {
    (void)g; (void)w; (void)tk; (void)b; (void)t; (void)h; (void)nll; (void)sum;
    return mq_fail("%s", no_cuda);
}
int ssmg_eval_windows(const ssmg_model *g, const int32_t *ids, size_t n, int win, int maxw, int b,
                      double *s, long *ns) {
    (void)g; (void)ids; (void)n; (void)win; (void)maxw; (void)b; (void)s; (void)ns;
    return mq_fail("%s", no_cuda);
}

/* ssm/gpu_ops.h */
int gpuop_embed(float *o, const float *e, const int32_t *t, int T, int D, int V) {
    (void)o; (void)e; (void)t; (void)T; (void)D; (void)V;
    return mq_fail("%s", no_cuda);
}
int gpuop_add_rmsnorm(float *r, const float *x, float *o16, float *o32, const float *w, int T, int D, float eps) {
    (void)r; (void)x; (void)o16; (void)o32; (void)w; (void)T; (void)D; (void)eps;
    return mq_fail("%s", no_cuda);
}
int gpuop_conv1d_silu(float *y, const float *x, const float *w, const float *b, float *s, int B, int T, int C, int K) {
    (void)y; (void)x; (void)w; (void)b; (void)s; (void)B; (void)T; (void)C; (void)K;
    return mq_fail("%s", no_cuda);
}
int gpuop_scan_m1(float *y, const float *u, const float *dt, const float *db, const float *A, const float *Bm,
                  const float *Cm, const float *D, const float *z, float *s, int B, int T, int Di, int N, int nc) {
    (void)y; (void)u; (void)dt; (void)db; (void)A; (void)Bm; (void)Cm; (void)D; (void)z; (void)s;
    (void)B; (void)T; (void)Di; (void)N; (void)nc;
    return mq_fail("%s", no_cuda);
}
int gpuop_scan_m2(float *y, const float *x, const float *dt, const float *db, float lo, float hi, const float *A,
                  const float *Bm, const float *Cm, const float *D, float *s, int B, int T, int H, int P, int G,
                  int N, int nc) {
    (void)y; (void)x; (void)dt; (void)db; (void)lo; (void)hi; (void)A; (void)Bm; (void)Cm; (void)D; (void)s;
    (void)B; (void)T; (void)H; (void)P; (void)G; (void)N; (void)nc;
    return mq_fail("%s", no_cuda);
}
int gpuop_gated_rmsnorm(float *o, const float *y, const float *z, const float *w, int T, int D, int g, float eps,
                        int nbg) {
    (void)o; (void)y; (void)z; (void)w; (void)T; (void)D; (void)g; (void)eps; (void)nbg;
    return mq_fail("%s", no_cuda);
}
int gpuop_download_act(float *d, const void *x, int f32, int rows, int cols, int ld, void *st) {
    (void)d; (void)x; (void)f32; (void)rows; (void)cols; (void)ld; (void)st;
    return mq_fail("%s", no_cuda);
}
int gpuop_gemm(float *Y, const float *X, const float *W, const float *b, int M, int N, int K, int pad, int y_f32) {
    (void)Y; (void)X; (void)W; (void)b; (void)M; (void)N; (void)K; (void)pad; (void)y_f32;
    return mq_fail("%s", no_cuda);
}
int gpuop_nll(float *n, const float *l, const int32_t *t, int R, int V) {
    (void)n; (void)l; (void)t; (void)R; (void)V;
    return mq_fail("%s", no_cuda);
}
#endif
