/* wstream.cuh: weight-streaming linear layers for decode (M = 1..64 tokens), sm_90.
 *
 *   Y[M x N] = X[M x K] W[N x K]^T     W row-major [N x K] (PyTorch [out x in]), read once per call
 *   (a) int8 W x int8 X -> exact int32 sums -> fused epilogue (int8 / FP16 / FP32 / raw int32)
 *   (b) FP16 W x FP16 X -> FP32 sums -> (+ FP32 bias) -> FP16 or FP32
 *
 * Header-only: kernels, host-side planner and the two entry points
 *   void ws_linear_i8 (const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const i8_epi &e,
 *                      void *out, int ldo, int sm_count, cudaStream_t st);
 *   void ws_linear_f16(const __half *X, int ldx, const __half *W, int M, int N, int K, const float *bias,
 *                      void *Y, int y_f32, int ldy, int sm_count, cudaStream_t st);
 * No scratch memory, no atomics, one kernel per call.
 *
 * ---------------------------------------------------------------------------------------------- design
 * Decode GEMMs read N*K weight bytes and do 2*M*N*K operations: at M <= 64 that is <= 128 int8 ops
 * (64 FP16 FMAs) per weight byte, below the H200's ~1000 ops/byte ridge even for the legacy mma.sync
 * tensor-core path (~half of wgmma peak), so the only goal is to keep ~3 MB of weight loads in flight
 * (Little's law: ~4.8 TB/s x ~0.6-0.8 us DRAM latency) and to touch each weight byte exactly once.
 *
 * 1. Tensor cores for every M, weights as the A operand. mma.m16n8k32 (s8) / m16n8k16 (f16) with
 *    A = 16 weight rows and B = 8 tokens: M pads only to 8 (not 16), and one 16-byte load per thread
 *    per weight row feeds two mma k-steps. M = 1..8 uses one n8 tile (the tensor core's 8x waste at
 *    M = 1 is free: one IMMA per 512 weight bytes per warp).
 * 2. k permutation instead of shuffles. Within each 64-byte k block, lane (g = lane/4, t = lane%4)
 *    loads bytes [16t, 16t+16) of weight rows g and g+8 (two LDG.128) and the same 16 bytes of token
 *    g's X row (one LDS.128). The mma's logical k order is a permutation of the physical one that is
 *    the same for A and B, so the sum over k is unchanged:
 *      int8 : regs {x,y} of the 16 bytes are k-step 0's {a0|a2, b0|b1}, {z,w} are k-step 1's
 *             (logical k 4t..4t+3 <-> physical 16t+0..3, logical 16+4t.. <-> 16t+4..7, ...)
 *      f16  : the same with halves (logical 2t,2t+1 <-> physical 8t+0,1; 2t+8,2t+9 <-> 8t+2,3 ...)
 *    ws_a_regs / ws_b_regs below are that mapping; the CPU emulator in wstream.cu checks it against
 *    the PTX ISA fragment layouts. Weights are streamed straight from global memory into registers
 *    (ld.global.nc.L1::no_allocate.L2::256B, L2 evict-first policy), 2*WR*KU 16-byte loads per thread
 *    per stage, two register stages (ping-pong): the next stage's loads are in flight during the
 *    current stage's mma.
 * 3. X lives in shared memory, staged once per CTA in fragment order: [k block][token][64 bytes], so
 *    a warp's LDS.128 of one n8 tile reads 512 contiguous bytes (conflict-free). Any ldx and any X
 *    alignment are accepted: 16-byte loads when X and ldx*elt are 16-byte aligned, byte loads
 *    otherwise (dt_proj reading the first 160 columns of x_proj's output, ldx = 192, is aligned; the
 *    byte path only costs a few hundred ns of staging, never the weight stream).
 * 4. Decomposition (no scratch): a warp owns 16*WR weight rows x one k range ("split"); a CTA is
 *    WN (rows) x WK (k) warps; a thread-block cluster of CK CTAs (<= 8) splits k further. Partial
 *    sums (int32 / FP32) go to shared memory (aliasing the X buffer), are summed over the WK warps
 *    and, through distributed shared memory, over the CK CTAs of the cluster; each CTA of a cluster
 *    reduces 1/CK of the tile's outputs and applies the epilogue, writing rows of Y coalesced.
 *    Sums are in a fixed order, so FP16 results are deterministic.
 *    Why: N is short for x_proj (N = 192 must still use all SMs: 12 row tiles x up to 64 splits) and
 *    out_proj (N = 2560, K = 5120), and X re-reads from L2 grow as M/R (R = rows per CTA) so larger M
 *    wants wide CTAs and more k splits instead of narrow CTAs.
 * 5. One wave, equal work per warp: the planner (ws_plan) scores (WR, KU, splits, WK, CK, WN) with a
 *    small bandwidth/latency model and picks the cheapest; a whole grid normally fits on the GPU at
 *    once and every warp streams the same number of bytes, so all finish together.
 * 6. PDL: every CTA signals griddepcontrol.launch_dependents at entry, issues its first two weight
 *    stages, and only then waits (griddepcontrol.wait) for the previous kernel before reading X or
 *    writing Y: with the programmatic-serialization launch attribute (on by default) the weight
 *    prefetch of layer i+1 overlaps the tail of kernel i. Weights and scales must not be written by
 *    the preceding kernel (they never are).
 *
 * Requirements of the fast path: W 16-byte aligned and K*elt % 16 == 0 (int8: K % 16, FP16: K % 8;
 * every Mamba shape qualifies, dt_proj K = 160 / 48 included, with a masked tail block). Otherwise a
 * simple fallback kernel (one warp per row, element loads) gives the same results slowly. M > 64 is
 * processed in chunks of 64 tokens (weights re-read per chunk: prefill belongs to cuBLASLt).
 *
 * int8 epilogue, per (m, n), with acc exact:  v = (float)acc * (sx * sw[n]) (+ bias[n])
 *   kind 0: int8 q = qr_quant_i8(v, qs[n]) (core/qrule.h: rint(v / s), clamp +-127, NaN -> 0)
 *   kind 1: FP16 v, kind 2: FP32 v, kind 3 (WS_EPI_I32, this file's addition): the raw int32 sums.
 * Products, sums and the division are explicit round-to-nearest (no FMA contraction), so outputs are
 * bit-exact with a CPU computing the same expression in FP32.
 */
#ifndef MQ_DEV_WSTREAM_CUH
#define MQ_DEV_WSTREAM_CUH
#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <mutex>
#include "core/qrule.h"

#ifndef WS_HAVE_I8_EPI /* define it when ssm/int8_kern.h's identical struct is already in scope */
#define WS_HAVE_I8_EPI
struct i8_epi {
    float sx;
    const float *sw, *bias, *qs;
    int kind; /* 0 int8, 1 fp16, 2 fp32 (3: raw int32, WS_EPI_I32) */
};
#endif
enum { WS_EPI_I8 = 0, WS_EPI_F16 = 1, WS_EPI_F32 = 2, WS_EPI_I32 = 3 };

#define WS_HD static inline __host__ __device__
#define WS_MAX_CLUSTER 8
#define WS_MAX_SMEM 232448 /* sm_90 opt-in shared memory per block (227 KB) */

/* ================================================================ geometry shared with the CPU emulator */

/* One launch's decomposition. Template part: mt (n8 token tiles: 1, 2, 4, 8), wr (16-row weight tiles
 * per warp: 1, 2), ku (64-byte k blocks per pipeline stage: 1, 2, 4). Run-time part: wn x wk warps per
 * CTA, ck CTAs per cluster along k. Derived fields are filled by ws_make_cfg. */
struct ws_cfg {
    int mt, wr, ku, wn, wk, ck;
    int KB;        /* 64-byte k blocks of a weight row: ceil(K*elt / 64) */
    int S;         /* k splits = wk * ck */
    int nb;        /* k blocks per split (a multiple of ku) */
    int nst;       /* pipeline stages per warp = nb / ku */
    int R;         /* weight rows per CTA = 16 * wr * wn */
    int rowblocks; /* ceil(N / R); grid = rowblocks * ck */
    int threads;   /* 32 * wn * wk */
    int Mp;        /* 8 * mt */
    int RS;        /* shared-memory row stride (words) of the partial sums: R + 4 (conflict-free) */
    int par_off;   /* byte offset of the per-row epilogue parameters [3][R] floats (after X / partials) */
    int smem;      /* dynamic shared memory bytes: max(X stage, partial sums) + 12 R */
    int ok;
};

/* the kernel's register budget: 512 threads -> <= 128 registers; the biggest tiles get 256 threads */
static constexpr __host__ __device__ int ws_maxt(int mt, int wr, int ku) { return (mt * wr * 4 + 16 * wr * ku > 96) ? 256 : 512; }

static inline ws_cfg ws_make_cfg(int M, int N, int Kb, int mt, int wr, int ku, int wn, int wk, int ck) {
    ws_cfg c;
    c.mt = mt, c.wr = wr, c.ku = ku, c.wn = wn, c.wk = wk, c.ck = ck;
    c.KB = (Kb + 63) / 64;
    c.S = wk * ck;
    int per = (c.KB + c.S - 1) / c.S;
    c.nb = (per + ku - 1) / ku * ku;
    c.nst = c.nb / ku;
    c.R = 16 * wr * wn;
    c.rowblocks = (N + c.R - 1) / c.R;
    c.threads = 32 * wn * wk;
    c.Mp = 8 * mt;
    c.RS = c.R + 4;
    long xs = (long)wk * c.nb * c.Mp * 64, red = (long)wk * M * c.RS * 4;
    long sm = ((xs > red ? xs : red) + 15) / 16 * 16;
    c.par_off = (int)sm;
    sm += 3L * 4 * c.R;
    c.smem = (int)sm;
    c.ok = M >= 1 && M <= c.Mp && N >= 1 && Kb >= 1 && ck >= 1 && ck <= WS_MAX_CLUSTER && wk >= 1 && wn >= 1 &&
           c.threads <= ws_maxt(mt, wr, ku) && sm <= WS_MAX_SMEM;
    return c;
}

/* Kernel-side geometry (a copy of the cfg's run-time fields plus the shape). */
struct ws_geom {
    int M, N, Kb, KB, wr, ku, wn, wk, ck, nb, nst, R, Mp, RS, par_off;
};
static inline ws_geom ws_geom_of(const ws_cfg &c, int M, int N, int Kb) {
    ws_geom g = {M, N, Kb, c.KB, c.wr, c.ku, c.wn, c.wk, c.ck, c.nb, c.nst, c.R, c.Mp, c.RS, c.par_off};
    return g;
}
/* warp w of a CTA: wn_i = w % wn (rows), wk_i = w / wn (k); CTA blockIdx.x = rb * ck + crank */
WS_HD int ws_row0(const ws_geom &G, int rb, int wn_i) { return rb * G.R + wn_i * 16 * G.wr; }
WS_HD int ws_split(const ws_geom &G, int crank, int wk_i) { return crank * G.wk + wk_i; }
/* weight row of lane (g) for tile i, half h (rows g / g+8); rows past N are clamped (results dropped) */
WS_HD int ws_wrow(const ws_geom &G, int row0, int i, int h, int g) {
    int r = row0 + 16 * i + 8 * h + g;
    return r < G.N ? r : G.N - 1;
}
/* byte offset of lane t's chunk in k block kb_rel (relative to the split's first block) is
 * kb0*64 + kb_rel*64 + 16t; it is loaded iff kb_rel*64 < ws_lim_rel (inside the split and inside K) */
WS_HD int ws_lim_rel(const ws_geom &G, int split, int t) {
    int kb0 = split * G.nb;
    int end = (kb0 + G.nb) * 64;
    if (end > G.Kb) end = G.Kb;
    return end - 16 * t - kb0 * 64;
}
/* X stage: piece p (16 bytes) of the CTA's stage <-> (wk_i, kb_rel, token, q): smem byte 16 * p */
WS_HD void ws_xs_decode(const ws_geom &G, int p, int &wk_i, int &kbl, int &token, int &q) {
    q = p & 3;
    int r = p >> 2;
    token = r % G.Mp;
    r /= G.Mp;
    kbl = r % G.nb;
    wk_i = r / G.nb;
}
WS_HD int ws_xs_pieces(const ws_geom &G) { return G.wk * G.nb * G.Mp * 4; }
/* byte offset in the X stage of lane's 16 bytes for warp group wk_i, k block kbl, token tile j */
WS_HD int ws_xs_lane(const ws_geom &G, int wk_i, int kbl, int j, int lane) {
    return ((wk_i * G.nb + kbl) * G.Mp + 8 * j) * 64 + lane * 16;
}
/* accumulator q (0..3) of tile (i, j) in lane: local row (within the CTA's R rows) and token */
WS_HD void ws_acc_coord(const ws_geom &G, int wn_i, int i, int j, int q, int lane, int &rloc, int &token) {
    int g = lane >> 2, t = lane & 3;
    rloc = wn_i * 16 * G.wr + 16 * i + g + 8 * (q >> 1);
    token = 8 * j + 2 * t + (q & 1);
}
WS_HD int ws_red_idx(const ws_geom &G, int wk_i, int m, int rloc) { return (wk_i * G.M + m) * G.RS + rloc; }
/* Reduction. Phase 1 (wk > 1): thread tid of the CTA folds slots 1..wk-1 of the partial sums into
 * slot 0 for elements e = tid + i * threads, e < M * R (e = m * R + rloc), in order w = 1, 2, ...
 * Phase 2: cluster rank crank sums slot 0 of ranks c = 0..ck-1 (in that order) for its elements
 * e in [e0, e1), batches of WS_RB elements per thread (e = e0 + tid + i * threads), all loads first. */
#define WS_RB 4
WS_HD void ws_red_range(const ws_geom &G, int crank, int &e0, int &e1) {
    long E = (long)G.M * G.R;
    e0 = (int)(E * crank / G.ck);
    e1 = (int)(E * (crank + 1) / G.ck);
}
/* fragment registers of k-step s (0, 1) from lane's 16 weight bytes of rows g (lo) and g+8 (hi) and
 * its 16 X bytes; identical for int8 (4 bytes a register) and FP16 (2 halves a register) */
WS_HD void ws_a_regs(const uint4 &lo, const uint4 &hi, int s, uint32_t a[4]) {
    a[0] = s ? lo.z : lo.x; /* row g,   logical k 0..3 (s8) / 0..1 (f16) of the lane's quarter */
    a[1] = s ? hi.z : hi.x; /* row g+8 */
    a[2] = s ? lo.w : lo.y; /* row g,   logical k +16 (s8) / +8 (f16) */
    a[3] = s ? hi.w : hi.y; /* row g+8 */
}
WS_HD void ws_b_regs(const uint4 &x, int s, uint32_t b[2]) {
    b[0] = s ? x.z : x.x;
    b[1] = s ? x.w : x.y;
}

/* ================================================================ epilogues (host + device) */

WS_HD float ws_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
WS_HD float ws_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

struct ws_epi8 {
    float sx;
    const float *sw, *bias, *qs;
    int kind;
    void *out;
    int ldo;
};
struct ws_epi16 {
    const float *bias;
    void *out;
    int ldo, f32;
};
/* per-row parameters the epilogue reads (staged in shared memory by the kernel): int8 {sw, bias, qs},
 * FP16 {bias}; a null source stages zeros */
WS_HD const float *ws_par_src(const ws_epi8 &e, int k) {
    if (e.kind == WS_EPI_I32) return nullptr;
    return k == 0 ? e.sw : k == 1 ? e.bias : e.kind == WS_EPI_I8 ? e.qs : nullptr;
}
WS_HD const float *ws_par_src(const ws_epi16 &e, int k) { return k == 0 ? e.bias : nullptr; }
/* the epilogue of one output (m, n), p[k * pstride] = parameter k of row n */
WS_HD void ws_put_p(const ws_epi8 &e, int32_t acc, int m, int n, const float *p, int pstride) {
    size_t i = (size_t)m * e.ldo + n;
    if (e.kind == WS_EPI_I32) {
        ((int32_t *)e.out)[i] = acc;
        return;
    }
    float v = ws_mul((float)acc, ws_mul(e.sx, p[0]));
    if (e.bias) v = ws_add(v, p[pstride]);
    if (e.kind == WS_EPI_I8) ((int8_t *)e.out)[i] = qr_quant_i8(v, p[2 * pstride]);
    else if (e.kind == WS_EPI_F16) ((__half *)e.out)[i] = __float2half_rn(v);
    else ((float *)e.out)[i] = v;
}
WS_HD void ws_put_p(const ws_epi16 &e, float acc, int m, int n, const float *p, int) {
    size_t i = (size_t)m * e.ldo + n;
    float v = e.bias ? ws_add(acc, p[0]) : acc;
    if (e.f32) ((float *)e.out)[i] = v;
    else ((__half *)e.out)[i] = __float2half_rn(v);
}
/* reference form (parameters straight from the arrays) */
template <class E, class A> static inline __host__ __device__ void ws_put(const E &e, A acc, int m, int n) {
    float p[3];
    for (int k = 0; k < 3; k++) {
        const float *src = ws_par_src(e, k);
        p[k] = src ? src[n] : 0.0f;
    }
    ws_put_p(e, acc, m, n, p, 1);
}

/* ================================================================ device primitives */

/* Predicated 16-byte weight load (zeros when !pred): read-only path, no L1 allocation, 256-byte L2
 * prefetch, L2 evict-first (weights are read once; keep activations and states in L2). */
static __device__ __forceinline__ uint4 ws_ldw(const uint8_t *p, bool pred, uint64_t pol) {
    uint4 r;
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %5, 0;\n\t"
                 "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
                 "@p ld.global.nc.L1::no_allocate.L2::cache_hint.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4], %6;\n\t}\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p), "r"((int)pred), "l"(pol));
    return r;
}
static __device__ __forceinline__ uint64_t ws_evict_first_policy() {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    return pol;
}
/* 16-byte (4-byte) global -> shared copies; n < size bytes are read, the rest zero-filled */
static __device__ __forceinline__ void ws_cp16(uint32_t dst, const void *src, int n) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
static __device__ __forceinline__ void ws_cp4(uint32_t dst, const void *src, int n) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
static __device__ __forceinline__ void ws_cp_wait() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
/* cluster barrier: release/acquire (partials visible to the peers), or relaxed (lifetime only) */
static __device__ __forceinline__ void ws_cluster_sync_acqrel() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void ws_cluster_sync_relaxed() {
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n\tbarrier.cluster.wait.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void ws_pdl_launch() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
static __device__ __forceinline__ void ws_pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

struct ws_i8 { /* int8 x int8 -> int32 */
    typedef int32_t acc_t;
    typedef ws_epi8 epi_t;
    enum { elt = 1 };
    static __device__ __forceinline__ void mma(acc_t (&c)[4], const uint32_t a[4], const uint32_t b[2]) {
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};
struct ws_f16 { /* FP16 x FP16 -> FP32 */
    typedef float acc_t;
    typedef ws_epi16 epi_t;
    enum { elt = 2 };
    static __device__ __forceinline__ void mma(acc_t (&c)[4], const uint32_t a[4], const uint32_t b[2]) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

template <class TR> struct ws_args {
    const uint8_t *X; /* bytes */
    long ldxb;        /* X row stride in bytes */
    const uint8_t *W;
    ws_geom G;
    int xvec; /* X and ldxb 16-byte aligned */
    typename TR::epi_t epi;
};

/* ================================================================ the streaming kernel */

template <class TR, int MT, int WR, int KU>
__global__ void __launch_bounds__(ws_maxt(MT, WR, KU), 1) ws_kernel(const __grid_constant__ ws_args<TR> a) {
    typedef typename TR::acc_t acc_t;
    extern __shared__ __align__(16) uint8_t ws_smem[];
    const ws_geom &G = a.G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int crank = (int)(blockIdx.x % (unsigned)G.ck), rb = (int)(blockIdx.x / (unsigned)G.ck);
    const int wn_i = warp % G.wn, wk_i = warp / G.wn;
    const int row0 = ws_row0(G, rb, wn_i), split = ws_split(G, crank, wk_i);
    const int lim = ws_lim_rel(G, split, t);
    const uint64_t pol = ws_evict_first_policy();

    ws_pdl_launch();

    /* this lane's weight pointers: tile i, rows g (h = 0) and g + 8 (h = 1), chunk t of block 0 */
    const uint8_t *wp[WR][2];
#pragma unroll
    for (int i = 0; i < WR; i++)
#pragma unroll
        for (int h = 0; h < 2; h++)
            wp[i][h] = a.W + (size_t)ws_wrow(G, row0, i, h, g) * G.Kb + (size_t)split * G.nb * 64 + 16 * t;

    uint4 b0[WR][2][KU], b1[WR][2][KU];
    auto load = [&](uint4(&b)[WR][2][KU], int s) {
#pragma unroll
        for (int u = 0; u < KU; u++) {
            const int kbl = s * KU + u;
            const bool ok = kbl * 64 < lim;
#pragma unroll
            for (int i = 0; i < WR; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) b[i][h][u] = ws_ldw(wp[i][h] + kbl * 64, ok, pol);
        }
    };
    acc_t acc[WR][MT][4];
#pragma unroll
    for (int i = 0; i < WR; i++)
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0;
    const uint8_t *xs = ws_smem + ws_xs_lane(G, wk_i, 0, 0, lane);
    auto compute = [&](const uint4(&b)[WR][2][KU], int s) {
#pragma unroll
        for (int u = 0; u < KU; u++) {
            const uint8_t *xp = xs + (s * KU + u) * G.Mp * 64;
#pragma unroll
            for (int j = 0; j < MT; j++) {
                if (MT > 1 && 8 * j >= G.M) break; /* uniform: token tiles past M are all zero */
                const uint4 xv = *(const uint4 *)(xp + j * 512);
#pragma unroll
                for (int st = 0; st < 2; st++) {
                    uint32_t bb[2];
                    ws_b_regs(xv, st, bb);
#pragma unroll
                    for (int i = 0; i < WR; i++) {
                        uint32_t aa[4];
                        ws_a_regs(b[i][0][u], b[i][1][u], st, aa);
                        TR::mma(acc[i][j], aa, bb);
                    }
                }
            }
        }
    };

    /* first two weight stages go out before anything that depends on the previous kernel */
    load(b0, 0);
    if (G.nst > 1) load(b1, 1);
    ws_pdl_wait();

    /* stage X: [wk][k block][token][64 bytes], zeros past M / past the split / past K; and the
     * epilogue's per-row parameters [3][R] at par_off (zeros past N) */
    {
        const int P = ws_xs_pieces(G);
        const uint32_t sbase = (uint32_t)__cvta_generic_to_shared(ws_smem);
        if (a.xvec) { /* all copies in flight at once: one L2 round trip */
            for (int p = threadIdx.x; p < P; p += blockDim.x) {
                int wki, kbl, token, q;
                ws_xs_decode(G, p, wki, kbl, token, q);
                const long off = (long)(ws_split(G, crank, wki) * G.nb + kbl) * 64 + 16 * q;
                const bool ok = token < G.M && off < G.Kb;
                ws_cp16(sbase + 16 * p, ok ? a.X + token * a.ldxb + off : a.X, ok ? 16 : 0);
            }
        } else { /* any alignment: bytes, 4 pieces a thread in flight */
            for (int p0 = threadIdx.x; p0 < P; p0 += 4 * blockDim.x) {
                uint4 v[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int p = p0 + i * blockDim.x;
                    int wki, kbl, token, q;
                    ws_xs_decode(G, p, wki, kbl, token, q);
                    const long off = (long)(ws_split(G, crank, wki) * G.nb + kbl) * 64 + 16 * q;
                    uint32_t w[4] = {0, 0, 0, 0};
                    if (p < P && token < G.M && off < G.Kb) {
                        const uint8_t *src = a.X + token * a.ldxb + off;
#pragma unroll
                        for (int e = 0; e < 16; e++) w[e >> 2] |= (uint32_t)__ldg(src + e) << (8 * (e & 3));
                    }
                    v[i] = make_uint4(w[0], w[1], w[2], w[3]);
                }
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (p0 + i * blockDim.x < P) *(uint4 *)(ws_smem + 16 * (size_t)(p0 + i * blockDim.x)) = v[i];
            }
        }
        for (int i = threadIdx.x; i < 3 * G.R; i += blockDim.x) {
            const int k = i / G.R, r = i - k * G.R, n = rb * G.R + r;
            const float *src = ws_par_src(a.epi, k);
            const bool ok = src && n < G.N;
            ws_cp4(sbase + G.par_off + 4 * i, ok ? (const void *)(src + n) : (const void *)a.W, ok ? 4 : 0);
        }
        ws_cp_wait();
    }
    __syncthreads();

    for (int s = 0; s < G.nst; s += 2) {
        compute(b0, s);
        if (s + 2 < G.nst) load(b0, s + 2);
        if (s + 1 < G.nst) {
            compute(b1, s + 1);
            if (s + 3 < G.nst) load(b1, s + 3);
        }
    }

    /* partial sums -> shared memory (aliases the X stage) */
    __syncthreads();
    acc_t *red = (acc_t *)ws_smem;
#pragma unroll
    for (int i = 0; i < WR; i++)
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                int rloc, token;
                ws_acc_coord(G, wn_i, i, j, q, lane, rloc, token);
                if (token < G.M) red[ws_red_idx(G, wk_i, token, rloc)] = acc[i][j][q];
            }
    const int E = G.M * G.R, nt = blockDim.x;
    if (G.wk > 1) { /* phase 1: fold the k warps' slots into slot 0 */
        __syncthreads();
        const int slot = G.M * G.RS;
        for (int e0 = threadIdx.x; e0 < E; e0 += WS_RB * nt) {
            acc_t v[WS_RB];
            int idx[WS_RB];
#pragma unroll
            for (int i = 0; i < WS_RB; i++) {
                const int e = e0 + i * nt, m = e / G.R;
                idx[i] = ws_red_idx(G, 0, m, e - m * G.R);
                v[i] = e < E ? red[idx[i]] : 0;
            }
            for (int w = 1; w < G.wk; w++)
#pragma unroll
                for (int i = 0; i < WS_RB; i++)
                    if (e0 + i * nt < E) v[i] += red[idx[i] + w * slot];
#pragma unroll
            for (int i = 0; i < WS_RB; i++)
                if (e0 + i * nt < E) red[idx[i]] = v[i];
        }
    }
    if (G.ck > 1) ws_cluster_sync_acqrel();
    else __syncthreads();

    /* phase 2: this CTA's share of the tile, summed over the cluster's CTAs; epilogue */
    namespace cg = cooperative_groups;
    const float *par = (const float *)(ws_smem + G.par_off);
    int e0, e1;
    ws_red_range(G, crank, e0, e1);
    for (int eb = e0 + threadIdx.x; eb < e1; eb += WS_RB * nt) {
        int idx[WS_RB];
#pragma unroll
        for (int i = 0; i < WS_RB; i++) {
            const int e = eb + i * nt, m = e / G.R;
            idx[i] = ws_red_idx(G, 0, m, e - m * G.R);
        }
        acc_t v[WS_MAX_CLUSTER][WS_RB];
#pragma unroll
        for (int c = 0; c < WS_MAX_CLUSTER; c++) { /* every load issued before the first add */
            if (c < G.ck) {
                const acc_t *src = G.ck > 1 ? cg::this_cluster().map_shared_rank(red, c) : red;
#pragma unroll
                for (int i = 0; i < WS_RB; i++) v[c][i] = eb + i * nt < e1 ? src[idx[i]] : 0;
            }
        }
#pragma unroll
        for (int i = 0; i < WS_RB; i++) {
            const int e = eb + i * nt, m = e / G.R, rloc = e - m * G.R, n = rb * G.R + rloc;
            acc_t sum = v[0][i];
#pragma unroll
            for (int c = 1; c < WS_MAX_CLUSTER; c++)
                if (c < G.ck) sum += v[c][i];
            if (e < e1 && n < G.N) ws_put_p(a.epi, sum, m, n, par + rloc, G.R);
        }
    }
    if (G.ck > 1) ws_cluster_sync_relaxed(); /* peers may still read this CTA's partials */
}

/* Fallback for W rows that are not 16-byte multiples / aligned: one warp per (row, 8 tokens). */
template <class TR>
__global__ void __launch_bounds__(256) ws_fallback_kernel(const __grid_constant__ ws_args<TR> a, int K) {
    typedef typename TR::acc_t acc_t;
    ws_pdl_wait();
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.x * 8 + (threadIdx.x >> 5), m0 = blockIdx.y * 8;
    if (n >= a.G.N) return;
    acc_t acc[8];
#pragma unroll
    for (int m = 0; m < 8; m++) acc[m] = 0;
    for (int k = lane; k < K; k += 32) {
        if (TR::elt == 1) {
            const int w = ((const int8_t *)a.W)[(size_t)n * K + k];
#pragma unroll
            for (int m = 0; m < 8; m++)
                if (m0 + m < a.G.M) acc[m] += (acc_t)(w * (int)((const int8_t *)(a.X + (m0 + m) * a.ldxb))[k]);
        } else {
            const float w = __half2float(((const __half *)a.W)[(size_t)n * K + k]);
#pragma unroll
            for (int m = 0; m < 8; m++)
                if (m0 + m < a.G.M) acc[m] += (acc_t)(w * __half2float(((const __half *)(a.X + (m0 + m) * a.ldxb))[k]));
        }
    }
#pragma unroll
    for (int m = 0; m < 8; m++)
        for (int o = 16; o; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
    if (lane == 0)
        for (int m = 0; m < 8 && m0 + m < a.G.M; m++) ws_put(a.epi, acc[m], m0 + m, n);
}

/* ================================================================ instantiations and dispatch */

template <class TR> struct ws_kfn {
    typedef void (*fn)(const ws_args<TR>);
};
/* (wr, ku) per mt: the combinations compiled; the planner searches these */
#define WS_COMBOS(X, MT) X(MT, 1, 2) X(MT, 1, 4) X(MT, 2, 1) X(MT, 2, 2)
WS_HD bool ws_have(int mt, int wr, int ku) {
    return (mt == 1 || mt == 2 || mt == 4 || mt == 8) && ((wr == 1 && (ku == 2 || ku == 4)) || (wr == 2 && (ku == 1 || ku == 2)));
}
template <class TR> static typename ws_kfn<TR>::fn ws_kernel_ptr(int mt, int wr, int ku) {
#define WS_CASE(MT, WR, KU) \
    if (mt == MT && wr == WR && ku == KU) return ws_kernel<TR, MT, WR, KU>;
    WS_COMBOS(WS_CASE, 1)
    WS_COMBOS(WS_CASE, 2)
    WS_COMBOS(WS_CASE, 4)
    WS_COMBOS(WS_CASE, 8)
#undef WS_CASE
    return nullptr;
}

/* ================================================================ planner */

/* Registers per thread of each kernel (ptxas -v, sm_90, CUDA 13.0), used only for the occupancy
 * estimate of the planner's model; update when the kernel changes (wstream.cu prints them on the GPU). */
WS_HD int ws_regs_est(int mt, int wr, int ku) {
    if (mt == 8) return wr == 2 ? (ku == 2 ? 171 : 128) : (ku == 4 ? 128 : 104);
    if (mt == 4) return wr == 2 ? (ku == 2 ? 128 : 106) : (ku == 4 ? 117 : 88);
    if (mt == 2) return wr == 2 ? (ku == 2 ? 119 : 92) : (ku == 4 ? 116 : 87);
    return wr == 2 ? (ku == 2 ? 114 : 87) : (ku == 4 ? 114 : 87);
}

/* Estimated microseconds of one launch (H200-class constants); used only to rank candidates:
 *   DRAM: bytes / min(peak, bytes in flight / loaded latency), a warp keeping <= 2 stages in flight;
 *   L2:   (weights + X stage copies) / L2 bandwidth;  per SM: its bytes / ~100 GB/s;
 *   plus the first round trip and the reduction (local folds, cluster barrier, DSMEM round trips). */
static inline double ws_model_us(const ws_cfg &c, int M, int N, int Kb, int sm) {
    const double bw = 4.4e6, l2bw = 7.0e6, smbw = 0.1e6, lat = 1.0; /* bytes/us and us */
    const double wbytes = (double)N * Kb;
    const int ctas = c.rowblocks * c.ck, cwarps = c.threads / 32;
    const int regs = (ws_regs_est(c.mt, c.wr, c.ku) + 7) / 8 * 8;
    int wps = 65536 / (regs * 32);
    if (wps > 64) wps = 64;
    int by_thr = wps / cwarps, by_smem = WS_MAX_SMEM / (c.smem + 1024);
    int cps = by_thr < by_smem ? by_thr : by_smem;
    if (cps > 32) cps = 32;
    if (cps < 1) cps = 1;
    const int slots = sm * cps, waves = (ctas + slots - 1) / slots;
    const double stage = 2.0 * c.wr * c.ku * 512; /* bytes a warp has in one stage */
    /* loaded bytes include the padding of the last split and rows past N (L2 hits, half price) */
    const double pad = (double)c.rowblocks * c.R * c.S * c.nb * 64 - wbytes;
    const double per_cta = (wbytes + 0.5 * (pad > 0 ? pad : 0)) / ctas;
    /* wave by wave (a partial last wave has fewer bytes in flight); a warp keeps <= 2 stages in flight */
    double t = 0;
    for (int w = 0, left = ctas; w < waves; w++) {
        const int n = left < slots ? left : slots;
        left -= n;
        const double inflight = (double)n * cwarps * stage * (c.nst > 1 ? 1.5 : 1.0);
        const double ebw = inflight / lat < bw ? inflight / lat : bw;
        double tw = per_cta * n / ebw;
        const double t_warp = (c.nst / 2.0 + 1.0) * lat;
        t += tw > t_warp ? tw : t_warp;
    }
    const double xbytes = (double)ctas * c.wk * c.nb * c.Mp * 64;
    const double t_l2 = (wbytes + xbytes) / l2bw;
    if (t < t_l2) t = t_l2;
    const int busiest = (ctas + sm - 1) / sm; /* CTAs on the busiest SM (of one wave) */
    const double t_sm = wbytes / ctas * (busiest < cps ? busiest : cps) * waves / smbw;
    if (t < t_sm) t = t_sm;
    /* reduction: phase 1 (local folds), barrier, phase 2 rounds of WS_RB elements a thread */
    const double E = (double)M * c.R;
    if (c.wk > 1) t += 0.03 * c.wk * ceil(E / (c.threads * WS_RB));
    t += c.ck > 1 ? 0.3 + 0.25 * ceil(E / c.ck / (c.threads * WS_RB)) : 0.05 + 0.03 * ceil(E / (c.threads * WS_RB));
    t += lat; /* first loads */
    return t;
}

/* The planner's choice for one shape (and the candidates it scored, when out != NULL). */
static inline ws_cfg ws_plan(int M, int N, int Kb, int sm, int max_out = 0, ws_cfg *out = nullptr, int *nout = nullptr,
                             int max_ck = WS_MAX_CLUSTER) {
    const int mt = M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8;
    const int KB = (Kb + 63) / 64;
    ws_cfg best;
    best.ok = 0;
    double best_t = 1e30;
    int n = 0;
    for (int wr = 1; wr <= 2; wr++)
        for (int ku = 1; ku <= 4; ku *= 2) {
            if (!ws_have(mt, wr, ku)) continue;
            int prev_nb = -1;
            for (int S = 1; S <= 64 && S <= KB; S++) {
                int per = (KB + S - 1) / S, nb = (per + ku - 1) / ku * ku;
                if (nb == prev_nb || (S - 1) * nb >= KB) continue; /* same split as before / an empty split */
                prev_nb = nb;
                for (int wk = 1; wk <= 16; wk++) {
                    if (S % wk) continue;
                    int ck = S / wk;
                    if (ck > WS_MAX_CLUSTER || ck > max_ck) continue;
                    for (int wn = 1; wn <= 16; wn *= 2) {
                        ws_cfg c = ws_make_cfg(M, N, Kb, mt, wr, ku, wn, wk, ck);
                        if (!c.ok || c.smem > 110 * 1024) continue;
                        if (wn > 1 && (wn / 2) * 16 * wr >= N) continue; /* CTA wider than the matrix */
                        double tm = ws_model_us(c, M, N, Kb, sm);
                        if (out && n < max_out) out[n++] = c;
                        if (tm < best_t) best_t = tm, best = c;
                    }
                }
            }
        }
    if (nout) *nout = n;
    return best;
}

/* ================================================================ launch */

/* Launches one planned call; returns the launch's error. pdl: programmatic dependent launch. */
template <class TR>
static cudaError_t ws_launch(const ws_cfg &c, const uint8_t *X, long ldxb, const uint8_t *W, int M, int N, int K,
                             const typename TR::epi_t &epi, cudaStream_t st, bool pdl) {
    const int Kb = K * (int)TR::elt;
    ws_args<TR> a;
    a.X = X, a.ldxb = ldxb, a.W = W, a.epi = epi;
    a.G = ws_geom_of(c, M, N, Kb);
    a.xvec = ((uintptr_t)X % 16 == 0) && (ldxb % 16 == 0);
    cudaLaunchAttribute attr[2];
    int na = 0;
    if (c.ck > 1) {
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = c.ck, attr[na].val.clusterDim.y = 1, attr[na].val.clusterDim.z = 1;
        na++;
    }
    if (pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    cudaLaunchConfig_t lc = {};
    lc.stream = st, lc.attrs = attr, lc.numAttrs = na;
    const bool fast = Kb % 16 == 0 && (uintptr_t)W % 16 == 0 && c.ok;
    if (!fast) { /* fallback: any K, any alignment */
        a.G.M = M, a.G.N = N, a.G.Kb = Kb;
        lc.gridDim = dim3((N + 7) / 8, (M + 7) / 8), lc.blockDim = dim3(256), lc.dynamicSmemBytes = 0;
        lc.numAttrs = pdl ? 1 : 0;
        lc.attrs = pdl ? &attr[na - 1] : nullptr;
        return cudaLaunchKernelEx(&lc, ws_fallback_kernel<TR>, a, K);
    }
    typename ws_kfn<TR>::fn f = ws_kernel_ptr<TR>(c.mt, c.wr, c.ku);
    if (!f) return cudaErrorInvalidConfiguration;
    if (c.smem > 48 * 1024) {
        /* raising the limit is cheap but not free: remember the largest set per kernel */
        static std::mutex mu;
        static const void *fns[64];
        static int lims[64], nf;
        std::lock_guard<std::mutex> lk(mu);
        int i = 0;
        while (i < nf && fns[i] != (const void *)f) i++;
        if (i == nf && nf < 64) fns[nf] = (const void *)f, lims[nf] = 48 * 1024, nf++;
        if (i < 64 && lims[i] < c.smem) {
            cudaError_t e = cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, WS_MAX_SMEM);
            if (e != cudaSuccess) return e;
            lims[i] = WS_MAX_SMEM;
        }
    }
    lc.gridDim = dim3(c.rowblocks * c.ck), lc.blockDim = dim3(c.threads), lc.dynamicSmemBytes = c.smem;
    return cudaLaunchKernelEx(&lc, f, a);
}

/* Planner cache: (M, N, Kb, sm, max_ck) -> cfg; planning costs ~0.1 ms, a decode step reuses a few shapes. */
static inline ws_cfg ws_plan_cached(int M, int N, int Kb, int sm, int max_ck = WS_MAX_CLUSTER) {
    struct ent {
        int M, N, Kb, sm, max_ck;
        ws_cfg c;
    };
    static std::mutex mu;
    static ent tab[256];
    static int ntab;
    std::lock_guard<std::mutex> lk(mu);
    for (int i = 0; i < ntab; i++)
        if (tab[i].M == M && tab[i].N == N && tab[i].Kb == Kb && tab[i].sm == sm && tab[i].max_ck == max_ck) return tab[i].c;
    ws_cfg c = ws_plan(M, N, Kb, sm, 0, nullptr, nullptr, max_ck);
    if (ntab < 256) tab[ntab++] = ent{M, N, Kb, sm, max_ck, c};
    return c;
}

#ifndef WS_PDL_DEFAULT
#define WS_PDL_DEFAULT 1
#endif

static inline void ws_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
        abort();
    }
}

/* Y = epilogue(X W^T); M of any size (chunks of 64 tokens). */
static inline cudaError_t ws_linear_i8_e(const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const i8_epi &e,
                                         void *out, int ldo, int sm_count, cudaStream_t st, bool pdl = WS_PDL_DEFAULT,
                                         int max_ck = WS_MAX_CLUSTER) {
    const size_t osz = e.kind == WS_EPI_I8 ? 1 : e.kind == WS_EPI_F16 ? 2 : 4;
    for (int m0 = 0; m0 < M; m0 += 64) {
        const int mc = M - m0 < 64 ? M - m0 : 64;
        ws_epi8 ep = {e.sx, e.sw, e.bias, e.qs, e.kind, (uint8_t *)out + (size_t)m0 * ldo * osz, ldo};
        ws_cfg c = ws_plan_cached(mc, N, K, sm_count, max_ck);
        cudaError_t r = ws_launch<ws_i8>(c, (const uint8_t *)(X + (size_t)m0 * ldx), ldx, (const uint8_t *)W, mc, N, K,
                                         ep, st, pdl);
        if (r != cudaSuccess) return r;
    }
    return cudaSuccess;
}
static inline cudaError_t ws_linear_f16_e(const __half *X, int ldx, const __half *W, int M, int N, int K,
                                          const float *bias, void *Y, int y_f32, int ldy, int sm_count, cudaStream_t st,
                                          bool pdl = WS_PDL_DEFAULT, int max_ck = WS_MAX_CLUSTER) {
    const size_t osz = y_f32 ? 4 : 2;
    for (int m0 = 0; m0 < M; m0 += 64) {
        const int mc = M - m0 < 64 ? M - m0 : 64;
        ws_epi16 ep = {bias, (uint8_t *)Y + (size_t)m0 * ldy * osz, ldy, y_f32};
        ws_cfg c = ws_plan_cached(mc, N, 2 * K, sm_count, max_ck);
        cudaError_t r = ws_launch<ws_f16>(c, (const uint8_t *)(X + (size_t)m0 * ldx), 2L * ldx, (const uint8_t *)W, mc,
                                          N, K, ep, st, pdl);
        if (r != cudaSuccess) return r;
    }
    return cudaSuccess;
}
static inline void ws_linear_i8(const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const i8_epi &e, void *out,
                                int ldo, int sm_count, cudaStream_t st) {
    ws_check(ws_linear_i8_e(X, ldx, W, M, N, K, e, out, ldo, sm_count, st), "ws_linear_i8");
}
static inline void ws_linear_f16(const __half *X, int ldx, const __half *W, int M, int N, int K, const float *bias,
                                 void *Y, int y_f32, int ldy, int sm_count, cudaStream_t st) {
    ws_check(ws_linear_f16_e(X, ldx, W, M, N, K, bias, Y, y_f32, ldy, sm_count, st), "ws_linear_f16");
}

#endif
