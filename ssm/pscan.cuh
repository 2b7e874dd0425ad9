/* Mamba1's prefill scan, parallel over time (as state-spaces/mamba's selective_scan): the recurrence
 * h_t = a_t h_{t-1} + b_t of each (channel, state) is a scan over the pairs (a, b) under (a1, b1)
 * then (a2, b2) = (a1 a2, a2 b1 + b2). Included by ssm/scan.cuh.
 *   A block of PS_CH warps takes PS_CH channels of one sequence and walks its tokens in chunks of
 *   PS_TC = 32 lanes x PS_ITEMS consecutive tokens; per state each lane composes its items' pairs,
 *   a warp shuffle scan gives every lane its items' start state from the carry, and the lane walks
 *   its items again for h and C.h. The carry (lane n holds state n) passes from chunk to chunk.
 * One exp per (token, channel, state) and no second pass, where the chunked sequential kernel
 * (scan.cuh) repeats all chunks but the last. A thread per token row loads the chunk (8 channels of
 * x, dt, z and the row's B, C: one vector load each where aligned) and writes its y row, so global
 * traffic stays coalesced in the token-major layout; delta = softplus(dt + bias) and SiLU(z) come
 * from tables (int8 pass: 256 codes per channel, built per block; FP16 pass: all 65536 FP16 values,
 * built once per device, when the bias is already in dt), the same functions of the same inputs as
 * the sequential kernel computes per element, whose cost they were. Same arithmetic per update (the
 * int8 pass in the simulation's order); only the composition differs: FP32 rounding distance. */
#ifndef MQ_SSM_PSCAN_CUH
#define MQ_SSM_PSCAN_CUH

#define PS_CH 8                    /* channels per block, a warp each; one 16-byte FP16 row load */
#define PS_ITEMS 8                 /* consecutive tokens per lane */
#define PS_TC (32 * PS_ITEMS)      /* tokens per chunk */
#define PS_THREADS (32 * PS_CH)    /* = PS_TC: a thread per token row when loading and writing */
#define PS_NMAX 16                 /* d_state: the carry is one lane's register per state */
#define PS_ROW (PS_TC + PS_TC / 8 + 4) /* floats per tile row: a 4-float pad per 32, rows 4 banks apart */

/* Column of token t in a tile row: lane l's 8 items start at l*8 + (l/4)*4, so the 8 lanes of each
 * 128-bit shared load phase hit 32 distinct banks; linear over a lane's items. */
static __device__ __forceinline__ int ps_col(int t) { return t + (t >> 5) * 4; }

/* int8 pass: delta of code q of channel k (bias and clamp in) and SiLU of z code q, at q + 128; the
 * scale of x of channel k */
template <bool TAB>
struct ps_tabs { float sp[PS_CH][256], silu[256], xs[PS_CH]; };
template <>
struct ps_tabs<false> {};

template <class In>
struct ps_smem {
    float B[PS_NMAX][PS_ROW], C[PS_NMAX][PS_ROW];
    float delta[PS_CH][PS_ROW], u[PS_CH][PS_ROW];
    float g[PS_CH][PS_ROW]; /* SiLU(z) (1 without a gate); then the lane's y, written in place */
    ps_tabs<In::sim> tab;
};

/* 8 consecutive activations of row r from column c as stored (FP16 bits, int8 codes), zeros from
 * column c + nv on; one vector load when vec (row and column aligned). */
static __device__ __forceinline__ void ps_fetch8(const k_in_f16 &in, size_t r, int c, int nv, bool vec,
                                                 unsigned short (&v)[8]) {
    const half *src = in.p + r * in.ld + c;
    if (vec && nv >= 8) {
        const uint4 w = *(const uint4 *)src;
        const unsigned u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; i++) v[2 * i] = (unsigned short)(u[i] & 0xffff), v[2 * i + 1] = (unsigned short)(u[i] >> 16);
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = i < nv ? __half_as_ushort(src[i]) : 0;
}
static __device__ __forceinline__ void ps_fetch8(const k_in_i8 &in, size_t r, int c, int nv, bool vec, int (&v)[8]) {
    const int8_t *src = in.p + r * in.ld + c;
    if (vec && nv >= 8) {
        int8_t q[8];
        *(uint2 *)q = *(const uint2 *)src;
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = q[i];
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = i < nv ? src[i] : 0;
}
static __device__ __forceinline__ float ps_val(const k_in_f16 &, unsigned short v) { return __half2float(__ushort_as_half(v)); }
static __device__ __forceinline__ float ps_val(const k_in_i8 &in, int v) { return in.val(v); }
template <class In>
struct ps_raw {
    typedef unsigned short t;
};
template <>
struct ps_raw<k_in_i8> {
    typedef int t;
};

/* delta and SiLU(z) of stored values: the tables, or (FP16 with a separate bias: tab NULL) the function */
static __device__ __forceinline__ float ps_delta(const ps_smem<k_in_i8> &s, const float *, const k_in_i8 &, float,
                                                 int k, int v) {
    return s.tab.sp[k][v + 128];
}
static __device__ __forceinline__ float ps_delta(const ps_smem<k_in_f16> &, const float *tab, const k_in_f16 &in,
                                                 float bias, int, unsigned short v) {
    return tab ? __ldg(tab + v) : d_softplus(ps_val(in, v) + bias);
}
static __device__ __forceinline__ float ps_silu(const ps_smem<k_in_i8> &s, const float *, const k_in_i8 &, int v) {
    return s.tab.silu[v + 128];
}
/* the value of a stored x of channel k (int8: the channel's scale, quamba2's clustered x) */
static __device__ __forceinline__ float ps_xval(const ps_smem<k_in_i8> &s, const k_in_i8 &, int k, int v) {
    return (float)v * s.tab.xs[k];
}
static __device__ __forceinline__ float ps_xval(const ps_smem<k_in_f16> &, const k_in_f16 &in, int, unsigned short v) {
    return ps_val(in, v);
}
static __device__ __forceinline__ float ps_silu(const ps_smem<k_in_f16> &, const float *tab, const k_in_f16 &in,
                                                unsigned short v) {
    return tab ? __ldg(tab + 65536 + v) : d_silu(ps_val(in, v));
}
/* the int8 tables of channels c0.. (the functions the sequential kernel applies per element) */
template <class Out>
static __device__ void ps_build(ps_smem<k_in_i8> &s, const k_scan_m1_args<k_in_i8, Out> &a, int c0) {
    for (int j = threadIdx.x; j < PS_CH * 256; j += PS_THREADS) {
        const int k = j >> 8, q = (j & 255) - 128, ch = min(c0 + k, a.Di - 1);
        s.tab.sp[k][j & 255] = fmaxf(d_softplus(a.dt.val(q) + (a.dt_bias ? a.dt_bias[ch] : 0.f)), 0.f);
        if (j < 256 && a.z.p) s.tab.silu[j] = d_silu(a.z.val(q));
        if (j < PS_CH) s.tab.xs[j] = a.x.scale(min(c0 + j, a.Di - 1));
    }
}
template <class Out>
static __device__ void ps_build(ps_smem<k_in_f16> &, const k_scan_m1_args<k_in_f16, Out> &, int) {}

static __device__ __forceinline__ void ps_load8(float (&v)[PS_ITEMS], const float *row, int lane) {
    const float4 *p = (const float4 *)(row + ps_col(lane * PS_ITEMS));
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/* B or C of token row r (nv of its PS_NMAX values, 0 past T) into column col of a tile */
template <class In>
static __device__ __forceinline__ void ps_row_tile(float (*tile)[PS_ROW], const In &m, size_t r, int nv, bool vec,
                                                   int col) {
#pragma unroll
    for (int j = 0; j < PS_NMAX; j += 8) {
        typename ps_raw<In>::t v[8];
        ps_fetch8(m, r, j, nv - j, vec, v);
#pragma unroll
        for (int i = 0; i < 8; i++) tile[j + i][col] = ps_val(m, v[i]);
    }
}

/* The chunk from token t0: thread t's row into the tiles (zeros past T: delta 0 is the pair (1, 0)) */
template <class In, class Out>
static __device__ void ps_load_chunk(ps_smem<In> &s, const k_scan_m1_args<In, Out> &a, const float *tab, int c0,
                                     int t0, bool vec) {
    const int t = threadIdx.x, col = ps_col(t), nv = t0 + t < a.T ? min(PS_CH, a.Di - c0) : 0;
    const size_t r = (size_t)blockIdx.y * a.T + t0 + t;
    typename ps_raw<In>::t x[8], dt[8], z[8];
    if (nv > 0) {
        ps_fetch8(a.x, r, c0, nv, vec, x);
        ps_fetch8(a.dt, r, c0, nv, vec, dt);
        if (a.z.p) ps_fetch8(a.z, r, c0, nv, vec, z);
    }
#pragma unroll
    for (int k = 0; k < PS_CH; k++) {
        const bool in = k < nv;
        const float bias = in && a.dt_bias ? a.dt_bias[c0 + k] : 0.f;
        s.delta[k][col] = in ? ps_delta(s, a.dt_bias ? NULL : tab, a.dt, bias, k, dt[k]) : 0.f;
        s.u[k][col] = in ? ps_xval(s, a.x, k, x[k]) : 0.f;
        s.g[k][col] = in && a.z.p ? ps_silu(s, tab, a.z, z[k]) : 1.f;
    }
    const bool rin = t0 + t < a.T, bvec = vec && a.N == PS_NMAX;
    ps_row_tile(s.B, a.Bm, r, rin ? a.N : 0, bvec, col);
    ps_row_tile(s.C, a.Cm, r, rin ? a.N : 0, bvec, col);
}

/* thread t's y row of the chunk (from the g tile) */
static __device__ __forceinline__ void ps_put8(half *dst, const float (&y)[8], int nv, bool vec) {
    if (vec && nv >= 8) {
        uint4 w;
        half2 *h = (half2 *)&w;
#pragma unroll
        for (int i = 0; i < 4; i++) h[i] = __floats2half2_rn(y[2 * i], y[2 * i + 1]);
        *(uint4 *)dst = w;
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
        if (i < nv) dst[i] = __float2half(y[i]);
}

template <class In, class Out, int MINB>
__global__ void __launch_bounds__(PS_THREADS, MINB) pscan_m1_kernel(k_scan_m1_args<In, Out> a, const float *tab) {
    extern __shared__ __align__(16) unsigned char ps_shared[];
    ps_smem<In> &s = *(ps_smem<In> *)ps_shared;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, b = blockIdx.y, N = a.N;
    const int c0 = blockIdx.x * PS_CH, c = c0 + w;
    const bool live = c < a.Di;
    const bool vec = in_vec8_ok(a.x) && in_vec8_ok(a.dt) && (!a.z.p || in_vec8_ok(a.z)) && in_vec8_ok(a.Bm) &&
                     in_vec8_ok(a.Cm) && a.ldy % 8 == 0 && !((size_t)a.y & 15);
    ps_build(s, a, c0);
    /* lane n < N: A[c][n] (log2 e folded in) and the carry h[c][n] */
    float A2 = 0.f, carry = 0.f;
    if (live && lane < N) {
        A2 = __fmul_rn(a.A[(size_t)c * N + lane], LOG2E);
        if (a.state_in) carry = a.state[((size_t)b * a.Di + c) * N + lane];
    }
    const float Dd = live && a.D ? a.D[c] : 0.f;
    for (int t0 = 0; t0 < a.T; t0 += PS_TC) {
        __syncthreads(); /* the tables are built; the previous chunk's y is written out */
        ps_load_chunk(s, a, tab, c0, t0, vec);
        __syncthreads();
        if (live) {
            float dl[PS_ITEMS], u[PS_ITEMS], y[PS_ITEMS];
            ps_load8(dl, s.delta[w], lane);
            ps_load8(u, s.u[w], lane);
            float dsum = 0.f; /* the lane's decay is exp(A sum delta): one exp per state for the scan */
#pragma unroll
            for (int i = 0; i < PS_ITEMS; i++) dsum += dl[i], y[i] = 0.f;
            for (int n = 0; n < N; n++) {
                const float An = __shfl_sync(0xffffffffu, A2, n), h0 = __shfl_sync(0xffffffffu, carry, n);
                float Bv[PS_ITEMS], ea[PS_ITEMS], eb[PS_ITEMS];
                ps_load8(Bv, s.B[n], lane);
#pragma unroll
                for (int i = 0; i < PS_ITEMS; i++) { /* the pair of token i, as m1_update_sim / _f16 */
                    ea[i] = ex2_ftz(__fmul_rn(dl[i], An));
                    eb[i] = In::sim ? __fmul_rn(__fmul_rn(dl[i], Bv[i]), u[i]) : __fmul_rn(__fmul_rn(dl[i], u[i]), Bv[i]);
                }
                float P = ex2_ftz(__fmul_rn(dsum, An)), S = eb[0]; /* the lane's items composed */
#pragma unroll
                for (int i = 1; i < PS_ITEMS; i++) S = __fmaf_rn(ea[i], S, eb[i]);
#pragma unroll
                for (int off = 1; off < 32; off *= 2) { /* inclusive scan over the lanes */
                    const float Pp = __shfl_up_sync(0xffffffffu, P, off), Sp = __shfl_up_sync(0xffffffffu, S, off);
                    if (lane >= off) S = __fmaf_rn(P, Sp, S), P = __fmul_rn(P, Pp);
                }
                const float hend = __fmaf_rn(P, h0, S), up = __shfl_up_sync(0xffffffffu, hend, 1);
                const float next = __shfl_sync(0xffffffffu, hend, 31);
                if (lane == n) carry = next;
                float h = lane ? up : h0, Cv[PS_ITEMS];
                ps_load8(Cv, s.C[n], lane);
#pragma unroll
                for (int i = 0; i < PS_ITEMS; i++) {
                    h = __fmaf_rn(ea[i], h, eb[i]);
                    y[i] = __fmaf_rn(Cv[i], h, y[i]);
                }
            }
            /* y = (C.h + D u) * SiLU(z), into the gate's slots (each lane its own) */
            float *gy = s.g[w] + ps_col(lane * PS_ITEMS);
#pragma unroll
            for (int i = 0; i < PS_ITEMS; i++) gy[i] = __fmul_rn(__fmaf_rn(Dd, u[i], y[i]), gy[i]);
        }
        __syncthreads();
        const int t = threadIdx.x, col = ps_col(t);
        if (t0 + t < a.T && c0 < a.Di) {
            float yr[8];
#pragma unroll
            for (int k = 0; k < PS_CH; k++) yr[k] = s.g[k][col];
            ps_put8(a.y + ((size_t)b * a.T + t0 + t) * a.ldy + c0, yr, min(PS_CH, a.Di - c0), vec);
        }
    }
    if (live && lane < N && a.state) a.state[((size_t)b * a.Di + c) * N + lane] = carry;
}

/* delta and SiLU of every FP16 value, [2][65536], once per device: process-lifetime (never freed) */
static __global__ void ps_fill_f16(float *tab) {
    const int v = blockIdx.x * blockDim.x + threadIdx.x;
    const float x = __half2float(__ushort_as_half((unsigned short)v));
    tab[v] = d_softplus(x), tab[65536 + v] = d_silu(x);
}
static const float *ps_f16_tables(void) {
    static float *tabs[64];
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev >= 64) return NULL; /* computed per element then */
    if (!tabs[dev]) {
        float *t = NULL;
        CUDA_CHECK(cudaMalloc(&t, sizeof(float) * 2 * 65536));
        ps_fill_f16<<<256, 256>>>(t);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaDeviceSynchronize()); /* before any stream reads it */
        tabs[dev] = t;
    }
    return tabs[dev];
}

template <class In, class Out>
static void pscan_m1(const k_scan_m1_args<In, Out> &a, cudaStream_t st) {
    static_assert(PS_THREADS == PS_TC && PS_CH == 8, "a thread per token row of 8 channels");
    if (a.N > PS_NMAX) mq_die("k_scan_m1: the parallel scan takes d_state <= %d, not %d (internal error)", PS_NMAX, a.N);
    const size_t smem = sizeof(ps_smem<In>); /* 64 KB (FP16) / 73 KB (int8): three blocks per SM */
    const float *tab = In::sim ? NULL : ps_f16_tables();
    const dim3 g(cdiv(a.Di, PS_CH), a.B);
    /* 3 blocks per SM (80 registers, a few spills in the loads) or 2 (no spills), whichever fills its
     * last wave better, 3 on a tie: H200 int8 scan of a 1 x 1024 prefill, mamba-2.8b (640 blocks:
     * 81% either way) 7.22 ms at 3 against 7.55 at 2; mamba-1.4b (512 blocks: 65% at 3, 97% at 2)
     * 4.82 against 3.87 */
    static int sms[64];
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 64 && !sms[dev]) CUDA_CHECK(cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev));
    const long blocks = (long)g.x * g.y, sm = dev < 64 ? sms[dev] : 132;
    const long w3 = (blocks + 3 * sm - 1) / (3 * sm) * 3 * sm, w2 = (blocks + 2 * sm - 1) / (2 * sm) * 2 * sm;
    if (w2 < w3) { /* blocks / w2 > blocks / w3 */
        CUDA_CHECK(cudaFuncSetAttribute(pscan_m1_kernel<In, Out, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        pscan_m1_kernel<In, Out, 2><<<g, PS_THREADS, smem, st>>>(a, tab);
    } else {
        CUDA_CHECK(cudaFuncSetAttribute(pscan_m1_kernel<In, Out, 3>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        pscan_m1_kernel<In, Out, 3><<<g, PS_THREADS, smem, st>>>(a, tab);
    }
    CUDA_CHECK_LAUNCH();
}

#endif
