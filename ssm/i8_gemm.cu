/* The int8 linear layers of the int8 pass (ssm/kern.h): int8 x int8 -> int32 products by one of
 * three routes, then the scales in an epilogue.
 *
 * cuBLASLt (prefill): row-major Y[M x N] = X[M x K] W[N x K]^T is, column-major, Y^T = W^T X^T with
 * A = W stored as a K x N column-major matrix (ld K) taken transposed and B = X as K x M (ld ldx)
 * not transposed: the "TN" form cuBLASLt's int8 (IMMA) kernels require in the regular column-major
 * ordering, with CUBLAS_COMPUTE_32I, int32 alpha = 1 / beta = 0 and int32 C (ld N). Its other
 * requirements (cuBLASLt docs, "IMMA kernels with regular data ordering"): m = N and k = K multiples
 * of 4, every leading dimension a multiple of 4, pointers 4-byte aligned (16 for speed; ours are
 * 256-byte aligned buffers). Plans (descriptors + the heuristic's first algorithm) are cached per
 * shape. A shape outside these rules, or one cuBLASLt declines, takes the tiled route.
 * Tiled: own 64 x 64 x 32 shared-memory tiles, bytes loaded with bounds checks (any shape, any
 * alignment, e.g. Mamba1's dt_proj reading the dt_low_rank slice), __dp4a on the tiles.
 * GEMV (decode, M <= 8): warps stream rows of W in 16- or 4-byte loads and __dp4a them with the M
 * rows of X, splitting K over up to 8 warps when N is short; the epilogue is fused.
 * int32 sums are exact whatever the order, so every route gives the same accumulators. */
#include <stdlib.h>
#include <string.h>
#include "core/qrule.h"
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

static int g_route = K_ROUTE_AUTO;
static long g_counts[4];
void k_i8_set_route(int route) { g_route = route; }
void k_i8_route_counts(long counts[4]) { memcpy(counts, g_counts, sizeof g_counts); }

/* ---------------------------------------------------------------- epilogue */

__global__ void i8_epilogue_kernel(const int32_t *acc, int M, int N, k_epi e, void *out, int ldo) {
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int m = (int)(i / N), n = (int)(i - (size_t)m * N);
        k_epi_put(e, acc[i], m, n, out, ldo);
    }
}

/* ---------------------------------------------------------------- tiled route */

#define TB 64
#define TK 32
#define TKP (TK + 4) /* row stride in bytes: a multiple of 4 for the int loads */

__global__ void __launch_bounds__(256) i8_gemm_tiled_kernel(const int8_t *X, int ldx, const int8_t *W, int M, int N,
                                                         int K, int32_t *C) {
    __shared__ __align__(16) int8_t xs[TB][TKP];
    __shared__ __align__(16) int8_t ws[TB][TKP];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * TB, n0 = blockIdx.x * TB;
    int acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0;
    for (int k0 = 0; k0 < K; k0 += TK) {
        /* 64 x 32 bytes per matrix: 8 bytes per thread */
#pragma unroll
        for (int r = 0; r < 8; r++) {
            int idx = tid * 8 + r, row = idx / TK, col = idx % TK, k = k0 + col;
            int m = m0 + row, n = n0 + row;
            xs[row][col] = (m < M && k < K) ? X[(size_t)m * ldx + k] : (int8_t)0;
            ws[row][col] = (n < N && k < K) ? W[(size_t)n * K + k] : (int8_t)0;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; kk += 4) {
            int a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = *(const int *)&xs[ty + 16 * i][kk];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = *(const int *)&ws[tx + 16 * j][kk];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int m = m0 + ty + 16 * i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int n = n0 + tx + 16 * j;
            if (n < N) C[(size_t)m * N + n] = acc[i][j];
        }
    }
}

static void gemm_tiled(const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, int32_t *C, cudaStream_t st) {
    dim3 grid(cdiv(N, TB), cdiv(M, TB));
    i8_gemm_tiled_kernel<<<grid, 256, 0, st>>>(X, ldx, W, M, N, K, C);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- GEMV route */

/* wpr warps per output row; 8 warps per block. K % V == 0, rows V-byte aligned. */
template <int M, int V>
__global__ void __launch_bounds__(256) i8_gemv_kernel(const int8_t *X, int ldx, const int8_t *W, int N, int K, int wpr,
                                                   k_epi e, void *out, int ldo) {
    __shared__ int part[8][M];
    d_gemv_i8<M, V>(X, ldx, W, N, K, wpr, part, [&](int acc, int m, int n) { k_epi_put(e, acc, m, n, out, ldo); });
}

template <int M, int V>
static void gemv_launch(const int8_t *X, int ldx, const int8_t *W, int N, int K, const k_epi &e, void *out, int ldo,
                        int sm_count, cudaStream_t st) {
    int wpr = 1; /* split K while the rows alone are few warps and each warp keeps >= 64 chunks */
    while (wpr < 8 && (long)N * wpr * 2 <= (long)sm_count * 64 && K / V >= 32 * wpr * 2) wpr *= 2;
    i8_gemv_kernel<M, V><<<cdiv(N, 8 / wpr), 256, 0, st>>>(X, ldx, W, N, K, wpr, e, out, ldo);
    CUDA_CHECK_LAUNCH();
}

template <int V>
static void gemv_v(const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const k_epi &e, void *out, int ldo,
                   int sm, cudaStream_t st) {
    switch (M) {
    case 1: gemv_launch<1, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 2: gemv_launch<2, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 3: gemv_launch<3, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 4: gemv_launch<4, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 5: gemv_launch<5, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 6: gemv_launch<6, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    case 7: gemv_launch<7, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    default: gemv_launch<8, V>(X, ldx, W, N, K, e, out, ldo, sm, st); break;
    }
}

static int aligned(const void *p, int a) { return ((uintptr_t)p % a) == 0; }

/* 16 or 4 (bytes per load) when the GEMV applies, else 0 */
static int gemv_vec(const int8_t *X, int ldx, const int8_t *W, int M, int K) {
    if (M < 1 || M > 8) return 0;
    if (K % 16 == 0 && ldx % 16 == 0 && aligned(X, 16) && aligned(W, 16)) return 16;
    if (K % 4 == 0 && ldx % 4 == 0 && aligned(X, 4) && aligned(W, 4)) return 4;
    return 0;
}

/* ---------------------------------------------------------------- cuBLASLt route */

struct k_lt_plan {
    int M, N, K, ldx, ok;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};
#define MAX_PLANS 64

void k_gemm_ctx_init(k_gemm_ctx *c, cudaStream_t st, void *lt_ws, size_t lt_ws_bytes) {
    memset(c, 0, sizeof *c);
    c->st = st;
    c->lt_ws = lt_ws;
    c->lt_ws_bytes = lt_ws_bytes;
    CUBLAS_CHECK(cublasLtCreate(&c->lt));
    c->plans = (k_lt_plan *)mq_calloc(MAX_PLANS, sizeof(k_lt_plan));
    CUDA_CHECK(cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, 0));
}

static void plan_destroy(k_lt_plan *p) {
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

void k_gemm_ctx_free(k_gemm_ctx *c) {
    for (int i = 0; i < c->nplans; i++) plan_destroy(&c->plans[i]);
    free(c->plans);
    CUBLAS_CHECK(cublasLtDestroy(c->lt));
    memset(c, 0, sizeof *c);
}

/* Builds the plan of one shape; p->ok = 0 when cuBLASLt has no algorithm for it. */
static void plan_make(k_gemm_ctx *c, k_lt_plan *p, int M, int N, int K, int ldx) {
    memset(p, 0, sizeof *p);
    p->M = M, p->N = N, p->K = K, p->ldx = ldx;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32I, CUDA_R_32I) != CUBLAS_STATUS_SUCCESS) return;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8I, K, N, K) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8I, K, M, ldx) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32I, N, M, N) != CUBLAS_STATUS_SUCCESS)
        return;
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t wsb = c->lt_ws_bytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = res.algo;
        p->ok = 1;
    }
}

/* 0 when cuBLASLt ran the product, -1 when the shape goes elsewhere. */
static int lt_run(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, int32_t *acc) {
    if (N % 4 || K % 4 || ldx % 4 || !aligned(X, 4) || !aligned(W, 4) || !aligned(acc, 16)) return -1;
    k_lt_plan *p = NULL, tmp;
    for (int i = 0; i < c->nplans; i++)
        if (c->plans[i].M == M && c->plans[i].N == N && c->plans[i].K == K && c->plans[i].ldx == ldx) {
            p = &c->plans[i];
            break;
        }
    int cached = 1;
    if (!p) {
        if (c->nplans < MAX_PLANS) p = &c->plans[c->nplans++];
        else p = &tmp, cached = 0;
        plan_make(c, p, M, N, K, ldx);
    }
    int rc = -1;
    if (p->ok) {
        const int32_t alpha = 1, beta = 0;
        cublasStatus_t s = cublasLtMatmul(c->lt, p->op, &alpha, W, p->a, X, p->b, &beta, acc, p->c, acc, p->c,
                                          &p->algo, c->lt_ws, c->lt_ws_bytes, c->st);
        if (s == CUBLAS_STATUS_SUCCESS) rc = 0;
        else p->ok = 0; /* not again for this shape */
    }
    if (!cached) plan_destroy(p);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

int k_i8_gemm_i32(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, int32_t *acc,
                int route) {
    if (route != K_ROUTE_TILED && lt_run(c, X, ldx, W, M, N, K, acc) == 0) {
        g_counts[K_ROUTE_LT]++;
        return K_ROUTE_LT;
    }
    gemm_tiled(X, ldx, W, M, N, K, acc, c->st);
    g_counts[K_ROUTE_TILED]++;
    return K_ROUTE_TILED;
}

void k_i8_linear(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const k_epi &e,
               void *out, int ldo, int32_t *acc) {
    const int route = g_route;
    int v = (route == K_ROUTE_AUTO || route == K_ROUTE_GEMV) ? gemv_vec(X, ldx, W, M, K) : 0;
    if (v) {
        if (v == 16) gemv_v<16>(X, ldx, W, M, N, K, e, out, ldo, c->sm_count, c->st);
        else gemv_v<4>(X, ldx, W, M, N, K, e, out, ldo, c->sm_count, c->st);
        g_counts[K_ROUTE_GEMV]++;
        return;
    }
    if (route != K_ROUTE_TILED && lt_run(c, X, ldx, W, M, N, K, acc) == 0) {
        g_counts[K_ROUTE_LT]++;
    } else {
        gemm_tiled(X, ldx, W, M, N, K, acc, c->st);
        g_counts[K_ROUTE_TILED]++;
    }
    size_t total = (size_t)M * N;
    unsigned blocks = (unsigned)(total / 256 + 1 < 8192 ? total / 256 + 1 : 8192);
    i8_epilogue_kernel<<<blocks, 256, 0, c->st>>>(acc, M, N, e, out, ldo);
    CUDA_CHECK_LAUNCH();
}
