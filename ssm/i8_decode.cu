/* The batch-1 decode step of the int8 pass in five kernels per layer instead of nine (launchers in
 * ssm/kern.h). One token is memory- and launch-bound: every kernel here streams its weights
 * once and does the small per-token work (norm, conv, dt_proj, Hadamard) redundantly or beside it
 * rather than in a launch of its own. Each computes exactly what the general kernels it replaces
 * compute (ssm/i8_kernels.cu, i8_gemm.cu, scan.cuh; the same formulas, epilogues and int8 rule): only FP32
 * summation orders differ (norm, scan, Hadamard), so int8 outputs agree up to rare one-code flips.
 *
 *   k_i8_dec_norm_linear  resid + delta -> RMSNorm -> int8 (in every block, into shared memory), then
 *                       the in_proj GEMV with its epilogue; block 0 writes the new residual (to a
 *                       second buffer: the other blocks still read the old one)
 *   k_i8_dec_conv_xproj   Mamba1: conv1d step + SiLU + requantize + conv state shift for a slice of
 *                       channels, and x_proj's partial dots over that slice (int32 atomics); the
 *                       last block to finish applies x_proj's epilogue and clears the sums
 *   k_i8_dec_dt_scan      Mamba1: dt_proj row dot + requantize, softplus, the state update and y for
 *                       16 lanes per channel
 *   k_i8_dec_conv         Mamba2: conv1d step + state shift in one kernel
 *   k_i8_dec_yquant       y (FP16; or Mamba2's FP32 scan output through the gated RMSNorm, rounded to
 *                       FP16 as the general path stores it) -> Hadamard -> int8, one block per
 *                       Hadamard block row (H = A_m (x) S_P, hadamard/had.h)
 *   k_i8_dec_linear       a GEMV with the input staged in shared memory (out_proj)
 * int32 sums are exact in any order, so the GEMVs and conv give the general path's values. */
#include <math.h>
#include "core/qrule.h"
#include "hadamard/had_sign.h"
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

#define DEC_THREADS 256
#define DEC_WARPS (DEC_THREADS / 32)

/* Programmatic dependent launch (sm_90, kern_util.cuh's launch_pdl): every kernel here is launched
 * so that it may start while its predecessor in the stream still runs. Before dep_wait() a kernel
 * reads only what its immediate predecessor does not write (weights, scales, the carried state,
 * tensors of earlier kernels: each kernel passes dep_wait() before it lets the next one start, so
 * everything before the predecessor is complete); it writes nothing before dep_wait(). */

static __device__ __forceinline__ int dot16(const int4 w, const int4 x) {
    int s = __dp4a(w.x, x.x, 0);
    s = __dp4a(w.y, x.y, s);
    s = __dp4a(w.z, x.z, s);
    return __dp4a(w.w, x.w, s);
}

/* ---------------------------------------------------------------- GEMV (+ RMSNorm prologue) */

/* A warp streams groups of ROWS rows of W, holding U 16-byte pieces of each per lane (one round
 * covers K <= 512 U bytes; longer rows take several rounds); the next group's first round is
 * loaded before the current one is reduced, and the first group's before the kernel waits for its
 * input. The grid is what fits on the GPU at once, so every warp is resident from the start. The
 * input x (K int8) is staged in shared memory by the prologue: RMSNorm of resid + delta (NORM;
 * resid and the norm weight are read before the wait), or a copy of X. */
template <int ROWS, int U, bool NORM>
__global__ void __launch_bounds__(DEC_THREADS) dec_gemv_kernel(const int8_t *X, const float *rin, const half *delta,
                                                            float *rout, const float *nw, float s, float eps,
                                                            const int8_t *W, int N, int K, k_epi e, void *out) {
    extern __shared__ __align__(16) unsigned char sm[];
    int8_t *xs = (int8_t *)sm;                        /* [K] */
    float *vs = (float *)(sm + ((K + 15) & ~15));     /* [K] residual (NORM) */
    float *ws = vs + K;                               /* [K] norm weight (NORM) */
    const int lane = threadIdx.x & 31, KV = K / 16;
    const int stride = gridDim.x * DEC_WARPS * ROWS;
    int n0 = (blockIdx.x * DEC_WARPS + (threadIdx.x >> 5)) * ROWS;
    int4 wv[ROWS][U], wn[ROWS][U];
    auto load_round = [&](int4 (&dst)[ROWS][U], int n, int k0) {
#pragma unroll
        for (int r = 0; r < ROWS; r++)
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int k = k0 + u * 32 + lane;
                dst[r][u] = (k < KV && n + r < N) ? __ldcs((const int4 *)(W + (size_t)(n + r) * K) + k)
                                                  : make_int4(0, 0, 0, 0);
            }
    };
    if (n0 < N) load_round(wv, n0, 0);
    if (NORM) { /* k_i8_add_rmsnorm's formula: double sum of squares, 1 / sqrtf(mean + eps), w * (v * inv) */
        /* with delta (layers after the first) the residual was written five kernels back, else by the
         * embedding just before */
        if (!delta) dep_wait();
        for (int i = threadIdx.x; i < K; i += DEC_THREADS) vs[i] = rin[i], ws[i] = nw[i];
        if (delta) dep_wait();
        double ss = 0;
        for (int i = threadIdx.x; i < K; i += DEC_THREADS) {
            float v = vs[i];
            if (delta) v += __half2float(delta[i]);
            vs[i] = v;
            ss += (double)v * v;
        }
        const float inv = 1.0f / sqrtf((float)(block_sum<double>(ss) / K) + eps);
        for (int i = threadIdx.x; i < K; i += DEC_THREADS) {
            const float v = vs[i];
            if (blockIdx.x == 0) rout[i] = v;
            xs[i] = qr_quant_i8(ws[i] * (v * inv), s);
        }
    } else {
        dep_wait();
        for (int i = threadIdx.x; i < KV; i += DEC_THREADS) ((int4 *)xs)[i] = ((const int4 *)X)[i];
    }
    __syncthreads();
    dep_release();
    const int4 *x4 = (const int4 *)xs;
    for (; n0 < N; n0 += stride) {
        int acc[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[r] = 0;
        for (int k0 = 0; k0 < KV; k0 += 32 * U) {
            /* the next round's loads (this row group's or the next group's first) go out first */
            const bool more = k0 + 32 * U < KV;
            if (more) load_round(wn, n0, k0 + 32 * U);
            else if (n0 + stride < N) load_round(wn, n0 + stride, 0);
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int k = k0 + u * 32 + lane;
                if (k >= KV) break;
                const int4 xv = x4[k];
#pragma unroll
                for (int r = 0; r < ROWS; r++) acc[r] += dot16(wv[r][u], xv);
            }
#pragma unroll
            for (int r = 0; r < ROWS; r++)
#pragma unroll
                for (int u = 0; u < U; u++) wv[r][u] = wn[r][u];
        }
#pragma unroll
        for (int r = 0; r < ROWS; r++)
            for (int o = 16; o; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
#pragma unroll
        for (int r = 0; r < ROWS; r++)
            if (lane == r && n0 + r < N) k_epi_put(e, acc[r], 0, n0 + r, out, N);
    }
}

/* U: the fewest pieces per lane that cover K in one round (8 at most); ROWS: as many rows per warp
 * as keep about 8 pieces per lane in flight. Grid: as many blocks as are resident at once. */
template <int R, int U, bool NORM>
static void gemv_go(const int8_t *X, const float *rin, const half *delta, float *rout, const float *nw, float s,
                    float eps, const int8_t *W, int N, int K, const k_epi &e, void *out, cudaStream_t st) {
    static int per_sm = 0, sms = 0;
    static size_t per_sm_smem = 0; /* the shared memory per_sm was found for */
    const size_t smem = ((K + 15) & ~15) + (NORM ? 2 * sizeof(float) * K : 0);
    if (!per_sm || per_sm_smem != smem) {
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, dec_gemv_kernel<R, U, NORM>, DEC_THREADS,
                                                                 smem));
        if (per_sm < 1) per_sm = 1;
        per_sm_smem = smem;
    }
    int grid = cdiv(N, DEC_WARPS * R);
    if (grid > per_sm * sms) grid = per_sm * sms;
    launch_pdl(dec_gemv_kernel<R, U, NORM>, grid, DEC_THREADS, smem, st, X, rin, delta, rout, nw, s, eps, W, N, K, e,
               out);
}

template <bool NORM>
static void gemv_launch(const int8_t *X, const float *rin, const half *delta, float *rout, const float *nw, float s,
                        float eps, const int8_t *W, int N, int K, const k_epi &e, void *out, cudaStream_t st) {
    const int per = cdiv(K / 16, 32);
#define GL(R, U) gemv_go<R, U, NORM>(X, rin, delta, rout, nw, s, eps, W, N, K, e, out, st)
    if (per <= 2) GL(4, 2);
    else if (per <= 4) GL(2, 4);
    else GL(1, 8);
#undef GL
}

void k_i8_dec_norm_linear(const float *rin, const half *delta, float *rout, const float *norm_w, float s, float eps,
                        const int8_t *W, int N, int K, const k_epi &e, void *out, int sm_count, cudaStream_t st) {
    gemv_launch<true>(NULL, rin, delta, rout, norm_w, s, eps, W, N, K, e, out, st);
}

void k_i8_dec_linear(const int8_t *X, const int8_t *W, int N, int K, const k_epi &e, void *out, int sm_count,
                   cudaStream_t st) {
    gemv_launch<false>(X, NULL, NULL, NULL, NULL, 0.f, 0.f, W, N, K, e, out, st);
}

/* ---------------------------------------------------------------- Mamba1: conv + x_proj */

#define CX_CH 64 /* channels per block */

/* one conv1d step of channel c: SiLU(bias + (sum_j w[j] * window[j]) * sw * s_in) requantized; the
 * window is the K-1 carried inputs, oldest first, then x; the state then drops its oldest entry */
static __device__ __forceinline__ int8_t conv_step(int8_t *state, int8_t x, const int8_t *w, float sw, float s_in,
                                                   float bias, float s_out, int K) {
    int acc = (int)w[K - 1] * x;
    for (int j = 0; j < K - 1; j++) acc += (int)w[j] * state[j];
    for (int j = 0; j + 1 < K - 1; j++) state[j] = state[j + 1];
    if (K > 1) state[K - 2] = x;
    return qr_quant_i8(d_silu(bias + (float)acc * (sw * s_in)), s_out);
}

#define CX_ROWS 4 /* x_proj rows per thread quad held before the wait (N <= 64 * CX_ROWS; else a loop) */
#define CX_MAXB 128 /* blocks at most: d_inner <= 8192 (decide_fused in ssm/i8_pass.cu) */
/* 16 int8 weights times 16 FP32 activations: four chains of four, added pairwise */
static __device__ __forceinline__ float dot16f(const int4 w, const float *x) {
    const int8_t *q = (const int8_t *)&w;
    float s[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int j = 0; j < 16; j++) s[j & 3] = __fmaf_rn((float)q[j], x[j], s[j & 3]);
    return __fadd_rn(__fadd_rn(s[0], s[1]), __fadd_rn(s[2], s[3]));
}

/* XF: a.xsv set (FP32 sums), else int32 */
template <bool XF>
__global__ void __launch_bounds__(DEC_THREADS) dec_conv_xproj_kernel(k_dec_conv_xproj_args a) {
    __shared__ __align__(16) int8_t xs[CX_CH];
    __shared__ float xf[CX_CH]; /* the slice dequantized (xsv) */
    __shared__ bool last;
    const int c0 = blockIdx.x * CX_CH, t = threadIdx.x, part = t & 3;
    /* this thread's x_proj pieces (rows rb + quad, 16 bytes each), loaded before the wait */
    int4 wv[CX_ROWS];
#pragma unroll
    for (int i = 0; i < CX_ROWS; i++) {
        const int r = i * (DEC_THREADS / 4) + (t >> 2);
        wv[i] = r < a.N ? __ldcs((const int4 *)(a.W + (size_t)r * a.E + c0) + part) : make_int4(0, 0, 0, 0);
    }
    dep_wait();
    if (t < CX_CH) {
        const int c = c0 + t;
        xs[t] = conv_step(a.state + (size_t)c * (a.K - 1), a.x[c], a.cw + (size_t)c * a.K, a.csw[c], a.csin[c],
                          a.cb ? a.cb[c] : 0.f, a.csout[c], a.K);
        a.xc[c] = xs[t];
        if (XF) xf[t] = (float)xs[t] * a.xsv[c];
    }
    __syncthreads();
    dep_release();
    /* x_proj over this slice: 4 threads per row; a warp takes 8 rows at a time. int32 sums into acc
     * (atomics), or (xsv) FP32 sums into the block's row of part */
    const int4 xv = ((const int4 *)xs)[part];
    auto put_row = [&](int r, const int4 &w) {
        if (XF) {
            float s = r < a.N ? dot16f(w, xf + 16 * part) : 0.f;
            s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, 1));
            s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, 2));
            if (part == 0 && r < a.N) a.part[(size_t)blockIdx.x * a.N + r] = s;
        } else {
            int s = r < a.N ? dot16(w, xv) : 0;
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            s += __shfl_xor_sync(0xffffffffu, s, 2);
            if (part == 0 && r < a.N) atomicAdd(a.acc + r, s);
        }
    };
#pragma unroll
    for (int i = 0; i < CX_ROWS; i++) put_row(i * (DEC_THREADS / 4) + (t >> 2), wv[i]);
    for (int rb = CX_ROWS * (DEC_THREADS / 4); rb < a.N; rb += DEC_THREADS / 4) {
        const int r = rb + (t >> 2);
        put_row(r, r < a.N ? __ldcs((const int4 *)(a.W + (size_t)r * a.E + c0) + part) : make_int4(0, 0, 0, 0));
    }
    /* the last block to finish turns the sums into x_proj's output and leaves acc zero */
    __threadfence();
    __syncthreads();
    if (t == 0) last = atomicAdd(a.counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (XF) { /* the blocks' sums, a thread quad per row: lane q loads blocks q, q + 4, ... all at
                  * once (one L2 round trip, not one per block), adds them, then the quad's four sums
                  * in a fixed order */
        for (int rb = 0; rb < a.N; rb += DEC_THREADS / 4) {
            const int r = rb + (t >> 2);
            float v[CX_MAXB / 4], s = 0.f;
#pragma unroll
            for (int i = 0; i < CX_MAXB / 4; i++) {
                const int b = part + 4 * i;
                v[i] = r < a.N && b < (int)gridDim.x ? __ldcg(a.part + (size_t)b * a.N + r) : 0.f;
            }
#pragma unroll
            for (int i = 0; i < CX_MAXB / 4; i++) s = __fadd_rn(s, v[i]);
            s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, 1));
            s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, 2));
            if (part == 0 && r < a.N) a.out[r] = qr_quant_i8(__fmul_rn(s, a.e.sw[r]), a.e.qs[r]);
        }
    } else {
        for (int r = t; r < a.N; r += DEC_THREADS) k_epi_put(a.e, atomicExch(a.acc + r, 0), 0, r, a.out, a.N);
    }
    if (t == 0) *a.counter = 0;
}

void k_i8_dec_conv_xproj(const k_dec_conv_xproj_args &a, cudaStream_t st) {
    if (a.xsv) launch_pdl(dec_conv_xproj_kernel<true>, a.E / CX_CH, DEC_THREADS, 0, st, a);
    else launch_pdl(dec_conv_xproj_kernel<false>, a.E / CX_CH, DEC_THREADS, 0, st, a);
}

/* ---------------------------------------------------------------- Mamba1: dt_proj + scan */

#define SC_LANES 16 /* lanes per channel */

__global__ void __launch_bounds__(DEC_THREADS) dec_dt_scan_kernel(k_dec_dt_scan_args a) {
    const int c = blockIdx.x * (DEC_THREADS / SC_LANES) + threadIdx.x / SC_LANES, lane = threadIdx.x % SC_LANES;
    const bool live = c < a.E;
    const int cc = live ? c : 0, R = a.R, N = a.N;
    /* dt_proj row c (no bias, Quamba) requantized as its epilogue does; the row is read before the
     * wait, x_proj's output after it */
    const int8_t *w = a.dtw + (size_t)cc * R;
    int wr[8];
#pragma unroll
    for (int i = 0; i < 8; i++) wr[i] = lane + i * SC_LANES < R ? w[lane + i * SC_LANES] : 0;
    const float dsw = a.dt_sw[cc], dqs = a.dt_qs[cc], dtb = a.dt_bias[cc], Dc = a.D[cc];
    dep_wait();
    int acc = 0;
#pragma unroll
    for (int i = 0; i < 8; i++)
        if (lane + i * SC_LANES < R) acc += wr[i] * a.xdbl[lane + i * SC_LANES];
    for (int k = lane + 8 * SC_LANES; k < R; k += SC_LANES) acc += (int)w[k] * a.xdbl[k];
#pragma unroll
    for (int o = SC_LANES / 2; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    dep_release();
    const int8_t dt8 = qr_quant_i8((float)acc * (a.s_xp * dsw), dqs);
    /* the scan step of i8_scan_m1_kernel */
    const float delta = fmaxf(d_softplus((float)dt8 * a.sdt + dtb), 0.f);
    const float u = (float)a.u[cc] * (a.suv ? a.suv[cc] : a.su);
    float part = 0.f;
    float *h = a.state + (size_t)cc * N;
    for (int n = lane; n < N; n += SC_LANES) {
        const float Bn = (float)a.xdbl[R + n] * a.sb, Cn = (float)a.xdbl[R + N + n] * a.sc;
        const float hn = ex2_ftz(delta * (a.A[(size_t)cc * N + n] * LOG2E)) * h[n] + (delta * Bn) * u;
        if (live) h[n] = hn;
        part += hn * Cn;
    }
#pragma unroll
    for (int o = SC_LANES / 2; o; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
    if (live && lane == 0) {
        float y = part + Dc * u;
        y *= d_silu((float)a.z[cc] * a.sz);
        a.y[cc] = __float2half(y);
    }
}

void k_i8_dec_dt_scan(const k_dec_dt_scan_args &a, cudaStream_t st) {
    launch_pdl(dec_dt_scan_kernel, cdiv(a.E, DEC_THREADS / SC_LANES), DEC_THREADS, 0, st, a);
}

/* ---------------------------------------------------------------- Mamba2: conv */

__global__ void dec_conv_kernel(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw,
                                const float *s_in, const float *bias, const float *s_out, int C, int K) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    dep_wait();
    dep_release();
    if (c >= C) return;
    out[c] = conv_step(state + (size_t)c * (K - 1), x[c], w + (size_t)c * K, sw[c], s_in[c], bias ? bias[c] : 0.f,
                       s_out[c], K);
}

void k_i8_dec_conv(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                 const float *bias, const float *s_out, int C, int K, cudaStream_t st) {
    launch_pdl(dec_conv_kernel, cdiv(C, 128), 128, 0, st, out, x, state, w, sw, s_in, bias, s_out, C, K);
}

/* ---------------------------------------------------------------- y -> (gated norm) -> Hadamard -> int8 */

/* Block a of m: stages the whole row (E = m * P floats) in shared memory, transforms each of the m
 * segments by S_P (butterflies), then writes output segment a = norm * sum_a' A_m[a][a'] seg_a',
 * quantized. Without rotation (m = 1 and P = 0 by convention) it only quantizes its slice. */
#define YQ_THREADS 1024 /* the row's butterflies spread over a whole block */

/* ys [E = m P]: each segment of P (= 2^lp) transformed by S_P in place, by the whole block */
static __device__ void yq_butterflies(float *ys, int E, int P, int lp) {
    for (int lh = 0; lh < lp; lh++) { /* butterflies of span h = 2^lh inside every segment */
        __syncthreads();
        const int h = 1 << lh;
        for (int j = threadIdx.x; j < E / 2; j += YQ_THREADS) {
            const int sgi = j >> (lp - 1), jj = j & ((P >> 1) - 1);
            const int i0 = (sgi << lp) + ((jj >> lh) << (lh + 1)) + (jj & (h - 1));
            const float x0 = ys[i0], x1 = ys[i0 + h];
            ys[i0] = x0 + x1;
            ys[i0 + h] = x0 - x1;
        }
    }
    __syncthreads();
}
__global__ void __launch_bounds__(YQ_THREADS) dec_yquant_kernel(k_dec_yquant_args a) {
    extern __shared__ float ys[];
    __shared__ float sgn[32];
    const int E = a.E, t = threadIdx.x;
    dep_wait();
    dep_release();
    if (a.gnorm_w) { /* Mamba2: i8_gated_rmsnorm_kernel over the whole row, rounded to FP16 */
        double ss = 0;
        for (int i = t; i < E; i += YQ_THREADS) {
            float v = a.y32[i];
            if (!a.nbg) v *= d_silu((float)a.z[i] * a.sz);
            ss += (double)v * v;
        }
        const float r = 1.0f / sqrtf((float)(block_sum<double>(ss) / E) + a.eps);
        for (int i = t; i < E; i += YQ_THREADS) {
            const float g = d_silu((float)a.z[i] * a.sz), v = a.y32[i];
            const float o = a.nbg ? (a.gnorm_w[i] * (v * r)) * g : a.gnorm_w[i] * ((v * g) * r);
            ys[i] = __half2float(__float2half(o));
        }
    } else {
        for (int i = t; i < E; i += YQ_THREADS) ys[i] = __half2float(a.y16[i]);
    }
    if (!a.P) { /* plain quantization: block b takes its slice */
        __syncthreads();
        const int per = (E + gridDim.x - 1) / gridDim.x, i0 = blockIdx.x * per;
        for (int i = i0 + t; i < min(E, i0 + per); i += YQ_THREADS) a.q[i] = qr_quant_i8(ys[i], a.s);
        return;
    }
    const int m = a.m, P = a.P, seg = blockIdx.x;
    if (t < m) sgn[t] = (float)had_block_sign(m, seg, t);
    yq_butterflies(ys, E, P, a.log_p);
    for (int b = t; b < P; b += YQ_THREADS) {
        float v = 0.f;
        for (int k = 0; k < m; k++) v += sgn[k] * ys[k * P + b];
        a.q[seg * P + b] = qr_quant_i8(v * a.norm, a.s);
    }
}

/* The same for the rows of a decode batch (FP16 y [rows x E], Hadamard only): one block per row
 * computes every segment, from an m x m sign table (the general Hadamard kernel runs a row per
 * block of 64 threads: ~15 us for 16 or 64 rows of 5120 on the H200, latency bound). */
__global__ void __launch_bounds__(YQ_THREADS) yquant_rows_kernel(k_dec_yquant_args a) {
    dep_enter();
    extern __shared__ float ys[];
    __shared__ float sgn[K_YQ_MAX_M * K_YQ_MAX_M];
    const int E = a.E, t = threadIdx.x, m = a.m, P = a.P, lp = a.log_p;
    const size_t row = blockIdx.x;
    for (int i = t; i < m * m; i += YQ_THREADS) sgn[i] = (float)had_block_sign(m, i / m, i % m);
    for (int i = t; i < E; i += YQ_THREADS) ys[i] = __half2float(a.y16[row * E + i]);
    yq_butterflies(ys, E, P, lp);
    for (int o = t; o < E; o += YQ_THREADS) {
        const int seg = o >> lp, b = o & (P - 1);
        float v = 0.f;
        for (int k = 0; k < m; k++) v += sgn[seg * m + k] * ys[k * P + b];
        a.q[row * E + o] = qr_quant_i8(v * a.norm, a.s);
    }
}

void k_i8_yquant_rows(const k_dec_yquant_args &a, int rows, cudaStream_t st) {
    if (!a.P || a.m > K_YQ_MAX_M) mq_die("k_i8_yquant_rows: m = %d, P = %d (checked by the caller)", a.m, a.P);
    launch_pdl(yquant_rows_kernel, rows, YQ_THREADS, sizeof(float) * a.E, st, a);
    CUDA_CHECK_LAUNCH();
}

void k_i8_dec_yquant(const k_dec_yquant_args &a, cudaStream_t st) {
    const int blocks = a.P ? a.m : cdiv(a.E, 1024);
    launch_pdl(dec_yquant_kernel, blocks, YQ_THREADS, sizeof(float) * a.E, st, a);
}
