/* The CUDA Hadamard kernel (device code only; launched from had_cuda.cu). One row of n = M * P
 * elements (P = 2^log_p) per group of T = P / R threads; each thread keeps M x R values in registers.
 *
 * Layout (mapping 1): thread t holds columns p = t*R + r (r < R) of every block a < M, i.e.
 * elements a*P + t*R + r, loaded as vectors. Because H = A_M (x) S_P, the M x M block and the
 * butterfly commute and act on different indices:
 *   1. the M x M block: in-thread, every thread has all M values of its columns;
 *   2. butterfly bits of r: in-thread;
 *   3. butterfly bits of the lane (T > 1): warp shuffles (__shfl_xor_sync);
 *   4. butterfly bits of the warp (T > 32): through shared memory, re-read so that the W = T/32
 *      values differing in the warp bits sit in one thread (mapping 2, needs R >= W), butterfly
 *      in-thread, write back, re-read mapping 1;
 *   5. scale by 1/sqrt(n), convert (float, half, or int8 by qr_quant_i8) and store as vectors.
 * Groups smaller than a warp (T < 32) put 64 / T rows in one block (blockDim = T x rows).
 * Every global read of a row happens before any write of it, so y == x works. */
#ifndef MQ_HAD_KERNEL_CUH
#define MQ_HAD_KERNEL_CUH
#include <cuda_fp16.h>
#include <stdint.h>
#include "core/qrule.h"
#include "hadamard/had_sign.h"

template <int BYTES> struct had_vec;
template <> struct had_vec<1> { typedef uint8_t t; };
template <> struct had_vec<2> { typedef uint16_t t; };
template <> struct had_vec<4> { typedef uint32_t t; };
template <> struct had_vec<8> { typedef uint2 t; };
template <> struct had_vec<16> { typedef uint4 t; };

/* Copies R elements of T with the widest accesses (up to 16 bytes); both ends aligned to that. */
template <int R, typename T>
__device__ __forceinline__ void had_copy(T *dst, const T *src) {
    constexpr int B = R * (int)sizeof(T), W = B < 16 ? B : 16;
    typedef typename had_vec<W>::t V;
#pragma unroll
    for (int i = 0; i < B / W; i++) reinterpret_cast<V *>(dst)[i] = reinterpret_cast<const V *>(src)[i];
}

__device__ __forceinline__ float had_to_f32(float v) { return v; }
__device__ __forceinline__ float had_to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T had_from_f32(float v, float qscale);
template <> __device__ __forceinline__ float had_from_f32<float>(float v, float qscale) { return v; }
template <> __device__ __forceinline__ __half had_from_f32<__half>(float v, float qscale) { return __float2half_rn(v); }
template <> __device__ __forceinline__ int8_t had_from_f32<int8_t>(float v, float qscale) { return qr_quant_i8(v, qscale); }

__device__ __forceinline__ void had_bfly(float &lo, float &hi) {
    float a = lo, b = hi;
    lo = a + b;
    hi = a - b;
}

__host__ __device__ constexpr int had_log2(int v) { return v <= 1 ? 0 : 1 + had_log2(v / 2); }

/* x, y: [rows x M*2^log_p]; norm = 1/sqrt(n); qscale: the int8 scale (used when Tout is int8_t). */
template <int M, int R, typename Tin, typename Tout>
__global__ void __launch_bounds__(M == 1 ? 512 : 128)
had_kernel(const Tin *x, Tout *y, int rows, int log_p, float norm, float qscale) {
    extern __shared__ float had_smem[];
    constexpr int LOG_R = had_log2(R);
    const int P = 1 << log_p, T = P / R, t = threadIdx.x;
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    const bool live = row < rows;  /* dead rows of the last block still join the shuffles */
    const size_t base = (size_t)row * M * P;
    alignas(16) float v[M][R];  /* aligned: rows of it are copied as vectors */

#pragma unroll
    for (int a = 0; a < M; a++) {
        alignas(16) Tin buf[R];
        if (live) had_copy<R>(buf, x + base + (size_t)a * P + t * R);
#pragma unroll
        for (int r = 0; r < R; r++) v[a][r] = live ? had_to_f32(buf[r]) : 0.0f;
    }

    /* 1. the M x M block, column by column */
    if (M > 1) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            float o[M];
#pragma unroll
            for (int a = 0; a < M; a++) {
                float s = had_block_sign(M, a, 0) > 0 ? v[0][r] : -v[0][r];
#pragma unroll
                for (int c = 1; c < M; c++) s = had_block_sign(M, a, c) > 0 ? s + v[c][r] : s - v[c][r];
                o[a] = s;
            }
#pragma unroll
            for (int a = 0; a < M; a++) v[a][r] = o[a];
        }
    }

    /* 2. butterfly over the bits of r */
#pragma unroll
    for (int h = 1; h < R; h <<= 1)
#pragma unroll
        for (int i = 0; i < R; i++)
            if (!(i & h))
#pragma unroll
                for (int a = 0; a < M; a++) had_bfly(v[a][i], v[a][i + h]);

    /* 3. butterfly over the lane bits of t */
    for (int h = 1; h < 32 && h < T; h <<= 1) {
        const bool upper = t & h;
#pragma unroll
        for (int a = 0; a < M; a++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                float o = __shfl_xor_sync(0xffffffffu, v[a][r], h);
                v[a][r] = upper ? o - v[a][r] : v[a][r] + o;
            }
    }

    /* 4. butterfly over the warp bits of t, through shared memory (then T > 32, one row a block) */
    if (T > 32) {
        const int log_w = log_p - LOG_R - 5, W = 1 << log_w, per = R >> log_w;
#pragma unroll
        for (int a = 0; a < M; a++) had_copy<R>(had_smem + a * P + t * R, v[a]);
        __syncthreads();
        /* mapping 2: value i = s*W + g is column g*32R + t*per + s (g: the warp bits) */
#pragma unroll
        for (int a = 0; a < M; a++)
#pragma unroll
            for (int i = 0; i < R; i++)
                v[a][i] = had_smem[a * P + (i & (W - 1)) * 32 * R + t * per + (i >> log_w)];
#pragma unroll
        for (int h = 1; h < R; h <<= 1)
            if (h < W)
#pragma unroll
                for (int i = 0; i < R; i++)
                    if (!(i & h))
#pragma unroll
                        for (int a = 0; a < M; a++) had_bfly(v[a][i], v[a][i + h]);
#pragma unroll
        for (int a = 0; a < M; a++)
#pragma unroll
            for (int i = 0; i < R; i++)
                had_smem[a * P + (i & (W - 1)) * 32 * R + t * per + (i >> log_w)] = v[a][i];
        __syncthreads();
#pragma unroll
        for (int a = 0; a < M; a++) had_copy<R>(v[a], had_smem + a * P + t * R);
    }

    /* 5. scale, convert, store */
    if (live) {
#pragma unroll
        for (int a = 0; a < M; a++) {
            alignas(16) Tout buf[R];
#pragma unroll
            for (int r = 0; r < R; r++) buf[r] = had_from_f32<Tout>(v[a][r] * norm, qscale);
            had_copy<R>(y + base + (size_t)a * P + t * R, buf);
        }
    }
}

#endif
