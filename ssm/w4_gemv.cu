/* The 4-bit weight GEMVs of Quamba2's W4A16 and W4A8 modes, for decode (1 to 8 rows): int4 weights
 * with one FP32 scale per `group` columns of a row (ssm/qmodel.h q_weight, bits 4), streamed once in
 * 16-byte chunks of 32 weights and unpacked in registers; FP16 activations (W4A16, FP32 sums) or int8
 * ones (W4A8, exact int32 sums per chunk, then the group scale in FP32).
 * GPU layout of a weight row (k_w4_repack, from codes held one per int8 as q_weight has them; the
 * artifact's own packing is two codes a byte, low nibble first): 32-bit word j holds
 * columns 8j..8j+7 as offset nibbles u = q + 8 (1..15), column 8j+b in the low nibble of byte b and
 * column 8j+4+b in its high nibble, so that one mask gives four consecutive columns as bytes
 * (w & 0x0F0F0F0F: 8j..8j+3; (w >> 4) & 0x0F0F0F0F: 8j+4..8j+7) for __dp4a, and the offset costs one
 * correction per chunk: sum (u - 8) x = sum u x - 8 sum x. */
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

void k_w4_repack(const int8_t *q, int rows, int cols, uint8_t *out) {
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int j = 0; j < cols / 8; j++)
            for (int b = 0; b < 4; b++) {
                const int8_t *c = q + r * cols + 8 * j;
                out[r * (cols / 2) + 4 * j + b] = (uint8_t)((c[b] + 8) | ((c[4 + b] + 8) << 4));
            }
}

/* sum over 4 bytes of unsigned a times signed b, plus c */
static __device__ __forceinline__ int dp4a_us(unsigned a, int b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

/* the FP32 value u - 8 of the offset nibble in bits 0..3 of v (2^23 + u, exact, minus 2^23 + 8) */
static __device__ __forceinline__ float nib_f(unsigned v) {
    return __int_as_float(0x4B000000u | (v & 0xFu)) - 8388616.f;
}

/* One chunk (32 weights of a row, 4 words) against rows of X: W4A8 exact int32 sums. */
template <int M>
static __device__ __forceinline__ void chunk_w4a8(const int4 w, const int8_t *X, int ldx, int k0, int (&acc)[M]) {
    const unsigned ww[4] = {(unsigned)w.x, (unsigned)w.y, (unsigned)w.z, (unsigned)w.w};
#pragma unroll
    for (int m = 0; m < M; m++) {
        const int4 *xp = (const int4 *)(X + (size_t)m * ldx + k0);
        const int4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
        const int xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        int s = 0, sx = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s = dp4a_us(ww[j] & 0x0F0F0F0Fu, xw[2 * j], s);
            s = dp4a_us((ww[j] >> 4) & 0x0F0F0F0Fu, xw[2 * j + 1], s);
            sx = __dp4a(xw[2 * j], 0x01010101, sx);
            sx = __dp4a(xw[2 * j + 1], 0x01010101, sx);
        }
        acc[m] = s - 8 * sx;
    }
}

/* The same for W4A16: FP32 sums of the FP16 activations times the codes. */
template <int M>
static __device__ __forceinline__ void chunk_w4a16(const int4 w, const half *X, int ldx, int k0, float (&acc)[M]) {
    const unsigned ww[4] = {(unsigned)w.x, (unsigned)w.y, (unsigned)w.z, (unsigned)w.w};
    float v[32];
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            v[8 * j + b] = nib_f(ww[j] >> (8 * b));
            v[8 * j + 4 + b] = nib_f(ww[j] >> (8 * b + 4));
        }
#pragma unroll
    for (int m = 0; m < M; m++) {
        const int4 *xp = (const int4 *)(X + (size_t)m * ldx + k0);
        float s = 0.f;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int4 xv = __ldg(xp + q);
            const half2 *h = (const half2 *)&xv;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float2 f = __half22float2(h[i]);
                s = fmaf(v[8 * q + 2 * i], f.x, s);
                s = fmaf(v[8 * q + 2 * i + 1], f.y, s);
            }
        }
        acc[m] = s;
    }
}

/* Rows n of Y[M x N] = X W^T: a warp per (row, piece of K); lanes take 16-byte chunks c = 32 columns
 * (K % 32 == 0, group % 32 == 0: a chunk lies in one group). 8 warps per block, wpr warps per row. */
template <int M, bool A8>
__global__ void __launch_bounds__(256) w4_gemv_kernel(const void *X, int ldx, const uint8_t *W, const float *ws, int group,
                                                      int N, int K, int wpr, k_w4_epi e, void *out, int ldo) {
    __shared__ float part[8][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, C = K / 32, G = K / group;
    const int n = blockIdx.x * (8 / wpr) + warp / wpr, piece = warp % wpr;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
    if (n < N) {
        const int4 *wr = (const int4 *)(W + (size_t)n * (K / 2));
        const float *sr = ws + (size_t)n * G;
#pragma unroll 4
        for (int c = piece * 32 + lane; c < C; c += 32 * wpr) {
            const int4 w = __ldcs(wr + c);
            const float s = __ldg(sr + (32 * c) / group);
            if (A8) {
                int a[M];
                chunk_w4a8<M>(w, (const int8_t *)X, ldx, 32 * c, a);
#pragma unroll
                for (int m = 0; m < M; m++) acc[m] = fmaf((float)a[m], s, acc[m]);
            } else {
                float a[M];
                chunk_w4a16<M>(w, (const half *)X, ldx, 32 * c, a);
#pragma unroll
                for (int m = 0; m < M; m++) acc[m] = fmaf(a[m], s, acc[m]);
            }
        }
    }
    d_gemv_reduce(acc, part, warp, lane, piece, wpr);
    if (n >= N || piece || lane) return;
    const float b = e.bias ? e.bias[n] : 0.f;
#pragma unroll
    for (int m = 0; m < M; m++) {
        const float v = acc[m] * e.sx + b;
        const size_t i = (size_t)m * ldo + n;
        if (e.kind == K_EPI_I8) ((int8_t *)out)[i] = qr_quant_i8(v, e.qs[n]);
        else if (e.kind == K_EPI_F16) ((half *)out)[i] = __float2half(v);
        else ((float *)out)[i] = v;
    }
}

template <int M, bool A8>
static void w4_launch(const void *X, int ldx, const uint8_t *W, const float *ws, int group, int N, int K,
                      const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st) {
    int wpr = 1; /* split K while the rows alone are few warps and each lane keeps >= 2 chunks */
    while (wpr < 8 && (long)N * wpr * 2 <= (long)sm_count * 64 && K / 32 >= 32 * wpr * 2) wpr *= 2;
    w4_gemv_kernel<M, A8><<<cdiv(N, 8 / wpr), 256, 0, st>>>(X, ldx, W, ws, group, N, K, wpr, e, out, ldo);
    CUDA_CHECK_LAUNCH();
}

template <bool A8>
static void w4_rows(const void *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                    const k_w4_epi &e, void *out, int ldo, int sm, cudaStream_t st) {
    switch (M) {
    case 1: w4_launch<1, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 2: w4_launch<2, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 3: w4_launch<3, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 4: w4_launch<4, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 5: w4_launch<5, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 6: w4_launch<6, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    case 7: w4_launch<7, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    default: w4_launch<8, A8>(X, ldx, W, ws, group, N, K, e, out, ldo, sm, st); break;
    }
}

/* What both launchers check: the shapes the kernel assumes (the callers check them at upload). */
static void w4_check(const void *X, int ldx, size_t xelem, const uint8_t *W, int group, int M, int K, const char *who) {
    if (M < 1 || M > 8 || K < 32 || K % 32 || group < 32 || group % 32 || K % group || ldx < K ||
        (ldx * xelem) % 16 || (uintptr_t)X % 16 || (uintptr_t)W % 16)
        mq_die("%s: M %d, K %d, group %d, ldx %d or alignment outside the kernel's (internal error)", who, M, K, group,
               ldx);
}

void k_w4a16_gemv(const half *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                  const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st) {
    w4_check(X, ldx, sizeof(half), W, group, M, K, "k_w4a16_gemv");
    if (e.kind == K_EPI_I8) mq_die("k_w4a16_gemv: int8 output (internal error)");
    w4_rows<false>(X, ldx, W, ws, group, M, N, K, e, out, ldo, sm_count, st);
}

void k_w4a8_gemv(const int8_t *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                 const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st) {
    w4_check(X, ldx, 1, W, group, M, K, "k_w4a8_gemv");
    if (e.kind == K_EPI_I8 && !e.qs) mq_die("k_w4a8_gemv: int8 output without scales (internal error)");
    w4_rows<true>(X, ldx, W, ws, group, M, N, K, e, out, ldo, sm_count, st);
}

/* ---------------------------------------------------------------- beyond the GEMV's 8 rows */

/* W16[N x K] = q * s rounded to FP16 (the value the W4A16 simulation multiplies, (float)q * s, as
 * the FP16 pass rounds any weight), for cuBLAS on prefill-sized inputs. A thread per word of 8
 * columns, written as one 16-byte store. */
__global__ void w4_dequant_kernel(const uint32_t *W, const float *ws, int group, int N, int K, half *out) {
    const int wpr = K / 8, G = K / group;
    const size_t words = (size_t)N * wpr;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / wpr;
        const int j = (int)(i - n * wpr);
        const unsigned w = W[i];
        const float s = ws[n * G + (8 * j) / group];
        __align__(16) half2 h[4];
#pragma unroll
        for (int p = 0; p < 2; p++) { /* columns 8j + 2p, 8j + 2p + 1 (low nibbles), 8j + 4 + 2p, ... (high) */
            h[p] = __floats2half2_rn(nib_f(w >> (16 * p)) * s, nib_f(w >> (16 * p + 8)) * s);
            h[2 + p] = __floats2half2_rn(nib_f(w >> (16 * p + 4)) * s, nib_f(w >> (16 * p + 12)) * s);
        }
        *(int4 *)(out + n * K + 8 * j) = *(const int4 *)h;
    }
}

void k_w4_dequant_f16(const uint8_t *W, const float *ws, int group, int N, int K, half *out, cudaStream_t st) {
    if (K % 32 || group % 32 || K % group || (uintptr_t)W % 16 || (uintptr_t)out % 16)
        mq_die("k_w4_dequant_f16: K %d, group %d or alignment outside the kernel's (internal error)", K, group);
    const size_t words = (size_t)N * (K / 8);
    w4_dequant_kernel<<<(unsigned)min((size_t)16384, (words + 255) / 256), 256, 0, st>>>((const uint32_t *)W, ws, group,
                                                                                        N, K, out);
    CUDA_CHECK_LAUNCH();
}

/* Random codes in the GPU layout (every nibble 1..15, i.e. -7..7), for benchmark models. */
__global__ void w4_fill_kernel(uint32_t *dst, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint64_t h = d_mix64(seed, i);
        uint32_t w = 0;
        for (int b = 0; b < 8; b++) w |= (uint32_t)(1 + ((h >> (8 * b)) & 0xFF) % 15) << (4 * b);
        dst[i] = w;
    }
}

void k_w4_fill_random(uint8_t *W, size_t bytes, uint64_t seed, cudaStream_t st) {
    const size_t n = bytes / 4;
    if (!n) return;
    w4_fill_kernel<<<(unsigned)min((size_t)8192, (n + 255) / 256), 256, 0, st>>>((uint32_t *)W, n, seed);
    CUDA_CHECK_LAUNCH();
}
