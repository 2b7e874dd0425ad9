/* The CUDA kernels of the FP16 Mamba forward (launchers declared in ssm/gpu_kern.h): embedding,
 * residual add + RMSNorm, causal conv1d + SiLU with carried state, the Mamba1 selective scan, the
 * Mamba2 scan, gated RMSNorm and the fused log-sum-exp NLL. All arithmetic is FP32; FP16 is only
 * the storage of activations and weights. Every launcher checks its launch. */
#include <math.h>
extern "C" { /* C header without its own guard */
#include "core/err.h"
}
#include "ssm/gpu_kern.h"

#define LOG2E 1.4426950408889634f

/* Same formulas as the CPU reference (core/mat.h): softplus is linear above 20 like torch's. */
__device__ __forceinline__ float d_silu(float x) { return x / (1.f + expf(-x)); }
__device__ __forceinline__ float d_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total. */
__device__ float block_sum(float v) {
    __shared__ float sh[32];
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.f;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static int cdiv(long a, long b) { return (int)((a + b - 1) / b); }

/* ---------------------------------------------------------------- conversions, fills */

__global__ void f32_to_f16_kernel(half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half(src[i]);
}
void k_f32_to_f16(half *dst, const float *src, size_t n, cudaStream_t st) {
    if (!n) return;
    f32_to_f16_kernel<<<(unsigned)min((size_t)4096, (n + 255) / 256), 256, 0, st>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

/* splitmix64 of (seed, i): a counter-based generator, so the fill is the same for any grid. */
__device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (2.f / 16777216.f) - 1.f; /* [-1, 1) */
}
__global__ void fill_uniform_f16_kernel(half *dst, size_t n, uint64_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half(scale * hash_uniform(seed, i));
}
void k_fill_uniform_f16(half *dst, size_t n, uint64_t seed, float scale, cudaStream_t st) {
    if (!n) return;
    fill_uniform_f16_kernel<<<(unsigned)min((size_t)8192, (n + 255) / 256), 256, 0, st>>>(dst, n, seed, scale);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- embedding, norms, bias */

__global__ void embed_kernel(float *resid, const half *embed, const int32_t *tokens, int D) {
    const half *e = embed + (size_t)tokens[blockIdx.x] * D;
    float *r = resid + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) r[i] = __half2float(e[i]);
}
void k_embed(float *resid, const half *embed, const int32_t *tokens, int rows, int D, cudaStream_t st) {
    embed_kernel<<<rows, 256, 0, st>>>(resid, embed, tokens, D);
    CUDA_CHECK_LAUNCH();
}

/* Threads per row of a norm: few rows (decode) leave the GPU idle anyway, so use a whole 1024-thread
 * block to cut the serial loop over the row; many rows fill the GPU with smaller blocks. */
static int norm_threads(int rows, int D) {
    if (rows < 256 && D >= 2048) return 1024;
    return D >= 1024 ? 256 : 128;
}

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
    float inv = rsqrtf(block_sum(ss) / D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float o = r[i] * inv * w[i];
        out16[off + i] = __float2half(o);
        if (out32) out32[off + i] = o;
    }
}
void k_add_rmsnorm(float *resid, const half *delta, const float *w, half *out16, float *out32,
                   int rows, int D, float eps, cudaStream_t st) {
    add_rmsnorm_kernel<<<rows, norm_threads(rows, D), 0, st>>>(resid, delta, w, out16, out32, D, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void add_bias_kernel(half *y, int ld, const float *bias, int C) {
    half *r = y + (size_t)blockIdx.x * ld;
    for (int c = threadIdx.x; c < C; c += blockDim.x) r[c] = __float2half(__half2float(r[c]) + bias[c]);
}
void k_add_bias(half *y, int ld, const float *bias, int rows, int C, cudaStream_t st) {
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
    float inv = rsqrtf(block_sum(ss) / group + eps);
    for (int i = threadIdx.x; i < group; i += blockDim.x) {
        float g = d_silu(__half2float(z[row * ld_z + c0 + i]));
        float v = __half2float(y[row * ld_y + c0 + i]);
        float o = nbg ? v * inv * w[c0 + i] * g : v * g * inv * w[c0 + i];
        out[row * ld_out + c0 + i] = __float2half(o);
    }
}
void k_gated_rmsnorm(half *out, int ld_out, const half *y, int ld_y, const half *z, int ld_z,
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
void k_conv1d_silu(half *out, int ld_out, const half *x, int ld_x, float *conv_state, int update_state,
                   const float *w, const float *bias, int B, int T, int C, int K, cudaStream_t st) {
    dim3 grid(B * cdiv(T, CONV_TT), cdiv(C, 128));
    float *cs_out = (update_state && T == 1 && K > 1) ? conv_state : NULL;
    conv1d_silu_kernel<<<grid, 128, 0, st>>>(out, ld_out, x, ld_x, conv_state, cs_out, w, bias, T, C, K);
    CUDA_CHECK_LAUNCH();
    if (update_state && conv_state && T > 1 && K > 1) k_conv_state_update(conv_state, x, ld_x, B, T, C, K, st);
}

/* One thread per (b, c) reads the whole new window before writing, so the update is in place. */
__global__ void conv_state_update_kernel(float *cs, const half *x, int ld_x, int B, int T, int C, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    const int b = i / C, c = i - b * C;
    float *s = cs + (size_t)i * (K - 1), nv[7];
#pragma unroll
    for (int j = 0; j < 7; j++) {
        if (j >= K - 1) break;
        int tt = T - (K - 1) + j; /* time (from this call's start) of new slot j */
        nv[j] = tt >= 0 ? __half2float(x[((size_t)b * T + tt) * ld_x + c]) : s[(K - 1) + tt];
    }
#pragma unroll
    for (int j = 0; j < 7; j++) {
        if (j >= K - 1) break;
        s[j] = nv[j];
    }
}
void k_conv_state_update(float *conv_state, const half *x, int ld_x, int B, int T, int C, int K,
                         cudaStream_t st) {
    conv_state_update_kernel<<<cdiv((long)B * C, 256), 256, 0, st>>>(conv_state, x, ld_x, B, T, C, K);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- scans
 * Both scans are linear recurrences h_t = a_t h_{t-1} + u_t, cut into n_chunks time chunks so that
 * short batches still fill the GPU:
 *   pass 1 (chunks 0..n-2): each chunk's end state from a zero start, and the sum of its dt
 *           (the chunk's total decay is exp(A * sum dt));
 *   pass 2 (prefix): walking the chunks in order turns those into each chunk's carried-in state,
 *           starting from the given state (or zeros);
 *   pass 3: every chunk scans again from its carried-in state and writes y; the last chunk writes
 *           the final state.
 * With one chunk only pass 3 runs (decode steps, big batches). Work is about twice a plain scan
 * when chunked; the state is FP32 throughout.
 * Shared-memory tiles of B and C are padded to NPAD (a multiple of 16) with zeros, so the padded
 * state lanes stay exactly 0 and the inner loops need no bounds checks. */

/* Carried-in states: cs[k][b][s] holds chunk k's end state (k < nc-1) and becomes its start state.
 * dt channel of state element s: s / per_ch; decay exponent A[s] (Mamba1) or A[s / per_ch] (Mamba2). */
__global__ void scan_prefix_kernel(float *cs, const float *cdt, const float *state, int state_in,
                                   const float *A, int a_per_state, int B, int S, int per_ch, int nc) {
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)B * S) return;
    const int b = (int)(i / S), s = (int)(i - (long)b * S), ch = s / per_ch, nch = S / per_ch;
    const float a = a_per_state ? A[s] : A[ch];
    float h = state_in ? state[i] : 0.f;
    for (int k = 0; k < nc; k++) {
        size_t idx = ((size_t)k * B + b) * S + s;
        float end = k < nc - 1 ? cs[idx] : 0.f;
        cs[idx] = h;
        h = expf(a * cdt[((size_t)k * B + b) * nch + ch]) * h + end;
    }
}

/* -- Mamba1: one thread per (channel, sequence, chunk) holding all d_state states in registers. */
#define S1_THREADS 128
#define S1_TT 16

template <int NPAD, bool OUT>
__global__ void __launch_bounds__(S1_THREADS) scan1_kernel(scan1_args a, int L) {
    __shared__ __align__(16) float sB[S1_TT][NPAD];
    __shared__ __align__(16) float sC[OUT ? S1_TT : 1][NPAD];
    const int c = blockIdx.x * S1_THREADS + threadIdx.x, b = blockIdx.y, k = blockIdx.z, N = a.N;
    const bool live = c < a.d_inner;
    const int t0 = k * L, t1 = min(t0 + L, a.T);
    const size_t S = (size_t)a.d_inner * N, sidx = (size_t)b * S + (size_t)c * N;
    float h[NPAD], A2[NPAD];
#pragma unroll
    for (int n = 0; n < NPAD; n++) {
        A2[n] = (live && n < N) ? a.A[(size_t)c * N + n] * LOG2E : 0.f;
        h[n] = 0.f;
    }
    if (OUT && live) {
        const float *hin = a.n_chunks == 1 ? (a.state_in ? a.state + sidx : NULL)
                                           : a.chunk_state + (size_t)k * a.B * S + sidx;
        if (hin) {
#pragma unroll
            for (int n = 0; n < NPAD; n++) if (n < N) h[n] = hin[n];
        }
    }
    const float bias = (live && a.dt_bias) ? a.dt_bias[c] : 0.f, Dc = (OUT && live) ? a.D[c] : 0.f;
    float sdt = 0.f;
    for (int tb = t0; tb < t1; tb += S1_TT) {
        const int nt = min(S1_TT, t1 - tb);
        const size_t row0 = (size_t)b * a.T + tb;
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < nt * NPAD; i += S1_THREADS) { /* rows >= nt are never read */
            int tt = i / NPAD, n = i - tt * NPAD;
            bool in = n < N;
            sB[tt][n] = in ? __half2float(a.Bm[(row0 + tt) * a.ld_bc + n]) : 0.f;
            if (OUT) sC[tt][n] = in ? __half2float(a.Cm[(row0 + tt) * a.ld_bc + n]) : 0.f;
        }
        /* this thread's x, dt (and z) for the tile, loaded before use so the loads overlap */
        float xs[S1_TT], dts[S1_TT], zs[S1_TT];
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            bool in = live && tt < nt;
            size_t row = row0 + tt;
            xs[tt] = in ? __half2float(a.x[row * a.ld_x + c]) : 0.f;
            dts[tt] = in ? __half2float(a.dt[row * a.ld_dt + c]) : 0.f;
            zs[tt] = (OUT && in && a.z) ? __half2float(a.z[row * a.ld_z + c]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            if (tt >= nt) break;
            const float dt = d_softplus(dts[tt] + bias), dx = dt * xs[tt];
            sdt += dt;
            float y = 0.f;
#pragma unroll
            for (int n = 0; n < NPAD; n++) {
                h[n] = exp2f(dt * A2[n]) * h[n] + dx * sB[tt][n];
                if (OUT) y += sC[tt][n] * h[n];
            }
            if (OUT && live) {
                y += Dc * xs[tt];
                if (a.z) y *= d_silu(zs[tt]);
                a.y[(row0 + tt) * a.ld_y + c] = __float2half(y);
            }
        }
    }
    if (!live) return;
    if (!OUT) {
        float *dst = a.chunk_state + (size_t)k * a.B * S + sidx;
#pragma unroll
        for (int n = 0; n < NPAD; n++) if (n < N) dst[n] = h[n];
        a.chunk_dt[((size_t)k * a.B + b) * a.d_inner + c] = sdt;
    } else if (k == a.n_chunks - 1) {
#pragma unroll
        for (int n = 0; n < NPAD; n++) if (n < N) a.state[sidx + n] = h[n];
    }
}

template <int NPAD>
static void scan1_launch(const scan1_args *a, int L, cudaStream_t st) {
    const int nc = a->n_chunks;
    if (nc > 1) {
        dim3 g1(cdiv(a->d_inner, S1_THREADS), a->B, nc - 1);
        scan1_kernel<NPAD, false><<<g1, S1_THREADS, 0, st>>>(*a, L);
        CUDA_CHECK_LAUNCH();
        const long n = (long)a->B * a->d_inner * a->N;
        scan_prefix_kernel<<<cdiv(n, 256), 256, 0, st>>>(a->chunk_state, a->chunk_dt, a->state, a->state_in,
                                                        a->A, 1, a->B, a->d_inner * a->N, a->N, nc);
        CUDA_CHECK_LAUNCH();
    }
    dim3 g3(cdiv(a->d_inner, S1_THREADS), a->B, nc);
    scan1_kernel<NPAD, true><<<g3, S1_THREADS, 0, st>>>(*a, L);
    CUDA_CHECK_LAUNCH();
}

void k_scan1(const scan1_args *a, cudaStream_t st) {
    const int L = cdiv(a->T, a->n_chunks);
    scan1_args b = *a;
    b.n_chunks = cdiv(a->T, L); /* no empty chunk */
    if (b.N <= 16) scan1_launch<16>(&b, L, st);
    else scan1_launch<64>(&b, L, st); /* d_state <= 64 is checked at upload */
}

/* -- Mamba2: a block per (p-rows, sequence*head, chunk); GRP lanes share one p row, each holding
 *    16 of its d_state states, and y is reduced across the GRP lanes by shuffles. Lane l holds the
 *    float4 groups q*GRP + l (q < 4), so the GRP lanes of a row read GRP consecutive float4s of B and
 *    C: no bank conflicts (lane*16 would put every other lane on the same banks).
 *    dt and exp(dt*A) are per (t, head), computed once per tile into shared memory. */
#define S2_THREADS 256
#define S2_TT 32
#define S2_NPT 16

static size_t scan2_smem(int grp, bool out) {
    int npad = grp * S2_NPT, pr = S2_THREADS / grp;
    return sizeof(float) * ((size_t)S2_TT * npad * (out ? 2 : 1) + (size_t)S2_TT * pr + 2 * S2_TT);
}

template <int GRP, bool OUT>
__global__ void __launch_bounds__(S2_THREADS, 2) scan2_kernel(scan2_args a, int L) {
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
    const float Ah = a.A[hd], bias = a.dt_bias[hd], Dh = a.D[hd];
    float h[S2_NPT];
#pragma unroll
    for (int i = 0; i < S2_NPT; i++) h[i] = 0.f;
    if (OUT && live) {
        const float *hin = a.n_chunks == 1 ? (a.state_in ? a.state + sidx : NULL)
                                           : a.chunk_state + (size_t)k * a.B * S + sidx;
        if (hin) {
#pragma unroll
            for (int i = 0; i < S2_NPT; i++) {
                int n = ((i / 4) * GRP + lane) * 4 + i % 4;
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
            int tt = i / NPAD, n = i - tt * NPAD;
            bool in = n < N;
            size_t off = (row0 + tt) * a.ld_bc + (size_t)grp * N + n;
            sB[i] = in ? __half2float(a.Bm[off]) : 0.f;
            if (OUT) sC[i] = in ? __half2float(a.Cm[off]) : 0.f;
        }
        for (int i = threadIdx.x; i < nt * PR; i += S2_THREADS) {
            int tt = i / PR, r = i - tt * PR, pp = blockIdx.x * PR + r;
            sX[i] = (pp < P) ? __half2float(a.x[(row0 + tt) * a.ld_x + (size_t)hd * P + pp]) : 0.f;
        }
        if (threadIdx.x < S2_TT) {
            int tt = threadIdx.x;
            float dt = 0.f;
            if (tt < nt) {
                dt = d_softplus(__half2float(a.dt[(row0 + tt) * a.ld_dt + hd]) + bias);
                dt = fminf(fmaxf(dt, a.dt_min), a.dt_max);
            }
            sDt[tt] = dt;
            sDA[tt] = expf(dt * Ah);
        }
        __syncthreads();
        /* four steps per round: their y reductions are independent shuffles that overlap, instead of
         * one step's three dependent shuffles stalling every step */
        for (int t4 = 0; t4 < nt; t4 += 4) {
            float acc[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                acc[u] = 0.f;
                const int tt = t4 + u;
                if (tt >= nt) continue; /* the same for the whole block */
                const float dt = sDt[tt], dA = sDA[tt], dx = dt * sX[tt * PR + pr];
                sdt += dt;
                const float4 *b4 = (const float4 *)(sB + tt * NPAD) + lane;
                const float4 *c4 = (const float4 *)(sC + tt * NPAD) + lane;
#pragma unroll
                for (int q = 0; q < S2_NPT / 4; q++) {
                    float4 bv = b4[q * GRP];
                    h[4 * q + 0] = dA * h[4 * q + 0] + dx * bv.x;
                    h[4 * q + 1] = dA * h[4 * q + 1] + dx * bv.y;
                    h[4 * q + 2] = dA * h[4 * q + 2] + dx * bv.z;
                    h[4 * q + 3] = dA * h[4 * q + 3] + dx * bv.w;
                    if (OUT) {
                        float4 cv = c4[q * GRP];
                        acc[u] += cv.x * h[4 * q + 0] + cv.y * h[4 * q + 1] + cv.z * h[4 * q + 2] + cv.w * h[4 * q + 3];
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
                            a.y[(row0 + t4 + u) * a.ld_y + (size_t)hd * P + p] =
                                __float2half(acc[u] + Dh * sX[(t4 + u) * PR + pr]);
                }
            }
        }
    }
    if (!live) return;
    float *dst = NULL;
    if (!OUT) {
        dst = a.chunk_state + (size_t)k * a.B * S + sidx;
        if (threadIdx.x == 0 && blockIdx.x == 0) a.chunk_dt[((size_t)k * a.B + b) * a.H + hd] = sdt;
    } else if (k == a.n_chunks - 1) {
        dst = a.state + sidx;
    }
    if (dst) {
#pragma unroll
        for (int i = 0; i < S2_NPT; i++) {
            int n = ((i / 4) * GRP + lane) * 4 + i % 4;
            if (n < N) dst[n] = h[i];
        }
    }
}

template <int GRP>
static void scan2_launch(const scan2_args *a, int L, cudaStream_t st) {
    constexpr int PR = S2_THREADS / GRP;
    const int nc = a->n_chunks;
    if (nc > 1) {
        dim3 g1(cdiv(a->P, PR), a->B * a->H, nc - 1);
        scan2_kernel<GRP, false><<<g1, S2_THREADS, scan2_smem(GRP, false), st>>>(*a, L);
        CUDA_CHECK_LAUNCH();
        const long n = (long)a->B * a->H * a->P * a->N;
        scan_prefix_kernel<<<cdiv(n, 256), 256, 0, st>>>(a->chunk_state, a->chunk_dt, a->state, a->state_in,
                                                        a->A, 0, a->B, a->H * a->P * a->N, a->P * a->N, nc);
        CUDA_CHECK_LAUNCH();
    }
    dim3 g3(cdiv(a->P, PR), a->B * a->H, nc);
    scan2_kernel<GRP, true><<<g3, S2_THREADS, scan2_smem(GRP, true), st>>>(*a, L);
    CUDA_CHECK_LAUNCH();
}

int ssmg_scan2_group(int N) { return N <= 16 ? 1 : N <= 32 ? 2 : N <= 64 ? 4 : 8; }

void k_scan2(const scan2_args *a, cudaStream_t st) {
    const int L = cdiv(a->T, a->n_chunks);
    scan2_args b = *a;
    b.n_chunks = cdiv(a->T, L);
    switch (ssmg_scan2_group(a->N)) { /* d_state <= 128 is checked at upload */
    case 1: scan2_launch<1>(&b, L, st); break;
    case 2: scan2_launch<2>(&b, L, st); break;
    case 4: scan2_launch<4>(&b, L, st); break;
    default: scan2_launch<8>(&b, L, st); break;
    }
}

/* ---------------------------------------------------------------- NLL */

/* Online log-sum-exp: (m, s) = running max and sum of exp(v - m); merging two is exact. */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    if (M == -INFINITY) return;
    s = (m == -INFINITY ? 0.f : s * expf(m - M)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - M));
    m = M;
}
__global__ void nll_kernel(float *nll, const float *logits, const int32_t *targets, int V) {
    __shared__ float shm[32], shs[32];
    const float *l = logits + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = l[i];
        if (v > m) { s = (m == -INFINITY ? 0.f : s * expf(m - v)) + 1.f; m = v; }
        else s += expf(v - m);
    }
    for (int o = 16; o; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) { shm[wid] = m; shs[wid] = s; }
    __syncthreads();
    if (wid == 0) {
        int nw = blockDim.x >> 5;
        m = lane < nw ? shm[lane] : -INFINITY;
        s = lane < nw ? shs[lane] : 0.f;
        for (int o = 16; o; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
        if (lane == 0) {
            int t = targets[blockIdx.x];
            nll[blockIdx.x] = t < 0 ? 0.f : logf(s) + m - l[t];
        }
    }
}
void k_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V, cudaStream_t st) {
    nll_kernel<<<rows, 512, 0, st>>>(nll, logits, targets, V);
    CUDA_CHECK_LAUNCH();
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
#pragma unroll
    for (int m = 0; m < M; m++)
        for (int o = 16; o; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
    if (wpr > 1) { /* the same for the whole block */
        if (lane == 0)
#pragma unroll
            for (int m = 0; m < M; m++) part[warp][m] = acc[m];
        __syncthreads();
        if (piece == 0)
#pragma unroll
            for (int m = 0; m < M; m++) {
                acc[m] = 0.f;
                for (int j = 0; j < wpr; j++) acc[m] += part[warp + j][m];
            }
    }
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

/* Row-major Y = X W^T is column-major Y^T = W^T(op T on W stored [N x K], ld K) * X^T. */
void gemm_f16(cublasHandle_t h, const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy,
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
    const float alpha = 1.f, beta = 0.f;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, K, X, CUDA_R_16F,
                              ldx, &beta, Y, y_f32 ? CUDA_R_32F : CUDA_R_16F, ldy, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (bias) {
        if (y_f32) mq_die("gemm_f16: a bias on FP32 output is not implemented"); /* no caller needs it */
        k_add_bias((half *)Y, ldy, bias, M, N, st);
    }
}
