/* The elementwise, norm, conv, scan and NLL kernels of the int8 pass (launchers in ssm/int8_kern.h).
 * Every int8 value is dequantized in registers as (float)q * s, the simulation's one FP32 multiply,
 * and every int8 output uses core/qrule.h's qr_quant_i8 (FP32 division,
 * round half to even, clamp to [-127, 127], NaN -> 0). The arithmetic follows the CPU reference
 * ops (ssm/ops.c, core/mat.c) formula by formula: norms sum squares in double and scale by
 * 1 / sqrtf(mean + eps) as mat_rmsnorm does, so that requantization flips against the simulation
 * stay rare. */
#include <math.h>
extern "C" {
#include "core/err.h"
}
#include "core/qrule.h"
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
        if (q) q[off + i] = qr_quant_i8(o, s);
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
        q[r * ldq + c] = qr_quant_i8(__half2float(x[r * ldx + c]), s);
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
        out[((size_t)b * T + t0 + j) * ldo + c] = qr_quant_i8(d_silu(v), so);
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
 * The same organisation as the FP16 scans (ssm/gpu_kernels.cu), over int8 inputs dequantized once
 * where they are staged, with the int8 pass's own arithmetic (expf of delta*A, (delta*B)*u):
 *   Mamba1: one thread per (channel, sequence, chunk) holding all d_state states in registers;
 *           softplus once per (token, channel), y summed inside the thread (no shuffles); B and C
 *           of a tile of steps dequantized once per block into shared memory.
 *   Mamba2: a block per (p-rows, sequence*head, chunk); GRP lanes share one p row with 16 states
 *           each; dt and exp(dt*A) once per (token, head) per tile in shared memory; y reduced over
 *           the GRP lanes by shuffles, four independent steps per round.
 * The FP32 state is carried in registers over a time chunk (see int8_kern.h for the chunking).
 * OUT = false: pass 1 (end states and dt sums of chunks 0..nc-2, no y); OUT = true: the scan that
 * writes y (and the final state). Shared tiles are zero-padded to NPAD so padded states stay 0. */
static __device__ __forceinline__ const float *chunk_start(const float *state, int state_in, const float *cstate,
                                                           int nc, int k, size_t per_chunk, size_t sidx) {
    if (nc == 1) return state_in ? state + sidx : NULL;
    return cstate + (size_t)k * per_chunk + sidx;
}

#define S1_THREADS 128
#define S1_TT 16

template <int NPAD, bool OUT>
__global__ void __launch_bounds__(S1_THREADS) i8_scan_m1_kernel(scan8_m1_args a, int L) {
    __shared__ __align__(16) float sB[S1_TT][NPAD];
    __shared__ __align__(16) float sC[OUT ? S1_TT : 1][NPAD];
    const int d = blockIdx.x * S1_THREADS + threadIdx.x, b = blockIdx.y, k = blockIdx.z, N = a.N;
    const bool live = d < a.Di;
    const int dd = live ? d : 0;
    const int t0 = k * L, t1 = min(t0 + L, a.T);
    const size_t S = (size_t)a.Di * N, sidx = (size_t)b * S + (size_t)dd * N;
    float h[NPAD], A[NPAD];
#pragma unroll
    for (int n = 0; n < NPAD; n++) {
        A[n] = (live && n < N) ? a.A[(size_t)dd * N + n] : 0.f;
        h[n] = 0.f;
    }
    if (OUT && live) {
        const float *hin = chunk_start(a.state, a.state_in, a.cstate, a.nc, k, (size_t)a.B * S, sidx);
        if (hin) {
#pragma unroll
            for (int n = 0; n < NPAD; n++)
                if (n < N) h[n] = hin[n];
        }
    }
    const float bias = a.dt_bias ? a.dt_bias[dd] : 0.f, Dd = a.D ? a.D[dd] : 0.f;
    float sdt = 0.f;
    for (int tb = t0; tb < t1; tb += S1_TT) {
        const int nt = min(S1_TT, t1 - tb);
        const size_t row0 = (size_t)b * a.T + tb;
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < nt * NPAD; i += S1_THREADS) { /* rows >= nt are never read */
            const int tt = i / NPAD, n = i - tt * NPAD;
            const bool in = n < N;
            sB[tt][n] = in ? (float)a.Bm[(row0 + tt) * a.ldbc + n] * a.sb : 0.f;
            if (OUT) sC[tt][n] = in ? (float)a.Cm[(row0 + tt) * a.ldbc + n] * a.sc : 0.f;
        }
        /* this thread's u, dt (and z) for the tile, loaded before use so the loads overlap */
        int us[S1_TT], dts[S1_TT], zs[S1_TT];
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            const bool in = live && tt < nt;
            const size_t row = row0 + tt;
            us[tt] = in ? a.u[row * a.ldu + dd] : 0;
            dts[tt] = in ? a.dt[row * a.lddt + dd] : 0;
            zs[tt] = (OUT && in && a.z) ? a.z[row * a.ldz + dd] : 0;
        }
        __syncthreads();
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            if (tt >= nt) break;
            const float u = (float)us[tt] * a.su, dtv = (float)dts[tt] * a.sdt + bias;
            const float delta = fmaxf(d_softplus(dtv), 0.f);
            sdt += delta;
            float part = 0.f;
#pragma unroll
            for (int n = 0; n < NPAD; n++) {
                h[n] = expf(delta * A[n]) * h[n] + (delta * sB[tt][n]) * u;
                if (OUT) part += h[n] * sC[tt][n];
            }
            if (OUT && live) {
                float y = part + Dd * u;
                if (a.z) y *= d_silu((float)zs[tt] * a.sz);
                a.y[(row0 + tt) * a.ldy + d] = __float2half(y);
            }
        }
    }
    if (!live) return;
    float *dst = NULL;
    if (!OUT) {
        dst = a.cstate + (size_t)k * a.B * S + sidx;
        a.cdt[((size_t)k * a.B + b) * a.Di + d] = sdt;
    } else if (k == a.nc - 1) {
        dst = a.state + sidx;
    }
    if (dst) {
#pragma unroll
        for (int n = 0; n < NPAD; n++)
            if (n < N) dst[n] = h[n];
    }
}

#define S2_THREADS 256
#define S2_TT 32
#define S2_NPT 16

static size_t scan2_smem(int grp, bool out) {
    const int npad = grp * S2_NPT, pr = S2_THREADS / grp;
    return sizeof(float) * ((size_t)S2_TT * npad * (out ? 2 : 1) + (size_t)S2_TT * pr + 2 * S2_TT);
}

template <int GRP, bool OUT>
__global__ void __launch_bounds__(S2_THREADS, 2) i8_scan_m2_kernel(scan8_m2_args a, int L) {
    constexpr int NPAD = GRP * S2_NPT, PR = S2_THREADS / GRP;
    extern __shared__ __align__(16) float sm[];
    float *sB = sm;                                  /* [TT][NPAD] */
    float *sC = sB + S2_TT * NPAD;                   /* [TT][NPAD], OUT only */
    float *sX = sC + (OUT ? S2_TT * NPAD : 0);       /* [TT][PR] */
    float *sDt = sX + S2_TT * PR, *sDA = sDt + S2_TT; /* [TT] each */
    const int N = a.N, P = a.P, lane = threadIdx.x % GRP, pr = threadIdx.x / GRP;
    const int p = blockIdx.x * PR + pr, b = blockIdx.y / a.H, hd = blockIdx.y % a.H, k = blockIdx.z;
    const int grp = hd / (a.H / a.G);
    const bool live = p < P;
    const int t0 = k * L, t1 = min(t0 + L, a.T);
    const size_t S = (size_t)a.H * P * N, sidx = (size_t)b * S + ((size_t)hd * P + p) * N;
    const float Ah = a.A[hd], bias = a.dt_bias ? a.dt_bias[hd] : 0.f, Dh = a.D ? a.D[hd] : 0.f;
    float h[S2_NPT];
#pragma unroll
    for (int i = 0; i < S2_NPT; i++) h[i] = 0.f;
    if (OUT && live) {
        const float *hin = chunk_start(a.state, a.state_in, a.cstate, a.nc, k, (size_t)a.B * S, sidx);
        if (hin) {
#pragma unroll
            for (int i = 0; i < S2_NPT; i++) {
                const int n = ((i / 4) * GRP + lane) * 4 + i % 4;
                if (n < N) h[i] = hin[n];
            }
        }
    }
    float sdt = 0.f;
    for (int tb = t0; tb < t1; tb += S2_TT) {
        const int nt = min(S2_TT, t1 - tb);
        const size_t row0 = (size_t)b * a.T + tb;
        __syncthreads();
        for (int i = threadIdx.x; i < nt * NPAD; i += S2_THREADS) { /* rows >= nt are never read */
            const int tt = i / NPAD, n = i - tt * NPAD;
            const bool in = n < N;
            const size_t off = (row0 + tt) * a.ldbc + (size_t)grp * N + n;
            sB[i] = in ? (float)a.Bm[off] * a.sb : 0.f;
            if (OUT) sC[i] = in ? (float)a.Cm[off] * a.sc : 0.f;
        }
        for (int i = threadIdx.x; i < nt * PR; i += S2_THREADS) {
            const int tt = i / PR, r = i - tt * PR, pp = blockIdx.x * PR + r;
            sX[i] = (pp < P) ? (float)a.x[(row0 + tt) * a.ldx + (size_t)hd * P + pp] * a.sx : 0.f;
        }
        if (threadIdx.x < S2_TT) {
            const int tt = threadIdx.x;
            float dt = 0.f;
            if (tt < nt) {
                dt = d_softplus((float)a.dt[(row0 + tt) * a.lddt + hd] * a.sdt + bias);
                dt = fminf(fmaxf(dt, a.lo), a.hi);
            }
            sDt[tt] = dt;
            sDA[tt] = expf(dt * Ah);
        }
        __syncthreads();
        for (int t4 = 0; t4 < nt; t4 += 4) {
            float acc[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                acc[u] = 0.f;
                const int tt = t4 + u;
                if (tt >= nt) continue; /* the same for the whole block */
                const float dt = sDt[tt], dA = sDA[tt], dx = sX[tt * PR + pr] * dt;
                sdt += dt;
                const float4 *b4 = (const float4 *)(sB + tt * NPAD) + lane;
                const float4 *c4 = (const float4 *)(sC + tt * NPAD) + lane;
#pragma unroll
                for (int q = 0; q < S2_NPT / 4; q++) {
                    const float4 bv = b4[q * GRP];
                    h[4 * q + 0] = dA * h[4 * q + 0] + dx * bv.x;
                    h[4 * q + 1] = dA * h[4 * q + 1] + dx * bv.y;
                    h[4 * q + 2] = dA * h[4 * q + 2] + dx * bv.z;
                    h[4 * q + 3] = dA * h[4 * q + 3] + dx * bv.w;
                    if (OUT) {
                        const float4 cv = c4[q * GRP];
                        acc[u] += h[4 * q + 0] * cv.x + h[4 * q + 1] * cv.y + h[4 * q + 2] * cv.z + h[4 * q + 3] * cv.w;
                    }
                }
            }
            if (OUT) {
#pragma unroll
                for (int o = GRP / 2; o; o >>= 1)
#pragma unroll
                    for (int u = 0; u < 4; u++) acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], o);
                if (lane == 0 && live) {
#pragma unroll
                    for (int u = 0; u < 4; u++)
                        if (t4 + u < nt)
                            a.y[(row0 + t4 + u) * a.ldy + (size_t)hd * P + p] = acc[u] + Dh * sX[(t4 + u) * PR + pr];
                }
            }
        }
    }
    if (!live) return;
    float *dst = NULL;
    if (!OUT) {
        dst = a.cstate + (size_t)k * a.B * S + sidx;
        if (threadIdx.x == 0 && blockIdx.x == 0) a.cdt[((size_t)k * a.B + b) * a.H + hd] = sdt;
    } else if (k == a.nc - 1) {
        dst = a.state + sidx;
    }
    if (dst) {
#pragma unroll
        for (int i = 0; i < S2_NPT; i++) {
            const int n = ((i / 4) * GRP + lane) * 4 + i % 4;
            if (n < N) dst[n] = h[i];
        }
    }
}

/* cs[k][b][s]: chunk k's end state (k < nc-1) in, its start state out; A of state s: A[s]
 * (per_state) or A[s / per_ch]; dt sum of chunk k: cdt[k][b][s / per_ch]. */
__global__ void i8_scan_prefix_kernel(float *cs, const float *cdt, const float *state, int state_in, const float *A,
                                      int per_state, int B, int S, int per_ch, int nc) {
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)B * S) return;
    const int b = (int)(i / S), s = (int)(i - (long)b * S), ch = s / per_ch, nch = S / per_ch;
    const float a = per_state ? A[s] : A[ch];
    float h = state_in ? state[i] : 0.f;
    for (int k = 0; k < nc; k++) {
        const size_t idx = ((size_t)k * B + b) * S + s;
        const float end = k < nc - 1 ? cs[idx] : 0.f;
        cs[idx] = h;
        h = expf(a * cdt[((size_t)k * B + b) * nch + ch]) * h + end;
    }
}

static void scan_prefix(float *cs, const float *cdt, const float *state, int state_in, const float *A, int per_state,
                        int B, int S, int per_ch, int nc, cudaStream_t st) {
    const long n = (long)B * S;
    i8_scan_prefix_kernel<<<cdiv(n, 256), 256, 0, st>>>(cs, cdt, state, state_in, A, per_state, B, S, per_ch, nc);
    CUDA_CHECK_LAUNCH();
}

template <int NPAD>
static void scan_m1_run(const scan8_m1_args &a, int L, cudaStream_t st) {
    if (a.nc > 1) {
        dim3 g1(cdiv(a.Di, S1_THREADS), a.B, a.nc - 1);
        i8_scan_m1_kernel<NPAD, false><<<g1, S1_THREADS, 0, st>>>(a, L);
        CUDA_CHECK_LAUNCH();
        scan_prefix(a.cstate, a.cdt, a.state, a.state_in, a.A, 1, a.B, a.Di * a.N, a.N, a.nc, st);
    }
    dim3 g3(cdiv(a.Di, S1_THREADS), a.B, a.nc);
    i8_scan_m1_kernel<NPAD, true><<<g3, S1_THREADS, 0, st>>>(a, L);
    CUDA_CHECK_LAUNCH();
}

template <int GRP>
static void scan_m2_run(const scan8_m2_args &a, int L, cudaStream_t st) {
    constexpr int PR = S2_THREADS / GRP;
    const int Di = a.H * a.P;
    if (a.nc > 1) {
        dim3 g1(cdiv(a.P, PR), a.B * a.H, a.nc - 1);
        i8_scan_m2_kernel<GRP, false><<<g1, S2_THREADS, scan2_smem(GRP, false), st>>>(a, L);
        CUDA_CHECK_LAUNCH();
        scan_prefix(a.cstate, a.cdt, a.state, a.state_in, a.A, 0, a.B, Di * a.N, a.P * a.N, a.nc, st);
    }
    dim3 g3(cdiv(a.P, PR), a.B * a.H, a.nc);
    i8_scan_m2_kernel<GRP, true><<<g3, S2_THREADS, scan2_smem(GRP, true), st>>>(a, L);
    CUDA_CHECK_LAUNCH();
}

/* threads per sequence of one pass: Mamba1 one per channel, Mamba2 GRP per p row */
static int m2_group(int N) { return N <= 16 ? 1 : N <= 32 ? 2 : N <= 64 ? 4 : 8; }

/* Chunks only pay when one pass leaves the SMs short of threads: they cost a second pass over the
 * chunks. As the FP16 scans (ssmg_scan_chunks): enough chunks for ~1024 (Mamba1: each thread runs
 * d_state recurrences) or ~2048 (Mamba2) threads per SM, but chunks of at least 64 steps (so that
 * prefills of up to 64 tokens scan in one pass, as the decode steps do). */
int k8_scan_chunks(const mq_config *c, int B, int T, int sm_count) {
    const long per = (long)B * (c->arch == MQ_MAMBA1 ? c->d_inner : (long)c->n_heads * c->head_dim * m2_group(c->d_state));
    const long target = (long)sm_count * (c->arch == MQ_MAMBA1 ? 1024 : 2048);
    long nc = (target + per - 1) / per, maxc = (T + 63) / 64;
    if (nc > maxc) nc = maxc;
    return nc < 1 ? 1 : (int)nc;
}

/* chunk length and count without an empty chunk; nc > 1 needs the carries */
static int chunk_len(int T, int *nc) {
    if (*nc < 1) *nc = 1;
    const int L = cdiv(T, *nc);
    *nc = cdiv(T, L);
    return L;
}

void k8_scan_m1(const scan8_m1_args &a0, cudaStream_t st) {
    if (a0.B < 1 || a0.T < 1) return;
    scan8_m1_args a = a0;
    const int L = chunk_len(a.T, &a.nc);
    if (a.nc > 1 && (!a.cstate || !a.cdt)) mq_die("k8_scan_m1: %d chunks without carries (internal error)", a.nc);
    if (a.N > 128) mq_die("k8_scan_m1: d_state %d > 128", a.N);
    if (a.N <= 16) scan_m1_run<16>(a, L, st);
    else if (a.N <= 32) scan_m1_run<32>(a, L, st);
    else if (a.N <= 64) scan_m1_run<64>(a, L, st);
    else scan_m1_run<128>(a, L, st);
}

void k8_scan_m2(const scan8_m2_args &a0, cudaStream_t st) {
    if (a0.B < 1 || a0.T < 1) return;
    scan8_m2_args a = a0;
    const int L = chunk_len(a.T, &a.nc);
    if (a.nc > 1 && (!a.cstate || !a.cdt)) mq_die("k8_scan_m2: %d chunks without carries (internal error)", a.nc);
    if (a.N > 128) mq_die("k8_scan_m2: d_state %d > 128", a.N);
    if (a.H % a.G) mq_die("k8_scan_m2: %d heads in %d groups", a.H, a.G);
    switch (m2_group(a.N)) {
    case 1: scan_m2_run<1>(a, L, st); break;
    case 2: scan_m2_run<2>(a, L, st); break;
    case 4: scan_m2_run<4>(a, L, st); break;
    default: scan_m2_run<8>(a, L, st); break;
    }
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
