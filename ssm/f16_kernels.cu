/* The kernels of the FP16 pass (launchers in ssm/kern.h): residual add + RMSNorm, bias, gated
 * RMSNorm, causal conv1d + SiLU with carried state, and the GEMM (cuBLAS, or an own GEMV for decode).
 * All arithmetic is FP32; FP16 is only the storage of activations and weights. The scans, the
 * embedding and the NLL are shared with the int8 pass (ssm/scan.cuh, ssm/kern_common.cu). */
#include <math.h>
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

/* ---------------------------------------------------------------- norms, bias */

/* One block per row. The residual stays FP32 (residual_in_fp32 in every released Mamba). */
__global__ void add_rmsnorm_kernel(float *resid, const half *delta, const float *w, half *out16,
                                   float *out32, int D, float eps) {
    size_t off = (size_t)blockIdx.x * D;
    float *r = resid + off, ss = 0.f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = r[i];
        if (delta) { v += __half2float(delta[off + i]); r[i] = v; }
        ss += v * v;
    }
    float inv = rsqrtf(block_sum<float>(ss) / D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float o = r[i] * inv * w[i];
        out16[off + i] = __float2half(o);
        if (out32) out32[off + i] = o;
    }
}
void k_f16_add_rmsnorm(float *resid, const half *delta, const float *w, half *out16, float *out32,
                   int rows, int D, float eps, cudaStream_t st) {
    add_rmsnorm_kernel<<<rows, norm_threads(rows, D), 0, st>>>(resid, delta, w, out16, out32, D, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void add_bias_kernel(half *y, int ld, const float *bias, int C) {
    half *r = y + (size_t)blockIdx.x * ld;
    for (int c = threadIdx.x; c < C; c += blockDim.x) r[c] = __float2half(__half2float(r[c]) + bias[c]);
}
void k_f16_add_bias(half *y, int ld, const float *bias, int rows, int C, cudaStream_t st) {
    add_bias_kernel<<<rows, 256, 0, st>>>(y, ld, bias, C);
    CUDA_CHECK_LAUNCH();
}

/* Mamba2's gated RMSNorm, one block per (row, group of channels). */
__global__ void gated_rmsnorm_kernel(half *out, int ld_out, const half *y, int ld_y, const half *z,
                                     int ld_z, const float *w, int group, float eps, int nbg) {
    const size_t row = blockIdx.x;
    const int c0 = blockIdx.y * group;
    float ss = 0.f;
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        float v = __half2float(y[row * ld_y + c0 + i]);
        if (!nbg) v *= d_silu(__half2float(z[row * ld_z + c0 + i]));
        ss += v * v;
    }
    float inv = rsqrtf(block_sum<float>(ss) / group + eps);
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        float g = d_silu(__half2float(z[row * ld_z + c0 + i]));
        float v = __half2float(y[row * ld_y + c0 + i]);
        float o = nbg ? v * inv * w[c0 + i] * g : v * g * inv * w[c0 + i];
        out[row * ld_out + c0 + i] = __float2half(o);
    }
}
void k_f16_gated_rmsnorm(half *out, int ld_out, const half *y, int ld_y, const half *z, int ld_z,
                     const float *w, int rows, int C, int group, float eps, int norm_before_gate,
                     cudaStream_t st) {
    dim3 grid(rows, C / group);
    gated_rmsnorm_kernel<<<grid, norm_threads(rows * (C / group), group), 0, st>>>(out, ld_out, y, ld_y, z, ld_z, w,
                                                                      group, eps, norm_before_gate);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- conv1d */

/* A thread computes CONV_TT consecutive steps of one channel from a register window of K-1+CONV_TT
 * inputs (each input loaded once, not K times); consecutive threads take consecutive channels.
 * cs_out (decode, T == 1 only): this thread is then the only reader of state (b, c), so it shifts the
 * window in place itself, saving the separate update launch. */
#define CONV_TT 8
__global__ void conv1d_silu_kernel(half *out, int ld_out, const half *x, int ld_x, const float *cs,
                                   float *cs_out, const float *w, const float *bias, int T, int C, int K) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int tiles = (T + CONV_TT - 1) / CONV_TT, b = blockIdx.x / tiles;
    const int t0 = (blockIdx.x - b * tiles) * CONV_TT, nt = min(CONV_TT, T - t0);
    float win[CONV_TT + 7], wk[8]; /* win[i]: input at time t0 - (K-1) + i; K <= 8 */
#pragma unroll
    for (int k = 0; k < 8; k++) wk[k] = k < K ? w[c * K + k] : 0.f;
#pragma unroll
    for (int i = 0; i < CONV_TT + 7; i++) {
        const int s = t0 - (K - 1) + i;
        float v = 0.f;
        if (i < K - 1 + nt) {
            if (s >= 0) v = __half2float(x[((size_t)b * T + s) * ld_x + c]);
            else if (cs) v = cs[((size_t)b * C + c) * (K - 1) + (K - 1) + s];
        }
        win[i] = v;
    }
    const float bs = bias ? bias[c] : 0.f;
#pragma unroll
    for (int j = 0; j < CONV_TT; j++) {
        if (j >= nt) break;
        float acc = bs;
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < K) acc += wk[k] * win[j + k];
        out[((size_t)b * T + t0 + j) * ld_out + c] = __float2half(d_silu(acc));
    }
    if (cs_out) { /* T == 1: new state = inputs at times 2-K .. 0 = win[1 .. K-1] */
        float *st = cs_out + ((size_t)b * C + c) * (K - 1);
#pragma unroll
        for (int j = 0; j < 7; j++)
            if (j < K - 1) st[j] = win[j + 1];
    }
}
void k_f16_conv1d_silu(half *out, int ld_out, const half *x, int ld_x, float *conv_state, int update_state,
                   const float *w, const float *bias, int B, int T, int C, int K, cudaStream_t st) {
    dim3 grid(B * cdiv(T, CONV_TT), cdiv(C, 128));
    float *cs_out = (update_state && T == 1 && K > 1) ? conv_state : NULL;
    conv1d_silu_kernel<<<grid, 128, 0, st>>>(out, ld_out, x, ld_x, conv_state, cs_out, w, bias, T, C, K);
    CUDA_CHECK_LAUNCH();
    if (update_state && conv_state && T > 1) k_conv_state_update(conv_state, x, ld_x, B, T, C, K, st);
}

/* ---------------------------------------------------------------- GEMM */

/* Decode-sized products (M <= 8 rows): warps stream rows of W once in 16-byte loads (evict-first:
 * weights are read once per step) and dot them with the M rows of X (read-only cache, shared by all
 * warps); FP32 accumulation. cuBLAS's GEMM tiles for these shapes leave much bandwidth unused.
 * wpr warps share one row (split K) when N alone is too few warps to fill the GPU (x_proj's 192
 * rows, out_proj's d_model); their partial sums meet in shared memory. Y = XW^T (+ bias). */
template <int M>
__global__ void __launch_bounds__(256) gemv_kernel(const half *X, int ldx, const half *W, void *Y, int y_f32,
                                                   int ldy, const float *bias, int N, int K, int wpr) {
    __shared__ float part[8][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, K8 = K / 8;
    const int n = blockIdx.x * (8 / wpr) + warp / wpr, piece = warp % wpr;
    const bool live = n < N;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
    if (live) {
        const uint4 *w = (const uint4 *)(W + (size_t)n * K);
#pragma unroll 4
        for (int k = piece * 32 + lane; k < K8; k += 32 * wpr) {
            uint4 wv = __ldcs(w + k);
            const half2 *w2 = (const half2 *)&wv;
            float2 wf[4];
#pragma unroll
            for (int j = 0; j < 4; j++) wf[j] = __half22float2(w2[j]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                uint4 xv = __ldg((const uint4 *)(X + (size_t)m * ldx) + k);
                const half2 *x2 = (const half2 *)&xv;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    float2 xf = __half22float2(x2[j]);
                    acc[m] += wf[j].x * xf.x + wf[j].y * xf.y;
                }
            }
        }
    }
    d_gemv_reduce(acc, part, warp, lane, piece, wpr);
    if (live && piece == 0 && lane == 0) {
        const float b = bias ? bias[n] : 0.f;
#pragma unroll
        for (int m = 0; m < M; m++) {
            if (y_f32) ((float *)Y)[(size_t)m * ldy + n] = acc[m] + b;
            else ((half *)Y)[(size_t)m * ldy + n] = __float2half(acc[m] + b);
        }
    }
}

template <int M>
static void gemv_launch(const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy, const float *bias,
                        int N, int K, int sm_count, cudaStream_t st) {
    int wpr = 1; /* split K while there are fewer than ~64 warps per SM and >= 32 16-byte chunks a warp */
    while (wpr < 8 && (long)N * wpr * 2 <= (long)sm_count * 64 && K / 8 >= 32 * wpr * 2) wpr *= 2;
    gemv_kernel<M><<<cdiv(N, 8 / wpr), 256, 0, st>>>(X, ldx, W, Y, y_f32, ldy, bias, N, K, wpr);
    CUDA_CHECK_LAUNCH();
}

void k_f16_gemm(cublasHandle_t h, const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy,
              const float *bias, int M, int N, int K) {
    cudaStream_t st;
    CUBLAS_CHECK(cublasGetStream(h, &st));
    const int aligned = K % 8 == 0 && ldx % 8 == 0 && ((uintptr_t)X & 15) == 0 && ((uintptr_t)W & 15) == 0;
    if (M <= 8 && aligned) {
        static int sm_count; /* the device's, once */
        if (!sm_count) CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0));
        switch (M) {
        case 1: gemv_launch<1>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 2: gemv_launch<2>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 3: gemv_launch<3>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 4: gemv_launch<4>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 5: gemv_launch<5>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 6: gemv_launch<6>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        case 7: gemv_launch<7>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        default: gemv_launch<8>(X, ldx, W, Y, y_f32, ldy, bias, N, K, sm_count, st); break;
        }
        return;
    }
    k_gemm_f16_blas(h, X, ldx, W, Y, y_f32, ldy, M, N, K);
    if (bias) {
        if (y_f32) mq_die("k_f16_gemm: a bias on FP32 output is not implemented"); /* no caller needs it */
        k_f16_add_bias((half *)Y, ldy, bias, M, N, st);
    }
}
