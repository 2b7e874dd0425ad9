/* The 4-bit weight GEMVs of Quamba2's W4A16 and W4A8 modes, for decode (1 to 8 rows): int4 weights
 * with one FP32 scale per `group` columns of a row (ssm/qmodel.h q_weight, bits 4), streamed once in
 * 16-byte chunks of 32 weights and unpacked in registers; FP16 activations (W4A16, FP32 sums) or int8
 * ones (W4A8, exact int32 sums per chunk, then the group scale in FP32). Below them the W4A16 pass's
 * own (ssm/f16_pass.cu): a tensor-core GEMV for 1 to 16 rows on a layout in mma fragment order, the
 * dequantization of that layout for prefill's cuBLAS, and random codes for benchmark models.
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
    dep_enter();
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
    launch_pdl(w4_gemv_kernel<M, A8>, cdiv(N, 8 / wpr), 256, 0, st, X, ldx, W, ws, group, N, K, wpr, e, out, ldo);
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

/* ---------------------------------------------------------------- benchmark models */

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

/* ---------------------------------------------------------------- W4A16 on the tensor cores */

/* The W4A16 pass's own layout and GEMV (k_w4a16_mma): the codes in the order of the A operand of
 * mma.sync.m16n8k16 (f16 in, f32 accumulate), so a lane's 16-byte load is its fragments of four
 * k-tiles and needs no shuffling. Rows in blocks of 16 (the last padded with code 0), columns in
 * blocks of 64: block (rb, kb) is 512 bytes, lane l's 16 at l * 16, word t its fragment of k-tile t
 * (columns kb * 64 + 16 t ..). With g = l / 4, c = 2 (l % 4), the fragment's pairs are (row g,
 * columns c, c+1), (row g+8, c, c+1), (row g, c+8, c+9), (row g+8, c+8, c+9); pair i sits in
 * nibbles i (first) and 4 + i (second) as u = q + 8, so (w >> 4i) & 0x000F000F, OR'd into the
 * mantissa of 1024.0 (0x6400) in both halves and less 1032.0, is the pair as an exact half2. */
static int mma_nibble(const int8_t *q, int rows, int cols, int r, int c) {
    return r < rows ? q[(size_t)r * cols + c] + 8 : 8;
}

void k_w4_repack_mma(const int8_t *q, int rows, int cols, uint8_t *out) {
    const int RB = (rows + 15) / 16, KB = cols / 64;
    uint32_t *o = (uint32_t *)out;
    for (int rb = 0; rb < RB; rb++)
        for (int kb = 0; kb < KB; kb++)
            for (int l = 0; l < 32; l++)
                for (int t = 0; t < 4; t++) {
                    const int r = rb * 16 + l / 4, c = kb * 64 + 16 * t + 2 * (l % 4);
                    const int rr[4] = {r, r + 8, r, r + 8}, cc[4] = {c, c, c + 8, c + 8};
                    uint32_t w = 0;
                    for (int i = 0; i < 4; i++)
                        w |= (uint32_t)mma_nibble(q, rows, cols, rr[i], cc[i]) << (4 * i) |
                             (uint32_t)mma_nibble(q, rows, cols, rr[i], cc[i] + 1) << (16 + 4 * i);
                    o[(((size_t)rb * KB + kb) * 32 + l) * 4 + t] = w;
                }
}

size_t k_w4_mma_bytes(int rows, int cols) { return (size_t)((rows + 15) / 16) * 16 * cols / 2; }

/* pair i of a fragment word as half2 (u - 8, exact) */
static __device__ __forceinline__ unsigned mma_pair(unsigned w, int i) {
    const unsigned h = ((w >> (4 * i)) & 0x000F000Fu) | 0x64006400u;
    unsigned r;
    asm("sub.f16x2 %0, %1, %2;" : "=r"(r) : "r"(h), "r"(0x64086408u));
    return r;
}

/* 64-column blocks a warp keeps in flight (8 measured slower on the H200: mamba-2.8b in_proj at one
 * row 12.79 against 11.57 us, out_proj 11.06 against 8.75) */
#define MMA_P 4

/* Y rows of one 16-row block: the block's warps take its 64-column blocks kb = warp, warp + nw, ...
 * (MMA_P loads ahead), each an exact FP32 mma sum over 64 columns times the group scale of its two
 * rows (group % 64 == 0); NT tiles of 8 tokens (M <= 8 NT) read X (FP16 rows, ldx) from global
 * memory (L1 / L2: every block reads the same few KB); warp sums meet in shared memory. */
template <int NT>
__global__ void __launch_bounds__(512) w4a16_mma_kernel(const half *X, int ldx, const uint4 *W, const float *ws,
                                                        int group, int M, int N, int K, k_w4_epi e, void *out, int ldo) {
    dep_enter();
    __shared__ float red[16][NT][4][32];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int g = lane >> 2, c2 = 2 * (lane & 3), KB = K / 64, G = K / group;
    const int n0 = blockIdx.x * 16 + g, n1 = n0 + 8;
    const uint4 *wp = W + (size_t)blockIdx.x * KB * 32 + lane;
    const unsigned *xr[NT];
    bool xin[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        xin[j] = j * 8 + g < M;
        xr[j] = (const unsigned *)(X + (size_t)(xin[j] ? j * 8 + g : 0) * ldx + c2);
    }
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    uint4 buf[MMA_P];
#pragma unroll
    for (int i = 0; i < MMA_P; i++) {
        const int k = warp + i * nw;
        buf[i] = k < KB ? __ldcs(wp + (size_t)k * 32) : make_uint4(0, 0, 0, 0);
    }
    for (int k0 = warp; k0 < KB; k0 += MMA_P * nw) {
#pragma unroll
        for (int i = 0; i < MMA_P; i++) {
            const int k = k0 + i * nw;
            if (k < KB) {
                const uint4 w = buf[i];
                const int kn = k + MMA_P * nw;
                if (kn < KB) buf[i] = __ldcs(wp + (size_t)kn * 32);
                const int gi = k * 64 / group;
                const float s0 = n0 < N ? __ldg(ws + (size_t)n0 * G + gi) : 0.f;
                const float s1 = n1 < N ? __ldg(ws + (size_t)n1 * G + gi) : 0.f;
                const unsigned ww[4] = {w.x, w.y, w.z, w.w};
                float t[NT][4];
#pragma unroll
                for (int j = 0; j < NT; j++) t[j][0] = t[j][1] = t[j][2] = t[j][3] = 0.f;
#pragma unroll
                for (int tt = 0; tt < 4; tt++) {
                    const unsigned a[4] = {mma_pair(ww[tt], 0), mma_pair(ww[tt], 1), mma_pair(ww[tt], 2),
                                           mma_pair(ww[tt], 3)};
                    const int col = (k * 64 + 16 * tt) / 2; /* in units of half2 */
#pragma unroll
                    for (int j = 0; j < NT; j++) {
                        const unsigned b0 = xin[j] ? __ldg(xr[j] + col) : 0u, b1 = xin[j] ? __ldg(xr[j] + col + 4) : 0u;
                        mma_f16(t[j], a, b0, b1);
                    }
                }
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    acc[j][0] = fmaf(s0, t[j][0], acc[j][0]);
                    acc[j][1] = fmaf(s0, t[j][1], acc[j][1]);
                    acc[j][2] = fmaf(s1, t[j][2], acc[j][2]);
                    acc[j][3] = fmaf(s1, t[j][3], acc[j][3]);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int r = 0; r < 4; r++) red[warp][j][r][lane] = acc[j][r];
    __syncthreads();
    /* output (j, r, lane): the sum over warps and the epilogue, a thread each (blocks of 32 loop) */
    for (int id = threadIdx.x; id < NT * 128; id += blockDim.x) {
        const int j = id / 128, r = (id / 32) % 4, l = id % 32;
        const int n = blockIdx.x * 16 + (l >> 2) + (r >= 2 ? 8 : 0), m = j * 8 + 2 * (l & 3) + (r & 1);
        if (n >= N || m >= M) continue;
        float v = 0.f;
        for (int w = 0; w < nw; w++) v += red[w][j][r][l];
        v = v * e.sx + (e.bias ? e.bias[n] : 0.f);
        const size_t o = (size_t)m * ldo + n;
        if (e.kind == K_EPI_F16) ((half *)out)[o] = __float2half(v);
        else ((float *)out)[o] = v;
    }
}

int k_w4a16_mma_ok(int K, int group) { return K >= 64 && K % 64 == 0 && group >= 64 && group % 64 == 0 && K % group == 0; }

void k_w4a16_mma(const half *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                 const k_w4_epi &e, void *out, int ldo, cudaStream_t st) {
    if (M < 1 || M > K_W4_MMA_MAX_M || !k_w4a16_mma_ok(K, group) || ldx % 2 || (uintptr_t)X % 4 || (uintptr_t)W % 16 ||
        e.kind == K_EPI_I8)
        mq_die("k_w4a16_mma: M %d, K %d, group %d, ldx %d, alignment or output kind outside the kernel's (internal error)",
               M, K, group, ldx);
    int nw = K / 64 / MMA_P; /* warps per 16 rows: each fills its MMA_P loads once */
    nw = nw < 1 ? 1 : nw > 16 ? 16 : nw;
    const int blocks = (N + 15) / 16;
    const uint4 *W4 = (const uint4 *)W;
    if (M <= 8) launch_pdl(w4a16_mma_kernel<1>, blocks, nw * 32, 0, st, X, ldx, W4, ws, group, M, N, K, e, out, ldo);
    else launch_pdl(w4a16_mma_kernel<2>, blocks, nw * 32, 0, st, X, ldx, W4, ws, group, M, N, K, e, out, ldo);
    CUDA_CHECK_LAUNCH();
}

/* W16[N x K] = q * s rounded to FP16 (the value the W4A16 simulation multiplies, (float)q * s, as the
 * FP16 pass rounds any weight) from the mma layout: a warp per 16 x 64 block, its lanes' fragments
 * through a shared tile, then written a row (128 bytes) per store */
__global__ void __launch_bounds__(256) w4_dequant_mma_kernel(const uint4 *W, const float *ws, int group, int N, int K,
                                                             half *out) {
    __shared__ half2 tile[8][16][36]; /* per warp: 16 rows of 32 half2 (+4: rows on other banks) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    const int KB = K / 64, G = K / group;
    const long blocks = (long)((N + 15) / 16) * KB;
    for (long b = (long)blockIdx.x * 8 + warp; b < blocks; b += (long)gridDim.x * 8) {
        const int rb = (int)(b / KB), kb = (int)(b % KB), n0 = rb * 16 + g, n1 = n0 + 8;
        const uint4 w = W[b * 32 + lane];
        const unsigned ww[4] = {w.x, w.y, w.z, w.w};
        const float s0 = n0 < N ? ws[(size_t)n0 * G + kb * 64 / group] : 0.f;
        const float s1 = n1 < N ? ws[(size_t)n1 * G + kb * 64 / group] : 0.f;
#pragma unroll
        for (int t = 0; t < 4; t++)
#pragma unroll
            for (int p = 0; p < 4; p++) { /* pair p: rows g, g+8, g, g+8; columns c2, c2, c2+8, c2+8 */
                const unsigned v = ww[t] >> (4 * p);
                const float s = p & 1 ? s1 : s0;
                tile[warp][g + 8 * (p & 1)][(16 * t + c2 + 8 * (p >> 1)) / 2] =
                    __floats2half2_rn(nib_f(v) * s, nib_f(v >> 16) * s);
            }
        __syncwarp();
        for (int r = 0; r < 16 && rb * 16 + r < N; r++)
            *(half2 *)(out + (size_t)(rb * 16 + r) * K + kb * 64 + 2 * lane) = tile[warp][r][lane];
        __syncwarp();
    }
}

void k_w4_dequant_mma_f16(const uint8_t *W, const float *ws, int group, int N, int K, half *out, cudaStream_t st) {
    if (!k_w4a16_mma_ok(K, group) || (uintptr_t)W % 16 || (uintptr_t)out % 4)
        mq_die("k_w4_dequant_mma_f16: K %d, group %d or alignment outside the kernel's (internal error)", K, group);
    const size_t blocks = (size_t)((N + 15) / 16) * (K / 64);
    w4_dequant_mma_kernel<<<(unsigned)min((size_t)16384, (blocks + 7) / 8), 256, 0, st>>>((const uint4 *)W, ws, group, N,
                                                                                         K, out);
    CUDA_CHECK_LAUNCH();
}
