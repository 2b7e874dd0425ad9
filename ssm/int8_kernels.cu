/* The elementwise, norm, conv, scan and NLL kernels of the int8 pass (launchers in ssm/int8_kern.h).
 * Every int8 value is dequantized in registers as (float)q * s, the simulation's one FP32 multiply,
 * and every int8 output uses had_sign.h's had_quant_i8 (= quantize/q.h's q_quant1: FP32 division,
 * round half to even, clamp to [-127, 127], NaN -> 0). The arithmetic follows the CPU reference
 * ops (ssm/ops.c, core/mat.c) formula by formula: norms sum squares in double and scale by
 * 1 / sqrtf(mean + eps) as mat_rmsnorm does, so that requantization flips against the simulation
 * stay rare. */
#include <math.h>
extern "C" {
#include "core/err.h"
}
#include "hadamard/had_sign.h"
#include "ssm/int8_kern.h"

static int cdiv(long a, long b) { return (int)((a + b - 1) / b); }

static __device__ __forceinline__ float d_silu(float x) { return x / (1.f + expf(-x)); }
static __device__ __forceinline__ float d_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

/* Sum over the block (blockDim.x a multiple of 32, <= 1024), in double; every thread gets it. */
static __device__ double block_sum_d(double v) {
    __shared__ double sh[32];
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---------------------------------------------------------------- conversions, fills */

__global__ void i8_f32_to_f16_kernel(half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half(src[i]);
}
void k8_f32_to_f16(half *dst, const float *src, size_t n, cudaStream_t st) {
    if (!n) return;
    i8_f32_to_f16_kernel<<<(unsigned)min((size_t)4096, (n + 255) / 256), 256, 0, st>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

/* splitmix64 of (seed, i): the same values for any grid */
static __device__ __forceinline__ uint64_t mix64(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__global__ void i8_fill_i8_kernel(int8_t *dst, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = (int8_t)((int)(mix64(seed, i) % 255u) - 127);
}
void k8_fill_i8(int8_t *dst, size_t n, uint64_t seed, cudaStream_t st) {
    if (!n) return;
    i8_fill_i8_kernel<<<(unsigned)min((size_t)8192, (n + 255) / 256), 256, 0, st>>>(dst, n, seed);
    CUDA_CHECK_LAUNCH();
}
__global__ void i8_fill_f16_kernel(half *dst, size_t n, uint64_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half(scale * ((float)(mix64(seed, i) >> 40) * (2.f / 16777216.f) - 1.f));
}
void k8_fill_f16(half *dst, size_t n, uint64_t seed, float scale, cudaStream_t st) {
    if (!n) return;
    i8_fill_f16_kernel<<<(unsigned)min((size_t)8192, (n + 255) / 256), 256, 0, st>>>(dst, n, seed, scale);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- embedding, norms, quantize */

__global__ void i8_embed_kernel(float *resid, const half *embed, const int32_t *tokens, int D) {
    const half *e = embed + (size_t)tokens[blockIdx.x] * D;
    float *r = resid + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) r[i] = __half2float(e[i]);
}
void k8_embed(float *resid, const half *embed, const int32_t *tokens, int rows, int D, cudaStream_t st) {
    i8_embed_kernel<<<rows, 256, 0, st>>>(resid, embed, tokens, D);
    CUDA_CHECK_LAUNCH();
}

static int norm_threads(int rows, int D) { return rows < 256 && D >= 2048 ? 1024 : D >= 1024 ? 256 : 128; }

/* one block per row; mat_rmsnorm's formula: r = 1 / sqrtf((float)(sum x^2 / D) + eps), w * (x * r) */
__global__ void i8_add_rmsnorm_kernel(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16,
                                   float *out32, int D, float eps) {
    const size_t off = (size_t)blockIdx.x * D;
    float *r = resid + off;
    double ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = r[i];
        if (delta) { v += __half2float(delta[off + i]); r[i] = v; }
        ss += (double)v * v;
    }
    const float inv = 1.0f / sqrtf((float)(block_sum_d(ss) / D) + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float o = w[i] * (r[i] * inv);
        if (q) q[off + i] = had_quant_i8(o, s);
        if (out16) out16[off + i] = __float2half(o);
        if (out32) out32[off + i] = o;
    }
}
void k8_add_rmsnorm(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16, float *out32,
                    int rows, int D, float eps, cudaStream_t st) {
    i8_add_rmsnorm_kernel<<<rows, norm_threads(rows, D), 0, st>>>(resid, delta, w, q, s, out16, out32, D, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void i8_quant_f16_kernel(int8_t *q, int ldq, const half *x, int ldx, float s, int C) {
    const size_t r = blockIdx.y;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x)
        q[r * ldq + c] = had_quant_i8(__half2float(x[r * ldx + c]), s);
}
void k8_quant_f16(int8_t *q, int ldq, const half *x, int ldx, float s, int rows, int C, cudaStream_t st) {
    if (!rows) return;
    dim3 grid(cdiv(C, 256) < 16 ? cdiv(C, 256) : 16, rows);
    i8_quant_f16_kernel<<<grid, 256, 0, st>>>(q, ldq, x, ldx, s, C);
    CUDA_CHECK_LAUNCH();
}

/* Mamba2 gated RMSNorm, one block per (row, group); op_gated_rmsnorm's formula. */
__global__ void i8_gated_rmsnorm_kernel(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz,
                                     const float *w, int group, float eps, int nbg) {
    const size_t row = blockIdx.x;
    const int c0 = blockIdx.y * group;
    double ss = 0;
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        float v = y[row * ldy + c0 + i];
        if (!nbg) v *= d_silu((float)z[row * ldz + c0 + i] * sz);
        ss += (double)v * v;
    }
    const float r = 1.0f / sqrtf((float)(block_sum_d(ss) / group) + eps);
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        const float g = d_silu((float)z[row * ldz + c0 + i] * sz);
        float v = y[row * ldy + c0 + i];
        float o = nbg ? (w[c0 + i] * (v * r)) * g : w[c0 + i] * ((v * g) * r);
        out[row * ldo + c0 + i] = __float2half(o);
    }
}
void k8_gated_rmsnorm(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz, const float *w,
                      int rows, int C, int group, float eps, int norm_before_gate, cudaStream_t st) {
    dim3 grid(rows, C / group);
    i8_gated_rmsnorm_kernel<<<grid, norm_threads(rows, group), 0, st>>>(out, ldo, y, ldy, z, ldz, sz, w, group, eps,
                                                                     norm_before_gate);
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
        out[((size_t)b * T + t0 + j) * ldo + c] = had_quant_i8(d_silu(v), so);
    }
}

/* one thread per (b, c): reads the whole new window, then writes it (in place) */
__global__ void i8_conv_state_kernel(int8_t *cs, const int8_t *x, int ldx, int B, int T, int C, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    const int b = i / C, c = i - b * C;
    int8_t *s = cs + (size_t)i * (K - 1), nv[7];
#pragma unroll
    for (int j = 0; j < 7; j++) {
        if (j >= K - 1) break;
        const int tt = T - (K - 1) + j;
        nv[j] = tt >= 0 ? x[((size_t)b * T + tt) * ldx + c] : s[(K - 1) + tt];
    }
#pragma unroll
    for (int j = 0; j < 7; j++) {
        if (j >= K - 1) break;
        s[j] = nv[j];
    }
}

void k8_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, int update, const int8_t *w,
               const float *sw, const float *s_in, const float *bias, const float *s_out, int B, int T, int C,
               int K, cudaStream_t st) {
    dim3 grid(B * cdiv(T, CT), cdiv(C, 128));
    i8_conv1d_kernel<<<grid, 128, 0, st>>>(out, ldo, x, ldx, state, w, sw, s_in, bias, s_out, T, C, K);
    CUDA_CHECK_LAUNCH();
    if (update && state && K > 1) {
        i8_conv_state_kernel<<<cdiv((long)B * C, 256), 256, 0, st>>>(state, x, ldx, B, T, C, K);
        CUDA_CHECK_LAUNCH();
    }
}

/* ---------------------------------------------------------------- scans
 * NL lanes share one channel, each holding SPL of its d_state states (n = lane + NL*i) in
 * registers; the partial C.h sums meet by xor shuffles inside the NL-lane group. One pass over time
 * per (sequence, channel) with the FP32 state carried in registers; the next step's inputs are
 * loaded before the current step is computed. */
#define SC_THREADS 128

template <int NL, int SPL>
__global__ void __launch_bounds__(SC_THREADS) scan8_m1_kernel(scan8_m1_args a) {
    constexpr int CPB = SC_THREADS / NL;
    const int lane = threadIdx.x % NL, d = blockIdx.x * CPB + threadIdx.x / NL, b = blockIdx.y, N = a.N;
    const bool live = d < a.Di;
    const int dd = live ? d : 0;
    float h[SPL], A[SPL];
    bool on[SPL];
    const size_t sidx = ((size_t)b * a.Di + dd) * N;
#pragma unroll
    for (int i = 0; i < SPL; i++) {
        const int n = lane + NL * i;
        on[i] = live && n < N;
        A[i] = on[i] ? a.A[(size_t)dd * N + n] : 0.f;
        h[i] = (on[i] && a.state_in) ? a.state[sidx + n] : 0.f;
    }
    const float bias = a.dt_bias ? a.dt_bias[dd] : 0.f, Dd = a.D ? a.D[dd] : 0.f;
    /* inputs of step t: u, dt, z, B[n], C[n] as int8 */
    int nu = 0, ndt = 0, nz = 0, nB[SPL], nC[SPL];
    auto load = [&](int t) {
        const size_t row = (size_t)b * a.T + t;
        nu = a.u[row * a.ldu + dd];
        ndt = a.dt[row * a.lddt + dd];
        nz = a.z ? a.z[row * a.ldz + dd] : 0;
#pragma unroll
        for (int i = 0; i < SPL; i++) {
            const int n = on[i] ? lane + NL * i : 0;
            nB[i] = a.Bm[row * a.ldbc + n];
            nC[i] = a.Cm[row * a.ldbc + n];
        }
    };
    if (a.T > 0) load(0);
    for (int t = 0; t < a.T; t++) {
        const float u = (float)nu * a.su, dtv = (float)ndt * a.sdt + bias, zv = (float)nz * a.sz;
        float Bv[SPL], Cv[SPL];
#pragma unroll
        for (int i = 0; i < SPL; i++) { Bv[i] = (float)nB[i] * a.sb; Cv[i] = (float)nC[i] * a.sc; }
        if (t + 1 < a.T) load(t + 1);
        const float delta = fmaxf(d_softplus(dtv), 0.f);
        float part = 0.f;
#pragma unroll
        for (int i = 0; i < SPL; i++) {
            if (!on[i]) continue;
            h[i] = expf(delta * A[i]) * h[i] + (delta * Bv[i]) * u;
            part += h[i] * Cv[i];
        }
#pragma unroll
        for (int o = NL / 2; o; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
        if (live && lane == 0) {
            float y = part + Dd * u;
            if (a.z) y *= d_silu(zv);
            a.y[((size_t)b * a.T + t) * a.ldy + d] = __float2half(y);
        }
    }
#pragma unroll
    for (int i = 0; i < SPL; i++)
        if (on[i]) a.state[sidx + lane + NL * i] = h[i];
}

template <int NL, int SPL>
__global__ void __launch_bounds__(SC_THREADS) scan8_m2_kernel(scan8_m2_args a) {
    constexpr int CPB = SC_THREADS / NL;
    const int Di = a.H * a.P, N = a.N;
    const int lane = threadIdx.x % NL, d = blockIdx.x * CPB + threadIdx.x / NL, b = blockIdx.y;
    const bool live = d < Di;
    const int dd = live ? d : 0, hd = dd / a.P, g = hd / (a.H / a.G);
    float h[SPL];
    bool on[SPL];
    const size_t sidx = ((size_t)b * Di + dd) * N;
#pragma unroll
    for (int i = 0; i < SPL; i++) {
        const int n = lane + NL * i;
        on[i] = live && n < N;
        h[i] = (on[i] && a.state_in) ? a.state[sidx + n] : 0.f;
    }
    const float Ah = a.A[hd], bias = a.dt_bias ? a.dt_bias[hd] : 0.f, Dh = a.D ? a.D[hd] : 0.f;
    int nx = 0, ndt = 0, nB[SPL], nC[SPL];
    auto load = [&](int t) {
        const size_t row = (size_t)b * a.T + t;
        nx = a.x[row * a.ldx + dd];
        ndt = a.dt[row * a.lddt + hd];
#pragma unroll
        for (int i = 0; i < SPL; i++) {
            const int n = on[i] ? lane + NL * i : 0;
            nB[i] = a.Bm[row * a.ldbc + (size_t)g * N + n];
            nC[i] = a.Cm[row * a.ldbc + (size_t)g * N + n];
        }
    };
    if (a.T > 0) load(0);
    for (int t = 0; t < a.T; t++) {
        const float xv = (float)nx * a.sx;
        float dt = d_softplus((float)ndt * a.sdt + bias);
        dt = fminf(fmaxf(dt, a.lo), a.hi);
        float Bv[SPL], Cv[SPL];
#pragma unroll
        for (int i = 0; i < SPL; i++) { Bv[i] = (float)nB[i] * a.sb; Cv[i] = (float)nC[i] * a.sc; }
        if (t + 1 < a.T) load(t + 1);
        const float dA = expf(dt * Ah), dx = xv * dt;
        float part = 0.f;
#pragma unroll
        for (int i = 0; i < SPL; i++) {
            if (!on[i]) continue;
            h[i] = dA * h[i] + dx * Bv[i];
            part += h[i] * Cv[i];
        }
#pragma unroll
        for (int o = NL / 2; o; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
        if (live && lane == 0) a.y[((size_t)b * a.T + t) * a.ldy + d] = part + Dh * xv;
    }
#pragma unroll
    for (int i = 0; i < SPL; i++)
        if (on[i]) a.state[sidx + lane + NL * i] = h[i];
}

/* lanes per channel and states per lane for d_state N (<= 128, checked at upload) */
#define SCAN_DISPATCH(KERNEL, ARGS, CH, N, ST)                                                  \
    do {                                                                                        \
        if ((N) <= 16) { dim3 g_(cdiv(CH, SC_THREADS / 16), (ARGS).B); KERNEL<16, 1><<<g_, SC_THREADS, 0, ST>>>(ARGS); } \
        else if ((N) <= 32) { dim3 g_(cdiv(CH, SC_THREADS / 32), (ARGS).B); KERNEL<32, 1><<<g_, SC_THREADS, 0, ST>>>(ARGS); } \
        else if ((N) <= 64) { dim3 g_(cdiv(CH, SC_THREADS / 32), (ARGS).B); KERNEL<32, 2><<<g_, SC_THREADS, 0, ST>>>(ARGS); } \
        else { dim3 g_(cdiv(CH, SC_THREADS / 32), (ARGS).B); KERNEL<32, 4><<<g_, SC_THREADS, 0, ST>>>(ARGS); } \
        CUDA_CHECK_LAUNCH();                                                                    \
    } while (0)

void k8_scan_m1(const scan8_m1_args &a, cudaStream_t st) {
    if (a.B < 1) return;
    SCAN_DISPATCH(scan8_m1_kernel, a, a.Di, a.N, st);
}
void k8_scan_m2(const scan8_m2_args &a, cudaStream_t st) {
    if (a.B < 1) return;
    SCAN_DISPATCH(scan8_m2_kernel, a, a.H * a.P, a.N, st);
}

/* ---------------------------------------------------------------- NLL */

/* online log-sum-exp pairs (running max m, sum s of exp(v - m)) */
static __device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    if (M == -INFINITY) return;
    s = (m == -INFINITY ? 0.f : s * expf(m - M)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - M));
    m = M;
}
__global__ void i8_nll_kernel(float *nll, const float *logits, const int32_t *targets, int V) {
    __shared__ float shm[32], shs[32];
    const float *l = logits + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = l[i];
        if (v > m) { s = (m == -INFINITY ? 0.f : s * expf(m - v)) + 1.f; m = v; }
        else s += expf(v - m);
    }
    for (int o = 16; o; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) { shm[wid] = m; shs[wid] = s; }
    __syncthreads();
    if (wid == 0) {
        const int nw = blockDim.x >> 5;
        m = lane < nw ? shm[lane] : -INFINITY;
        s = lane < nw ? shs[lane] : 0.f;
        for (int o = 16; o; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
        if (lane == 0) {
            const int t = targets[blockIdx.x];
            nll[blockIdx.x] = t < 0 ? 0.f : logf(s) + m - l[t];
        }
    }
}
void k8_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V, cudaStream_t st) {
    if (!rows) return;
    i8_nll_kernel<<<rows, 512, 0, st>>>(nll, logits, targets, V);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- FP16 lm_head */

/* Row-major Y = X W^T is column-major Y^T = (W stored [N x K], op T) * X^T. */
void k8_gemm_f16_f32out(cublasHandle_t h, const half *X, int ldx, const half *W, float *Y, int ldy, int M, int N,
                        int K) {
    const float alpha = 1.f, beta = 0.f;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, K, X, CUDA_R_16F, ldx,
                              &beta, Y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
