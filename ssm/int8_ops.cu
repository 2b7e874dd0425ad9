/* Host-array entry points to the int8 kernels for the tests (ssm/int8_ops.h): upload into padded
 * device buffers, one kernel as the forward runs it, download. Allocation here is per call: these
 * are for tests, not for speed. */
#include <stdlib.h>
#include <string.h>
extern "C" {
#include "core/err.h"
}
#include "ssm/int8_kern.h"
#include "ssm/int8_ops.h"

static int need_gpu(void) {
    const char *why;
    if (!gpu_available(&why)) return mq_fail("no usable GPU: %s", why);
    return 0;
}

/* device copy of host [rows x cols] elements of `es` bytes, rows `pad` elements longer */
static void *up_pad(const void *h, size_t es, int rows, int cols, int pad) {
    void *d;
    const size_t ld = (size_t)cols + pad;
    CUDA_CHECK(cudaMalloc(&d, es * ld * (rows ? rows : 1) + 16));
    CUDA_CHECK(cudaMemset(d, 0, es * ld * (rows ? rows : 1) + 16));
    if (h && rows && cols)
        CUDA_CHECK(cudaMemcpy2D(d, es * ld, h, es * cols, es * cols, rows, cudaMemcpyHostToDevice));
    return d;
}
static void *up(const void *h, size_t bytes) {
    if (!h) return NULL;
    void *d;
    CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 1));
    CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void down(void *h, const void *d, size_t bytes) { CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)); }
static void dfree(void *d) {
    if (d) CUDA_CHECK(cudaFree(d));
}

__global__ void i8_widen_f16_kernel(float *dst, const half *src, int rows, int cols, int ld) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)rows * cols;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols, c = i % cols;
        dst[i] = __half2float(src[r * ld + c]);
    }
}
__global__ void i8_widen_i8_kernel(float *dst, const int8_t *src, int rows, int cols, int ld) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)rows * cols;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols, c = i % cols;
        dst[i] = (float)src[r * ld + c];
    }
}
__global__ void i8_narrow_f16_kernel(half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half(src[i]);
}

/* host FP32 [rows x cols] from device FP16 with row stride ld */
static void down_f16(float *h, const half *d, int rows, int cols, int ld) {
    float *t;
    CUDA_CHECK(cudaMalloc(&t, sizeof(float) * (size_t)rows * cols + 4));
    i8_widen_f16_kernel<<<256, 256>>>(t, d, rows, cols, ld);
    CUDA_CHECK_LAUNCH();
    down(h, t, sizeof(float) * (size_t)rows * cols);
    dfree(t);
}

/* a context with its own stream for one call */
struct op_ctx {
    cudaStream_t st;
    void *lt_ws;
    i8_gemm_ctx gc;
};
static void ctx_open(op_ctx *c) {
    CUDA_CHECK(cudaStreamCreate(&c->st));
    CUDA_CHECK(cudaMalloc(&c->lt_ws, (size_t)32 << 20));
    i8_gemm_ctx_init(&c->gc, c->st, c->lt_ws, (size_t)32 << 20);
}
static void ctx_close(op_ctx *c) {
    CUDA_CHECK(cudaStreamSynchronize(c->st));
    i8_gemm_ctx_free(&c->gc);
    dfree(c->lt_ws);
    CUDA_CHECK(cudaStreamDestroy(c->st));
}

extern "C" int i8op_gemm(int32_t *acc, const int8_t *X, const int8_t *W, int M, int N, int K, int pad, int route,
                         int *taken) {
    if (need_gpu()) return -1;
    op_ctx c;
    ctx_open(&c);
    int8_t *dX = (int8_t *)up_pad(X, 1, M, K, pad), *dW = (int8_t *)up(W, (size_t)N * K);
    int32_t *dA;
    CUDA_CHECK(cudaMalloc(&dA, sizeof(int32_t) * (size_t)M * N + 16));
    int r = i8_gemm_i32(&c.gc, dX, K + pad, dW, M, N, K, dA, route);
    if (taken) *taken = r;
    CUDA_CHECK(cudaStreamSynchronize(c.st));
    down(acc, dA, sizeof(int32_t) * (size_t)M * N);
    dfree(dX), dfree(dW), dfree(dA);
    ctx_close(&c);
    return 0;
}

extern "C" int i8op_linear(int8_t *q_out, float *f_out, int kind, const int8_t *X, const int8_t *W, int M, int N,
                           int K, int pad, float sx, const float *sw, const float *bias, const float *qs, int route) {
    if (need_gpu()) return -1;
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
    i8_epi e;
    e.sx = sx, e.sw = dsw, e.bias = db, e.qs = dqs, e.kind = kind;
    i8g_set_gemm_route((i8g_gemm_route)route);
    i8_linear(&c.gc, dX, K + pad, dW, M, N, K, e, dO, ldo, dA);
    i8g_set_gemm_route(I8G_GEMM_AUTO);
    CUDA_CHECK(cudaStreamSynchronize(c.st));
    if (kind == EPI_I8) CUDA_CHECK(cudaMemcpy2D(q_out, N, dO, ldo, N, M, cudaMemcpyDeviceToHost));
    else if (kind == EPI_F16) down_f16(f_out, (const half *)dO, M, N, ldo);
    else CUDA_CHECK(cudaMemcpy2D(f_out, sizeof(float) * N, dO, sizeof(float) * ldo, sizeof(float) * N, M,
                                 cudaMemcpyDeviceToHost));
    dfree(dX), dfree(dW), dfree(dsw), dfree(db), dfree(dqs), dfree(dA), dfree(dO);
    ctx_close(&c);
    return 0;
}

extern "C" int i8op_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s,
                                int8_t *q) {
    if (need_gpu()) return -1;
    const size_t n = (size_t)T * D;
    float *dr = (float *)up(resid, sizeof(float) * n), *dw = (float *)up(w, sizeof(float) * D);
    float *df = (float *)up(delta, sizeof(float) * n);
    half *dd = NULL;
    if (delta) {
        CUDA_CHECK(cudaMalloc(&dd, sizeof(half) * n));
        i8_narrow_f16_kernel<<<256, 256>>>(dd, df, n);
        CUDA_CHECK_LAUNCH();
    }
    int8_t *dq;
    CUDA_CHECK(cudaMalloc(&dq, n + 16));
    k8_add_rmsnorm(dr, dd, dw, dq, s, NULL, NULL, T, D, eps, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    down(resid, dr, sizeof(float) * n);
    down(q, dq, n);
    dfree(dr), dfree(dw), dfree(df), dfree(dd), dfree(dq);
    return 0;
}

extern "C" int i8op_conv1d(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw,
                           const float *s_in, const float *bias, const float *s_out, int B, int T, int C, int K) {
    if (need_gpu()) return -1;
    const int R = B * T, pad = 5;
    int8_t *dx = (int8_t *)up_pad(x, 1, R, C, pad), *dout = (int8_t *)up_pad(NULL, 1, R, C, pad + 2);
    int8_t *ds = (int8_t *)up(state, (size_t)B * C * (K - 1)), *dw = (int8_t *)up(w, (size_t)C * K);
    float *dsw = (float *)up(sw, sizeof(float) * C), *dsi = (float *)up(s_in, sizeof(float) * C);
    float *db = (float *)up(bias, sizeof(float) * C), *dso = (float *)up(s_out, sizeof(float) * C);
    k8_conv1d(dout, C + pad + 2, dx, C + pad, ds, ds != NULL, dw, dsw, dsi, db, dso, B, T, C, K, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy2D(out, C, dout, C + pad + 2, C, R, cudaMemcpyDeviceToHost));
    if (state) down(state, ds, (size_t)B * C * (K - 1));
    dfree(dx), dfree(dout), dfree(ds), dfree(dw), dfree(dsw), dfree(dsi), dfree(db), dfree(dso);
    return 0;
}

extern "C" int i8op_scan_m1(float *y, const int8_t *u, float su, const int8_t *dt, float sdt, const float *dt_bias,
                            const int8_t *Bm, const int8_t *Cm, float sb, float sc, const int8_t *z, float sz,
                            const float *A, const float *D, float *state, int B, int T, int Di, int N,
                            int n_chunks) {
    if (need_gpu()) return -1;
    const int R = B * T, pad = 3;
    /* B and C side by side in one buffer, as slices of x_proj's output */
    int8_t *bc = (int8_t *)mq_malloc((size_t)R * 2 * N + 1);
    for (int r = 0; r < R; r++) {
        memcpy(bc + (size_t)r * 2 * N, Bm + (size_t)r * N, N);
        memcpy(bc + (size_t)r * 2 * N + N, Cm + (size_t)r * N, N);
    }
    int8_t *du = (int8_t *)up_pad(u, 1, R, Di, pad), *ddt = (int8_t *)up_pad(dt, 1, R, Di, pad + 1);
    int8_t *dbc = (int8_t *)up_pad(bc, 1, R, 2 * N, pad), *dz = z ? (int8_t *)up_pad(z, 1, R, Di, pad + 2) : NULL;
    float *dbias = (float *)up(dt_bias, sizeof(float) * Di), *dA = (float *)up(A, sizeof(float) * (size_t)Di * N);
    float *dD = (float *)up(D, sizeof(float) * Di);
    float *dst;
    const size_t sn = (size_t)B * Di * N;
    CUDA_CHECK(cudaMalloc(&dst, sizeof(float) * sn));
    if (state) CUDA_CHECK(cudaMemcpy(dst, state, sizeof(float) * sn, cudaMemcpyHostToDevice));
    half *dy = (half *)up_pad(NULL, sizeof(half), R, Di, pad);
    scan8_m1_args a;
    a.u = du, a.ldu = Di + pad, a.su = su;
    a.dt = ddt, a.lddt = Di + pad + 1, a.sdt = sdt, a.dt_bias = dbias;
    a.Bm = dbc, a.Cm = dbc + N, a.ldbc = 2 * N + pad, a.sb = sb, a.sc = sc;
    a.z = dz, a.ldz = Di + pad + 2, a.sz = sz;
    a.A = dA, a.D = dD, a.y = dy, a.ldy = Di + pad;
    a.state = dst, a.state_in = state != NULL;
    a.B = B, a.T = T, a.Di = Di, a.N = N;
    float *cs, *cdt;
    CUDA_CHECK(cudaMalloc(&cs, sizeof(float) * (size_t)n_chunks * sn + 4));
    CUDA_CHECK(cudaMalloc(&cdt, sizeof(float) * (size_t)n_chunks * B * Di + 4));
    a.nc = n_chunks, a.cstate = cs, a.cdt = cdt;
    k8_scan_m1(a, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    dfree(cs), dfree(cdt);
    down_f16(y, dy, R, Di, Di + pad);
    if (state) down(state, dst, sizeof(float) * sn);
    free(bc);
    dfree(du), dfree(ddt), dfree(dbc), dfree(dz), dfree(dbias), dfree(dA), dfree(dD), dfree(dst), dfree(dy);
    return 0;
}

extern "C" int i8op_scan_m2(float *y, const int8_t *x, float sx, const int8_t *dt, float sdt, const float *dt_bias,
                            float lo, float hi, const int8_t *Bm, const int8_t *Cm, float sb, float sc, const float *A,
                            const float *D, float *state, int B, int T, int H, int P, int G, int N,
                            int n_chunks) {
    if (need_gpu()) return -1;
    const int R = B * T, Di = H * P, GN = G * N, pad = 5;
    int8_t *bc = (int8_t *)mq_malloc((size_t)R * 2 * GN + 1);
    for (int r = 0; r < R; r++) {
        memcpy(bc + (size_t)r * 2 * GN, Bm + (size_t)r * GN, GN);
        memcpy(bc + (size_t)r * 2 * GN + GN, Cm + (size_t)r * GN, GN);
    }
    int8_t *dx = (int8_t *)up_pad(x, 1, R, Di, pad), *ddt = (int8_t *)up_pad(dt, 1, R, H, pad + 1);
    int8_t *dbc = (int8_t *)up_pad(bc, 1, R, 2 * GN, pad);
    float *dbias = (float *)up(dt_bias, sizeof(float) * H), *dA = (float *)up(A, sizeof(float) * H);
    float *dD = (float *)up(D, sizeof(float) * H);
    float *dst, *dy;
    const size_t sn = (size_t)B * Di * N;
    CUDA_CHECK(cudaMalloc(&dst, sizeof(float) * sn));
    if (state) CUDA_CHECK(cudaMemcpy(dst, state, sizeof(float) * sn, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&dy, sizeof(float) * (size_t)R * (Di + pad)));
    scan8_m2_args a;
    a.x = dx, a.ldx = Di + pad, a.sx = sx;
    a.dt = ddt, a.lddt = H + pad + 1, a.sdt = sdt, a.dt_bias = dbias, a.lo = lo, a.hi = hi;
    a.Bm = dbc, a.Cm = dbc + GN, a.ldbc = 2 * GN + pad, a.sb = sb, a.sc = sc;
    a.A = dA, a.D = dD, a.y = dy, a.ldy = Di + pad;
    a.state = dst, a.state_in = state != NULL;
    a.B = B, a.T = T, a.H = H, a.P = P, a.G = G, a.N = N;
    float *cs, *cdt;
    CUDA_CHECK(cudaMalloc(&cs, sizeof(float) * (size_t)n_chunks * sn + 4));
    CUDA_CHECK(cudaMalloc(&cdt, sizeof(float) * (size_t)n_chunks * B * H + 4));
    a.nc = n_chunks, a.cstate = cs, a.cdt = cdt;
    k8_scan_m2(a, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    dfree(cs), dfree(cdt);
    CUDA_CHECK(cudaMemcpy2D(y, sizeof(float) * Di, dy, sizeof(float) * (Di + pad), sizeof(float) * Di, R,
                            cudaMemcpyDeviceToHost));
    if (state) down(state, dst, sizeof(float) * sn);
    free(bc);
    dfree(dx), dfree(ddt), dfree(dbc), dfree(dbias), dfree(dA), dfree(dD), dfree(dst), dfree(dy);
    return 0;
}

extern "C" int i8op_gated_rmsnorm(float *out, const float *y, const int8_t *z, float sz, const float *w, int T, int D,
                                  float eps, int norm_before_gate) {
    if (need_gpu()) return -1;
    const int pad = 7;
    float *dy = (float *)up(y, sizeof(float) * (size_t)T * D), *dw = (float *)up(w, sizeof(float) * D);
    int8_t *dz = (int8_t *)up_pad(z, 1, T, D, pad);
    half *dout;
    CUDA_CHECK(cudaMalloc(&dout, sizeof(half) * (size_t)T * D + 16));
    k8_gated_rmsnorm(dout, D, dy, D, dz, D + pad, sz, dw, T, D, D, eps, norm_before_gate, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    down_f16(out, dout, T, D, D);
    dfree(dy), dfree(dw), dfree(dz), dfree(dout);
    return 0;
}

extern "C" int i8op_download(float *dst, const void *x, int dtype, int rows, int cols, int ld, void *stream) {
    if (need_gpu()) return -1;
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    if (dtype == I8G_F32) {
        CUDA_CHECK(cudaMemcpy2D(dst, sizeof(float) * cols, x, sizeof(float) * ld, sizeof(float) * cols, rows,
                                cudaMemcpyDeviceToHost));
        return 0;
    }
    float *t;
    CUDA_CHECK(cudaMalloc(&t, sizeof(float) * (size_t)rows * cols + 4));
    if (dtype == I8G_F16) i8_widen_f16_kernel<<<256, 256>>>(t, (const half *)x, rows, cols, ld);
    else i8_widen_i8_kernel<<<256, 256>>>(t, (const int8_t *)x, rows, cols, ld);
    CUDA_CHECK_LAUNCH();
    down(dst, t, sizeof(float) * (size_t)rows * cols);
    dfree(t);
    return 0;
}
