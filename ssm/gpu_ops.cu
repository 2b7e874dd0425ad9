/* ssm/gpu_ops.h: one kernel at a time on host arrays, for the tests. Device buffers are allocated and
 * freed inside each call; FP16 activations are stored with a row stride of C + PAD so the kernels
 * are exercised on strided views as in the forward. */
#include <stdlib.h>
#include <string.h>
extern "C" { /* C headers without their own guard */
#include "core/err.h"
}
#include "ssm/gpu_kern.h"
#include "ssm/gpu_ops.h"

#define PAD 5 /* odd on purpose: misaligned rows as in_proj's column slices can be */

static int need_gpu(void) {
    const char *why;
    return gpu_available(&why) ? 0 : mq_fail("no usable GPU: %s", why);
}

static void *dmalloc(size_t n) {
    void *p;
    CUDA_CHECK(cudaMalloc(&p, n ? n : 1));
    return p;
}
static float *up_f32(const float *h, size_t n) {
    if (!h) return NULL;
    float *d = (float *)dmalloc(n * sizeof(float));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
/* [rows x cols] host FP32 -> device FP16 with row stride ld (padding filled with 1.0: never read) */
static half *up_f16(const float *h, int rows, int cols, int ld) {
    if (!h) return NULL;
    half *tmp = (half *)malloc(sizeof(half) * (size_t)rows * ld);
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int c = 0; c < ld; c++) tmp[r * ld + c] = __float2half(c < cols ? h[r * cols + c] : 1.f);
    half *d = (half *)dmalloc(sizeof(half) * (size_t)rows * ld);
    CUDA_CHECK(cudaMemcpy(d, tmp, sizeof(half) * (size_t)rows * ld, cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}
/* device FP16 [rows x cols] (stride ld) -> host FP32 dense; reads only the rows x cols elements, so
 * column slices of a wider buffer are safe */
static void down_f16(float *h, const half *d, int rows, int cols, int ld) {
    half *tmp = (half *)malloc(sizeof(half) * (size_t)rows * cols);
    CUDA_CHECK(cudaMemcpy2D(tmp, sizeof(half) * cols, d, sizeof(half) * ld, sizeof(half) * cols, rows,
                            cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < (size_t)rows * cols; i++) h[i] = __half2float(tmp[i]);
    free(tmp);
}
/* an FP16 output buffer poisoned with NaN, so unwritten elements show */
static half *out_f16(int rows, int ld) {
    half *d = (half *)dmalloc(sizeof(half) * (size_t)rows * ld);
    CUDA_CHECK(cudaMemset(d, 0xff, sizeof(half) * (size_t)rows * ld));
    return d;
}
static void down_f32(float *h, const float *d, size_t n) {
    CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
}
static void dfree(const void *p) {
    if (p) CUDA_CHECK(cudaFree((void *)p));
}

extern "C" int gpuop_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab) {
    if (need_gpu()) return -1;
    half *e = up_f16(embed, vocab, D, D);
    int32_t *tk = (int32_t *)dmalloc(sizeof(int32_t) * T);
    CUDA_CHECK(cudaMemcpy(tk, tokens, sizeof(int32_t) * T, cudaMemcpyHostToDevice));
    float *o = (float *)dmalloc(sizeof(float) * (size_t)T * D);
    k_embed(o, e, tk, T, D, 0);
    down_f32(out, o, (size_t)T * D);
    dfree(e), dfree(tk), dfree(o);
    return 0;
}

extern "C" int gpuop_add_rmsnorm(float *resid, const float *x, float *out16, float *out32, const float *w, int T,
                                 int D, float eps) {
    if (need_gpu()) return -1;
    float *r = up_f32(resid, (size_t)T * D), *dw = up_f32(w, D);
    half *dx = up_f16(x, T, D, D), *o16 = out_f16(T, D);
    float *o32 = (float *)dmalloc(sizeof(float) * (size_t)T * D);
    k_add_rmsnorm(r, dx, dw, o16, out32 ? o32 : NULL, T, D, eps, 0);
    down_f32(resid, r, (size_t)T * D);
    if (out16) down_f16(out16, o16, T, D, D);
    if (out32) down_f32(out32, o32, (size_t)T * D);
    dfree(r), dfree(dw), dfree(dx), dfree(o16), dfree(o32);
    return 0;
}

extern "C" int gpuop_conv1d_silu(float *y, const float *x, const float *w, const float *bias, float *state, int B,
                                 int T, int C, int K) {
    if (need_gpu()) return -1;
    const int R = B * T, ld = C + PAD;
    half *dx = up_f16(x, R, C, ld), *dy = out_f16(R, ld);
    float *dw = up_f32(w, (size_t)C * K), *db = up_f32(bias, C);
    float *ds = state ? up_f32(state, (size_t)B * C * (K - 1)) : NULL;
    k_conv1d_silu(dy, ld, dx, ld, ds, ds != NULL, dw, db, B, T, C, K, 0);
    down_f16(y, dy, R, C, ld);
    if (ds) down_f32(state, ds, (size_t)B * C * (K - 1));
    dfree(dx), dfree(dy), dfree(dw), dfree(db), dfree(ds);
    return 0;
}

extern "C" int gpuop_scan_m1(float *y, const float *u, const float *dt, const float *dt_bias, const float *A,
                             const float *Bm, const float *Cm, const float *D, const float *z, float *state, int B,
                             int T, int Di, int N, int n_chunks) {
    if (need_gpu()) return -1;
    const int R = B * T, ld = Di + PAD, ldbc = 2 * N + PAD;
    /* B and C side by side in one buffer, as x_proj's output holds them */
    float *bc = (float *)malloc(sizeof(float) * (size_t)R * 2 * N);
    for (size_t r = 0; r < (size_t)R; r++) {
        memcpy(bc + r * 2 * N, Bm + r * N, sizeof(float) * N);
        memcpy(bc + r * 2 * N + N, Cm + r * N, sizeof(float) * N);
    }
    half *du = up_f16(u, R, Di, ld), *ddt = up_f16(dt, R, Di, ld), *dz = up_f16(z, R, Di, ld);
    half *dbc = up_f16(bc, R, 2 * N, ldbc), *dy = out_f16(R, ld);
    float *dA = up_f32(A, (size_t)Di * N), *dD = up_f32(D, Di), *dbias = up_f32(dt_bias, Di);
    const size_t S = (size_t)Di * N;
    float *ds = state ? up_f32(state, B * S) : (float *)dmalloc(sizeof(float) * B * S);
    float *cst = (float *)dmalloc(sizeof(float) * n_chunks * B * S);
    float *cdt = (float *)dmalloc(sizeof(float) * n_chunks * B * Di);
    scan1_args a = {du, ld, ddt, ld, dbias, dA, dD, dbc, dbc + N, ldbc, dz, ld, dy, ld,
                    ds, state != NULL, cst, cdt, B, T, Di, N, n_chunks};
    k_scan1(&a, 0);
    down_f16(y, dy, R, Di, ld);
    if (state) down_f32(state, ds, B * S);
    free(bc);
    dfree(du), dfree(ddt), dfree(dz), dfree(dbc), dfree(dy), dfree(dA), dfree(dD), dfree(dbias);
    dfree(ds), dfree(cst), dfree(cdt);
    return 0;
}

extern "C" int gpuop_scan_m2(float *y, const float *x, const float *dt, const float *dt_bias, float lo, float hi,
                             const float *A, const float *Bm, const float *Cm, const float *D, float *state, int B,
                             int T, int H, int P, int G, int N, int n_chunks) {
    if (need_gpu()) return -1;
    const int R = B * T, E = H * P, GN = G * N;
    /* one buffer [x | B | C] as the conv output holds them, and dt in a wider buffer of its own */
    const int cd = E + 2 * GN, ld = cd + PAD, lddt = H + PAD;
    float *xbc = (float *)malloc(sizeof(float) * (size_t)R * cd);
    for (size_t r = 0; r < (size_t)R; r++) {
        memcpy(xbc + r * cd, x + r * E, sizeof(float) * E);
        memcpy(xbc + r * cd + E, Bm + r * GN, sizeof(float) * GN);
        memcpy(xbc + r * cd + E + GN, Cm + r * GN, sizeof(float) * GN);
    }
    half *dx = up_f16(xbc, R, cd, ld), *ddt = up_f16(dt, R, H, lddt), *dy = out_f16(R, E + PAD);
    float *dA = up_f32(A, H), *dD = up_f32(D, H), *dbias = up_f32(dt_bias, H);
    const size_t S = (size_t)E * N;
    float *ds = state ? up_f32(state, B * S) : (float *)dmalloc(sizeof(float) * B * S);
    float *cst = (float *)dmalloc(sizeof(float) * n_chunks * B * S);
    float *cdt = (float *)dmalloc(sizeof(float) * n_chunks * B * H);
    float *zero = NULL;
    if (!dbias) { /* the kernel always adds a bias */
        zero = (float *)calloc(H, sizeof(float));
        dbias = up_f32(zero, H);
    }
    scan2_args a = {dx, ld, ddt, lddt, dbias, dA, dD, lo, hi, dx + E, dx + E + GN, ld, dy, E + PAD,
                    ds, state != NULL, cst, cdt, B, T, H, P, N, G, n_chunks};
    k_scan2(&a, 0);
    down_f16(y, dy, R, E, E + PAD);
    if (state) down_f32(state, ds, B * S);
    free(xbc);
    free(zero);
    dfree(dx), dfree(ddt), dfree(dy), dfree(dA), dfree(dD), dfree(dbias), dfree(ds), dfree(cst), dfree(cdt);
    return 0;
}

extern "C" int gpuop_gated_rmsnorm(float *out, const float *y, const float *z, const float *w, int T, int D,
                                   int group, float eps, int norm_before_gate) {
    if (need_gpu()) return -1;
    const int ld = D + PAD;
    half *dy = up_f16(y, T, D, ld), *dz = up_f16(z, T, D, ld), *o = out_f16(T, ld);
    float *dw = up_f32(w, D);
    k_gated_rmsnorm(o, ld, dy, ld, dz, ld, dw, T, D, group, eps, norm_before_gate, 0);
    down_f16(out, o, T, D, ld);
    dfree(dy), dfree(dz), dfree(o), dfree(dw);
    return 0;
}

extern "C" int gpuop_gemm(float *Y, const float *X, const float *W, const float *bias, int M, int N, int K,
                          int pad, int y_f32) {
    if (need_gpu()) return -1;
    half *dx = up_f16(X, M, K, K + pad), *dw = up_f16(W, N, K, K);
    float *db = up_f32(bias, N);
    void *dy = dmalloc((y_f32 ? sizeof(float) : sizeof(half)) * (size_t)M * N);
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    gemm_f16(h, dx, K + pad, dw, dy, y_f32, N, db, M, N, K);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUBLAS_CHECK(cublasDestroy(h));
    if (y_f32) down_f32(Y, (const float *)dy, (size_t)M * N);
    else down_f16(Y, (const half *)dy, M, N, N);
    dfree(dx), dfree(dw), dfree(dy), dfree(db);
    return 0;
}

extern "C" int gpuop_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V) {
    if (need_gpu()) return -1;
    float *dl = up_f32(logits, (size_t)rows * V), *dn = (float *)dmalloc(sizeof(float) * rows);
    int32_t *dt = (int32_t *)dmalloc(sizeof(int32_t) * rows);
    CUDA_CHECK(cudaMemcpy(dt, targets, sizeof(int32_t) * rows, cudaMemcpyHostToDevice));
    k_nll(dn, dl, dt, rows, V, 0);
    down_f32(nll, dn, rows);
    dfree(dl), dfree(dn), dfree(dt);
    return 0;
}

extern "C" int gpuop_download_act(float *dst, const void *x, int f32, int rows, int cols, int ld, void *stream) {
    if (need_gpu()) return -1;
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    if (f32) {
        CUDA_CHECK(cudaMemcpy2D(dst, sizeof(float) * cols, x, sizeof(float) * ld, sizeof(float) * cols, rows,
                                cudaMemcpyDeviceToHost));
    } else {
        down_f16(dst, (const half *)x, rows, cols, ld);
    }
    return 0;
}
