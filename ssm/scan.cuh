/* The selective scans of both GPU passes (templates, instantiated by ssm/scan_f16.cu and ssm/scan_i8.cu
 * so the two sets compile in parallel), one template over the input type (ssm/kern.h: k_in_f16 for
 * the FP16 pass, k_in_i8 for int8 values dequantized in registers as (float)q * s, the simulation's
 * one multiply) and the output type (FP16, or FP32 for the int8 pass's Mamba2 y, which its gated
 * norm reads). A new storage format of activations is a new loader, not a new scan.
 *   Mamba1: one thread per (channel, sequence, chunk) holding all d_state states in registers;
 *           softplus once per (token, channel), y summed inside the thread (no shuffles); B and C of
 *           a tile of steps staged once per block in shared memory.
 *   Mamba2: a block per (p-rows, sequence*head, chunk); GRP lanes share one p row with 16 states
 *           each; dt and exp(dt*A) once per (token, head) per tile in shared memory; y reduced over
 *           the GRP lanes by shuffles, four independent steps per round. Lane l holds the float4
 *           groups q*GRP + l, so the GRP lanes of a row read consecutive float4s: no bank conflicts.
 *   Mamba1 prefill (par): parallel over time, a warp shuffle scan per chunk, ssm/pscan.cuh.
 *   Mamba2 prefill (ssd_q > 0): the chunked state-space-dual form on tensor cores, ssm/ssd.cuh.
 * Both are linear recurrences h_t = a_t h_{t-1} + u_t cut into nc time chunks so that short batches
 * still fill the GPU: pass 1 (chunks 0..nc-2) scans each chunk from zero keeping its end state and
 * its dt sum (its total decay is exp(A sum dt)); a prefix pass turns those into each chunk's start
 * state; pass 2 scans every chunk from its start and writes y (the last chunk the final state).
 * nc = 1 is the plain scan (decode). Shared tiles are zero-padded to NPAD so padded states stay 0.
 * The int8 pass (In::sim) evaluates the Mamba1 update in the simulation's order, exp(dt A) h +
 * (dt B) u, to stay at rounding distance from it; the FP16 pass uses (dt u) B, one multiply fewer.
 * Both take exp(dt A) as one flush-to-zero ex2 of a pre-scaled A (the scan's cost is instructions
 * per state update: ncu, docs/performance.md). The state is FP32 throughout. */
#ifndef MQ_SSM_SCAN_CUH
#define MQ_SSM_SCAN_CUH
#include "ssm/kern.h"
#include "ssm/kern_util.cuh"

static __device__ __forceinline__ void put_out(half *p, float v) { *p = __float2half(v); }
static __device__ __forceinline__ void put_out(float *p, float v) { *p = v; }
/* rows of `in` load 8 columns (from a multiple of 8) as one vector: stride and base aligned */
static __device__ __forceinline__ bool in_vec8_ok(const k_in_f16 &in) { return in.ld % 8 == 0 && !((size_t)in.p & 15); }
static __device__ __forceinline__ bool in_vec8_ok(const k_in_i8 &in) { return in.ld % 8 == 0 && !((size_t)in.p & 7); }

static __device__ __forceinline__ const float *chunk_start(const float *state, int state_in, const float *cstate,
                                                           int nc, int k, size_t per_chunk, size_t sidx) {
    if (nc == 1) return state_in ? state + sidx : NULL;
    return cstate + (size_t)k * per_chunk + sidx;
}

/* cs[k][b][s]: chunk k's end state (k < nc-1; every k when fin) in, its start state out; A of state
 * s: A[s] (per_state) or A[s / per_ch]; dt sum of chunk k: cdt[k][b][s / per_ch]. fin (may be the
 * state itself, each thread reads its element before it writes it): the state after the last chunk. */
static __global__ void scan_prefix_kernel(float *cs, const float *cdt, const float *state, int state_in, const float *A,
                                          int per_state, int B, int S, int per_ch, int nc, float *fin) {
    dep_enter();
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)B * S) return;
    const int b = (int)(i / S), s = (int)(i - (long)b * S), ch = s / per_ch, nch = S / per_ch;
    const float a = per_state ? A[s] : A[ch];
    float h = state_in ? state[i] : 0.f;
    for (int k = 0; k < nc; k++) {
        const size_t idx = ((size_t)k * B + b) * S + s;
        const float end = k < nc - 1 || fin ? cs[idx] : 0.f;
        cs[idx] = h;
        h = expf(a * cdt[((size_t)k * B + b) * nch + ch]) * h + end;
    }
    if (fin) fin[i] = h;
}

static void scan_prefix(float *cs, const float *cdt, const float *state, int state_in, const float *A, int per_state,
                        int B, int S, int per_ch, int nc, cudaStream_t st, float *fin = NULL) {
    const long n = (long)B * S;
    launch_pdl(scan_prefix_kernel, cdiv(n, 256), 256, 0, st, cs, cdt, state, state_in, A, per_state, B, S, per_ch, nc,
               fin);
    CUDA_CHECK_LAUNCH();
}

/* chunk length and count without an empty chunk */
static int chunk_len(int T, int *nc) {
    if (*nc < 1) *nc = 1;
    const int L = cdiv(T, *nc);
    *nc = cdiv(T, L);
    return L;
}

/* ---------------------------------------------------------------- Mamba1 */

/* One state update and the output, with every rounding explicit (no contraction left to the
 * compiler), so that the general scan and the decode step below give bit-identical states and y
 * however their loops are laid out. int8 pass: the simulation's exp(dt A) h + (dt B) u; FP16 pass:
 * exp(dt A) h + (dt u) B. A is pre-scaled by log2(e). */
static __device__ __forceinline__ float m1_update_sim(float h, float delta, float A, float Bn, float u) {
    return __fmaf_rn(ex2_ftz(__fmul_rn(delta, A)), h, __fmul_rn(__fmul_rn(delta, Bn), u));
}
static __device__ __forceinline__ float m1_update_f16(float h, float dt, float A, float Bn, float dx) {
    return __fmaf_rn(ex2_ftz(__fmul_rn(dt, A)), h, __fmul_rn(dx, Bn));
}
/* y = (C.h + D u) * SiLU(z) */
template <class In>
static __device__ __forceinline__ float m1_out(float part, float Dd, float u, bool gate, const In &z,
                                               typename In::raw_t zr) {
    const float y = __fmaf_rn(Dd, u, part);
    return gate ? __fmul_rn(y, d_silu(z.val(zr))) : y;
}

#define S1_THREADS 128
#define S1_TT 16 /* steps per shared tile; each thread prefetches its x, dt, z of a tile */

template <class In, class Out, int NPAD, bool OUT>
__global__ void __launch_bounds__(S1_THREADS) scan_m1_kernel(k_scan_m1_args<In, Out> a, int L) {
    dep_enter();
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
        const float An = (live && n < N) ? a.A[(size_t)dd * N + n] : 0.f;
        A[n] = An * LOG2E;
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
    const bool gate = a.z.p != NULL;
    const float xsc = a.x.scale(dd); /* the channel's scale of x */
    float sdt = 0.f;
    for (int tb = t0; tb < t1; tb += S1_TT) {
        const int nt = min(S1_TT, t1 - tb);
        const size_t row0 = (size_t)b * a.T + tb;
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < nt * NPAD; i += S1_THREADS) { /* rows >= nt are never read */
            const int tt = i / NPAD, n = i - tt * NPAD;
            const bool in = n < N;
            /* Mamba1's B and C take one scale (x_proj's output): val, not at */
            sB[tt][n] = in ? a.Bm.val(a.Bm.raw(row0 + tt, n)) : 0.f;
            if (OUT) sC[tt][n] = in ? a.Cm.val(a.Cm.raw(row0 + tt, n)) : 0.f;
        }
        /* this thread's x, dt (and z) for the tile, loaded before use so the loads overlap */
        typename In::raw_t xs[S1_TT], dts[S1_TT], zs[S1_TT];
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            const bool in = live && tt < nt;
            const size_t row = row0 + tt;
            xs[tt] = in ? a.x.raw(row, dd) : 0;
            dts[tt] = in ? a.dt.raw(row, dd) : 0;
            zs[tt] = (OUT && in && gate) ? a.z.raw(row, dd) : 0;
        }
        __syncthreads();
#pragma unroll
        for (int tt = 0; tt < S1_TT; tt++) {
            if (tt >= nt) break;
            const float u = a.x.val_s(xs[tt], xsc), dtv = a.dt.val(dts[tt]) + bias;
            float part = 0.f;
            if (In::sim) { /* the simulation's order (op_scan_m1): exp(dt A) h + (dt B) u */
                const float delta = fmaxf(d_softplus(dtv), 0.f);
                sdt += delta;
#pragma unroll
                for (int n = 0; n < NPAD; n++) {
                    h[n] = m1_update_sim(h[n], delta, A[n], sB[tt][n], u);
                    if (OUT) part = __fmaf_rn(h[n], sC[tt][n], part);
                }
            } else {
                const float dt = d_softplus(dtv), dx = __fmul_rn(dt, u);
                sdt += dt;
#pragma unroll
                for (int n = 0; n < NPAD; n++) {
                    h[n] = m1_update_f16(h[n], dt, A[n], sB[tt][n], dx);
                    if (OUT) part = __fmaf_rn(sC[tt][n], h[n], part);
                }
            }
            if (OUT && live) put_out(&a.y[(row0 + tt) * a.ldy + d], m1_out(part, Dd, u, gate, a.z, zs[tt]));
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


/* Decode (T = 1, nc = 1, N % 4 == 0): LPC = NPAD / 4 lanes per channel, each holding 4 states of
 * S1_BPT sequences, so that a warp reads and writes 8 channels' states as consecutive float4s (the
 * general kernel's thread per channel read 64-byte rows, most of each sector unused). S1_BPT = 1:
 * 4 sequences per thread (A, D and bias read once for them) was slower on the H200, 26.5 against
 * 18.7 us per layer at batch 64 (ncu, mamba-2.8b). C.h is summed in the general kernel's order,
 * n = 0, 1, ...: lane q continues the running sum of lane q-1 (LPC rounds of one shuffle), so
 * decode gives the prefill's values bit for bit. */
#define S1_BPT 1
template <class In, class Out, int NPAD>
__global__ void __launch_bounds__(S1_THREADS) scan_m1_step_kernel(k_scan_m1_args<In, Out> a) {
    dep_enter();
    constexpr int LPC = NPAD / 4;
    const int tid = blockIdx.x * S1_THREADS + threadIdx.x, b0 = blockIdx.y * S1_BPT, N = a.N;
    const int d = tid / LPC, q = tid % LPC, n0 = q * 4;
    const bool live = d < a.Di, has = live && n0 < N; /* whole warps stay for the shuffles */
    const int dd = live ? d : 0;
    const size_t S = (size_t)a.Di * N, sidx = (size_t)dd * N + n0;
    float A[4], h[S1_BPT][4];
#pragma unroll
    for (int j = 0; j < S1_BPT; j++) {
        float4 h4 = make_float4(0.f, 0.f, 0.f, 0.f);
        if (has && a.state_in && b0 + j < a.B) h4 = *(const float4 *)(a.state + (b0 + j) * S + sidx);
        h[j][0] = h4.x, h[j][1] = h4.y, h[j][2] = h4.z, h[j][3] = h4.w;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) A[i] = has ? a.A[sidx + i] * LOG2E : 0.f;
    const float bias = a.dt_bias ? a.dt_bias[dd] : 0.f, Dd = a.D ? a.D[dd] : 0.f;
    const bool gate = a.z.p != NULL;
    const int base = (threadIdx.x & 31) & ~(LPC - 1);
#pragma unroll
    for (int j = 0; j < S1_BPT; j++) {
        const size_t row = b0 + j;
        if (b0 + j >= a.B) break; /* the same for the whole block */
        const float u = a.x.at(row, dd), dtv = a.dt.at(row, dd) + bias;
        if (has) {
            const float delta = In::sim ? fmaxf(d_softplus(dtv), 0.f) : d_softplus(dtv);
            const float dx = __fmul_rn(delta, u);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float Bn = a.Bm.at(row, n0 + i);
                h[j][i] = In::sim ? m1_update_sim(h[j][i], delta, A[i], Bn, u) : m1_update_f16(h[j][i], delta, A[i], Bn, dx);
            }
        }
        float part = 0.f;
#pragma unroll
        for (int r = 0; r < LPC; r++) { /* round r: lane r of the channel adds its four terms */
            const float prev = __shfl_sync(0xffffffffu, part, base + (r ? r - 1 : 0));
            if (q == r && has) {
                part = r ? prev : 0.f;
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const float Cn = a.Cm.at(row, n0 + i);
                    part = In::sim ? __fmaf_rn(h[j][i], Cn, part) : __fmaf_rn(Cn, h[j][i], part);
                }
            }
        }
        if (!has) continue;
        *(float4 *)(a.state + row * S + sidx) = make_float4(h[j][0], h[j][1], h[j][2], h[j][3]);
        if (n0 + 4 >= N) /* the channel's last lane holds C.h */
            put_out(&a.y[row * a.ldy + d], m1_out(part, Dd, u, gate, a.z, gate ? a.z.raw(row, dd) : 0));
    }
}

template <class In, class Out, int NPAD>
static void scan_m1_run(const k_scan_m1_args<In, Out> &a, int L, cudaStream_t st) {
    if (a.nc > 1) {
        dim3 g1(cdiv(a.Di, S1_THREADS), a.B, a.nc - 1);
        launch_pdl(scan_m1_kernel<In, Out, NPAD, false>, g1, S1_THREADS, 0, st, a, L);
        CUDA_CHECK_LAUNCH();
        scan_prefix(a.cstate, a.cdt, a.state, a.state_in, a.A, 1, a.B, a.Di * a.N, a.N, a.nc, st);
    }
    if (a.T == 1 && a.nc == 1 && a.N % 4 == 0 && a.state) {
        dim3 g(cdiv((long)a.Di * (NPAD / 4), S1_THREADS), cdiv(a.B, S1_BPT));
        launch_pdl(scan_m1_step_kernel<In, Out, NPAD>, g, S1_THREADS, 0, st, a);
        CUDA_CHECK_LAUNCH();
        return;
    }
    dim3 g3(cdiv(a.Di, S1_THREADS), a.B, a.nc);
    launch_pdl(scan_m1_kernel<In, Out, NPAD, true>, g3, S1_THREADS, 0, st, a, L);
    CUDA_CHECK_LAUNCH();
}

/* What both scans check before they launch: the chunk length L of a's T tokens (a.nc set), or 0
 * when there is nothing to scan. The shapes were checked at upload; these are internal errors. */
template <class Args>
static int scan_chunking(Args &a, const char *who) {
    if (a.B < 1 || a.T < 1) return 0;
    const int L = chunk_len(a.T, &a.nc);
    if (a.nc > 1 && (!a.cstate || !a.cdt)) mq_die("%s: %d chunks without carries (internal error)", who, a.nc);
    if (a.N > 128) mq_die("%s: d_state %d > 128 (checked at upload)", who, a.N);
    return L;
}

#include "ssm/pscan.cuh"

template <class In, class Out>
static void scan_m1(const k_scan_m1_args<In, Out> &a0, cudaStream_t st) {
    k_scan_m1_args<In, Out> a = a0;
    if (a.par) {
        if (a.B > 0 && a.T > 0) pscan_m1(a, st);
        return;
    }
    const int L = scan_chunking(a, "k_scan_m1");
    if (!L) return;
    if (a.N <= 16) scan_m1_run<In, Out, 16>(a, L, st);
    else if (a.N <= 32) scan_m1_run<In, Out, 32>(a, L, st);
    else if (a.N <= 64) scan_m1_run<In, Out, 64>(a, L, st);
    else scan_m1_run<In, Out, 128>(a, L, st);
}


/* ---------------------------------------------------------------- Mamba2 */

#define S2_THREADS 256
#define S2_TT 32
#define S2_NPT 16

static size_t scan2_smem(int grp, bool out) {
    const int npad = grp * S2_NPT, pr = S2_THREADS / grp;
    return sizeof(float) * ((size_t)S2_TT * npad * (out ? 2 : 1) + (size_t)S2_TT * pr + 2 * S2_TT);
}

/* The state update and C dot of 4 states with every rounding explicit (no contraction left to the
 * compiler): h = dA h + (dt x) B; dot = ((h0 c0 + h1 c1) + h2 c2) + h3 c3. */
static __device__ __forceinline__ void m2_update4(float *h, float dA, float dx, float4 b) {
    h[0] = __fmaf_rn(dA, h[0], __fmul_rn(dx, b.x));
    h[1] = __fmaf_rn(dA, h[1], __fmul_rn(dx, b.y));
    h[2] = __fmaf_rn(dA, h[2], __fmul_rn(dx, b.z));
    h[3] = __fmaf_rn(dA, h[3], __fmul_rn(dx, b.w));
}
static __device__ __forceinline__ float m2_dot4(const float *h, float4 c) {
    return __fmaf_rn(h[3], c.w, __fmaf_rn(h[2], c.z, __fmaf_rn(h[1], c.y, __fmul_rn(h[0], c.x))));
}

template <class In, class Out, int GRP, bool OUT>
__global__ void __launch_bounds__(S2_THREADS, 2) scan_m2_kernel(k_scan_m2_args<In, Out> a, int L) {
    dep_enter();
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
            sB[i] = in ? a.Bm.at(row0 + tt, grp * N + n) : 0.f;
            if (OUT) sC[i] = in ? a.Cm.at(row0 + tt, grp * N + n) : 0.f;
        }
        for (int i = threadIdx.x; i < nt * PR; i += S2_THREADS) {
            const int tt = i / PR, r = i - tt * PR, pp = blockIdx.x * PR + r;
            sX[i] = (pp < P) ? a.x.at(row0 + tt, hd * P + pp) : 0.f;
        }
        if (threadIdx.x < S2_TT) {
            const int tt = threadIdx.x;
            float dt = 0.f;
            if (tt < nt) {
                dt = d_softplus(a.dt.at(row0 + tt, hd) + bias);
                dt = fminf(fmaxf(dt, a.lo), a.hi);
            }
            sDt[tt] = dt;
            sDA[tt] = expf(__fmul_rn(dt, Ah));
        }
        __syncthreads();
        for (int t4 = 0; t4 < nt; t4 += 4) {
            float acc[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                acc[u] = 0.f;
                const int tt = t4 + u;
                if (tt >= nt) continue; /* the same for the whole block */
                const float dt = sDt[tt], dA = sDA[tt], dx = __fmul_rn(sX[tt * PR + pr], dt);
                sdt += dt;
                const float4 *b4 = (const float4 *)(sB + tt * NPAD) + lane;
                const float4 *c4 = (const float4 *)(sC + tt * NPAD) + lane;
#pragma unroll
                for (int q = 0; q < S2_NPT / 4; q++) {
                    m2_update4(h + 4 * q, dA, dx, b4[q * GRP]);
                    if (OUT) acc[u] = __fadd_rn(acc[u], m2_dot4(h + 4 * q, c4[q * GRP]));
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
                            put_out(&a.y[(row0 + t4 + u) * a.ldy + (size_t)hd * P + p],
                                    __fmaf_rn(Dh, sX[(t4 + u) * PR + pr], acc[u]));
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


template <class In, class Out, int GRP>
static void scan_m2_run(const k_scan_m2_args<In, Out> &a, int L, cudaStream_t st) {
    constexpr int PR = S2_THREADS / GRP;
    const int Di = a.H * a.P;
    if (a.nc > 1) {
        dim3 g1(cdiv(a.P, PR), a.B * a.H, a.nc - 1);
        launch_pdl(scan_m2_kernel<In, Out, GRP, false>, g1, S2_THREADS, scan2_smem(GRP, false), st, a, L);
        CUDA_CHECK_LAUNCH();
        scan_prefix(a.cstate, a.cdt, a.state, a.state_in, a.A, 0, a.B, Di * a.N, a.P * a.N, a.nc, st);
    }
    /* no step kernel for decode: one reading B and C straight from global memory (int8 loads per
     * lane instead of the tile's shared float4s) took 162 us per layer at batch 64 on the H200
     * (mamba2-2.7b, ncu) where the general kernel takes ~139 (CUDA events), and make bench's
     * decode b=64 went 13.31 -> 14.64 ms; the general kernel serves T = 1 */
    dim3 g3(cdiv(a.P, PR), a.B * a.H, a.nc);
    launch_pdl(scan_m2_kernel<In, Out, GRP, true>, g3, S2_THREADS, scan2_smem(GRP, true), st, a, L);
    CUDA_CHECK_LAUNCH();
}

static inline int scan_m2_group(int N) { return N <= 16 ? 1 : N <= 32 ? 2 : N <= 64 ? 4 : 8; }

#include "ssm/ssd.cuh"

template <class In, class Out>
static void scan_m2(const k_scan_m2_args<In, Out> &a0, cudaStream_t st) {
    k_scan_m2_args<In, Out> a = a0;
    if (a.H % a.G) mq_die("k_scan_m2: %d heads in %d groups (checked at upload)", a.H, a.G);
    if (a.ssd_q > 0 && a.B > 0 && a.T > 0) {
        scan_m2_ssd(a, st);
        return;
    }
    const int L = scan_chunking(a, "k_scan_m2");
    if (!L) return;
    switch (scan_m2_group(a.N)) {
    case 1: scan_m2_run<In, Out, 1>(a, L, st); break;
    case 2: scan_m2_run<In, Out, 2>(a, L, st); break;
    case 4: scan_m2_run<In, Out, 4>(a, L, st); break;
    default: scan_m2_run<In, Out, 8>(a, L, st); break;
    }
}

#endif
