/* ssm/gpu_ops.h: one kernel at a time on host arrays, for the tests. Device buffers are allocated and
 * freed inside each call; activations are stored with a padded row stride so the kernels are
 * exercised on strided views as in the forwards. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "hadamard/had.h"
#include "ssm/cuda_rt.h"
#include "ssm/gpu_ops.h"

#define PAD 5 /* odd on purpose: misaligned rows as in_proj's column slices can be */

void rt_i8_set_decode_fused(int on); /* ssm/i8_pass.cu */
static_assert((int)GOP_ROUTE_AUTO == (int)K_ROUTE_AUTO && (int)GOP_ROUTE_LT == (int)K_ROUTE_LT &&
                  (int)GOP_ROUTE_TILED == (int)K_ROUTE_TILED && (int)GOP_ROUTE_GEMV == (int)K_ROUTE_GEMV &&
                  (int)GOP_ROUTE_MMA == (int)K_ROUTE_MMA && (int)GOP_NROUTES == (int)K_NROUTES,
              "gpu_ops.h's routes are kern.h's");
static_assert((int)GOP_OUT_I8 == (int)K_EPI_I8 && (int)GOP_OUT_F16 == (int)K_EPI_F16 && (int)GOP_OUT_F32 == (int)K_EPI_F32,
              "gpu_ops.h's output kinds are kern.h's epilogue kinds");
extern "C" void gop_i8_set_route(int route) { k_i8_set_route(route); }
extern "C" void gop_i8_route_counts(long counts[GOP_NROUTES]) { k_i8_route_counts(counts); }
extern "C" void gop_i8_set_decode_fused(int on) { rt_i8_set_decode_fused(on); }
extern "C" int gop_pdl_on(void) { return k_pdl_on(); }

/* ---------------------------------------------------------------- transfers */

static void *dmalloc(size_t n) {
    void *p;
    CUDA_CHECK(cudaMalloc(&p, n ? n : 1));
    return p;
}
static void dfree(const void *p) {
    if (p) CUDA_CHECK(cudaFree((void *)p));
}
static void *up(const void *h, size_t bytes) {
    if (!h) return NULL;
    void *d = dmalloc(bytes);
    CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static float *up_f32(const float *h, size_t n) { return (float *)up(h, n * sizeof(float)); }
static void down(void *h, const void *d, size_t bytes) { CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)); }
static void down_f32(float *h, const float *d, size_t n) { down(h, d, n * sizeof(float)); }
/* device copy of host [rows x cols] elements of `es` bytes, rows `pad` elements longer (zeros) */
static void *up_pad(const void *h, size_t es, int rows, int cols, int pad) {
    const size_t ld = (size_t)cols + pad, bytes = es * ld * (rows ? rows : 1) + 16;
    void *d = dmalloc(bytes);
    CUDA_CHECK(cudaMemset(d, 0, bytes));
    if (h && rows && cols) CUDA_CHECK(cudaMemcpy2D(d, es * ld, h, es * cols, es * cols, rows, cudaMemcpyHostToDevice));
    return d;
}
/* [rows x cols] host FP32 -> device FP16 with row stride ld (padding filled with 1.0: never read) */
static half *up_f16(const float *h, int rows, int cols, int ld) {
    if (!h) return NULL;
    half *tmp = (half *)mq_malloc(sizeof(half) * (size_t)rows * ld);
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int c = 0; c < ld; c++) tmp[r * ld + c] = __float2half(c < cols ? h[r * cols + c] : 1.f);
    half *d = (half *)up(tmp, sizeof(half) * (size_t)rows * ld);
    free(tmp);
    return d;
}
/* device FP16 [rows x cols] (stride ld) -> host FP32 dense; reads only the rows x cols elements, so
 * column slices of a wider buffer are safe */
static void down_f16(float *h, const half *d, int rows, int cols, int ld) {
    half *tmp = (half *)mq_malloc(sizeof(half) * (size_t)rows * cols + 2);
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

/* ---------------------------------------------------------------- shared and FP16 kernels */

extern "C" int gop_embed(float *out, const float *embed, const int32_t *tokens, int T, int D, int vocab) {
    if (rt_need_gpu()) return -1;
    half *e = up_f16(embed, vocab, D, D);
    int32_t *tk = (int32_t *)dmalloc(sizeof(int32_t) * T);
    CUDA_CHECK(cudaMemcpy(tk, tokens, sizeof(int32_t) * T, cudaMemcpyHostToDevice));
    float *o = (float *)dmalloc(sizeof(float) * (size_t)T * D);
    k_embed(o, e, tk, T, D, 0);
    down_f32(out, o, (size_t)T * D);
    dfree(e), dfree(tk), dfree(o);
    return 0;
}

extern "C" int gop_f16_add_rmsnorm(float *resid, const float *x, float *out16, float *out32, const float *w, int T,
                                 int D, float eps) {
    if (rt_need_gpu()) return -1;
    float *r = up_f32(resid, (size_t)T * D), *dw = up_f32(w, D);
    half *dx = up_f16(x, T, D, D), *o16 = out_f16(T, D);
    float *o32 = (float *)dmalloc(sizeof(float) * (size_t)T * D);
    k_f16_add_rmsnorm(r, dx, dw, o16, out32 ? o32 : NULL, T, D, eps, 0);
    down_f32(resid, r, (size_t)T * D);
    if (out16) down_f16(out16, o16, T, D, D);
    if (out32) down_f32(out32, o32, (size_t)T * D);
    dfree(r), dfree(dw), dfree(dx), dfree(o16), dfree(o32);
    return 0;
}

extern "C" int gop_f16_conv1d_silu(float *y, const float *x, const float *w, const float *bias, float *state, int B,
                                 int T, int C, int K) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, ld = C + PAD;
    half *dx = up_f16(x, R, C, ld), *dy = out_f16(R, ld);
    float *dw = up_f32(w, (size_t)C * K), *db = up_f32(bias, C);
    float *ds = state ? up_f32(state, (size_t)B * C * (K - 1)) : NULL;
    k_f16_conv1d_silu(dy, ld, dx, ld, ds, ds != NULL, dw, db, B, T, C, K, 0);
    down_f16(y, dy, R, C, ld);
    if (ds) down_f32(state, ds, (size_t)B * C * (K - 1));
    dfree(dx), dfree(dy), dfree(dw), dfree(db), dfree(ds);
    return 0;
}

/* B and C side by side in one host buffer [rows x 2n] of `es`-byte elements, as x_proj's output (or
 * the conv's) holds them */
static void *pack_bc(const void *Bm, const void *Cm, int rows, int n, size_t es) {
    char *bc = (char *)mq_malloc(es * (size_t)rows * 2 * n + 1);
    for (size_t r = 0; r < (size_t)rows; r++) {
        memcpy(bc + es * r * 2 * n, (const char *)Bm + es * r * n, es * n);
        memcpy(bc + es * (r * 2 * n + n), (const char *)Cm + es * r * n, es * n);
    }
    return bc;
}

/* The device side of a scan's state: the FP32 state (uploaded from host, or zeros that are dropped)
 * and the carries of n_chunks time chunks. */
struct scan_dev {
    float *state, *cstate, *cdt;
    size_t sn;
};
static scan_dev scan_dev_new(const float *state, size_t sn, int n_chunks, size_t dt_per_chunk) {
    scan_dev d;
    d.sn = sn;
    d.state = state ? up_f32(state, sn) : (float *)dmalloc(sizeof(float) * sn);
    d.cstate = (float *)dmalloc(sizeof(float) * n_chunks * sn + 4);
    d.cdt = (float *)dmalloc(sizeof(float) * n_chunks * dt_per_chunk + 4);
    return d;
}
/* the carries a Mamba2 scan needs: its time chunks, or the SSD form's cdiv(T, ssd_q) */
static int ssd_chunks(int n_chunks, int T, int ssd_q) {
    const int q = ssd_q > 0 ? (T + ssd_q - 1) / ssd_q : 0;
    return q > n_chunks ? q : n_chunks;
}
static void scan_dev_done(scan_dev *d, float *state) {
    CUDA_CHECK(cudaDeviceSynchronize());
    if (state) down_f32(state, d->state, d->sn);
    dfree(d->state), dfree(d->cstate), dfree(d->cdt);
}

extern "C" int gop_f16_scan_m1(float *y, const float *u, const float *dt, const float *dt_bias, const float *A,
                               const float *Bm, const float *Cm, const float *D, const float *z, float *state, int B,
                               int T, int Di, int N, int n_chunks, int par) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, ld = par == 2 ? (Di + 7) / 8 * 8 : Di + PAD, ldbc = par == 2 ? (2 * N + 7) / 8 * 8 : 2 * N + PAD;
    float *bc = (float *)pack_bc(Bm, Cm, R, N, sizeof(float));
    half *du = up_f16(u, R, Di, ld), *ddt = up_f16(dt, R, Di, ld), *dz = up_f16(z, R, Di, ld);
    half *dbc = up_f16(bc, R, 2 * N, ldbc), *dy = out_f16(R, ld);
    float *dA = up_f32(A, (size_t)Di * N), *dD = up_f32(D, Di), *dbias = up_f32(dt_bias, Di);
    scan_dev sd = scan_dev_new(state, (size_t)B * Di * N, n_chunks, (size_t)B * Di);
    k_scan_m1_args<k_in_f16, half> a;
    a.x = {du, ld}, a.dt = {ddt, ld}, a.Bm = {dbc, ldbc}, a.Cm = {dbc + N, ldbc}, a.z = {dz, ld};
    a.dt_bias = dbias, a.A = dA, a.D = dD, a.y = dy, a.ldy = ld;
    a.state = sd.state, a.state_in = state != NULL;
    a.B = B, a.T = T, a.Di = Di, a.N = N, a.nc = n_chunks, a.cstate = sd.cstate, a.cdt = sd.cdt, a.par = par;
    k_scan_m1(a, 0);
    scan_dev_done(&sd, state);
    down_f16(y, dy, R, Di, ld);
    free(bc);
    dfree(du), dfree(ddt), dfree(dz), dfree(dbc), dfree(dy), dfree(dA), dfree(dD), dfree(dbias);
    return 0;
}

extern "C" int gop_f16_scan_m2(float *y, const float *x, const float *dt, const float *dt_bias, float lo, float hi,
                               const float *A, const float *Bm, const float *Cm, const float *D, float *state, int B,
                               int T, int H, int P, int G, int N, int n_chunks, int ssd_q) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, E = H * P, GN = G * N;
    /* one buffer [x | B | C] as the conv output holds them, and dt in a wider buffer of its own */
    const int cd = E + 2 * GN, ld = cd + PAD, lddt = H + PAD;
    float *xbc = (float *)mq_malloc(sizeof(float) * (size_t)R * cd);
    for (size_t r = 0; r < (size_t)R; r++) {
        memcpy(xbc + r * cd, x + r * E, sizeof(float) * E);
        memcpy(xbc + r * cd + E, Bm + r * GN, sizeof(float) * GN);
        memcpy(xbc + r * cd + E + GN, Cm + r * GN, sizeof(float) * GN);
    }
    half *dx = up_f16(xbc, R, cd, ld), *ddt = up_f16(dt, R, H, lddt), *dy = out_f16(R, E + PAD);
    float *dA = up_f32(A, H), *dD = up_f32(D, H), *dbias = up_f32(dt_bias, H);
    scan_dev sd = scan_dev_new(state, (size_t)B * E * N, ssd_chunks(n_chunks, T, ssd_q), (size_t)B * H);
    k_scan_m2_args<k_in_f16, half> a;
    a.x = {dx, ld}, a.dt = {ddt, lddt}, a.Bm = {dx + E, ld}, a.Cm = {dx + E + GN, ld};
    a.dt_bias = dbias, a.A = dA, a.D = dD, a.lo = lo, a.hi = hi, a.y = dy, a.ldy = E + PAD;
    a.state = sd.state, a.state_in = state != NULL;
    a.B = B, a.T = T, a.H = H, a.P = P, a.G = G, a.N = N, a.nc = n_chunks, a.cstate = sd.cstate, a.cdt = sd.cdt;
    a.ssd_q = ssd_q;
    k_scan_m2(a, 0);
    scan_dev_done(&sd, state);
    down_f16(y, dy, R, E, E + PAD);
    free(xbc);
    dfree(dx), dfree(ddt), dfree(dy), dfree(dA), dfree(dD), dfree(dbias);
    return 0;
}

extern "C" int gop_f16_gated_rmsnorm(float *out, const float *y, const float *z, const float *w, int T, int D,
                                   int group, float eps, int norm_before_gate) {
    if (rt_need_gpu()) return -1;
    const int ld = D + PAD;
    half *dy = up_f16(y, T, D, ld), *dz = up_f16(z, T, D, ld), *o = out_f16(T, ld);
    float *dw = up_f32(w, D);
    k_f16_gated_rmsnorm(o, ld, dy, ld, dz, ld, dw, T, D, group, eps, norm_before_gate, 0);
    down_f16(out, o, T, D, ld);
    dfree(dy), dfree(dz), dfree(o), dfree(dw);
    return 0;
}

extern "C" int gop_f16_gemm(float *Y, const float *X, const float *W, const float *bias, int M, int N, int K,
                          int pad, int y_f32) {
    if (rt_need_gpu()) return -1;
    half *dx = up_f16(X, M, K, K + pad), *dw = up_f16(W, N, K, K);
    float *db = up_f32(bias, N);
    void *dy = dmalloc((y_f32 ? sizeof(float) : sizeof(half)) * (size_t)M * N);
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    k_f16_gemm(h, dx, K + pad, dw, dy, y_f32, N, db, M, N, K);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUBLAS_CHECK(cublasDestroy(h));
    if (y_f32) down_f32(Y, (const float *)dy, (size_t)M * N);
    else down_f16(Y, (const half *)dy, M, N, N);
    dfree(dx), dfree(dw), dfree(dy), dfree(db);
    return 0;
}

extern "C" int gop_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V) {
    if (rt_need_gpu()) return -1;
    float *dl = up_f32(logits, (size_t)rows * V), *dn = (float *)dmalloc(sizeof(float) * rows);
    int32_t *dt = (int32_t *)dmalloc(sizeof(int32_t) * rows);
    CUDA_CHECK(cudaMemcpy(dt, targets, sizeof(int32_t) * rows, cudaMemcpyHostToDevice));
    k_nll(dn, dl, dt, rows, V, 0);
    down_f32(nll, dn, rows);
    dfree(dl), dfree(dn), dfree(dt);
    return 0;
}


/* ---------------------------------------------------------------- int8 kernels */

/* a context with its own stream for one call */
struct op_ctx {
    cudaStream_t st;
    void *lt_ws;
    k_gemm_ctx gc;
};
static void ctx_open(op_ctx *c) {
    CUDA_CHECK(cudaStreamCreate(&c->st));
    c->lt_ws = dmalloc((size_t)32 << 20);
    k_gemm_ctx_init(&c->gc, c->st, c->lt_ws, (size_t)32 << 20);
}
static void ctx_close(op_ctx *c) {
    CUDA_CHECK(cudaStreamSynchronize(c->st));
    k_gemm_ctx_free(&c->gc);
    dfree(c->lt_ws);
    CUDA_CHECK(cudaStreamDestroy(c->st));
}

extern "C" int gop_i8_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route,
                         int *taken) {
    if (rt_need_gpu()) return -1;
    op_ctx c;
    ctx_open(&c);
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, pad), *dW = (int8_t *)up(W, (size_t)N * K);
    int32_t *dA;
    CUDA_CHECK(cudaMalloc(&dA, sizeof(int32_t) * (size_t)M * N + 16));
    int r = k_i8_gemm_i32(&c.gc, dX, K + pad, dW, M, N, K, dA, route);
    if (taken) *taken = r;
    CUDA_CHECK(cudaStreamSynchronize(c.st));
    down(acc, dA, sizeof(int32_t) * (size_t)M * N);
    dfree(dX), dfree(dW), dfree(dA);
    ctx_close(&c);
    return 0;
}

extern "C" int gop_i8_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N,
                           int K, int pad, float sx, const float *sw, const float *bias, const float *qs, int route) {
    if (rt_need_gpu()) return -1;
    op_ctx c;
    ctx_open(&c);
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, pad), *dW = (int8_t *)up(W, (size_t)N * K);
    float *dsw = (float *)up(sw, sizeof(float) * N), *db = (float *)up(bias, sizeof(float) * N);
    float *dqs = (float *)up(qs, sizeof(float) * N);
    int32_t *dA;
    CUDA_CHECK(cudaMalloc(&dA, sizeof(int32_t) * (size_t)M * N + 16));
    const int ldo = N + 3; /* an output row stride other than N */
    void *dO;
    CUDA_CHECK(cudaMalloc(&dO, sizeof(float) * (size_t)M * ldo + 16));
    k_epi e;
    e.sx = sx, e.sw = dsw, e.bias = db, e.qs = dqs, e.kind = kind;
    k_i8_set_route(route);
    k_i8_linear(&c.gc, dX, K + pad, dW, M, N, K, e, dO, ldo, dA);
    k_i8_set_route(K_ROUTE_AUTO);
    CUDA_CHECK(cudaStreamSynchronize(c.st));
    if (kind == K_EPI_I8) CUDA_CHECK(cudaMemcpy2D(q_out, N, dO, ldo, N, M, cudaMemcpyDeviceToHost));
    else if (kind == K_EPI_F16) down_f16(f_out, (const half *)dO, M, N, ldo);
    else CUDA_CHECK(cudaMemcpy2D(f_out, sizeof(float) * N, dO, sizeof(float) * ldo, sizeof(float) * N, M,
                                 cudaMemcpyDeviceToHost));
    dfree(dX), dfree(dW), dfree(dsw), dfree(db), dfree(dqs), dfree(dA), dfree(dO);
    ctx_close(&c);
    return 0;
}

extern "C" int gop_i8_linear_xcols(int8_t *q_out, const int8_t *X, const float *sx, const int8_t *W, const float *sw,
                                   const float *qs, int M, int N, int K, int pad) {
    if (rt_need_gpu()) return -1;
    op_ctx c;
    ctx_open(&c);
    cublasHandle_t blas;
    CUBLAS_CHECK(cublasCreate(&blas));
    CUBLAS_CHECK(cublasSetStream(blas, c.st));
    half *dW16 = (half *)dmalloc(sizeof(half) * (size_t)N * K);
    int8_t *dWq = (int8_t *)up(W, (size_t)N * K);
    k_i8_to_f16(dW16, dWq, (size_t)N * K, c.st);
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, pad);
    float *dsx = up_f32(sx, K), *dsw = up_f32(sw, N), *dqs = up_f32(qs, N);
    half *split = (half *)dmalloc(sizeof(half) * 2 * (size_t)M * K);
    float *acc = (float *)dmalloc(sizeof(float) * 2 * (size_t)M * N);
    const int ldo = N + 5; /* an output row stride other than N */
    int8_t *dO = (int8_t *)dmalloc((size_t)M * ldo);
    k_i8_linear_xcols(blas, dX, K + pad, dsx, dW16, M, N, K, dsw, dqs, dO, ldo, split, acc, c.st);
    CUDA_CHECK(cudaStreamSynchronize(c.st));
    CUDA_CHECK(cudaMemcpy2D(q_out, N, dO, ldo, N, M, cudaMemcpyDeviceToHost));
    CUBLAS_CHECK(cublasDestroy(blas));
    dfree(dW16), dfree(dWq), dfree(dX), dfree(dsx), dfree(dsw), dfree(dqs), dfree(split), dfree(acc), dfree(dO);
    ctx_close(&c);
    return 0;
}

/* ---------------------------------------------------------------- 4-bit weights */

/* Upload of an int4 weight (codes one per int8) in the kernels' layout, its scales and the bias; the
 * launch of either GEMV on a padded X (row stride K + 16 elements: 16-byte aligned rows); the optional
 * timing over `reps` more launches (events on the legacy stream). Timed calls cycle through copies of
 * the weights and scales, 256 MB together (the H200's L2 holds 50), so each call streams them from
 * device memory as a decode step does. */
struct w4_dev {
    uint8_t *W;
    float *ws, *bias, *qs;
    void *out;
    int ldo, copies;
    size_t wbytes, sfloats; /* one copy */
};
static w4_dev w4_up(const int8_t *q, const float *scales, int group, const float *bias, const float *qs, int M, int N,
                    int K, int timed, int mma) {
    w4_dev d;
    d.wbytes = mma ? k_w4_mma_bytes(N, K) : (size_t)N * K / 2, d.sfloats = (size_t)N * (K / group);
    d.copies = timed ? (int)((((size_t)256 << 20) + d.wbytes - 1) / d.wbytes) : 1;
    uint8_t *packed = (uint8_t *)mq_malloc(d.wbytes);
    if (mma) k_w4_repack_mma(q, N, K, packed);
    else k_w4_repack(q, N, K, packed);
    d.W = (uint8_t *)dmalloc(d.wbytes * d.copies);
    d.ws = (float *)dmalloc(sizeof(float) * d.sfloats * d.copies);
    for (int i = 0; i < d.copies; i++) {
        CUDA_CHECK(cudaMemcpy(d.W + d.wbytes * i, packed, d.wbytes, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d.ws + d.sfloats * i, scales, sizeof(float) * d.sfloats, cudaMemcpyHostToDevice));
    }
    free(packed);
    d.bias = up_f32(bias, N), d.qs = up_f32(qs, N);
    d.ldo = N + 3;
    d.out = dmalloc(sizeof(float) * (size_t)M * d.ldo + 16);
    CUDA_CHECK(cudaMemset(d.out, 0xff, sizeof(float) * (size_t)M * d.ldo + 16)); /* NaN: unwritten elements show */
    return d;
}
static void w4_free(w4_dev *d) { dfree(d->W), dfree(d->ws), dfree(d->bias), dfree(d->qs), dfree(d->out); }
static void w4_down(w4_dev *d, float *Y, int8_t *q_out, int kind, int M, int N) {
    CUDA_CHECK(cudaDeviceSynchronize());
    if (kind == K_EPI_I8) CUDA_CHECK(cudaMemcpy2D(q_out, N, d->out, d->ldo, N, M, cudaMemcpyDeviceToHost));
    else if (kind == K_EPI_F16) down_f16(Y, (const half *)d->out, M, N, d->ldo);
    else CUDA_CHECK(cudaMemcpy2D(Y, sizeof(float) * N, d->out, sizeof(float) * d->ldo, sizeof(float) * N, M,
                                 cudaMemcpyDeviceToHost));
    w4_free(d);
}
template <class Launch>
static void w4_time(Launch launch, int reps, double *us) {
    if (reps <= 0 || !us) return;
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) launch(i);
    CUDA_CHECK(cudaEventRecord(a, 0));
    for (int i = 0; i < reps; i++) launch(i);
    CUDA_CHECK(cudaEventRecord(b, 0));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    *us = 1e3 * ms / reps;
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
}
static int sm_count(void) {
    int dev, n;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
}

/* the shapes the kernels take (0), or -1 + message */
static int w4_shape_ok(const char *who, int kind, const float *qs, int group, int M, int N, int K) {
    if (M < 1 || M > 8 || N < 1 || K < 32 || K % 32 || group < 32 || group % 32 || K % group)
        return mq_fail("%s: M %d (1..8), N %d, K %d and group %d (multiples of 32, group dividing K)", who, M, N, K, group);
    if (kind == GOP_OUT_I8 && !qs) return mq_fail("%s: int8 output needs its scales", who);
    return 0;
}

/* Both wrappers after their X is on the device (row stride K + 16): upload W, run gemv(x, ldx, W, ws,
 * epilogue, out) once, time it when asked, download the output. */
template <class X, class Gemv>
static void w4_run(Gemv gemv, const X *dX, float *Y, int8_t *q_out, int kind, float sx, const int8_t *q,
                   const float *scales, int group, const float *bias, const float *qs, int M, int N, int K, int reps,
                   double *us, int mma = 0) {
    const int sm = sm_count();
    w4_dev d = w4_up(q, scales, group, bias, qs, M, N, K, reps > 0, mma);
    const k_w4_epi e = {sx, d.bias, d.qs, kind};
    auto launch = [&](int i) {
        const int c = i % d.copies;
        gemv(dX, K + 16, d.W + d.wbytes * c, d.ws + d.sfloats * c, group, M, N, K, e, d.out, d.ldo, sm, (cudaStream_t)0);
    };
    launch(0);
    w4_time(launch, reps, us);
    w4_down(&d, Y, q_out, kind, M, N);
}

extern "C" int gop_w4a16_gemv(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group,
                              const float *bias, int M, int N, int K, int reps, double *us) {
    if (rt_need_gpu()) return -1;
    if (w4_shape_ok("gop_w4a16_gemv", kind, NULL, group, M, N, K)) return -1;
    if (kind == GOP_OUT_I8) return mq_fail("gop_w4a16_gemv: W4A16 has no int8 output");
    half *dX = up_f16(X, M, K, K + 16);
    w4_run(k_w4a16_gemv, dX, Y, NULL, kind, 1.f, q, scales, group, bias, NULL, M, N, K, reps, us);
    dfree(dX);
    return 0;
}

extern "C" int gop_w4a16_mma(float *Y, int kind, const float *X, const int8_t *q, const float *scales, int group,
                             const float *bias, int M, int N, int K, int reps, double *us) {
    if (rt_need_gpu()) return -1;
    if (M < 1 || M > K_W4_MMA_MAX_M || N < 1 || !k_w4a16_mma_ok(K, group) || kind == GOP_OUT_I8)
        return mq_fail("gop_w4a16_mma: M %d (1..%d), N %d, K %d and group %d (multiples of 64, group dividing K), "
                       "FP16 / FP32 output", M, K_W4_MMA_MAX_M, N, K, group);
    half *dX = up_f16(X, M, K, K + 16);
    auto mma = [](const half *x, int ldx, const uint8_t *W, const float *ws, int grp, int m, int n, int k,
                  const k_w4_epi &e, void *out, int ldo, int, cudaStream_t st) {
        k_w4a16_mma(x, ldx, W, ws, grp, m, n, k, e, out, ldo, st);
    };
    w4_run(mma, dX, Y, NULL, kind, 1.f, q, scales, group, bias, NULL, M, N, K, reps, us, 1);
    dfree(dX);
    return 0;
}

extern "C" int gop_w4a8_gemv(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q,
                             const float *scales, int group, const float *bias, const float *qs, int M, int N, int K,
                             int reps, double *us) {
    if (rt_need_gpu()) return -1;
    if (w4_shape_ok("gop_w4a8_gemv", kind, qs, group, M, N, K)) return -1;
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, 16);
    w4_run(k_w4a8_gemv, dX, Y, q_out, kind, sx, q, scales, group, bias, qs, M, N, K, reps, us);
    dfree(dX);
    return 0;
}

extern "C" int gop_w4a8_mma(float *Y, int8_t *q_out, int kind, const int8_t *X, float sx, const int8_t *q,
                            const float *scales, int group, const float *bias, const float *qs, int M, int N, int K,
                            int reps, double *us) {
    if (rt_need_gpu()) return -1;
    if (M < 1 || N < 1 || !k_w4a8_mma_ok(K, group) || (kind == GOP_OUT_I8 && !qs))
        return mq_fail("gop_w4a8_mma: M %d, N %d, K %d and group %d (multiples of 64, group dividing K), int8 output "
                       "with its scales", M, N, K, group);
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, 16);
    static float *part; /* the K slices' sums (33-64 rows); one call at a time */
    const size_t np = k_w4a8_part_floats(M, N);
    part = np ? (float *)dmalloc(sizeof(float) * np) : NULL;
    auto mma = [](const int8_t *x, int ldx, const uint8_t *W, const float *ws, int grp, int m, int n, int k,
                  const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st) {
        k_w4a8_mma(x, ldx, W, ws, grp, m, n, k, e, out, ldo, part, sm_count, st);
    };
    w4_run(mma, dX, Y, q_out, kind, sx, q, scales, group, bias, qs, M, N, K, reps, us);
    if (part) dfree(part);
    part = NULL;
    dfree(dX);
    return 0;
}

extern "C" int gop_w4_dequant(float *W, const int8_t *q, const float *scales, int group, int N, int K) {
    if (rt_need_gpu()) return -1;
    if (w4_shape_ok("gop_w4_dequant", GOP_OUT_F16, NULL, group, 1, N, K)) return -1;
    if (!k_w4a16_mma_ok(K, group)) return mq_fail("gop_w4_dequant: K %d and group %d must be multiples of 64", K, group);
    w4_dev d = w4_up(q, scales, group, NULL, NULL, 1, N, K, 0, 1);
    half *dW = (half *)dmalloc(sizeof(half) * (size_t)N * K);
    k_w4_dequant_mma_f16(d.W, d.ws, group, N, K, dW, (cudaStream_t)0);
    CUDA_CHECK(cudaDeviceSynchronize());
    down_f16(W, dW, N, K, K);
    dfree(dW);
    w4_free(&d);
    return 0;
}

extern "C" int gop_i8_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s,
                                int8_t *q) {
    if (rt_need_gpu()) return -1;
    const size_t n = (size_t)T * D;
    float *dr = (float *)up(resid, sizeof(float) * n), *dw = (float *)up(w, sizeof(float) * D);
    float *df = (float *)up(delta, sizeof(float) * n);
    half *dd = NULL;
    if (delta) {
        CUDA_CHECK(cudaMalloc(&dd, sizeof(half) * n));
        k_f32_to_f16(dd, df, n, 0);
    }
    int8_t *dq;
    CUDA_CHECK(cudaMalloc(&dq, n + 16));
    k_i8_add_rmsnorm(dr, dd, dw, dq, s, NULL, NULL, T, D, eps, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    down(resid, dr, sizeof(float) * n);
    down(q, dq, n);
    dfree(dr), dfree(dw), dfree(df), dfree(dd), dfree(dq);
    return 0;
}

extern "C" int gop_i8_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw,
                           const float *s_in, const float *bias, const float *s_out, int B, int T, int C, int K) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, pad = 5;
    int8_t *dx = (int8_t *)up_pad(x, 1, R, C, pad), *dout = (int8_t *)up_pad(NULL, 1, R, C, pad + 2);
    int8_t *ds = (int8_t *)up(state, (size_t)B * C * (K - 1)), *dw = (int8_t *)up(w, (size_t)C * K);
    float *dsw = (float *)up(sw, sizeof(float) * C), *dsi = (float *)up(s_in, sizeof(float) * C);
    float *db = (float *)up(bias, sizeof(float) * C), *dso = (float *)up(s_out, sizeof(float) * C);
    k_i8_conv1d(dout, C + pad + 2, dx, C + pad, ds, ds != NULL, dw, dsw, dsi, db, dso, B, T, C, K, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy2D(out, C, dout, C + pad + 2, C, R, cudaMemcpyDeviceToHost));
    if (state) down(state, ds, (size_t)B * C * (K - 1));
    dfree(dx), dfree(dout), dfree(ds), dfree(dw), dfree(dsw), dfree(dsi), dfree(db), dfree(dso);
    return 0;
}

extern "C" int gop_i8_scan_m1(float *y, const int8_t *u, float su, const float *su_col, const int8_t *dt, float sdt,
                              const float *dt_bias, const int8_t *Bm, const int8_t *Cm, float sb, float sc,
                              const int8_t *z, float sz, const float *A, const float *D, float *state, int B, int T,
                              int Di, int N, int n_chunks, int par) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, al = par == 2; /* aligned rows: par 2 (the passes' layout), else odd strides */
    const int pad = al ? (Di + 7) / 8 * 8 - Di : 3, pdt = al ? pad : pad + 1, pz = al ? pad : pad + 2;
    const int pbc = al ? (2 * N + 7) / 8 * 8 - 2 * N : 3;
    int8_t *bc = (int8_t *)pack_bc(Bm, Cm, R, N, 1);
    int8_t *du = (int8_t *)up_pad(u, 1, R, Di, pad), *ddt = (int8_t *)up_pad(dt, 1, R, Di, pdt);
    int8_t *dbc = (int8_t *)up_pad(bc, 1, R, 2 * N, pbc), *dz = z ? (int8_t *)up_pad(z, 1, R, Di, pz) : NULL;
    float *dbias = up_f32(dt_bias, Di), *dA = up_f32(A, (size_t)Di * N), *dD = up_f32(D, Di), *dsu = up_f32(su_col, Di);
    half *dy = (half *)up_pad(NULL, sizeof(half), R, Di, pad);
    scan_dev sd = scan_dev_new(state, (size_t)B * Di * N, n_chunks, (size_t)B * Di);
    k_scan_m1_args<k_in_i8, half> a;
    a.x = {du, Di + pad, su, dsu}, a.dt = {ddt, Di + pdt, sdt};
    a.Bm = {dbc, 2 * N + pbc, sb}, a.Cm = {dbc + N, 2 * N + pbc, sc}, a.z = {dz, Di + pz, sz};
    a.dt_bias = dbias, a.A = dA, a.D = dD, a.y = dy, a.ldy = Di + pad;
    a.state = sd.state, a.state_in = state != NULL;
    a.B = B, a.T = T, a.Di = Di, a.N = N, a.nc = n_chunks, a.cstate = sd.cstate, a.cdt = sd.cdt, a.par = par;
    k_scan_m1(a, 0);
    scan_dev_done(&sd, state);
    down_f16(y, dy, R, Di, Di + pad);
    free(bc);
    dfree(du), dfree(ddt), dfree(dbc), dfree(dz), dfree(dbias), dfree(dA), dfree(dD), dfree(dy), dfree(dsu);
    return 0;
}

extern "C" int gop_i8_scan_m2(float *y, const int8_t *x, float sx, const float *sx_col, const int8_t *dt, float sdt,
                              const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, float sb,
                              float sc, const float *sb_col, const float *sc_col, const float *A, const float *D,
                              float *state, int B, int T, int H, int P, int G, int N, int n_chunks, int ssd_q) {
    if (rt_need_gpu()) return -1;
    const int R = B * T, Di = H * P, GN = G * N, pad = 5;
    int8_t *bc = (int8_t *)pack_bc(Bm, Cm, R, GN, 1);
    int8_t *dx = (int8_t *)up_pad(x, 1, R, Di, pad), *ddt = (int8_t *)up_pad(dt, 1, R, H, pad + 1);
    int8_t *dbc = (int8_t *)up_pad(bc, 1, R, 2 * GN, pad);
    float *dbias = up_f32(dt_bias, H), *dA = up_f32(A, H), *dD = up_f32(D, H);
    float *dsx = up_f32(sx_col, Di), *dsb = up_f32(sb_col, GN), *dsc = up_f32(sc_col, GN);
    float *dy = (float *)dmalloc(sizeof(float) * (size_t)R * (Di + pad));
    scan_dev sd = scan_dev_new(state, (size_t)B * Di * N, ssd_chunks(n_chunks, T, ssd_q), (size_t)B * H);
    k_scan_m2_args<k_in_i8, float> a;
    a.x = {dx, Di + pad, sx, dsx}, a.dt = {ddt, H + pad + 1, sdt};
    a.Bm = {dbc, 2 * GN + pad, sb, dsb}, a.Cm = {dbc + GN, 2 * GN + pad, sc, dsc};
    a.dt_bias = dbias, a.A = dA, a.D = dD, a.lo = lo, a.hi = hi, a.y = dy, a.ldy = Di + pad;
    a.state = sd.state, a.state_in = state != NULL;
    a.B = B, a.T = T, a.H = H, a.P = P, a.G = G, a.N = N, a.nc = n_chunks, a.cstate = sd.cstate, a.cdt = sd.cdt;
    a.ssd_q = ssd_q;
    k_scan_m2(a, 0);
    scan_dev_done(&sd, state);
    CUDA_CHECK(cudaMemcpy2D(y, sizeof(float) * Di, dy, sizeof(float) * (Di + pad), sizeof(float) * Di, R,
                            cudaMemcpyDeviceToHost));
    free(bc);
    dfree(dx), dfree(ddt), dfree(dbc), dfree(dbias), dfree(dA), dfree(dD), dfree(dy), dfree(dsx), dfree(dsb), dfree(dsc);
    return 0;
}

extern "C" int gop_i8_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D,
                                  float eps, int norm_before_gate) {
    if (rt_need_gpu()) return -1;
    const int pad = 7;
    float *dy = (float *)up(y, sizeof(float) * (size_t)T * D), *dw = (float *)up(w, sizeof(float) * D);
    int8_t *dz = (int8_t *)up_pad(z, 1, T, D, pad);
    half *dout;
    CUDA_CHECK(cudaMalloc(&dout, sizeof(half) * (size_t)T * D + 16));
    k_i8_gated_rmsnorm(dout, D, dy, D, dz, D + pad, sz, dw, T, D, D, eps, norm_before_gate, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    down_f16(out, dout, T, D, D);
    dfree(dy), dfree(dw), dfree(dz), dfree(dout);
    return 0;
}

extern "C" int gop_i8_yquant_rows(int8_t *q, const float *y, int rows, int E, float s) {
    if (rt_need_gpu()) return -1;
    int m, lp;
    if (had_factor(E, &m, &lp)) return -1;
    if (lp < 1 || (size_t)E * sizeof(float) > 48 * 1024) return mq_fail("gop_i8_yquant_rows: E = %d out of range", E);
    half *dy = up_f16(y, rows, E, E);
    int8_t *dq = (int8_t *)dmalloc((size_t)rows * E + 16);
    k_dec_yquant_args a;
    memset(&a, 0, sizeof a);
    a.y16 = dy, a.E = E, a.m = m, a.P = 1 << lp, a.log_p = lp, a.norm = (float)(1.0 / sqrt((double)E)), a.s = s, a.q = dq;
    k_i8_yquant_rows(a, rows, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(q, dq, (size_t)rows * E, cudaMemcpyDeviceToHost));
    dfree(dy), dfree(dq);
    return 0;
}
