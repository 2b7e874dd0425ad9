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
 * MMA (decode of a batch, 9 <= M <= 32 by default, sm_80+): int8 tensor-core mma.sync streaming W
 * once: a block of 4 warps owns 16 rows of W and splits K among its warps (partials summed in shared
 * memory, the epilogue fused); narrow layers (x_proj) also split K across blocks into int32 atomics.
 * From 33 rows (MQ_MMA_MAX_M, or forced), K a multiple of 64 and N wide enough, the route runs
 * tile_kernel instead: 128 rows of W x 64 of X a block through shared memory, K split over the SMs
 * into int32 atomics.
 * int32 sums are exact whatever the order, so every route gives the same accumulators. */
#include <stdlib.h>
#include <string.h>
#include <type_traits>
#include "core/qrule.h"
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

static int g_route = K_ROUTE_AUTO;
static long g_counts[K_NROUTES];
void k_i8_set_route(int route) { g_route = route; }
void k_i8_route_counts(long counts[K_NROUTES]) { memcpy(counts, g_counts, sizeof g_counts); }

/* ---------------------------------------------------------------- epilogue */

__global__ void i8_epilogue_kernel(const int32_t *acc, int M, int N, k_epi e, void *out, int ldo) {
    dep_enter();
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int m = (int)(i / N), n = (int)(i - (size_t)m * N);
        k_epi_put(e, acc[i], m, n, out, ldo);
    }
}

/* out = epilogue(acc), element by element (so acc may share out's buffer), on c's stream */
static void epilogue_run(k_gemm_ctx *c, const int32_t *acc, int M, int N, const k_epi &e, void *out, int ldo) {
    size_t total = (size_t)M * N;
    unsigned blocks = (unsigned)(total / 256 + 1 < 8192 ? total / 256 + 1 : 8192);
    launch_pdl(i8_epilogue_kernel, blocks, 256, 0, c->st, acc, M, N, e, out, ldo);
    CUDA_CHECK_LAUNCH();
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
    dep_enter();
    __shared__ int part[8][M];
    d_gemv_i8<M, V>(X, ldx, W, N, K, wpr, part, [&](int acc, int m, int n) { k_epi_put(e, acc, m, n, out, ldo); });
}

template <int M, int V>
static void gemv_launch(const int8_t *X, int ldx, const int8_t *W, int N, int K, const k_epi &e, void *out, int ldo,
                        int sm_count, cudaStream_t st) {
    int wpr = 1; /* split K while the rows alone are few warps and each warp keeps >= 64 chunks */
    while (wpr < 8 && (long)N * wpr * 2 <= (long)sm_count * 64 && K / V >= 32 * wpr * 2) wpr *= 2;
    launch_pdl(i8_gemv_kernel<M, V>, cdiv(N, 8 / wpr), 256, 0, st, X, ldx, W, N, K, wpr, e, out, ldo);
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

/* ---------------------------------------------------------------- MMA route */

/* D += A B, A 16 x 32 int8 (rows of W), B 32 x 8 int8 (columns = tokens), int32 D (PTX ISA,
 * mma.m16n8k32 .s8: lane = 4 g + t holds A rows g and g+8 at k slots 4t..4t+3 (a0, a1) and
 * 16+4t.. (a2, a3), B column g at the same k slots (b0, b1), D rows g, g+8 x columns 2t, 2t+1).
 * A k slot is only a label: lane t may feed any 4 real k into a slot as long as A and B agree, so
 * W and X are read 16 contiguous bytes at a time (see i8_mma_kernel). */
static __device__ __forceinline__ void mma_s8(int (&d)[4], int a0, int a1, int a2, int a3, int b0, int b1) {
#if __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    __trap(); /* the route is not chosen below sm_80 */
#endif
}

#define MMA_WARPS 4

static __device__ __forceinline__ int4 ld16(const int8_t *p, bool ok) {
    return ok ? __ldg((const int4 *)p) : make_int4(0, 0, 0, 0);
}
/* W's 16 columns from k as loaded (int8: 16 bytes; W4: the 8 bytes of k_w4_repack's layout, row
 * length K / 2) and as int8 codes in column order (W4: per word, the low nibbles are columns 0-3,
 * the high ones 4-7, each code + 8) */
template <bool W4>
struct w_raw {
    typedef int4 t;
    static __device__ __forceinline__ t load(const int8_t *row, int k, bool ok) { return ld16(row + k, ok); }
    static __device__ __forceinline__ int4 codes(t v) { return v; }
};
template <>
struct w_raw<true> {
    typedef int2 t;
    static __device__ __forceinline__ t load(const int8_t *row, int k, bool ok) {
        return ok ? __ldg((const int2 *)(row + k / 2)) : make_int2((int)0x88888888u, (int)0x88888888u); /* codes 0 */
    }
    /* per byte u - 8 of the nibble u in 0..15: u + 120 stays below 256 (no carry into the next byte), and
     * flipping bit 7 takes 128 off when it is set and adds 128 when not: u - 8 mod 256 either way
     * (__vsub4 is emulated by several instructions on sm_90) */
    static __device__ __forceinline__ int lo(int w) { return (int)((((unsigned)w & 0x0f0f0f0fu) + 0x78787878u) ^ 0x80808080u); }
    static __device__ __forceinline__ int hi(int w) { return (int)(((((unsigned)w >> 4) & 0x0f0f0f0fu) + 0x78787878u) ^ 0x80808080u); }
    static __device__ __forceinline__ int4 codes(t v) { return make_int4(lo(v.x), hi(v.x), lo(v.y), hi(v.y)); }
};
/* an int32 |v| < 2^22 as FP32 with two full-rate instructions (2^23 + 2^22 + v has v in its low
 * mantissa bits) instead of the quarter-rate conversion */
static __device__ __forceinline__ float i2f_small(int v) { return __int_as_float(0x4B400000 + v) - 12582912.f; }

static __device__ __forceinline__ int ld4(const int8_t *p, bool ok) { return ok ? __ldg((const int *)p) : 0; }

/* Rows [16 bx, 16 bx + 16) of W against the M <= 8 MT rows of X, over k in the block's slice
 * [kslice by, + kslice). Lane (g, t) reads 16 bytes of W rows g and g+8 and of token g's row of X at
 * k = k0 + 16 t of each 64-wide step (two mma: bytes 0-7, then 8-15). Warp w takes steps w, w + 4,
 * ..., with 2 or 4 steps of W loaded ahead; the epilogue's scales of its rows are read first. A last
 * step of 16, 32 or 48 k reads 4 bytes per slot. acc == NULL: the block's sums are the products and
 * the epilogue runs here; else they are added into acc[M x N] (zeroed before; the epilogue follows
 * as its own kernel). */
/* W4 (quamba2 W4A8, k_w4a8_mma): W is int4 in k_w4_repack's layout with FP32 scales ws [N][K /
 * group]; each step's int32 sums (64 columns, inside one group) times the row's group scale are added
 * in FP32, the warps' FP32 sums reduced, and the epilogue is sum * sx + bias (e.sw unused); K and
 * group multiples of 64, no K split (acc NULL). */
template <int MT, bool W4 = false>
__global__ void __launch_bounds__(MMA_WARPS * 32, 4) i8_mma_kernel(const int8_t *X, int ldx, const int8_t *W, int M, int N,
                                                           int K, int kslice, k_epi e, void *out, int ldo,
                                                           int32_t *acc, const float *ws, int group) {
    dep_enter();
    typedef typename w_raw<W4>::t wraw;
    __shared__ typename std::conditional<W4, float, int>::type red[MMA_WARPS - 1][MT][4][32];
    constexpr int MMA_AHEAD = MT == 2 ? 4 : 2; /* steps of 64 k in flight per warp (4 blocks per SM fit) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.x * 16, ka = blockIdx.y * kslice, kb = min(K, ka + kslice);
    const bool okA = n0 + g < N, okB = n0 + g + 8 < N;
    const size_t wrow = W4 ? (size_t)K / 2 : (size_t)K; /* bytes of a row of W */
    const int8_t *wA = W + (size_t)(okA ? n0 + g : 0) * wrow, *wB = W + (size_t)(okB ? n0 + g + 8 : 0) * wrow;
    const int ng = W4 ? K / group : 0; /* W4: scales per row */
    const float *sA = W4 ? ws + (size_t)(okA ? n0 + g : 0) * ng : NULL, *sB = W4 ? ws + (size_t)(okB ? n0 + g + 8 : 0) * ng : NULL;
    float f[MT][4]; /* W4: the FP32 sums */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) f[mt][0] = f[mt][1] = f[mt][2] = f[mt][3] = 0.f;
    float sc[2] = {0.f, 0.f}, bs[2] = {0.f, 0.f}, qs[2] = {0.f, 0.f}; /* rows n0 + g, n0 + g + 8 */
    if (!acc && warp == 0)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int n = n0 + g + 8 * h;
            if (n >= N) continue;
            sc[h] = W4 ? e.sx : e.sx * e.sw[n];
            if (e.bias) bs[h] = e.bias[n];
            if (e.kind == K_EPI_I8) qs[h] = e.qs[n];
        }
    const int8_t *x0 = X + (size_t)g * ldx; /* token 8 mt + g: x0 + 8 mt ldx, while < M */
    const size_t xstep = (size_t)8 * ldx;
    int d[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) d[mt][0] = d[mt][1] = d[mt][2] = d[mt][3] = 0;
    const int nsteps = (kb - ka) / 64;
    wraw ra[MMA_AHEAD], rb[MMA_AHEAD];
#pragma unroll
    for (int p = 0; p < MMA_AHEAD; p++) {
        const int st = warp + p * MMA_WARPS, k = ka + st * 64 + t * 16;
        ra[p] = w_raw<W4>::load(wA, k, st < nsteps && okA), rb[p] = w_raw<W4>::load(wB, k, st < nsteps && okB);
    }
    /* Rounds of MMA_AHEAD steps in straight-line code: the round's X loads (L2 hits) are all issued
     * first, W's come from the ring and refill it; a step past the end multiplies zeros. */
    for (int j0 = 0; warp + j0 * MMA_WARPS < nsteps; j0 += MMA_AHEAD) {
        int4 xv[MMA_AHEAD][MT];
#pragma unroll
        for (int p = 0; p < MMA_AHEAD; p++) {
            const int st = warp + (j0 + p) * MMA_WARPS, k = ka + st * 64 + t * 16;
#pragma unroll
            for (int mt = 0; mt < MT; mt++) xv[p][mt] = ld16(x0 + mt * xstep + k, st < nsteps && mt * 8 + g < M);
        }
#pragma unroll
        for (int p = 0; p < MMA_AHEAD; p++) {
            const int4 a = w_raw<W4>::codes(ra[p]), b = w_raw<W4>::codes(rb[p]);
            const int st = warp + (j0 + p) * MMA_WARPS;
            const int sn = warp + (j0 + p + MMA_AHEAD) * MMA_WARPS, kn = ka + sn * 64 + t * 16;
            ra[p] = w_raw<W4>::load(wA, kn, sn < nsteps && okA), rb[p] = w_raw<W4>::load(wB, kn, sn < nsteps && okB);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_s8(d[mt], a.x, b.x, a.y, b.y, xv[p][mt].x, xv[p][mt].y);
                mma_s8(d[mt], a.z, b.z, a.w, b.w, xv[p][mt].z, xv[p][mt].w);
            }
            if (W4 && st < nsteps) { /* the step's exact sums times the rows' scale of its group */
                const int kg = (ka + st * 64) / group;
                const float wa = __ldg(sA + kg), wb = __ldg(sB + kg);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    /* |sums| of 64 columns <= 64 * 128 * 8 = 2^16 */
                    f[mt][0] = __fmaf_rn(i2f_small(d[mt][0]), wa, f[mt][0]), f[mt][1] = __fmaf_rn(i2f_small(d[mt][1]), wa, f[mt][1]);
                    f[mt][2] = __fmaf_rn(i2f_small(d[mt][2]), wb, f[mt][2]), f[mt][3] = __fmaf_rn(i2f_small(d[mt][3]), wb, f[mt][3]);
                    d[mt][0] = d[mt][1] = d[mt][2] = d[mt][3] = 0;
                }
            }
        }
    }
    /* the last 16-48 k of the slice (K % 64), 4 bytes per slot, by warp 0 */
    const int kr = ka + nsteps * 64;
    if (!W4 && warp == 0 && kr < kb) {
        for (int k = kr; k < kb; k += 32) {
            const int k1 = k + 4 * t, k2 = k1 + 16;
            const bool in1 = k1 < kb, in2 = k2 < kb;
            const int a0 = ld4(wA + k1, in1 && okA), a1 = ld4(wB + k1, in1 && okB);
            const int a2 = ld4(wA + k2, in2 && okA), a3 = ld4(wB + k2, in2 && okB);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                mma_s8(d[mt], a0, a1, a2, a3, ld4(x0 + mt * xstep + k1, in1 && mt * 8 + g < M),
                       ld4(x0 + mt * xstep + k2, in2 && mt * 8 + g < M));
        }
    }
    if (warp) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int i = 0; i < 4; i++) red[warp - 1][mt][i][lane] = W4 ? f[mt][i] : d[mt][i];
    }
    __syncthreads();
    if (warp) return;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int n = n0 + g + (i >= 2 ? 8 : 0), m = mt * 8 + 2 * t + (i & 1);
            if (W4) { /* the warps' FP32 sums in warp order */
                float v = f[mt][i];
#pragma unroll
                for (int w = 0; w < MMA_WARPS - 1; w++) v = __fadd_rn(v, red[w][mt][i][lane]);
                if (m < M && n < N) k_epi_store(e, v, sc[i >> 1], bs[i >> 1], qs[i >> 1], (size_t)m * ldo + n, out);
                continue;
            }
            int v = d[mt][i];
#pragma unroll
            for (int w = 0; w < MMA_WARPS - 1; w++) v += red[w][mt][i][lane];
            if (m >= M || n >= N) continue;
            if (acc) atomicAdd(acc + (size_t)m * N + n, v);
            else k_epi_store(e, v, sc[i >> 1], bs[i >> 1], qs[i >> 1], (size_t)m * ldo + n, out);
        }
}

int k_w4a8_mma_ok(int K, int group) { return K >= 64 && K % 64 == 0 && group >= 64 && group % 64 == 0 && K % group == 0; }

/* ---------------------------------------------------------------- W4A8 tiles (prefill) */

/* 16 bytes global -> shared without the registers (sm_80+); src_bytes 0 fills zeros */
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
#if __CUDA_ARCH__ >= 800
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes));
#endif
}
static __device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;");
#endif
}
template <int N>
static __device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
#endif
}

#define W4T_ROWS 128  /* rows of W a block owns */
#define W4T_STAGES 4  /* 64-column steps in flight */
#define W4T_FLUSH 8   /* steps at most between FP32 flushes: |int32 sums| < 512 * 128 * 8 = 2^19 */
/* Many rows of X: a block owns 128 rows of W and 32 XF rows of X (XF 4: prefill, one block an SM;
 * XF 2: decode batches of 33-64, two) over one slice of K (blockIdx.z); each 64-column step of both
 * is copied into shared memory (cp.async, W4T_STAGES deep): X as 64 bytes a row, W as 64 bytes a row
 * (int8) or k_w4_repack's 32 (W4). 8 warps as 2 (W) x 4 (X): a warp's tile is 64 rows of W x 8 XF
 * rows of X, four 16-row W fragments read (W4: and unpacked) once per step and reused for XF X
 * fragments. Lanes read W and X at the MMA route's k slots (16 contiguous bytes of k each), so a
 * quarter warp covers 128 contiguous bytes of shared memory: no bank conflicts without a swizzle.
 * int8 W: exact int32 sums over the slice; one slice: the epilogue here (sx * sw[n]); more: atomics
 * into acc (exact, so in any order) and the epilogue kernel after.
 * W4 (quamba2 W4A8, slices of whole groups): a group's exact int32 sums times the row's scale are
 * added in FP32 at the group's end (the 4-bit GEMV's order; groups over 512 columns in parts of 512),
 * the scales read when the group starts. One slice: the epilogue is k_w4a8_mma's; more: the block's
 * FP32 sums go to part[z][m][n] and w4a8_reduce_kernel adds the slices in order (deterministic). */
template <int XF, bool W4>
__global__ void __launch_bounds__(256, 4 / XF) tile_kernel(const int8_t *X, int ldx, const uint8_t *W, const float *ws,
                                                          int group, int M, int N, int K, int kslice, k_epi e,
                                                          void *out, int ldo, float *part, int32_t *acc) {
    dep_enter();
    constexpr int TOKS = 32 * XF;      /* rows of X the block owns */
    constexpr int WROW = W4 ? 32 : 64; /* bytes of a row of W per step */
    __shared__ __align__(16) int8_t xs[W4T_STAGES][TOKS * 64];
    __shared__ __align__(16) uint8_t wsm[W4T_STAGES][W4T_ROWS * WROW];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int ww = warp >> 2, wx = warp & 3; /* the warp's 64 W rows, 8 XF X rows */
    const int n0 = blockIdx.x * W4T_ROWS, m0 = blockIdx.y * TOKS;
    /* the slice's steps; prefill (XF 4) has one slice, as constants: its loop and epilogue then compile
     * as the kernel did before the split (210 registers and 53.7 ms for mamba-2.8b's W4A8 prefill
     * 1x1024 with them runtime values, 186 and 44.3 without, H200) */
    constexpr bool SLICED = XF != 4;
    const int s0 = SLICED ? blockIdx.z * (kslice / 64) : 0, s1 = SLICED ? min(K, (blockIdx.z + 1) * kslice) / 64 : K / 64;
    const int spg = W4 ? group / 64 : 1, ng = W4 ? K / group : 0;
    const size_t wbytes = W4 ? (size_t)K / 2 : (size_t)K; /* bytes of a row of W */
    /* the copies of one step: X's TOKS rows x 4 chunks of 16 bytes, W's 128 rows x WROW / 16 */
    auto load = [&](int step, int buf) {
#pragma unroll
        for (int c = threadIdx.x; c < TOKS * 4; c += 256) {
            const int r = c >> 2, q = c & 3, m = m0 + r;
            cp_async16(&xs[buf][r * 64 + 16 * q], X + (size_t)(m < M ? m : 0) * ldx + step * 64 + 16 * q, m < M ? 16 : 0);
        }
#pragma unroll
        for (int j = 0; j < WROW / 32; j++) { /* a fixed count, unsigned: W4's one copy a thread, as before */
            const unsigned c = threadIdx.x + 256u * j;
            const int r = c / (WROW / 16), q = c % (WROW / 16), n = n0 + r;
            cp_async16(&wsm[buf][r * WROW + 16 * q], W + (size_t)(n < N ? n : 0) * wbytes + step * WROW + 16 * q,
                       n < N ? 16 : 0);
        }
    };
    const float *srow[4][2]; /* W4: the scales of the lane's 8 rows of W (a row past N reads row n0) */
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int n = n0 + ww * 64 + 16 * a + g + 8 * h;
            srow[a][h] = W4 ? ws + (size_t)(n < N ? n : n0) * ng : NULL;
        }
    int d[4][XF][4];
    float f[4][XF][4], sc[4][2];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < XF; b++)
#pragma unroll
            for (int i = 0; i < 4; i++) d[a][b][i] = 0, f[a][b][i] = 0.f;
#pragma unroll
    for (int p = 0; p < W4T_STAGES - 1; p++) {
        if (s0 + p < s1) load(s0 + p, p);
        cp_async_commit();
    }
    for (int step = s0; step < s1; step++) {
        if (W4 && step % spg == 0) /* the group's scales, read now, used at its end */
#pragma unroll
            for (int a = 0; a < 4; a++) sc[a][0] = __ldg(srow[a][0] + step / spg), sc[a][1] = __ldg(srow[a][1] + step / spg);
        cp_async_wait<W4T_STAGES - 2>();
        __syncthreads(); /* step's copies visible; the buffer refilled next was read a step ago */
        const int ahead = step + W4T_STAGES - 1;
        if (ahead < s1) load(ahead, (ahead - s0) % W4T_STAGES);
        cp_async_commit();
        const int buf = (step - s0) % W4T_STAGES;
        int4 xv[XF];
#pragma unroll
        for (int b = 0; b < XF; b++) xv[b] = *(const int4 *)&xs[buf][(wx * 8 * XF + 8 * b + g) * 64 + 16 * t];
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int r = ww * 64 + 16 * a + g;
            int4 wa, wb;
            if constexpr (W4) {
                wa = w_raw<true>::codes(*(const int2 *)&wsm[buf][r * 32 + 8 * t]);
                wb = w_raw<true>::codes(*(const int2 *)&wsm[buf][(r + 8) * 32 + 8 * t]);
            } else {
                wa = *(const int4 *)&wsm[buf][r * 64 + 16 * t];
                wb = *(const int4 *)&wsm[buf][(r + 8) * 64 + 16 * t];
            }
#pragma unroll
            for (int b = 0; b < XF; b++) {
                mma_s8(d[a][b], wa.x, wb.x, wa.y, wb.y, xv[b].x, xv[b].y);
                mma_s8(d[a][b], wa.z, wb.z, wa.w, wb.w, xv[b].z, xv[b].w);
            }
        }
        const int in_group = step % spg + 1;
        if (W4 && (in_group == spg || in_group % W4T_FLUSH == 0)) /* the sums so far times the rows' scales */
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < XF; b++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        f[a][b][i] = __fmaf_rn(i2f_small(d[a][b][i]), sc[a][i >> 1], f[a][b][i]);
                        d[a][b][i] = 0;
                    }
    }
    cp_async_wait<0>();
    float *pz = W4 && SLICED && part ? part + (size_t)blockIdx.z * M * N : NULL;
    int32_t *const sums = !W4 && SLICED ? acc : NULL;
    const bool direct = !pz && !sums;
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int n = n0 + ww * 64 + 16 * a + g + 8 * h;
            if (n >= N) continue;
            const float scn = direct ? (W4 ? e.sx : e.sx * e.sw[n]) : 0.f;
            const float bs = direct && e.bias ? e.bias[n] : 0.f, qs = direct && e.kind == K_EPI_I8 ? e.qs[n] : 0.f;
#pragma unroll
            for (int b = 0; b < XF; b++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const int m = m0 + wx * 8 * XF + 8 * b + 2 * t + j;
                    if (m >= M) continue;
                    const int i = 2 * h + j;
                    if constexpr (W4) {
                        if (pz) pz[(size_t)m * N + n] = f[a][b][i];
                        else k_epi_store(e, f[a][b][i], scn, bs, qs, (size_t)m * ldo + n, out);
                    } else {
                        if (sums) atomicAdd(sums + (size_t)m * N + n, d[a][b][i]);
                        else k_epi_store(e, (float)d[a][b][i], scn, bs, qs, (size_t)m * ldo + n, out);
                    }
                }
        }
}

/* the slices' sums part[z][M x N] added in slice order, then the epilogue */
__global__ void w4a8_reduce_kernel(const float *part, int nz, int M, int N, k_epi e, void *out, int ldo) {
    dep_enter();
    const size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = part[i];
        for (int z = 1; z < nz; z++) v = __fadd_rn(v, part[(size_t)z * total + i]);
        const int m = (int)(i / N), n = (int)(i - (size_t)m * N);
        k_epi_store(e, v, e.sx, e.bias ? e.bias[n] : 0.f, e.kind == K_EPI_I8 ? e.qs[n] : 0.f, (size_t)m * ldo + n, out);
    }
}

/* The fewest rows k_w4a8_mma gives the tiled kernel: 65 (prefill, blocks of 128 rows of X) or, with
 * a workspace for the slices, 33 (blocks of 64, K split so that the blocks cover the SMs); below, the
 * streaming kernel. MQ_W4_SPLITK=0 turns the split form off (for the benchmarks). */
#define W4T_MIN_M 65
#define W4T_SPLIT_MIN_M 33
static int w4_splitk_on(void) {
    static int v = -1;
    if (v < 0) v = !(getenv("MQ_W4_SPLITK") && !strcmp(getenv("MQ_W4_SPLITK"), "0"));
    return v;
}
/* K split into slices of whole units (a W4 group, or 64 columns) so that blocks x slices cover the
 * SMs, at most K_W4_SPLIT_MAX slices: returns their count, *kslice their columns */
static int tile_split(int sm_count, int blocks, int K, int unit, int *kslice) {
    const int units = K / unit;
    int split = cdiv(sm_count, blocks);
    if (split > K_W4_SPLIT_MAX) split = K_W4_SPLIT_MAX;
    if (split > units) split = units;
    *kslice = cdiv(units, split) * unit;
    return cdiv(K, *kslice);
}
size_t k_w4a8_part_floats(int M, int N) { return M >= W4T_SPLIT_MIN_M && M < W4T_MIN_M ? (size_t)K_W4_SPLIT_MAX * M * N : 0; }

void k_w4a8_mma(const int8_t *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                const k_w4_epi &e4, void *out, int ldo, float *part, int sm_count, cudaStream_t st) {
    if (!k_w4a8_mma_ok(K, group) || ldx % 16 || !aligned(X, 16) || !aligned(W, 16) || M < 1)
        mq_die("k_w4a8_mma: M %d, K %d, group %d, ldx %d or alignment outside the kernel's (internal error)", M, K, group, ldx);
    const k_epi e = k_epi_make(e4.sx, NULL, e4.bias, e4.qs, e4.kind);
    const size_t es = e.kind == K_EPI_I8 ? 1 : e.kind == K_EPI_F16 ? sizeof(half) : sizeof(float);
    if (M >= W4T_MIN_M) {
        launch_pdl(tile_kernel<4, true>, dim3(cdiv(N, W4T_ROWS), cdiv(M, 128)), 256, 0, st, X, ldx, W, ws, group, M, N,
                   K, K, e, out, ldo, NULL, NULL);
        CUDA_CHECK_LAUNCH();
        return;
    }
    if (M >= W4T_SPLIT_MIN_M && part && w4_splitk_on()) {
        const int blocks = cdiv(N, W4T_ROWS);
        int kslice;
        const int split = tile_split(sm_count, blocks, K, group, &kslice); /* slices of whole groups */
        launch_pdl(tile_kernel<2, true>, dim3(blocks, 1, split), 256, 0, st, X, ldx, W, ws, group, M, N, K, kslice, e,
                   out, ldo, split > 1 ? part : NULL, NULL);
        CUDA_CHECK_LAUNCH();
        if (split > 1) {
            launch_pdl(w4a8_reduce_kernel, cdiv(M * N, 256) < 4096 ? cdiv(M * N, 256) : 4096, 256, 0, st, part, split,
                       M, N, e, out, ldo);
            CUDA_CHECK_LAUNCH();
        }
        return;
    }
    const dim3 grid(cdiv(N, 16), 1);
    const int8_t *w = (const int8_t *)W;
    /* 32 tokens a launch, each streaming W (with 64, the FP32 sums beside the int32 ones spill:
     * 356 bytes) */
    for (int m0 = 0; m0 < M; m0 += 32) {
        const int m = M - m0 < 32 ? M - m0 : 32;
        const int8_t *x = X + (size_t)m0 * ldx;
        void *o = (char *)out + (size_t)m0 * ldo * es;
        if (m <= 16)
            launch_pdl(i8_mma_kernel<2, true>, grid, MMA_WARPS * 32, 0, st, x, ldx, w, m, N, K, K, e, o, ldo, NULL, ws,
                       group);
        else
            launch_pdl(i8_mma_kernel<4, true>, grid, MMA_WARPS * 32, 0, st, x, ldx, w, m, N, K, K, e, o, ldo, NULL, ws,
                       group);
        CUDA_CHECK_LAUNCH();
    }
}

/* 16-byte loads throughout: K a multiple of 16, X's rows and W 16-byte aligned */
static int mma_fits(const k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int K) {
    return c->cc_major >= 8 && M >= 1 && M <= 64 && K % 16 == 0 && ldx % 16 == 0 && aligned(X, 16) && aligned(W, 16);
}

/* The most rows AUTO sends to the MMA route: 32 (above it cuBLASLt's IMMA kernels were faster on the
 * H200, docs/performance.md); MQ_MMA_MAX_M=N (<= 64) overrides it, for the benchmarks. */
static int mma_max_m(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("MQ_MMA_MAX_M");
        v = s && atoi(s) > 0 ? (atoi(s) < 64 ? atoi(s) : 64) : 32;
    }
    return v;
}

/* K is split across blocks only when the rows alone give fewer blocks than SMs (x_proj), into
 * slices of at least 16 steps (four per warp), since every slice costs M x N atomics. */
static void mma_run(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const k_epi &e,
                    void *out, int ldo, int32_t *acc) {
    /* 33-64 rows, wide layers: the tiled kernel, K split so that the blocks cover the SMs (narrow ones,
     * x_proj, keep the kernel below: its 16-row blocks split K further) */
    if (M >= 33 && K % 64 == 0 && cdiv(N, W4T_ROWS) * K_W4_SPLIT_MAX >= c->sm_count) {
        const int blocks = cdiv(N, W4T_ROWS);
        int kslice;
        const int split = tile_split(c->sm_count, blocks, K, 64, &kslice);
        int32_t *sums = split > 1 ? acc : NULL;
        if (sums) CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(int32_t) * (size_t)M * N, c->st));
        launch_k(!sums, tile_kernel<2, false>, dim3(blocks, 1, split), 256, 0, c->st, X, ldx, (const uint8_t *)W, NULL,
                 0, M, N, K, kslice, e, out, ldo, NULL, sums);
        CUDA_CHECK_LAUNCH();
        if (sums) epilogue_run(c, sums, M, N, e, out, ldo);
        return;
    }
    const int rows = cdiv(N, 16), steps = cdiv(K, 64);
    int split = 1;
    if (rows < c->sm_count) {
        split = cdiv(2 * c->sm_count, rows);
        if (split > steps / 16) split = steps / 16;
        if (split < 1) split = 1;
    }
    const int kslice = cdiv(steps, split) * 64;
    split = cdiv(K, kslice);
    int32_t *sums = split > 1 ? acc : NULL;
    if (sums) CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(int32_t) * (size_t)M * N, c->st));
    dim3 grid(rows, split);
    if (M <= 16)
        launch_k(!sums, i8_mma_kernel<2>, grid, MMA_WARPS * 32, 0, c->st, X, ldx, W, M, N, K, kslice, e, out, ldo,
                 sums, (const float *)NULL, 0);
    else if (M <= 32)
        launch_k(!sums, i8_mma_kernel<4>, grid, MMA_WARPS * 32, 0, c->st, X, ldx, W, M, N, K, kslice, e, out, ldo,
                 sums, (const float *)NULL, 0);
    else
        launch_k(!sums, i8_mma_kernel<8>, grid, MMA_WARPS * 32, 0, c->st, X, ldx, W, M, N, K, kslice, e, out, ldo,
                 sums, (const float *)NULL, 0);
    CUDA_CHECK_LAUNCH();
    if (sums) epilogue_run(c, sums, M, N, e, out, ldo);
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
    CUDA_CHECK(cudaDeviceGetAttribute(&c->cc_major, cudaDevAttrComputeCapabilityMajor, 0));
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
    /* the tensor-core route for 9-64 rows (forced: from 1) */
    if (((route == K_ROUTE_AUTO && M > 8 && M <= mma_max_m()) || route == K_ROUTE_MMA) && mma_fits(c, X, ldx, W, M, K)) {
        mma_run(c, X, ldx, W, M, N, K, e, out, ldo, acc);
        g_counts[K_ROUTE_MMA]++;
        return;
    }
    if (route != K_ROUTE_TILED && lt_run(c, X, ldx, W, M, N, K, acc) == 0) {
        g_counts[K_ROUTE_LT]++;
    } else {
        gemm_tiled(X, ldx, W, M, N, K, acc, c->st);
        g_counts[K_ROUTE_TILED]++;
    }
    epilogue_run(c, acc, M, N, e, out, ldo);
}
