/* Mamba2's prefill scan in the chunked form of the state-space duality (Dao & Gu 2024, "Transformers
 * are SSMs", section 6), on the tensor cores: inside a chunk of Q tokens y = (C B^T o L) (dt x) with
 * L[t][s] = exp(A sum dt over (s, t]), states passed between chunks. Included by ssm/scan.cuh.
 *   1. ssd_state_kernel: per (p block, sequence*head, chunk) the chunk's end state from zero,
 *      sum_s exp(A sum dt over (s, end]) dt_s B_s x_s^T, an [N x 64] x [64 x P] matmul per tile.
 *   2. scan_prefix (scan.cuh): end states -> start states of every chunk, and the final state.
 *   3. ssd_out_kernel: per (p block, sequence*head, 64-token tile) y = the tile's intra-chunk part
 *      (C B^T of the chunk's tiles so far, weighted, times x) + exp(A sum dt) C h_start + D x.
 * Every matmul operand is exact in FP16 or split into hi + lo halves (v - hi in FP16 again): B, C and
 * x as they are (FP16 pass) or as int8 codes (int8 pass, the scales applied in FP32); the weighted
 * C B^T, the weighted B and the start state hi + lo. The sums are FP32, so y is at FP32 rounding
 * distance from the sequential scan, not at FP16's. The chunk length is config.json's chunk_size (a
 * multiple of 64, at most 256; k_scan_ssd_chunk). */
#ifndef MQ_SSM_SSD_CUH
#define MQ_SSM_SSD_CUH

#define SSD_TQ 64   /* tokens per tile */
#define SSD_TP 64   /* p columns per block */
#define SSD_THREADS 128
#define SSD_QMAX 256 /* longest chunk */
#define SSD_LDT (SSD_TQ + 8) /* halves per row of a [.][token] tile: rows 4 banks apart */

/* What the tiles hold: FP16 activations as they are, int8 codes as FP16 (exact); the scales turn a
 * tile's value into the activation: B and C one per SSD group (the loader's scale of the group's
 * first column), x one per tensor (ssd_xscale, folded into the weights) or one per column p
 * (ssd_xcol, applied to the sums of column p). ssd_code8: 8
 * consecutive columns from c, zeros from column c + nv on; one 16-byte (FP16) or 8-byte (int8) load
 * when vec (the row and column are aligned). */
static __device__ __forceinline__ float ssd_xscale(const k_in_f16 &) { return 1.f; }
static __device__ __forceinline__ float ssd_xscale(const k_in_i8 &in) { return in.sv ? 1.f : in.s; }
static __device__ __forceinline__ float ssd_xcol(const k_in_f16 &, float v, int) { return v; }
static __device__ __forceinline__ float ssd_xcol(const k_in_i8 &in, float v, int c) {
    return in.sv ? __fmul_rn(v, __ldg(in.sv + c)) : v;
}
static __device__ __forceinline__ uint4 ssd_code8(const k_in_f16 &in, size_t r, int c, int nv, bool vec) {
    const half *src = in.p + r * in.ld + c;
    if (vec && nv >= 8) return *(const uint4 *)src;
    uint4 o;
    half *h = (half *)&o;
#pragma unroll
    for (int i = 0; i < 8; i++) h[i] = i < nv ? src[i] : __float2half(0.f);
    return o;
}
/* What a tile's fetch holds in registers until it is put in shared memory: the loaded bits, so the
 * conversion of int8 codes waits for their load only at the put (ssd_raw8 / ssd_cvt8). */
template <class In>
struct ssd_raw {
    typedef uint4 t; /* 8 FP16 values */
};
template <>
struct ssd_raw<k_in_i8> {
    typedef uint2 t; /* 8 int8 codes */
};
static __device__ __forceinline__ uint4 ssd_raw8(const k_in_f16 &in, size_t r, int c, int nv, bool vec) {
    return ssd_code8(in, r, c, nv, vec);
}
static __device__ __forceinline__ uint4 ssd_cvt8(const k_in_f16 &, uint4 v) { return v; }
static __device__ __forceinline__ uint2 ssd_raw8(const k_in_i8 &in, size_t r, int c, int nv, bool vec) {
    const int8_t *src = in.p + r * in.ld + c;
    if (vec && nv >= 8) return *(const uint2 *)src;
    int8_t q[8];
#pragma unroll
    for (int i = 0; i < 8; i++) q[i] = i < nv ? src[i] : 0;
    return *(const uint2 *)q;
}
static __device__ __forceinline__ uint4 ssd_cvt8(const k_in_i8 &, uint2 w) {
    int8_t q[8];
    *(uint2 *)q = w;
    uint4 o;
    half2 *h = (half2 *)&o;
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __halves2half2(__int2half_rn(q[2 * i]), __int2half_rn(q[2 * i + 1]));
    return o;
}
static __device__ __forceinline__ uint4 ssd_code8(const k_in_i8 &in, size_t r, int c, int nv, bool vec) {
    return ssd_cvt8(in, ssd_raw8(in, r, c, nv, vec));
}

/* mma accumulators of 8 n8 tiles */
static __device__ __forceinline__ void zero_acc(float (&c)[8][4]) {
#pragma unroll
    for (int j = 0; j < 8; j++) c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.f;
}

static __device__ __forceinline__ unsigned h2_bits(half2 h) { return *(const unsigned *)&h; }
/* (v0, v1) as two half2 words hi + lo whose sum carries ~22 bits of each value */
static __device__ __forceinline__ void split_h2(float v0, float v1, unsigned &hi, unsigned &lo) {
    const half2 h = __floats2half2_rn(v0, v1);
    const float2 f = __half22float2(h);
    hi = h2_bits(h), lo = h2_bits(__floats2half2_rn(v0 - f.x, v1 - f.y));
}
/* the A fragment of rows r0.. and columns k0.. of a row-major [rows][ld] FP16 tile */
static __device__ __forceinline__ void ld_frag_a(unsigned (&a)[4], const half *s, int ld, int r0, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const half *p = s + (r0 + g) * ld + k0 + 2 * t;
    a[0] = *(const unsigned *)p, a[1] = *(const unsigned *)(p + 8 * ld);
    a[2] = *(const unsigned *)(p + 8), a[3] = *(const unsigned *)(p + 8 * ld + 8);
}
/* the B fragment of columns n0.. and rows k0.. of B stored n-major, [n][ld] with k contiguous */
static __device__ __forceinline__ void ld_frag_b(unsigned &b0, unsigned &b1, const half *s, int ld, int n0, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const half *p = s + (n0 + g) * ld + k0 + 2 * t;
    b0 = *(const unsigned *)p, b1 = *(const unsigned *)(p + 8);
}

/* Fragments of an operand stored k-major ([k][ld], the tiles of tokens: x, weighted B) through
 * ldmatrix.trans: the A fragment of rows m0.. and columns k0.., or the B fragments of columns n0.. and
 * n0 + 8.. (b[0], b[1] and b[2], b[3]) and rows k0.. */
static __device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], const half *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
static __device__ __forceinline__ void ld_frag_a_kmajor(unsigned (&a)[4], const half *s, int ld, int m0, int k0) {
    const int l = threadIdx.x & 31, mat = l >> 3;
    ldsm_x4_trans(a, s + (k0 + (l & 7) + (mat >> 1) * 8) * ld + m0 + (mat & 1) * 8);
}
static __device__ __forceinline__ void ld_frag_b2_kmajor(unsigned (&b)[4], const half *s, int ld, int n0, int k0) {
    const int l = threadIdx.x & 31, mat = l >> 3;
    ldsm_x4_trans(b, s + (k0 + (l & 7) + (mat & 1) * 8) * ld + n0 + (mat >> 1) * 8);
}

/* dt of the m tokens from row r0 (the chunk's first) into sDt, clamped softplus as the sequential
 * kernel, and sS[i] = log2 of the decay from the chunk's start through token i (inclusive running
 * sum of dt A log2 e). Both kernels run this code over the same chunk: their decays agree bit for bit. */
template <class In, class Out>
static __device__ void ssd_decay(const k_scan_m2_args<In, Out> &a, size_t r0, int m, int hd, float *sDt, float *sS) {
    const float bias = a.dt_bias ? a.dt_bias[hd] : 0.f, A2 = __fmul_rn(a.A[hd], LOG2E);
    for (int i = threadIdx.x; i < m; i += blockDim.x) {
        float dt = d_softplus(a.dt.at(r0 + i, hd) + bias);
        dt = fminf(fmaxf(dt, a.lo), a.hi);
        sDt[i] = dt, sS[i] = __fmul_rn(dt, A2);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        float carry = 0.f;
        for (int base = 0; base < m; base += 32) {
            const int i = base + lane;
            float v = i < m ? sS[i] : 0.f;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float u = __shfl_up_sync(0xffffffffu, v, o);
                if (lane >= o) v = __fadd_rn(v, u);
            }
            v = __fadd_rn(v, carry);
            if (i < m) sS[i] = v;
            carry = __shfl_sync(0xffffffffu, v, 31);
        }
    }
    __syncthreads();
}

static size_t ssd_state_smem(int NP) {
    return sizeof(half) * (2 * (size_t)SSD_TQ * (NP + 8) + SSD_TQ * SSD_LDT) + sizeof(float) * (2 * SSD_QMAX + SSD_TQ);
}
static size_t ssd_out_smem(int NP) {
    return sizeof(half) * ((size_t)(2 * SSD_TQ + SSD_TP) * (NP + 8) + SSD_TQ * SSD_LDT) + sizeof(float) * 2 * SSD_QMAX;
}

/* Rows [row0, row0 + 64) of a token tile (rows from nrows on zero) into s [64][ld]: columns col0 +
 * [0, NP) of `in` (zero from ncol on; FP16 or int8 codes as FP16), 8 columns per load. */
template <class In>
static __device__ __forceinline__ void ssd_stage(half *s, int ld, const In &in, size_t row0, int nrows, int col0, int ncol,
                                                 int NP, bool vec) {
    const int per = NP / 8;
    for (int i = threadIdx.x; i < SSD_TQ * per; i += SSD_THREADS) {
        const int r = i / per, c = (i - r * per) * 8;
        const uint4 v = r < nrows && c < ncol ? ssd_code8(in, row0 + r, col0 + c, ncol - c, vec) : make_uint4(0, 0, 0, 0);
        *(uint4 *)(s + r * ld + c) = v;
    }
}

/* The same in two steps, so that a tile's global loads fly while the previous tile multiplies:
 * ssd_fetch into NS registers (NS loads of 8 columns per thread; B: 8 for NP <= 128), ssd_put into s. */
template <int NS, class In>
static __device__ __forceinline__ void ssd_fetch(typename ssd_raw<In>::t (&r)[NS], const In &in, size_t row0, int nrows,
                                                 int col0, int ncol, int per, bool vec) {
#pragma unroll
    for (int j = 0; j < NS; j++) {
        const int i = threadIdx.x + j * SSD_THREADS, rr = i / per, c = (i - rr * per) * 8;
        r[j] = i < SSD_TQ * per && rr < nrows && c < ncol ? ssd_raw8(in, row0 + rr, col0 + c, ncol - c, vec)
                                                         : typename ssd_raw<In>::t{};
    }
}
template <int NS, class In>
static __device__ __forceinline__ void ssd_put(half *s, int ld, const In &in, const typename ssd_raw<In>::t (&r)[NS],
                                               int per) {
#pragma unroll
    for (int j = 0; j < NS; j++) {
        const int i = threadIdx.x + j * SSD_THREADS, rr = i / per, c = (i - rr * per) * 8;
        if (i < SSD_TQ * per) *(uint4 *)(s + rr * ld + c) = ssd_cvt8(in, r[j]);
    }
}

/* The end state of chunk blockIdx.z scanned from zero into cstate[k] ([B][H][P][N] per chunk), its dt
 * sum into cdt[k][b][h]: the [N x 64] x [64 x P] products of the weighted B and x tiles. The warps
 * split the state rows n by 16 (m-tiles warp, warp + 4); each holds all 64 p columns of the block. */
template <class In, class Out>
__global__ void __launch_bounds__(SSD_THREADS) ssd_state_kernel(k_scan_m2_args<In, Out> a, int Q, int NP) {
    extern __shared__ __align__(16) unsigned char ssd_smem[];
    const int LDN = NP + 8;
    half *sBh = (half *)ssd_smem, *sBl = sBh + SSD_TQ * LDN; /* [TQ][LDN]: weighted B, hi and lo */
    half *sX = sBl + SSD_TQ * LDN;                          /* [TQ][LDT]: x */
    float *sDt = (float *)(sX + SSD_TQ * SSD_LDT), *sS = sDt + SSD_QMAX, *sW = sS + SSD_QMAX;
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const int p0 = blockIdx.x * SSD_TP, b = blockIdx.y / a.H, hd = blockIdx.y % a.H, k = blockIdx.z;
    const int grp = hd / (a.H / a.G), N = a.N, P = a.P, nmt = NP / 16, per = NP / 8;
    const int c0 = k * Q, m = min(Q, a.T - c0);
    const bool vb = in_vec8_ok(a.Bm) && N % 8 == 0, vx = in_vec8_ok(a.x) && P % 8 == 0;
    const size_t r0 = (size_t)b * a.T + c0;
    ssd_decay(a, r0, m, hd, sDt, sS);
    const float last = sS[m - 1], scale = __fmul_rn(a.Bm.scale(grp * N), ssd_xscale(a.x));
    float acc[2][8][4];
    zero_acc(acc[0]), zero_acc(acc[1]);
    for (int j0 = 0; j0 < m; j0 += SSD_TQ) {
        if (threadIdx.x < SSD_TQ) { /* exp(A sum dt over (s, end]) dt_s, and the scales */
            const int s = j0 + threadIdx.x;
            sW[threadIdx.x] = s < m ? __fmul_rn(__fmul_rn(ex2_ftz(last - sS[s]), sDt[s]), scale) : 0.f;
        }
        __syncthreads(); /* sW, and the previous tile's readers are done */
        for (int i = threadIdx.x; i < SSD_TQ * per; i += SSD_THREADS) {
            const int r = i / per, c = (i - r * per) * 8;
            uint4 hi = make_uint4(0, 0, 0, 0), lo = hi;
            if (j0 + r < m && c < N) {
                const uint4 v = ssd_code8(a.Bm, r0 + j0 + r, grp * N + c, N - c, vb);
                const half2 *h = (const half2 *)&v;
                unsigned *ph = (unsigned *)&hi, *pl = (unsigned *)&lo;
                const float w = sW[r];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float2 f = __half22float2(h[e]);
                    split_h2(__fmul_rn(f.x, w), __fmul_rn(f.y, w), ph[e], pl[e]);
                }
            }
            *(uint4 *)(sBh + r * LDN + c) = hi, *(uint4 *)(sBl + r * LDN + c) = lo;
        }
        ssd_stage(sX, SSD_LDT, a.x, r0 + j0, m - j0, hd * P + p0, P - p0, SSD_TP, vx);
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < SSD_TQ / 16; ks++) {
            unsigned bf[4][4];
#pragma unroll
            for (int pt = 0; pt < 4; pt++) ld_frag_b2_kmajor(bf[pt], sX, SSD_LDT, pt * 16, ks * 16);
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const int mt = warp + 4 * mi;
                if (mt >= nmt) break;
                unsigned ah[4], al[4];
                ld_frag_a_kmajor(ah, sBh, LDN, mt * 16, ks * 16);
                ld_frag_a_kmajor(al, sBl, LDN, mt * 16, ks * 16);
#pragma unroll
                for (int pt = 0; pt < 8; pt++) {
                    mma_f16(acc[mi][pt], ah, bf[pt / 2][(pt & 1) * 2], bf[pt / 2][(pt & 1) * 2 + 1]);
                    mma_f16(acc[mi][pt], al, bf[pt / 2][(pt & 1) * 2], bf[pt / 2][(pt & 1) * 2 + 1]);
                }
            }
        }
    }
    float *cs = a.cstate + (size_t)k * a.B * a.H * P * N + ((size_t)b * a.H + hd) * P * N;
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int pt = 0; pt < 8; pt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int n = (warp + 4 * mi) * 16 + g + (e >= 2 ? 8 : 0), p = p0 + pt * 8 + 2 * t + (e & 1);
                if (n < N && p < P) cs[(size_t)p * N + n] = ssd_xcol(a.x, acc[mi][pt][e], hd * P + p);
            }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        float sum = 0.f;
        for (int i = 0; i < m; i++) sum = __fadd_rn(sum, sDt[i]);
        a.cdt[((size_t)k * a.B + b) * a.H + hd] = sum;
    }
}

/* y of the 64-token tile blockIdx.z, p columns blockIdx.x * 64.., from the chunk's tiles up to this
 * one and the chunk's start state (cstate[k] after scan_prefix). Warp w owns the tile's rows
 * 16w..16w+15 and all 64 p columns. */
/* 3 blocks per SM (their shared memory allows no more): ptxas caps the registers at 168 with a few
 * spills; without the cap (228 registers, 2 blocks) the prefill measured slower (H200, mamba2-2.7b
 * FP16 1x1024 24.04 against 23.37 ms). */
template <class In, class Out>
__global__ void __launch_bounds__(SSD_THREADS, 3) ssd_out_kernel(k_scan_m2_args<In, Out> a, int Q, int NP) {
    extern __shared__ __align__(16) unsigned char ssd_smem[];
    const int LDN = NP + 8;
    half *sC = (half *)ssd_smem;   /* [TQ][LDN]: C of the tile's tokens */
    half *sB = sC + SSD_TQ * LDN;  /* [TQ][LDN]: B of a tile of earlier tokens; then h_start hi [TP][LDN] */
    half *sHl = sB + SSD_TQ * LDN; /* [TP][LDN]: h_start lo */
    half *sX = sHl + SSD_TP * LDN; /* [TQ][LDT]: x of the earlier tile */
    float *sDt = (float *)(sX + SSD_TQ * SSD_LDT), *sS = sDt + SSD_QMAX;
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const int p0 = blockIdx.x * SSD_TP, b = blockIdx.y / a.H, hd = blockIdx.y % a.H;
    const int grp = hd / (a.H / a.G), N = a.N, P = a.P, nks = NP / 16;
    const int t0 = blockIdx.z * SSD_TQ, k = t0 / Q, c0 = k * Q, nt = min(SSD_TQ, a.T - t0), m = t0 + nt - c0;
    const bool vb = in_vec8_ok(a.Bm) && N % 8 == 0, vc = in_vec8_ok(a.Cm) && N % 8 == 0;
    const bool vx = in_vec8_ok(a.x) && P % 8 == 0;
    const size_t rs = (size_t)b * a.T; /* row of the sequence's first token */
    ssd_decay(a, rs + c0, m, hd, sDt, sS);
    const float scale = __fmul_rn(__fmul_rn(a.Cm.scale(grp * N), a.Bm.scale(grp * N)), ssd_xscale(a.x));
    ssd_stage(sC, LDN, a.Cm, rs + t0, nt, grp * N, N, NP, vc);
    const int ra = t0 - c0 + warp * 16 + g; /* chunk index of the lane's first row; the second is ra + 8 */
    float y[8][4];
    zero_acc(y);
    typename ssd_raw<In>::t rb[8], rx[SSD_TQ * SSD_TP / 8 / SSD_THREADS];
    ssd_fetch(rb, a.Bm, rs + c0, a.T - c0, grp * N, N, NP / 8, vb);
    ssd_fetch(rx, a.x, rs + c0, a.T - c0, hd * P + p0, P - p0, SSD_TP / 8, vx);
    for (int j0 = c0; j0 <= t0; j0 += SSD_TQ) {
        const bool diag = j0 == t0;
        __syncthreads(); /* the previous tile's readers are done (and sC, sDt, sS are written) */
        ssd_put(sB, LDN, a.Bm, rb, NP / 8);
        ssd_put(sX, SSD_LDT, a.x, rx, SSD_TP / 8);
        __syncthreads();
        if (!diag) { /* the next tile's loads, in flight during this tile's products */
            ssd_fetch(rb, a.Bm, rs + j0 + SSD_TQ, a.T - j0 - SSD_TQ, grp * N, N, NP / 8, vb);
            ssd_fetch(rx, a.x, rs + j0 + SSD_TQ, a.T - j0 - SSD_TQ, hd * P + p0, P - p0, SSD_TP / 8, vx);
        }
        /* on the diagonal tile only the columns s <= this warp's rows count: n8 tiles up to 2w+1 */
        const int jmax = diag ? 2 * warp + 1 : 7;
        float sc[8][4];
        zero_acc(sc);
        for (int ks = 0; ks < nks; ks++) {
            unsigned af[4];
            ld_frag_a(af, sC, LDN, warp * 16, ks * 16);
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (j <= jmax) {
                    unsigned b0, b1;
                    ld_frag_b(b0, b1, sB, LDN, j * 8, ks * 16);
                    mma_f16(sc[j], af, b0, b1);
                }
        }
        /* C_t.B_s times exp(A sum dt over (s, t]) dt_s and the scales; 0 above the diagonal */
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = ra + (e >= 2 ? 8 : 0), s = j0 - c0 + j * 8 + 2 * t + (e & 1);
                const float w = s <= r && r < m ? __fmul_rn(__fmul_rn(ex2_ftz(sS[r] - sS[s]), sDt[s]), scale) : 0.f;
                sc[j][e] = __fmul_rn(sc[j][e], w);
            }
        const int kmax = diag ? warp : 3;
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            if (kk <= kmax) {
                unsigned ah[4], al[4];
                split_h2(sc[2 * kk][0], sc[2 * kk][1], ah[0], al[0]);
                split_h2(sc[2 * kk][2], sc[2 * kk][3], ah[1], al[1]);
                split_h2(sc[2 * kk + 1][0], sc[2 * kk + 1][1], ah[2], al[2]);
                split_h2(sc[2 * kk + 1][2], sc[2 * kk + 1][3], ah[3], al[3]);
#pragma unroll
                for (int pt = 0; pt < 8; pt += 2) {
                    unsigned bf[4];
                    ld_frag_b2_kmajor(bf, sX, SSD_LDT, pt * 8, kk * 16);
                    mma_f16(y[pt], ah, bf[0], bf[1]);
                    mma_f16(y[pt], al, bf[0], bf[1]);
                    mma_f16(y[pt + 1], ah, bf[2], bf[3]);
                    mma_f16(y[pt + 1], al, bf[2], bf[3]);
                }
            }
    }
    /* the start state's part: exp(A sum dt over [c0, t]) C_t h_start */
    __syncthreads();
    const float *hs = a.cstate + (size_t)k * a.B * a.H * P * N + ((size_t)b * a.H + hd) * P * N;
    const bool vh = N % 8 == 0 && !((size_t)hs & 15);
    for (int i = threadIdx.x; i < SSD_TP * (NP / 8); i += SSD_THREADS) {
        const int p = i / (NP / 8), c = (i - p * (NP / 8)) * 8;
        float v[8];
        if (vh && p0 + p < P && c < N) {
            const float4 u0 = *(const float4 *)(hs + (size_t)(p0 + p) * N + c), u1 = *(const float4 *)(hs + (size_t)(p0 + p) * N + c + 4);
            v[0] = u0.x, v[1] = u0.y, v[2] = u0.z, v[3] = u0.w, v[4] = u1.x, v[5] = u1.y, v[6] = u1.z, v[7] = u1.w;
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] = p0 + p < P && c + e < N ? hs[(size_t)(p0 + p) * N + c + e] : 0.f;
        }
        uint4 hi, lo;
        unsigned *ph = (unsigned *)&hi, *pl = (unsigned *)&lo;
#pragma unroll
        for (int e = 0; e < 4; e++) split_h2(v[2 * e], v[2 * e + 1], ph[e], pl[e]);
        *(uint4 *)(sB + p * LDN + c) = hi, *(uint4 *)(sHl + p * LDN + c) = lo;
    }
    __syncthreads();
    float z[8][4];
    zero_acc(z);
    for (int ks = 0; ks < nks; ks++) {
        unsigned af[4];
        ld_frag_a(af, sC, LDN, warp * 16, ks * 16);
#pragma unroll
        for (int pt = 0; pt < 8; pt++) {
            unsigned b0, b1;
            ld_frag_b(b0, b1, sB, LDN, pt * 8, ks * 16);
            mma_f16(z[pt], af, b0, b1);
            ld_frag_b(b0, b1, sHl, LDN, pt * 8, ks * 16);
            mma_f16(z[pt], af, b0, b1);
        }
    }
    const float sc_c = a.Cm.scale(grp * N), Dh = a.D ? a.D[hd] : 0.f;
    const float f0 = ra < m ? __fmul_rn(ex2_ftz(sS[ra]), sc_c) : 0.f, f1 = ra + 8 < m ? __fmul_rn(ex2_ftz(sS[ra + 8]), sc_c) : 0.f;
#pragma unroll
    for (int pt = 0; pt < 8; pt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = warp * 16 + g + (e >= 2 ? 8 : 0), p = p0 + pt * 8 + 2 * t + (e & 1);
            if (r < nt && p < P) {
                const size_t row = rs + t0 + r;
                const float v = __fmaf_rn(z[pt][e], e >= 2 ? f1 : f0, ssd_xcol(a.x, y[pt][e], hd * P + p));
                put_out(&a.y[row * a.ldy + (size_t)hd * P + p], __fmaf_rn(Dh, a.x.at(row, hd * P + p), v));
            }
        }
}

template <class K>
static void ssd_smem_opt_in(K kernel, size_t bytes) {
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

/* The three launches. cstate / cdt hold cdiv(T, Q) chunks of all B sequences (the pass sizes them,
 * rt_ssd_chunk). */
template <class In, class Out>
static void scan_m2_ssd(const k_scan_m2_args<In, Out> &a, cudaStream_t st) {
    const int Q = a.ssd_q, NP = (a.N + 15) / 16 * 16, nck = cdiv(a.T, Q);
    if (Q % SSD_TQ || Q > SSD_QMAX || NP > 128 || !a.cstate || !a.cdt)
        mq_die("k_scan_m2: SSD chunk %d, d_state %d outside the kernels' (internal error)", Q, a.N);
    const size_t sm1 = ssd_state_smem(NP), sm3 = ssd_out_smem(NP);
    ssd_smem_opt_in(ssd_state_kernel<In, Out>, sm1);
    ssd_smem_opt_in(ssd_out_kernel<In, Out>, sm3);
    const dim3 g1(cdiv(a.P, SSD_TP), a.B * a.H, nck);
    ssd_state_kernel<In, Out><<<g1, SSD_THREADS, sm1, st>>>(a, Q, NP);
    CUDA_CHECK_LAUNCH();
    scan_prefix(a.cstate, a.cdt, a.state, a.state_in, a.A, 0, a.B, a.H * a.P * a.N, a.P * a.N, nck, st, a.state);
    const dim3 g3(cdiv(a.P, SSD_TP), a.B * a.H, cdiv(a.T, SSD_TQ));
    ssd_out_kernel<In, Out><<<g3, SSD_THREADS, sm3, st>>>(a, Q, NP);
    CUDA_CHECK_LAUNCH();
}

#endif
