/* The elementwise, norm and conv kernels of the int8 pass (launchers in ssm/kern.h; its scans are
 * ssm/scan.cuh's, with int8 loaders).
 * Every int8 value is dequantized in registers as (float)q * s, the simulation's one FP32 multiply,
 * and every int8 output uses core/qrule.h's qr_quant_i8 (FP32 division,
 * round half to even, clamp to [-127, 127], NaN -> 0). The arithmetic follows the CPU reference
 * ops (ssm/ops.c, core/mat.c) formula by formula: norms sum squares in double and scale by
 * 1 / sqrtf(mean + eps) as mat_rmsnorm does, so that requantization flips against the simulation
 * stay rare. */
#include <math.h>
#include "core/qrule.h"
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

/* ---------------------------------------------------------------- norms, quantize */

/* one block per row; mat_rmsnorm's formula: r = 1 / sqrtf((float)(sum x^2 / D) + eps), w * (x * r) */
__global__ void i8_add_rmsnorm_kernel(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16,
                                   float *out32, int D, float eps) {
    dep_enter();
    const size_t off = (size_t)blockIdx.x * D;
    float *r = resid + off;
    double ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = r[i];
        if (delta) { v += __half2float(delta[off + i]); r[i] = v; }
        ss += (double)v * v;
    }
    const float inv = 1.0f / sqrtf((float)(block_sum<double>(ss) / D) + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float o = w[i] * (r[i] * inv);
        if (q) q[off + i] = qr_quant_i8(o, s);
        if (out16) out16[off + i] = __float2half(o);
        if (out32) out32[off + i] = o;
    }
}
void k_i8_add_rmsnorm(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16, float *out32,
                    int rows, int D, float eps, cudaStream_t st) {
    launch_pdl(i8_add_rmsnorm_kernel, rows, norm_threads(rows, D), 0, st, resid, delta, w, q, s, out16, out32, D, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void i8_quant_f16_kernel(int8_t *q, int ldq, const half *x, int ldx, float s, int C) {
    dep_enter();
    const size_t r = blockIdx.y;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x)
        q[r * ldq + c] = qr_quant_i8(__half2float(x[r * ldx + c]), s);
}
void k_i8_quant_f16(int8_t *q, int ldq, const half *x, int ldx, float s, int rows, int C, cudaStream_t st) {
    if (!rows) return;
    dim3 grid(cdiv(C, 256) < 16 ? cdiv(C, 256) : 16, rows);
    launch_pdl(i8_quant_f16_kernel, grid, 256, 0, st, q, ldq, x, ldx, s, C);
    CUDA_CHECK_LAUNCH();
}

/* Mamba2 gated RMSNorm, one block per (row, group); op_gated_rmsnorm's formula. */
__global__ void i8_gated_rmsnorm_kernel(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz,
                                     const float *w, int group, float eps, int nbg) {
    dep_enter();
    const size_t row = blockIdx.x;
    const int c0 = blockIdx.y * group;
    double ss = 0;
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        float v = y[row * ldy + c0 + i];
        if (!nbg) v *= d_silu((float)z[row * ldz + c0 + i] * sz);
        ss += (double)v * v;
    }
    const float r = 1.0f / sqrtf((float)(block_sum<double>(ss) / group) + eps);
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        const float g = d_silu((float)z[row * ldz + c0 + i] * sz);
        float v = y[row * ldy + c0 + i];
        float o = nbg ? (w[c0 + i] * (v * r)) * g : w[c0 + i] * ((v * g) * r);
        out[row * ldo + c0 + i] = __float2half(o);
    }
}
void k_i8_gated_rmsnorm(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz, const float *w,
                      int rows, int C, int group, float eps, int norm_before_gate, cudaStream_t st) {
    dim3 grid(rows, C / group);
    launch_pdl(i8_gated_rmsnorm_kernel, grid, norm_threads(rows, group), 0, st, out, ldo, y, ldy, z, ldz, sz, w, group,
               eps, norm_before_gate);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- conv1d */

/* A thread computes CT consecutive steps of one channel from a register window of K-1+CT int8
 * inputs; consecutive threads take consecutive channels (coalesced rows). The dot is exact in int32;
 * v = bias + acc * (sw * s_in), SiLU, requantized with s_out. */
#define CT 16
__global__ void i8_conv1d_kernel(int8_t *out, int ldo, const int8_t *x, int ldx, const int8_t *state, const int8_t *w,
                              const float *sw, const float *s_in, const float *bias, const float *s_out, int T, int C,
                              int K) {
    dep_enter();
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int tiles = (T + CT - 1) / CT, b = blockIdx.x / tiles;
    const int t0 = (blockIdx.x - b * tiles) * CT, nt = min(CT, T - t0);
    int win[CT + 7], wk[8];
#pragma unroll
    for (int k = 0; k < 8; k++) wk[k] = k < K ? (int)w[(size_t)c * K + k] : 0;
#pragma unroll
    for (int i = 0; i < CT + 7; i++) {
        const int s = t0 - (K - 1) + i;
        int v = 0;
        if (i < K - 1 + nt) {
            if (s >= 0) v = x[((size_t)b * T + s) * ldx + c];
            else if (state) v = state[((size_t)b * C + c) * (K - 1) + (K - 1) + s];
        }
        win[i] = v;
    }
    const float bs = bias ? bias[c] : 0.f, scale = sw[c] * s_in[c], so = s_out[c];
#pragma unroll
    for (int j = 0; j < CT; j++) {
        if (j >= nt) break;
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < K) acc += wk[k] * win[j + k];
        const float v = bs + (float)acc * scale;
        out[((size_t)b * T + t0 + j) * ldo + c] = qr_quant_i8(d_silu(v), so);
    }
}

void k_i8_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, int update, const int8_t *w,
               const float *sw, const float *s_in, const float *bias, const float *s_out, int B, int T, int C,
               int K, cudaStream_t st) {
    dim3 grid(B * cdiv(T, CT), cdiv(C, 128));
    launch_pdl(i8_conv1d_kernel, grid, 128, 0, st, out, ldo, x, ldx, state, w, sw, s_in, bias, s_out, T, C, K);
    CUDA_CHECK_LAUNCH();
    if (update && state) k_conv_state_update(state, x, ldx, B, T, C, K, st);
}


/* ---------------------------------------------------------------- Mamba1 x_proj of a clustered x */

/* rows [0, M) of split: hi = FP16(x * sx[k]); rows [M, 2M): lo = FP16(x * sx[k] - hi) */
__global__ void i8_split_cols_kernel(half *split, const int8_t *x, int ldx, const float *sx, int M, int K) {
    dep_enter();
    const size_t n = (size_t)M * K;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t m = i / K;
        const int k = (int)(i - m * K);
        const float v = (float)x[m * ldx + k] * sx[k];
        const half hi = __float2half_rn(v);
        split[i] = hi;
        split[n + i] = __float2half_rn(v - __half2float(hi));
    }
}
/* out = q((acc_hi + acc_lo) * sw[n], qs[n]) */
__global__ void i8_xcols_out_kernel(int8_t *out, int ldo, const float *acc, const float *sw, const float *qs, int M, int N) {
    dep_enter();
    const size_t n = (size_t)M * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t m = i / N;
        const int c = (int)(i - m * N);
        out[m * ldo + c] = qr_quant_i8(__fmul_rn(__fadd_rn(acc[i], acc[n + i]), sw[c]), qs[c]);
    }
}
void k_i8_linear_xcols(cublasHandle_t blas, const int8_t *X, int ldx, const float *sx, const half *W16, int M, int N, int K,
                       const float *sw, const float *qs, int8_t *out, int ldo, half *split, float *acc, cudaStream_t st) {
    if (!M) return;
    const int threads = 256, most = 4096; /* grid-stride loops: a cap, not a device's SM count */
    const size_t nx = (size_t)M * K, ny = (size_t)M * N;
    launch_pdl(i8_split_cols_kernel, min(cdiv(nx, threads), most), threads, 0, st, split, X, ldx, sx, M, K);
    CUDA_CHECK_LAUNCH();
    k_gemm_f16_blas(blas, split, K, W16, acc, 1, N, 2 * M, N, K); /* blas runs on st (the pass's stream) */
    launch_pdl(i8_xcols_out_kernel, min(cdiv(ny, threads), most), threads, 0, st, out, ldo, acc, sw, qs, M, N);
    CUDA_CHECK_LAUNCH();
}
