/* Device helpers every kernel file of ssm/ uses (nvcc only): the activation functions with the CPU
 * reference's formulas (core/mat.c: softplus linear above 20 as torch's), block reductions, the
 * counter-based random numbers of the benchmark fills, the online log-sum-exp merge, and the
 * programmatic dependent launch of the decode chains. Static inline, so each .cu file has
 * its own copy and nothing here is a link-time symbol. */
#ifndef MQ_SSM_KERN_UTIL_CUH
#define MQ_SSM_KERN_UTIL_CUH
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include "core/gpu.h"

static inline int cdiv(long a, long b) { return (int)((a + b - 1) / b); }

/* int8 dot product of the k-th V-byte chunk (V = 16 or 4) of a weight row w (streamed: __ldcs) and
 * an activation row x (cached: __ldg), __dp4a into int32; the GEMV kernels' inner step. */
template <int V>
static __device__ __forceinline__ int d_dot_i8(const int8_t *w, const int8_t *x, int k);
template <>
__device__ __forceinline__ int d_dot_i8<16>(const int8_t *w, const int8_t *x, int k) {
    int4 wv = __ldcs((const int4 *)w + k), xv = __ldg((const int4 *)x + k);
    int s = __dp4a(wv.x, xv.x, 0);
    s = __dp4a(wv.y, xv.y, s);
    s = __dp4a(wv.z, xv.z, s);
    return __dp4a(wv.w, xv.w, s);
}
template <>
__device__ __forceinline__ int d_dot_i8<4>(const int8_t *w, const int8_t *x, int k) {
    return __dp4a(__ldcs((const int *)w + k), __ldg((const int *)x + k), 0);
}

/* Threads per row of a norm: few rows (decode) leave the GPU idle anyway, so a whole 1024-thread
 * block cuts the serial loop over the row; many rows fill the GPU with smaller blocks. */
static inline int norm_threads(int rows, int D) { return rows < 256 && D >= 2048 ? 1024 : D >= 1024 ? 256 : 128; }

/* c += a b on the tensor cores, m16n8k16, FP16 in, FP32 accumulate (sm_80+). Fragments as the PTX
 * ISA lays them out, g = lane / 4, t = lane % 4: a {row g, k 2t..2t+1}, {g+8, 2t}, {g, 2t+8},
 * {g+8, 2t+8}; b0 {k 2t..2t+1, col g}, b1 {k 2t+8.., col g}; c {row g, cols 2t, 2t+1}, {g+8, ...}. */
static __device__ __forceinline__ void mma_f16(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#define LOG2E 1.4426950408889634f

/* 2^x flushing denormal results to zero: one MUFU instruction, where exp2f's non-ftz form adds the
 * denormal fix-ups and expf a range reduction; a decay factor below 2^-126 is 0 for the scan. */
static __device__ __forceinline__ float ex2_ftz(float x) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}

static __device__ __forceinline__ float d_silu(float x) { return x / (1.f + expf(-x)); }
static __device__ __forceinline__ float d_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
 * The leading barrier lets a block call it twice in a row (the shared slots may still be read). */
template <typename T>
static __device__ T block_sum(T v) {
    __shared__ T sh[32];
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The split-K reduction of the decode GEMVs: each lane holds partial sums acc[M] of one output row;
 * they are summed over the warp, then over the wpr consecutive warps that share the row (through
 * part[8][M] in shared memory; wpr is the same for the whole block), and piece 0 of the row's warps
 * ends with the totals. */
template <typename T, int M>
static __device__ __forceinline__ void d_gemv_reduce(T (&acc)[M], T (*part)[M], int warp, int lane, int piece, int wpr) {
#pragma unroll
    for (int m = 0; m < M; m++)
        for (int o = 16; o; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
    if (wpr > 1) {
        if (lane == 0)
#pragma unroll
            for (int m = 0; m < M; m++) part[warp][m] = acc[m];
        __syncthreads();
        if (piece == 0)
#pragma unroll
            for (int m = 0; m < M; m++) {
                acc[m] = 0;
                for (int j = 0; j < wpr; j++) acc[m] += part[warp + j][m];
            }
    }
}

/* The decode GEMV's body: output row n = blockIdx.x * (8 / wpr) + warp / wpr of Y[M x N] = X W^T,
 * int8 W [N x K] streamed once in V-byte chunks (K % V == 0, rows V-byte aligned), wpr warps per row
 * (8 warps per block), the exact int32 sums handed to put(acc, m, n) by one lane. part: the
 * block's __shared__ int [8][M]. */
template <int M, int V, typename Put>
static __device__ __forceinline__ void d_gemv_i8(const int8_t *X, int ldx, const int8_t *W, int N, int K, int wpr,
                                                 int (*part)[M], Put put) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, KV = K / V;
    const int n = blockIdx.x * (8 / wpr) + warp / wpr, piece = warp % wpr;
    int acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0;
    if (n < N) {
        const int8_t *w = W + (size_t)n * K;
#pragma unroll 4
        for (int k = piece * 32 + lane; k < KV; k += 32 * wpr)
#pragma unroll
            for (int m = 0; m < M; m++) acc[m] += d_dot_i8<V>(w, X + (size_t)m * ldx, k);
    }
    d_gemv_reduce(acc, part, warp, lane, piece, wpr);
    if (n < N && piece == 0 && lane == 0)
#pragma unroll
        for (int m = 0; m < M; m++) put(acc[m], m, n);
}

/* splitmix64 of (seed, i): a counter-based generator, so a fill is the same for any grid */
static __device__ __forceinline__ uint64_t d_mix64(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static __device__ __forceinline__ float d_uniform(uint64_t seed, uint64_t i) { /* [-1, 1) */
    return (float)(d_mix64(seed, i) >> 40) * (2.f / 16777216.f) - 1.f;
}

/* Online log-sum-exp pairs (running max m, sum s of exp(v - m)); merging two is exact. */
static __device__ __forceinline__ void d_lse_merge(float &m, float &s, float m2, float s2) {
    const float M = fmaxf(m, m2);
    if (M == -INFINITY) return;
    s = (m == -INFINITY ? 0.f : s * expf(m - M)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - M));
    m = M;
}

/* Programmatic dependent launch (sm_90): a kernel launched with launch_pdl may start while its
 * predecessor in the stream still runs; dep_wait() blocks until the predecessor's memory is
 * visible, dep_release() lets the successor start. Built for an older GPU (CUDA_ARCH sm_80..89)
 * they are no-ops: there the launches stay stream-ordered. In a kernel not launched so, dep_wait()
 * returns at once. */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
static __device__ __forceinline__ void dep_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
static __device__ __forceinline__ void dep_release() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
#else
static __device__ __forceinline__ void dep_wait() {}
static __device__ __forceinline__ void dep_release() {}
#endif
/* The first statement of a general kernel that launch_pdl may start early: it touches nothing
 * before its predecessor is complete, then lets its own successor launch (which waits in turn, so
 * every earlier kernel is complete too). What is gained is the launch and the ramp-up of the
 * successor's blocks, hidden behind this kernel's run: a few us a kernel in decode's chains. */
static __device__ __forceinline__ void dep_enter() {
    dep_wait();
    dep_release();
}

/* Launches kernel with programmatic stream serialization when pdl is set and k_pdl_on() (ssm/kern.h:
 * sm_90 code, MQ_PDL not 0); otherwise an ordinary launch. A kernel right after a
 * memset in the same stream takes pdl = 0: there is no kernel before it to overlap. */
template <typename... KArgs, typename... Args>
static void launch_k(int pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                     Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = pdl && k_pdl_on() ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...));
}
template <typename... KArgs, typename... Args>
static void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, Args... args) {
    launch_k(1, kernel, grid, block, smem, st, args...);
}

#endif
