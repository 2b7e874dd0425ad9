/* GPU calibration (calib/gpu.h): observers on the FP16 forward's hooks, exact per-sample order
 * statistics from histograms of bit patterns, per-sample results downloaded once per batch.
 *
 * The pieces, per observed tensor and batch of B samples (one sample = one sequence):
 *  - k_observe<0>: FP16 data; a 32768-bin histogram of |v|'s 15-bit pattern per sample (one block's
 *    histogram in shared memory, flushed with global atomics), max pattern (absmax), group maxima.
 *    A composite tensor (in_proj:output, several hook calls) adds every part into the same histogram.
 *  - k_final16 once the tensor is complete: prefix scan, the bins of the ranks below / above of each
 *    percentile (torch's rank arithmetic done on the host in float32), torch's lerp, the log
 *    histogram through a pattern -> log-bin table made with obs_hist_bin itself; it leaves the
 *    scratch zeroed for the next tensor.
 *  - FP32 data (SSM state, transformed activations): k_observe<1> histograms the top 16 bits of |v|
 *    and bins the log histogram directly, k_select1 finds the top-bits bins of the ranks, k_level2
 *    histograms the low 16 bits of only the values in those bins, k_select2 reads off the exact values.
 *  - k_chan_absmax: the per-channel absmax of ssm_x (quamba2's clustering), a running max over all
 *    samples kept on the device and copied into the obs_tensor after each batch.
 * The host (calib_gpu_observe) then folds each sample's results into the obs_tensor exactly as
 * obs_tensor_observe does. Everything is enqueued on the forward's stream, in hook order. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "calib/calib.h"
#include "calib/gpu.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/progress.h"
#include "ssm/backend.h"

enum {
    NB1 = 32768,            /* 15-bit patterns: FP16 |v|, or the top bits 30..16 of FP32 |v| */
    NB2 = 65536,            /* low 16 bits of FP32 |v| */
    LOGB = OBS_HIST_BINS,
    MAXR = 2 * OBS_MAX_Q,   /* ranks per tensor: below and above of each percentile */
    OBS_THREADS = 1024,
};
typedef unsigned long long u64;
#define NO_BAD (~0ull)

/* ---------------------------------------------------------------- device helpers */

__constant__ float c_mant[OBS_HIST_PER_OCTAVE + 1]; /* 2^(k/64) as obs.c rounds them, k = 0..64 */

__device__ __forceinline__ unsigned warp_sum(unsigned v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(~0u, v, o);
    return v;
}
__device__ __forceinline__ unsigned warp_max(unsigned v) {
    for (int o = 16; o; o >>= 1) v = max(v, __shfl_xor_sync(~0u, v, o));
    return v;
}
__device__ __forceinline__ unsigned warp_incl_scan(unsigned v, int lane) {
    for (int o = 1; o < 32; o <<= 1) {
        unsigned t = __shfl_up_sync(~0u, v, o);
        if (lane >= o) v += t;
    }
    return v;
}

/* obs_hist_bin on the GPU for a = |v| given as its bit pattern: the largest bin whose lower edge is
 * <= a (tails in bins 0 and LOGB-1), with the same float32 edges as obs.c. */
__device__ __forceinline__ int logbin(unsigned key) {
    float a = __uint_as_float(key);
    if (!(a >= 0x1p-16f)) return 0;
    if (a >= 0x1p16f) return LOGB - 1;
    int e = (int)(key >> 23) - 127;
    float m = __uint_as_float((key & 0x7fffffu) | 0x3f800000u);
    int k = (int)(__log2f(m) * OBS_HIST_PER_OCTAVE);
    k = min(max(k, 0), OBS_HIST_PER_OCTAVE - 1);
    while (k < OBS_HIST_PER_OCTAVE - 1 && m >= c_mant[k + 1]) k++;
    while (k > 0 && m < c_mant[k]) k--;
    return (e - OBS_HIST_LOG2_MIN) * OBS_HIST_PER_OCTAVE + k;
}

__device__ __forceinline__ float val16(unsigned key) { return __half2float(__ushort_as_half((unsigned short)key)); }

/* torch's lerp as obs.c computes it (no contraction) */
__device__ __forceinline__ float lerp_torch(float lo, float hi, float w) {
    float d = __fsub_rn(hi, lo);
    float t = w < 0.5f ? __fmul_rn(w, d) : __fmul_rn(d, __fsub_rn(1.0f, w));
    return w < 0.5f ? __fadd_rn(lo, t) : __fsub_rn(hi, t);
}

/* For each rank r[j] (0-based position in ascending key order) of the histogram h[nb] (global,
 * nb = 32768 or 65536), the bin holding it and the count of values in lower bins. Block of 1024
 * threads. One coalesced pass sums chunks of 32 bins (and, with map, adds every bin's count to
 * slh[map[bin]]: the log histogram); a block scan makes the chunk prefixes cp[nb/32 + 1] (shared);
 * then one warp per rank finds its chunk by binary search and its bin by a warp scan of the chunk.
 * Ranks beyond the total leave bin 0. Ends with a barrier. */
__device__ void hist_find(const unsigned *h, int nb, int nr, const unsigned *r, unsigned *bin, unsigned *before,
                          unsigned *total, unsigned *cp, unsigned *wt, const unsigned short *map, unsigned *slh) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5, nch = nb / 32;
    for (int ch = warp; ch < nch; ch += nw) {
        unsigned v = h[ch * 32 + lane];
        if (map && v) atomicAdd(&slh[map[ch * 32 + lane]], v);
        unsigned s = warp_sum(v);
        if (lane == 0) cp[ch] = s;
    }
    __syncthreads();
    const int per = nch / blockDim.x; /* chunks per thread: 1 or 2 */
    unsigned loc[2] = {0, 0}, s = 0;
    for (int i = 0; i < per; i++) { loc[i] = cp[tid * per + i]; s += loc[i]; }
    unsigned incl = warp_incl_scan(s, lane);
    if (lane == 31) wt[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        unsigned v = wt[lane], vi = warp_incl_scan(v, lane);
        wt[lane] = vi - v;
        if (lane == 31) *total = vi;
    }
    __syncthreads();
    unsigned ex = wt[warp] + incl - s;
    for (int i = 0; i < per; i++) { cp[tid * per + i] = ex; ex += loc[i]; }
    if (tid == 0) cp[nch] = *total;
    for (int j = tid; j < nr; j += blockDim.x) bin[j] = before[j] = 0;
    __syncthreads();
    for (int j = warp; j < nr; j += nw) {
        const unsigned rank = r[j];
        if (rank >= *total) continue; /* warp-uniform */
        int ch = 0;
        if (lane == 0) { /* the last chunk whose prefix is <= rank: it holds the rank */
            int lo = 0, hi = nch - 1;
            while (lo < hi) {
                int mid = (lo + hi + 1) >> 1;
                if (cp[mid] <= rank) lo = mid;
                else hi = mid - 1;
            }
            ch = lo;
        }
        ch = __shfl_sync(~0u, ch, 0);
        unsigned v = h[ch * 32 + lane], inc = warp_incl_scan(v, lane);
        unsigned m = __ballot_sync(~0u, cp[ch] + inc > rank);
        int L = __ffs(m) - 1;
        if (lane == L) { bin[j] = ch * 32 + L; before[j] = cp[ch] + inc - v; }
    }
    __syncthreads();
}

/* ---------------------------------------------------------------- observe kernels */

/* One view of a tensor for B samples: sample b's rows are [b*rows_s, (b+1)*rows_s), element (r, c)
 * at x[r*ld + c]. gcol0: the view's first column within the tensor (column groups). */
struct view {
    const void *x;
    int f32, ld, rows_s, ncols, gcol0, part;
};

struct obs_args {
    view v;
    unsigned *hist;        /* [B][NB1] */
    unsigned *kmax;        /* [B] */
    unsigned *gmax;        /* [B][gstride] */
    int gstride, ngroup, gsize, gaxis;
    u64 *bad;              /* [B] first non-finite (row << 32 | part << 28 | col), NO_BAD when none */
    u64 *loghist;          /* [LOGB] of the tensor (mode 1) */
    int rows_per_block;
};

template <int MODE, bool F32>
__device__ __forceinline__ unsigned key_at(const void *row, int c) {
    if (F32) return __float_as_uint(((const float *)row)[c]) & 0x7fffffffu;
    unsigned short h = ((const unsigned short *)row)[c];
    if (MODE == 0) return h & 0x7fffu;
    return __float_as_uint(fabsf(__half2float(__ushort_as_half(h))));
}

/* MODE 0: 16-bit patterns of FP16 data. MODE 1: FP32 keys (F32 data, or FP16 widened), top bits. */
template <int MODE, bool F32>
__global__ void __launch_bounds__(OBS_THREADS) k_observe(obs_args a) {
    extern __shared__ unsigned sm[];
    unsigned *sh = sm;                                   /* [NB1] */
    unsigned *slh = sh + NB1;                            /* [LOGB] (MODE 1) */
    unsigned *sg = slh + (MODE == 1 ? LOGB : 0);         /* [ngroup] */
    __shared__ unsigned wmax[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
    const int b = blockIdx.y;
    const view &v = a.v;
    for (int k = tid; k < NB1; k += blockDim.x) sh[k] = 0;
    if (MODE == 1)
        for (int k = tid; k < LOGB; k += blockDim.x) slh[k] = 0;
    for (int k = tid; k < a.ngroup; k += blockDim.x) sg[k] = 0;
    __syncthreads();

    const unsigned bad_key = MODE == 0 ? 0x7c00u : 0x7f800000u;
    const int r0 = blockIdx.x * a.rows_per_block, r1 = min(v.rows_s, r0 + a.rows_per_block);
    const int esz = F32 ? 4 : 2;
    const bool col_groups = a.ngroup && a.gaxis == 1, row_groups = a.ngroup && a.gaxis == 0;
    /* FP16 pairs when the rows and the view are 4-byte aligned */
    const bool pairs = !F32 && MODE == 0 && (v.ld % 2 == 0) && (v.ncols % 2 == 0) && (((size_t)v.x & 3) == 0);
    const int step = pairs ? 64 : 32;
    unsigned tmax = 0;
    for (int r = r0 + warp; r < r1; r += nwarps) {
        const char *row = (const char *)v.x + ((size_t)b * v.rows_s + r) * (size_t)v.ld * esz;
        unsigned rmax = 0;
        for (int c0 = 0; c0 < v.ncols; c0 += step) {
            unsigned k0 = 0, k1 = 0;
            int c = c0 + (pairs ? 2 * lane : lane);
            bool has0 = c < v.ncols, has1 = pairs && c + 1 < v.ncols;
            if (pairs && has0) {
                unsigned w = *(const unsigned *)(row + (size_t)c * 2);
                k0 = w & 0x7fffu;
                k1 = (w >> 16) & 0x7fffu;
            } else if (has0) {
                k0 = key_at<MODE, F32>(row, c);
            }
            if (has0) {
                if (MODE == 0) atomicAdd(&sh[k0], 1u);
                else { atomicAdd(&sh[k0 >> 16], 1u); atomicAdd(&slh[logbin(k0)], 1u); }
                if (k0 >= bad_key) atomicMin(&a.bad[b], ((u64)r << 32) | ((u64)v.part << 28) | (u64)c);
            }
            if (has1) {
                atomicAdd(&sh[k1], 1u);
                if (k1 >= bad_key) atomicMin(&a.bad[b], ((u64)r << 32) | ((u64)v.part << 28) | (u64)(c + 1));
            }
            unsigned m = max(k0, k1);
            rmax = max(rmax, m);
            if (col_groups) {
                int cend = min(c0 + step, v.ncols) - 1;
                int g0 = (v.gcol0 + c0) / a.gsize, g1 = (v.gcol0 + cend) / a.gsize;
                if (g0 == g1) { /* the warp's columns are one group: reduce, one atomic */
                    unsigned wm = warp_max(m);
                    if (lane == 0 && g0 < a.ngroup) atomicMax(&sg[g0], wm);
                } else {
                    if (has0 && (v.gcol0 + c) / a.gsize < a.ngroup) atomicMax(&sg[(v.gcol0 + c) / a.gsize], k0);
                    if (has1 && (v.gcol0 + c + 1) / a.gsize < a.ngroup) atomicMax(&sg[(v.gcol0 + c + 1) / a.gsize], k1);
                }
            }
        }
        if (row_groups) {
            unsigned wm = warp_max(rmax);
            if (lane == 0 && r / a.gsize < a.ngroup) atomicMax(&sg[r / a.gsize], wm);
        }
        tmax = max(tmax, rmax);
    }
    tmax = warp_max(tmax);
    if (lane == 0) wmax[warp] = tmax;
    __syncthreads();
    unsigned *gh = a.hist + (size_t)b * NB1;
    for (int k = tid; k < NB1; k += blockDim.x) {
        unsigned c = sh[k];
        if (c) atomicAdd(&gh[k], c);
    }
    if (MODE == 1)
        for (int k = tid; k < LOGB; k += blockDim.x)
            if (slh[k]) atomicAdd(&a.loghist[k], (u64)slh[k]);
    for (int k = tid; k < a.ngroup; k += blockDim.x)
        if (sg[k]) atomicMax(&a.gmax[(size_t)b * a.gstride + k], sg[k]);
    if (tid == 0) {
        unsigned m = 0;
        for (int w = 0; w < nwarps; w++) m = max(m, wmax[w]);
        atomicMax(&a.kmax[b], m);
    }
}

/* Per-sample targets of the two-level path: the distinct top-bits bins holding the ranks. */
struct tgt {
    int nslot;
    unsigned bin[MAXR];           /* slot -> top-bits bin */
    int rslot[MAXR];              /* rank j -> slot */
    unsigned resid[MAXR];         /* rank j's position among the values of its bin */
};

struct l2_args {
    view v;
    const tgt *tg;                /* [B] */
    unsigned *sub;                /* [B][ns][NB2] */
    int ns, rows_per_block;
};

/* Level 2: histogram of the low 16 bits of the values whose top bits are a target bin. */
template <bool F32>
__global__ void k_level2(l2_args a) {
    __shared__ unsigned sbin[MAXR];
    __shared__ int nslot;
    const int b = blockIdx.y;
    if (threadIdx.x == 0) nslot = a.tg[b].nslot;
    if (threadIdx.x < MAXR) sbin[threadIdx.x] = a.tg[b].bin[threadIdx.x];
    __syncthreads();
    unsigned lo = 0xffffffffu, hi = 0;
    for (int s = 0; s < nslot; s++) { lo = min(lo, sbin[s]); hi = max(hi, sbin[s]); }
    const view &v = a.v;
    const int r0 = blockIdx.x * a.rows_per_block, r1 = min(v.rows_s, r0 + a.rows_per_block);
    const int esz = F32 ? 4 : 2;
    const long n = (long)(r1 - r0) * v.ncols;
    unsigned *sub = a.sub + (size_t)b * a.ns * NB2;
    for (long i = threadIdx.x; i < n; i += blockDim.x) {
        int r = r0 + (int)(i / v.ncols), c = (int)(i % v.ncols);
        const char *row = (const char *)v.x + ((size_t)b * v.rows_s + r) * (size_t)v.ld * esz;
        unsigned key = key_at<1, F32>(row, c), kb = key >> 16;
        if (kb < lo || kb > hi) continue;
        for (int s = 0; s < nslot; s++)
            if (sbin[s] == kb) { atomicAdd(&sub[(size_t)s * NB2 + (key & 0xffffu)], 1u); break; }
    }
}

/* ---------------------------------------------------------------- finishing a tensor */

struct fin_args {
    unsigned *hist, *kmax, *gmax;   /* the slot's scratch (as obs_args) */
    int gstride, ngroup;
    u64 *bad;
    int nr;                         /* ranks: r[2q] below, r[2q+1] above */
    unsigned r[MAXR];
    int nq;
    float w[OBS_MAX_Q];
    float *res;                     /* [B][rs]: pct[nq], absmax, gabsmax[ngroup] */
    int rs;
    u64 *cnt, *badres;              /* [B] */
    u64 *loghist;                   /* [LOGB] */
    const unsigned short *map16;    /* FP16 pattern -> log bin */
    tgt *tg;                        /* [B] two-level path */
    unsigned *sub;
    int ns;
};

/* results common to both paths: percentiles from the keys of the ranks, absmax, group maxima; resets the scratch */
template <bool F32>
__device__ void write_results(const fin_args &a, int b, const unsigned *key) {
    float *res = a.res + (size_t)b * a.rs;
    if (threadIdx.x < a.nq) {
        int q = threadIdx.x;
        float lo = F32 ? __uint_as_float(key[2 * q]) : val16(key[2 * q]);
        float hi = F32 ? __uint_as_float(key[2 * q + 1]) : val16(key[2 * q + 1]);
        res[q] = lerp_torch(lo, hi, a.w[q]);
    }
    if (threadIdx.x == 0) {
        res[a.nq] = F32 ? __uint_as_float(a.kmax[b]) : val16(a.kmax[b]);
        a.kmax[b] = 0;
        a.badres[b] = a.bad[b];
        a.bad[b] = NO_BAD;
    }
    for (int g = threadIdx.x; g < a.ngroup; g += blockDim.x) {
        unsigned k = a.gmax[(size_t)b * a.gstride + g];
        res[a.nq + 1 + g] = F32 ? __uint_as_float(k) : val16(k);
        a.gmax[(size_t)b * a.gstride + g] = 0;
    }
}

__global__ void __launch_bounds__(OBS_THREADS) k_final16(fin_args a) {
    __shared__ unsigned cp[NB1 / 32 + 1], wt[32], rr[MAXR], bin[MAXR], before[MAXR], total;
    __shared__ unsigned slh[LOGB];
    const int b = blockIdx.x;
    unsigned *h = a.hist + (size_t)b * NB1;
    for (int k = threadIdx.x; k < LOGB; k += blockDim.x) slh[k] = 0;
    if (threadIdx.x < a.nr) rr[threadIdx.x] = a.r[threadIdx.x];
    __syncthreads();
    hist_find(h, NB1, a.nr, rr, bin, before, &total, cp, wt, a.map16, slh);
    for (int k = threadIdx.x; k < NB1; k += blockDim.x) h[k] = 0;
    for (int k = threadIdx.x; k < LOGB; k += blockDim.x)
        if (slh[k]) atomicAdd(&a.loghist[k], (u64)slh[k]);
    if (threadIdx.x == 0) a.cnt[b] = total;
    write_results<false>(a, b, bin);
}

__global__ void __launch_bounds__(OBS_THREADS) k_select1(fin_args a) {
    __shared__ unsigned cp[NB1 / 32 + 1], wt[32], rr[MAXR], bin[MAXR], before[MAXR], total;
    const int b = blockIdx.x;
    unsigned *h = a.hist + (size_t)b * NB1;
    if (threadIdx.x < a.nr) rr[threadIdx.x] = a.r[threadIdx.x];
    __syncthreads();
    hist_find(h, NB1, a.nr, rr, bin, before, &total, cp, wt, NULL, NULL);
    for (int k = threadIdx.x; k < NB1; k += blockDim.x) h[k] = 0;
    if (threadIdx.x == 0) {
        tgt t;
        t.nslot = 0;
        for (int j = 0; j < a.nr; j++) {
            int s = 0;
            while (s < t.nslot && t.bin[s] != bin[j]) s++;
            if (s == t.nslot) t.bin[t.nslot++] = bin[j];
            t.rslot[j] = s;
            t.resid[j] = rr[j] - before[j];
        }
        for (int s = t.nslot; s < MAXR; s++) t.bin[s] = 0;
        a.tg[b] = t;
        a.cnt[b] = total;
    }
}

__global__ void __launch_bounds__(OBS_THREADS) k_select2(fin_args a) {
    __shared__ unsigned cp[NB2 / 32 + 1], wt[32], sr[MAXR], sbin[MAXR], sbef[MAXR], key[MAXR], total;
    __shared__ int sj[MAXR], nsel;
    __shared__ tgt t;
    const int b = blockIdx.x;
    if (threadIdx.x == 0) t = a.tg[b];
    if (threadIdx.x < MAXR) key[threadIdx.x] = 0;
    __syncthreads();
    for (int s = 0; s < t.nslot; s++) {
        if (threadIdx.x == 0) {
            nsel = 0;
            for (int j = 0; j < a.nr; j++)
                if (t.rslot[j] == s) { sr[nsel] = t.resid[j]; sj[nsel] = j; nsel++; }
        }
        __syncthreads();
        unsigned *h = a.sub + ((size_t)b * a.ns + s) * NB2;
        hist_find(h, NB2, nsel, sr, sbin, sbef, &total, cp, wt, NULL, NULL);
        if (threadIdx.x == 0)
            for (int i = 0; i < nsel; i++) key[sj[i]] = (t.bin[s] << 16) | sbin[i];
        for (int k = threadIdx.x; k < NB2; k += blockDim.x) h[k] = 0;
        __syncthreads();
    }
    write_results<true>(a, b, key);
}

/* Transforms: out[r*cols + c] = x[r*ld + c] - bias[c] in FP32 (calib_gpu_set_minus_bias). */
template <bool F32>
__global__ void k_minus_bias(float *out, const void *x, int ld, const float *bias, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols, c = i % cols;
        float v = F32 ? ((const float *)x)[r * ld + c] : __half2float(((const __half *)x)[r * ld + c]);
        out[i] = __fsub_rn(v, bias[c]);
    }
}

/* Per-channel absmax (quamba2's clustered ssm_x scales): cmax[c] = max(cmax[c], |x[r][c]|) over
 * `rows` rows of a view, as the bit patterns of the non-negative floats (which order like their
 * values). A thread per column of blocks of 256 rows (gridDim.y of them at a time): the reads of a
 * warp are one row's 32 consecutive columns; one atomic per (column, block). */
template <bool F32>
__global__ void k_chan_absmax(unsigned *cmax, const void *x, int ld, int rows, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float m = 0.f;
    for (long r0 = blockIdx.y * 256L; r0 < rows; r0 += gridDim.y * 256L) {
        const long r1 = min((long)rows, r0 + 256);
        for (long r = r0; r < r1; r++) {
            const size_t i = (size_t)r * ld + c;
            m = fmaxf(m, fabsf(F32 ? ((const float *)x)[i] : __half2float(((const __half *)x)[i])));
        }
    }
    atomicMax(cmax + c, __float_as_uint(m));
}

/* ---------------------------------------------------------------- engine (host) */

/* Device scratch and results for nt tensors of up to bmax samples, nslot tensors pending at once. */
struct eng {
    int nt, nslot, bmax, nq, gmax, rs, ns, sms;
    double pct[OBS_MAX_Q];
    unsigned *hist, *kmax, *gmaxk, *sub;
    u64 *bad;
    tgt *tg;
    float *res;
    u64 *cnt, *badres, *loghist;
    unsigned short *map16;
    size_t smem0, smem1;
    /* host copies of one batch's results */
    float *h_res;
    u64 *h_cnt, *h_badres, *h_loghist;
};

static unsigned short g_map16[NB1];
static int g_tables_ready;

static int dev_alloc(void **p, size_t bytes, const char *what) {
    return gpu_malloc(p, bytes, what) ? mq_fail_ctx("GPU calibration (try a smaller --batch)") : 0;
}

static void eng_free(eng *e) {
    void *ptrs[] = {e->hist, e->kmax, e->gmaxk, e->sub, e->bad, e->tg, e->res, e->cnt, e->badres, e->loghist, e->map16};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i]) CUDA_CHECK(cudaFree(ptrs[i]));
    free(e->h_res);
    free(e->h_cnt);
    free(e->h_badres);
    free(e->h_loghist);
    memset(e, 0, sizeof *e);
}

static int eng_init(eng *e, int nt, int nslot, int bmax, const double *pct, int nq, int gmax) {
    memset(e, 0, sizeof *e);
    const char *why;
    if (!gpu_available(&why)) return mq_fail("GPU calibration: no usable GPU: %s", why);
    if (nq < 1 || nq > OBS_MAX_Q) return mq_fail("GPU calibration: %d percentiles (1 to %d)", nq, OBS_MAX_Q);
    e->nt = nt;
    e->nslot = nslot;
    e->bmax = bmax;
    e->nq = nq;
    memcpy(e->pct, pct, nq * sizeof *pct);
    e->gmax = gmax < 1 ? 1 : gmax;
    e->rs = nq + 1 + e->gmax;
    e->ns = 2 * nq;
    CUDA_CHECK(cudaDeviceGetAttribute(&e->sms, cudaDevAttrMultiProcessorCount, 0));
    if (!g_tables_ready) {
        for (int k = 0; k < NB1; k++) g_map16[k] = (unsigned short)obs_hist_bin(__half2float(__ushort_as_half((unsigned short)k)));
        float mant[OBS_HIST_PER_OCTAVE + 1];
        for (int k = 0; k <= OBS_HIST_PER_OCTAVE; k++) mant[k] = ldexpf(obs_hist_edge(k), -OBS_HIST_LOG2_MIN);
        CUDA_CHECK(cudaMemcpyToSymbol(c_mant, mant, sizeof mant));
        g_tables_ready = 1;
    }
    size_t S = (size_t)nslot * bmax;
    int rc = dev_alloc((void **)&e->hist, S * NB1 * 4, "pattern histograms") ||
             dev_alloc((void **)&e->kmax, S * 4, "maxima") ||
             dev_alloc((void **)&e->gmaxk, S * e->gmax * 4, "group maxima") ||
             dev_alloc((void **)&e->bad, S * 8, "finiteness flags") ||
             dev_alloc((void **)&e->sub, (size_t)bmax * e->ns * NB2 * 4, "second-level histograms") ||
             dev_alloc((void **)&e->tg, (size_t)bmax * sizeof(tgt), "selection targets") ||
             dev_alloc((void **)&e->res, (size_t)nt * bmax * e->rs * 4, "per-sample results") ||
             dev_alloc((void **)&e->cnt, (size_t)nt * bmax * 8, "counts") ||
             dev_alloc((void **)&e->badres, (size_t)nt * bmax * 8, "finiteness results") ||
             dev_alloc((void **)&e->loghist, (size_t)nt * LOGB * 8, "log histograms") ||
             dev_alloc((void **)&e->map16, sizeof g_map16, "log-bin table");
    if (rc) { eng_free(e); return -1; }
    CUDA_CHECK(cudaMemset(e->hist, 0, S * NB1 * 4));
    CUDA_CHECK(cudaMemset(e->kmax, 0, S * 4));
    CUDA_CHECK(cudaMemset(e->gmaxk, 0, S * e->gmax * 4));
    CUDA_CHECK(cudaMemset(e->bad, 0xff, S * 8));
    CUDA_CHECK(cudaMemset(e->sub, 0, (size_t)bmax * e->ns * NB2 * 4));
    CUDA_CHECK(cudaMemset(e->loghist, 0, (size_t)nt * LOGB * 8));
    CUDA_CHECK(cudaMemcpy(e->map16, g_map16, sizeof g_map16, cudaMemcpyHostToDevice));
    e->smem0 = (size_t)(NB1 + e->gmax) * 4;
    e->smem1 = (size_t)(NB1 + LOGB + e->gmax) * 4;
    CUDA_CHECK(cudaFuncSetAttribute(k_observe<0, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)e->smem0));
    CUDA_CHECK(cudaFuncSetAttribute(k_observe<1, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)e->smem1));
    CUDA_CHECK(cudaFuncSetAttribute(k_observe<1, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)e->smem1));
    /* the forward's stream does not wait for the legacy stream these copies and memsets ran on */
    CUDA_CHECK(cudaDeviceSynchronize());
    e->h_res = (float *)mq_malloc((size_t)nt * bmax * e->rs * sizeof(float));
    e->h_cnt = (u64 *)mq_malloc((size_t)nt * bmax * 8);
    e->h_badres = (u64 *)mq_malloc((size_t)nt * bmax * 8);
    e->h_loghist = (u64 *)mq_malloc((size_t)nt * LOGB * 8);
    return 0;
}

/* grouping of one tensor, as obs_tensor_set_groups */
struct grp {
    int ngroup, gsize, gaxis;
};

static obs_args obs_args_for(const eng *e, int tensor, int slot, const view &v, grp g) {
    obs_args a;
    memset(&a, 0, sizeof a);
    a.v = v;
    size_t s0 = (size_t)slot * e->bmax;
    a.hist = e->hist + s0 * NB1;
    a.kmax = e->kmax + s0;
    a.gmax = e->gmaxk + s0 * e->gmax;
    a.gstride = e->gmax;
    a.ngroup = g.ngroup;
    a.gsize = g.gsize;
    a.gaxis = g.gaxis;
    a.bad = e->bad + s0;
    a.loghist = e->loghist + (size_t)tensor * LOGB;
    return a;
}

/* First pass over a view of B samples: k_observe<0> (FP16 patterns) or k_observe<1> (FP32 keys). */
static void eng_observe(const eng *e, int tensor, int slot, int k32, const view &v, int B, grp g, cudaStream_t st) {
    if (!k32 && v.f32) mq_die("GPU calibration: FP32 data on the 16-bit path (tensor %d)", tensor);
    obs_args a = obs_args_for(e, tensor, slot, v, g);
    /* about one resident block per SM in all (each holds a 128 KB histogram), at least 64k values
     * per block so zeroing and flushing the histogram stays small beside the data */
    int want = e->sms / B > 0 ? e->sms / B : 1;
    int rpb = (v.rows_s + want - 1) / want, minr = (65536 + v.ncols - 1) / v.ncols;
    if (rpb < minr) rpb = minr;
    if (rpb > v.rows_s) rpb = v.rows_s;
    a.rows_per_block = rpb;
    dim3 grid((v.rows_s + rpb - 1) / rpb, B);
    if (!k32) k_observe<0, false><<<grid, OBS_THREADS, e->smem0, st>>>(a);
    else if (v.f32) k_observe<1, true><<<grid, OBS_THREADS, e->smem1, st>>>(a);
    else k_observe<1, false><<<grid, OBS_THREADS, e->smem1, st>>>(a);
    CUDA_CHECK_LAUNCH();
}

/* torch.quantile's rank arithmetic (obs.c rank_of): q and the rank in float32. */
static void fill_ranks(fin_args *f, const double *pct, int nq, size_t n) {
    f->nq = nq;
    f->nr = 2 * nq;
    for (int q = 0; q < nq; q++) {
        float qq = (float)(pct[q] / 100.0);
        float rank = qq * (float)(n - 1);
        size_t below = (size_t)rank, above = (size_t)ceilf(rank);
        if (above > n - 1) above = n - 1;
        f->r[2 * q] = (unsigned)below;
        f->r[2 * q + 1] = (unsigned)above;
        f->w[q] = rank - (float)below;
    }
}

/* The tensor is complete for this batch: n values per sample; views: every part (re-read by the
 * two-level path). */
static void eng_complete(const eng *e, int tensor, int slot, int k32, size_t n, const view *views, int nviews, int B,
                         grp g, cudaStream_t st) {
    fin_args f;
    memset(&f, 0, sizeof f);
    obs_args a = obs_args_for(e, tensor, slot, views[0], g);
    f.hist = a.hist;
    f.kmax = a.kmax;
    f.gmax = a.gmax;
    f.gstride = a.gstride;
    f.ngroup = g.ngroup;
    f.bad = a.bad;
    fill_ranks(&f, e->pct, e->nq, n);
    f.res = e->res + (size_t)tensor * e->bmax * e->rs;
    f.rs = e->rs;
    f.cnt = e->cnt + (size_t)tensor * e->bmax;
    f.badres = e->badres + (size_t)tensor * e->bmax;
    f.loghist = a.loghist;
    f.map16 = e->map16;
    f.tg = e->tg;
    f.sub = e->sub;
    f.ns = e->ns;
    if (!k32) {
        k_final16<<<B, OBS_THREADS, 0, st>>>(f);
        CUDA_CHECK_LAUNCH();
        return;
    }
    k_select1<<<B, OBS_THREADS, 0, st>>>(f);
    CUDA_CHECK_LAUNCH();
    for (int i = 0; i < nviews; i++) {
        const view &v = views[i];
        l2_args l;
        l.v = v;
        l.tg = e->tg;
        l.sub = e->sub;
        l.ns = e->ns;
        int want = (e->sms * 4) / B > 0 ? (e->sms * 4) / B : 1;
        int rpb = (v.rows_s + want - 1) / want, minr = (8192 + v.ncols - 1) / v.ncols;
        if (rpb < minr) rpb = minr;
        if (rpb > v.rows_s) rpb = v.rows_s;
        l.rows_per_block = rpb;
        dim3 grid((v.rows_s + rpb - 1) / rpb, B);
        if (v.f32) k_level2<true><<<grid, 256, 0, st>>>(l);
        else k_level2<false><<<grid, 256, 0, st>>>(l);
        CUDA_CHECK_LAUNCH();
    }
    k_select2<<<B, OBS_THREADS, 0, st>>>(f);
    CUDA_CHECK_LAUNCH();
}

/* After the stream is idle: this batch's per-sample results and log histograms to the host; the
 * device log histograms restart from zero, finished before the next batch's kernels (they run on
 * the workspace's non-blocking stream, unordered with this legacy-stream memset). */
static void eng_download(eng *e) {
    size_t nr = (size_t)e->nt * e->bmax;
    CUDA_CHECK(cudaMemcpy(e->h_res, e->res, nr * e->rs * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(e->h_cnt, e->cnt, nr * 8, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(e->h_badres, e->badres, nr * 8, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(e->h_loghist, e->loghist, (size_t)e->nt * LOGB * 8, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemset(e->loghist, 0, (size_t)e->nt * LOGB * 8));
    CUDA_CHECK(cudaDeviceSynchronize());
}

static inline float maxf(float a, float b) { return b > a ? b : a; }

/* Fold sample b of tensor i (this batch) into t, as obs_tensor_observe does. */
static void fold_sample(const eng *e, int i, int b, obs_tensor *t, size_t n) {
    const float *r = e->h_res + ((size_t)i * e->bmax + b) * e->rs;
    int first = t->nsamples == 0;
    for (int q = 0; q < t->nq; q++) {
        t->plast[q] = r[q];
        t->pmax[q] = first ? r[q] : maxf(t->pmax[q], r[q]);
        t->pema[q] = obs_ema(t->pema[q], r[q], first);
    }
    t->absmax = maxf(t->absmax, r[t->nq]);
    for (int g = 0; g < t->ngroup; g++) t->gabsmax[g] = maxf(t->gabsmax[g], r[t->nq + 1 + g]);
    t->numel += (int64_t)n;
    t->nsamples++;
}

/* ---------------------------------------------------------------- routing the forward's hooks */

typedef struct {
    mq_act_role role;
    int col0, ncols, part;   /* part -1: the whole tensor comes from this one call */
} target_spec;

/* Which hook calls feed the tensor named op (the Quamba names of calib/obs.h). 0 if unknown. */
static int op_targets(const mq_config *c, const char *op, target_spec *t) {
    const int E = c->d_inner, D = c->d_model, N = c->d_state;
    int n = 0;
#define T_(r, c0, nc, p) (t[n].role = r, t[n].col0 = c0, t[n].ncols = nc, t[n].part = p, n++)
    if (!strcmp(op, "in_proj:input")) T_(MQ_ACT_IN_PROJ_IN, 0, D, -1);
    else if (!strcmp(op, "lm_head:input")) T_(MQ_ACT_LM_HEAD_IN, 0, D, -1);
    else if (!strcmp(op, "had:input")) T_(MQ_ACT_SSM_OUT, 0, E, -1);
    else if (!strcmp(op, "out_proj:input")) T_(MQ_ACT_OUT_PROJ_IN, 0, E, -1);
    else if (!strcmp(op, "ssm_state_act:input")) T_(MQ_ACT_SSM_STATE, 0, N, -1);
    else if (c->arch == MQ_MAMBA1) {
        const int xo = c->dt_rank + 2 * N;
        if (!strcmp(op, "in_proj:output")) { T_(MQ_ACT_CONV_IN, 0, E, 0); T_(MQ_ACT_Z, 0, E, 1); }
        else if (!strcmp(op, "x_proj:input")) T_(MQ_ACT_SSM_X, 0, E, -1);
        else if (!strcmp(op, "x_proj:output")) T_(MQ_ACT_X_PROJ_OUT, 0, xo, -1);
        else if (!strcmp(op, "dt_proj:input")) T_(MQ_ACT_X_PROJ_OUT, 0, c->dt_rank, -1);
        else if (!strcmp(op, "dt_proj:output")) T_(MQ_ACT_DT, 0, E, -1);
    } else {
        const int GN = c->n_groups * N, H = c->n_heads, cd = E + 2 * GN;
        if (!strcmp(op, "in_proj:output")) { T_(MQ_ACT_Z, 0, E, 0); T_(MQ_ACT_CONV_IN, 0, cd, 1); T_(MQ_ACT_DT, 0, H, 2); }
        else if (!strcmp(op, "z_act:input")) T_(MQ_ACT_Z, 0, E, -1);
        else if (!strcmp(op, "x_conv_in:input")) T_(MQ_ACT_CONV_IN, 0, E, -1);
        else if (!strcmp(op, "B_conv_in:input")) T_(MQ_ACT_CONV_IN, E, GN, -1);
        else if (!strcmp(op, "C_conv_in:input")) T_(MQ_ACT_CONV_IN, E + GN, GN, -1);
        else if (!strcmp(op, "dt_act:input")) T_(MQ_ACT_DT, 0, H, -1);
        else if (!strcmp(op, "x_conv_out:input")) T_(MQ_ACT_SSM_X, 0, E, -1);
        else if (!strcmp(op, "B_conv_out:input")) T_(MQ_ACT_B, 0, GN, -1);
        else if (!strcmp(op, "C_conv_out:input")) T_(MQ_ACT_C, 0, GN, -1);
    }
#undef T_
    return n;
}

/* Columns of each role's hook call (ssm/model.h), and rows per sample of the SSM state. */
static int role_cols(const mq_config *c, mq_act_role r) {
    const int E = c->d_inner, N = c->d_state;
    const int GN = c->arch == MQ_MAMBA1 ? N : c->n_groups * N;
    switch (r) {
    case MQ_ACT_IN_PROJ_IN: case MQ_ACT_LM_HEAD_IN: return c->d_model;
    case MQ_ACT_CONV_IN: return c->arch == MQ_MAMBA1 ? E : E + 2 * GN;
    case MQ_ACT_Z: case MQ_ACT_SSM_X: case MQ_ACT_SSM_OUT: case MQ_ACT_OUT_PROJ_IN: return E;
    case MQ_ACT_X_PROJ_OUT: return c->dt_rank + 2 * N;
    case MQ_ACT_DT: return c->arch == MQ_MAMBA1 ? E : c->n_heads;
    case MQ_ACT_B: case MQ_ACT_C: return GN;
    case MQ_ACT_SSM_STATE: return N;
    default: return 0;
    }
}
static int state_rows(const mq_config *c) { return c->arch == MQ_MAMBA1 ? c->d_inner : c->n_heads * c->head_dim; }

enum { MAX_TG = 4, MAX_PARTS = 4 };
typedef struct {
    int n;
    struct { int tensor, col0, ncols, part; } tg[MAX_TG];
} route;

typedef struct {
    obs_tensor *t;
    int slot, k32, nparts;
    grp g;
    /* this batch */
    unsigned parts_seen;
    int done;
    size_t n;
    view views[MAX_PARTS];
    int nviews;
    unsigned *cmax; /* device per-channel running absmax [t->nchan] (float bits), or NULL */
} gtensor;

typedef struct {
    int active;
    calib_gpu_transform_fn fn;   /* NULL with bias: the built-in minus-bias */
    void *ctx;
    float *bias;                 /* device [n_layer][cols] */
    float *out;                  /* device scratch [rows_max x cols] */
} gxform;

/* calib_gpu_profile: GPU time between events recorded around the observers' launches */
enum { PC_START, PC_FWD, PC_XFORM, PC_OBS16, PC_OBS32, PC_FIN16, PC_SEL32, PC_N };
static const char *pc_names[PC_N] = {"", "forward", "transforms", "observe fp16", "observe fp32 (top bits)",
                                     "finish fp16", "select fp32 (low bits)"};
#define PROF_EVENTS 16384

struct calib_gpu {
    be *b;                       /* the FP16 forward (BE_CUDA_F16) whose hooks feed the observers */
    mq_config cfg;
    obs_set *s;
    int batch, seqlen;
    eng e;
    int nt;
    gtensor *ts;
    route *routes;               /* [n_layer + 1][MQ_ACT_NROLES] */
    gxform xf[MQ_ACT_NROLES];
    int B;                       /* samples of the call in progress */
    int64_t nsamples;
    int failed;
    char err[1024];
    int prof_on, prof_n;
    cudaEvent_t *prof_ev;
    unsigned char *prof_cat;
    double prof_ms[PC_N], prof_host_ms;
    int64_t prof_samples;
};

/* an event on the forward's stream: the GPU time since the previous one is attributed to `cat` */
static void pmark(calib_gpu *c, cudaStream_t st, int cat) {
    if (!c->prof_on || c->prof_n >= PROF_EVENTS) return;
    CUDA_CHECK(cudaEventRecord(c->prof_ev[c->prof_n], st));
    c->prof_cat[c->prof_n++] = (unsigned char)cat;
}

static route *route_of(calib_gpu *c, int layer, int role) { return &c->routes[(size_t)layer * MQ_ACT_NROLES + role]; }

/* A tensor takes the two-level FP32 path when any part is FP32: the SSM state or a transformed role. */
static void update_k32(calib_gpu *c) {
    for (int i = 0; i < c->nt; i++) c->ts[i].k32 = 0;
    for (int l = 0; l <= c->cfg.n_layer; l++)
        for (int r = 0; r < MQ_ACT_NROLES; r++) {
            route *rt = route_of(c, l, r);
            for (int k = 0; k < rt->n; k++)
                if (r == MQ_ACT_SSM_STATE || c->xf[r].active) c->ts[rt->tg[k].tensor].k32 = 1;
        }
}

static void fail_in_hook(calib_gpu *c) {
    if (c->failed) return;
    c->failed = 1;
    snprintf(c->err, sizeof c->err, "%s", mq_errmsg());
}

static const char *role_label(int role) { return ssm_act_role_name((mq_act_role)role); }

/* Observes the forward's device activations (FP16, or FP32 states) in place, on its stream. The
 * first failure is kept (calib_gpu_observe reports it) and stops the forward. */
static int on_activation(void *ctx, const mq_act *a) {
    calib_gpu *c = (calib_gpu *)ctx;
    const mq_config *cfg = &c->cfg;
    const int layer = a->layer, rows = a->rows, cols = a->cols;
    const mq_act_role role = a->role;
    const void *x = a->x;
    int ld = a->ld;
    if (c->failed) return -1;
    if (role < 0 || role >= MQ_ACT_NROLES || role == MQ_ACT_RESID) return 0;
    int li = role == MQ_ACT_LM_HEAD_IN ? cfg->n_layer : layer;
    if (li < 0 || li > cfg->n_layer || (role != MQ_ACT_LM_HEAD_IN && li == cfg->n_layer)) return 0;
    route *rt = route_of(c, li, role);
    if (!rt->n) return 0;
    if (!a->device || (a->dtype != MQ_F16 && a->dtype != MQ_F32)) {
        mq_fail("layer %d activation %s: the GPU observers read FP16 or FP32 device data, got %s%s", layer,
                role_label(role), a->device ? "" : "host ", mq_dtype_name(a->dtype));
        fail_in_hook(c);
        return -1;
    }
    cudaStream_t st = (cudaStream_t)a->stream;
    if (c->prof_n == 0) pmark(c, st, PC_START); /* the forward's time before its first hook is not counted */
    pmark(c, st, PC_FWD);
    const int B = c->B;
    int want_rows = role == MQ_ACT_SSM_STATE ? B * state_rows(cfg) : B * c->seqlen, want_cols = role_cols(cfg, role);
    if (rows != want_rows || cols != want_cols) {
        mq_fail("layer %d activation %s (feeds %s): expected %d x %d for %d sequences, found %d x %d", layer,
                role_label(role), c->ts[rt->tg[0].tensor].t->name, want_rows, want_cols, B, rows, cols);
        fail_in_hook(c);
        return -1;
    }
    int f32 = a->dtype == MQ_F32;
    gxform *xf = &c->xf[role];
    if (xf->active) { /* transform a copy; every observer of the role sees the FP32 result */
        if (xf->fn) xf->fn(xf->ctx, layer, role, x, f32, rows, cols, ld, xf->out, a->stream);
        else {
            int blocks = (int)(((size_t)rows * cols + 255) / 256);
            if (blocks > 4 * c->e.sms * 8) blocks = 4 * c->e.sms * 8;
            const float *bias = xf->bias + (size_t)li * cols;
            if (f32) k_minus_bias<true><<<blocks, 256, 0, st>>>(xf->out, x, ld, bias, rows, cols);
            else k_minus_bias<false><<<blocks, 256, 0, st>>>(xf->out, x, ld, bias, rows, cols);
            CUDA_CHECK_LAUNCH();
        }
        x = xf->out;
        f32 = 1;
        ld = cols;
        pmark(c, st, PC_XFORM);
    }
    const int rows_s = rows / B;
    for (int k = 0; k < rt->n; k++) {
        gtensor *t = &c->ts[rt->tg[k].tensor];
        int part = rt->tg[k].part;
        if (part >= 0 ? (t->parts_seen >> part) & 1 : t->done) {
            mq_fail("%s: produced twice in one forward call", t->t->name);
            fail_in_hook(c);
            return -1;
        }
        view v;
        v.x = (const char *)x + (size_t)rt->tg[k].col0 * (f32 ? 4 : 2);
        v.f32 = f32;
        v.ld = ld;
        v.rows_s = rows_s;
        v.ncols = rt->tg[k].ncols;
        v.gcol0 = 0;
        v.part = part < 0 ? 0 : part;
        t->n += (size_t)rows_s * v.ncols;
        if (t->n > 0xffffffffull) {
            mq_fail("%s: %zu values per calibration sample; the GPU histograms count at most 2^32 - 1 (use a shorter --seqlen)",
                    t->t->name, t->n);
            fail_in_hook(c);
            return -1;
        }
        eng_observe(&c->e, rt->tg[k].tensor, t->slot, t->k32, v, B, t->g, st);
        if (t->cmax) {
            if (v.ncols != t->t->nchan) {
                mq_fail("%s: per-channel maxima of %d columns from a view of %d", t->t->name, t->t->nchan, v.ncols);
                fail_in_hook(c);
                return -1;
            }
            const int yb = (B * rows_s + 255) / 256;
            dim3 grid((v.ncols + 255) / 256, yb < 65535 ? yb : 65535);
            if (v.f32) k_chan_absmax<true><<<grid, 256, 0, st>>>(t->cmax, v.x, v.ld, B * rows_s, v.ncols);
            else k_chan_absmax<false><<<grid, 256, 0, st>>>(t->cmax, v.x, v.ld, B * rows_s, v.ncols);
            CUDA_CHECK_LAUNCH();
        }
        pmark(c, st, t->k32 ? PC_OBS32 : PC_OBS16);
        t->views[t->nviews++] = v;
        if (part >= 0) t->parts_seen |= 1u << part;
        if (part < 0 || t->parts_seen == (1u << t->nparts) - 1) {
            eng_complete(&c->e, rt->tg[k].tensor, t->slot, t->k32, t->n, t->views, t->nviews, B, t->g, st);
            pmark(c, st, t->k32 ? PC_SEL32 : PC_FIN16);
            t->done = 1;
        }
    }
    return 0;
}

calib_gpu *calib_gpu_new(be *b, obs_set *s) {
    if (be_kind_of(b) != BE_CUDA_F16) {
        mq_fail("GPU calibration observes the FP16 GPU forward, not %s", be_kind_name(be_kind_of(b)));
        return NULL;
    }
    calib_gpu *c = (calib_gpu *)mq_calloc(1, sizeof *c);
    c->b = b;
    c->cfg = *be_config(b);
    c->s = s;
    c->batch = be_max_batch(b);
    c->seqlen = be_max_seqlen(b);
    c->nt = obs_count(s);
    c->ts = (gtensor *)mq_calloc(c->nt, sizeof *c->ts);
    c->routes = (route *)mq_calloc((size_t)(c->cfg.n_layer + 1) * MQ_ACT_NROLES, sizeof *c->routes);
    int nslot = 0, gmax = 1, cur_layer = -2, in_layer = 0, nq = 0;
    const double *pct = NULL;
    for (int i = 0; i < c->nt; i++) {
        obs_tensor *t = obs_get(s, i);
        gtensor *gt = &c->ts[i];
        gt->t = t;
        if (i == 0) { nq = t->nq; pct = t->pct; }
        else if (t->nq != nq || memcmp(t->pct, pct, nq * sizeof *pct)) {
            mq_fail("GPU calibration: %s has another percentile list than %s", t->name, obs_get(s, 0)->name);
            goto fail;
        }
        if (t->layer != cur_layer) { cur_layer = t->layer; in_layer = 0; }
        gt->slot = in_layer++;
        if (in_layer > nslot) nslot = in_layer;
        gt->g.ngroup = t->ngroup;
        gt->g.gsize = t->gsize;
        gt->g.gaxis = t->gaxis;
        if (t->ngroup > gmax) gmax = t->ngroup;
        if (t->nchan) {
            if (dev_alloc((void **)&gt->cmax, (size_t)t->nchan * 4, "per-channel maxima")) goto fail;
            CUDA_CHECK(cudaMemset(gt->cmax, 0, (size_t)t->nchan * 4));
        }
        int li = t->layer < 0 ? c->cfg.n_layer : t->layer;
        const char *op = t->layer < 0 ? t->name : strstr(t->name, "mixer.");
        if (op && t->layer >= 0) op += strlen("mixer.");
        target_spec ts[MAX_TG];
        int n = op ? op_targets(&c->cfg, op, ts) : 0;
        if (!n) {
            mq_fail("GPU calibration: no route for observer %s (calib/calib_cuda.cu op_targets knows the names of calib/obs.h)",
                    t->name);
            goto fail;
        }
        gt->nparts = ts[0].part >= 0 ? n : 1;
        for (int k = 0; k < n; k++) {
            route *rt = route_of(c, li, ts[k].role);
            if (rt->n == MAX_TG) { mq_fail("GPU calibration: too many observers of one activation"); goto fail; }
            rt->tg[rt->n].tensor = i;
            rt->tg[rt->n].col0 = ts[k].col0;
            rt->tg[rt->n].ncols = ts[k].ncols;
            rt->tg[rt->n].part = ts[k].part;
            rt->n++;
        }
    }
    if (eng_init(&c->e, c->nt, nslot, c->batch, pct, nq, gmax)) goto fail;
    update_k32(c);
    return c;
fail:
    calib_gpu_free(c);
    return NULL;
}

void calib_gpu_free(calib_gpu *c) {
    if (!c) return;
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        if (c->xf[r].bias) CUDA_CHECK(cudaFree(c->xf[r].bias));
        if (c->xf[r].out) CUDA_CHECK(cudaFree(c->xf[r].out));
    }
    if (c->e.nt) eng_free(&c->e);
    for (int i = 0; c->ts && i < c->nt; i++)
        if (c->ts[i].cmax) CUDA_CHECK(cudaFree(c->ts[i].cmax));
    if (c->prof_ev) {
        for (int i = 0; i < PROF_EVENTS; i++) CUDA_CHECK(cudaEventDestroy(c->prof_ev[i]));
        free(c->prof_ev);
        free(c->prof_cat);
    }
    free(c->ts);
    free(c->routes);
    free(c);
}

static int xform_prepare(calib_gpu *c, mq_act_role role) {
    if (role < 0 || role >= MQ_ACT_NROLES) return mq_fail("GPU calibration: no activation role %d", (int)role);
    gxform *x = &c->xf[role];
    if (!x->out) {
        size_t rows = role == MQ_ACT_SSM_STATE ? (size_t)c->batch * state_rows(&c->cfg) : (size_t)c->batch * c->seqlen;
        if (dev_alloc((void **)&x->out, rows * role_cols(&c->cfg, role) * sizeof(float), "a transformed activation"))
            return -1;
    }
    return 0;
}

int calib_gpu_set_transform(calib_gpu *c, mq_act_role role, calib_gpu_transform_fn fn, void *ctx) {
    if (!fn) {
        if (role >= 0 && role < MQ_ACT_NROLES) c->xf[role].active = 0;
    } else {
        if (xform_prepare(c, role)) return -1;
        c->xf[role].active = 1;
        c->xf[role].fn = fn;
        c->xf[role].ctx = ctx;
    }
    update_k32(c);
    return 0;
}

int calib_gpu_set_minus_bias(calib_gpu *c, mq_act_role role, const float *bias) {
    if (xform_prepare(c, role)) return -1;
    gxform *x = &c->xf[role];
    size_t n = (size_t)(c->cfg.n_layer + 1) * role_cols(&c->cfg, role);
    if (!x->bias && dev_alloc((void **)&x->bias, n * sizeof(float), "biases")) return -1;
    CUDA_CHECK(cudaMemset(x->bias, 0, n * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(x->bias, bias, (size_t)c->cfg.n_layer * role_cols(&c->cfg, role) * sizeof(float),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize()); /* a pageable copy may still be in flight: see eng_download */
    x->active = 1;
    x->fn = NULL;
    x->ctx = NULL;
    update_k32(c);
    return 0;
}

int64_t calib_gpu_samples(const calib_gpu *c) { return c->nsamples; }

int calib_gpu_observe(calib_gpu *c, const int32_t *tokens, int B) {
    if (B < 1 || B > c->batch) return mq_fail("GPU calibration: %d sequences in a call of at most %d", B, c->batch);
    for (int i = 0; i < c->nt; i++) {
        gtensor *t = &c->ts[i];
        t->parts_seen = 0;
        t->done = 0;
        t->n = 0;
        t->nviews = 0;
    }
    c->B = B;
    c->failed = 0;
    mq_hooks hk = {on_activation, c};
    const long long s0 = (long long)c->nsamples;
    c->prof_n = 0;
    if (be_prefill(c->b, tokens, B, c->seqlen, NULL, &hk, NULL)) {
        if (c->failed) return mq_fail("calibration samples %lld..%lld: %s", s0, s0 + B - 1, c->err);
        return mq_fail_ctx("calibration samples %lld..%lld", s0, s0 + B - 1);
    }
    double th = prog_now();
    for (int i = 1; i < c->prof_n; i++) {
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, c->prof_ev[i - 1], c->prof_ev[i]));
        c->prof_ms[c->prof_cat[i]] += ms;
    }
    if (c->failed) return mq_fail("calibration samples %lld..%lld: %s", s0, s0 + B - 1, c->err);
    char missing[512] = "";
    int nmiss = 0;
    for (int i = 0; i < c->nt; i++)
        if (!c->ts[i].done) obs_list_missing(missing, sizeof missing, &nmiss, c->ts[i].t->name);
    if (nmiss)
        return mq_fail("calibration samples %lld..%lld: %d activation(s) were never produced by the GPU forward (%s%s)",
                       s0, s0 + B - 1, nmiss, missing, nmiss > 3 ? ", ..." : "");
    eng_download(&c->e);
    /* check everything before folding anything in */
    for (int i = 0; i < c->nt; i++) {
        const gtensor *t = &c->ts[i];
        for (int b = 0; b < B; b++) {
            size_t k = (size_t)i * c->e.bmax + b;
            u64 bad = c->e.h_badres[k];
            if (bad != NO_BAD)
                return mq_fail("%s: non-finite activation at row %llu, column %llu%s of %zu values, calibration sample %lld",
                               t->t->name, bad >> 32, bad & 0xfffffffull,
                               t->nparts > 1 ? (((bad >> 28) & 15) == 0 ? " (part 0)" : " (a later part)") : "", t->n,
                               s0 + b);
            if (c->e.h_cnt[k] != t->n)
                return mq_fail("%s: GPU histogram of calibration sample %lld holds %llu values, expected %zu", t->t->name,
                               s0 + b, (unsigned long long)c->e.h_cnt[k], t->n);
        }
    }
    for (int i = 0; i < c->nt; i++) {
        obs_tensor *t = c->ts[i].t;
        for (int b = 0; b < B; b++) fold_sample(&c->e, i, b, t, c->ts[i].n);
        if (c->ts[i].cmax) { /* the device keeps the running max over every batch so far */
            CUDA_CHECK(cudaMemcpy(t->cabsmax, c->ts[i].cmax, (size_t)t->nchan * 4, cudaMemcpyDeviceToHost));
            t->cobserved += B;
        }
        const u64 *h = c->e.h_loghist + (size_t)i * LOGB;
        for (int k = 0; k < LOGB; k++) t->hist[k] += (int64_t)h[k];
    }
    c->nsamples += B;
    if (c->prof_on) {
        c->prof_host_ms += (prog_now() - th) * 1e3;
        c->prof_samples += B;
    }
    return 0;
}

void calib_gpu_profile(calib_gpu *c, int on) {
    if (on && !c->prof_ev) {
        c->prof_ev = (cudaEvent_t *)mq_malloc(sizeof(cudaEvent_t) * PROF_EVENTS);
        c->prof_cat = (unsigned char *)mq_malloc(PROF_EVENTS);
        for (int i = 0; i < PROF_EVENTS; i++) CUDA_CHECK(cudaEventCreate(&c->prof_ev[i]));
    }
    c->prof_on = on;
}

int calib_gpu_profile_report(calib_gpu *c, char *buf, size_t n) {
    int k = snprintf(buf, n, "%lld samples:", (long long)c->prof_samples);
    for (int i = PC_FWD; i < PC_N && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - k, "%s %s %.1f ms", i == PC_FWD ? "" : ",", pc_names[i], c->prof_ms[i]);
    if (k > 0 && (size_t)k < n) k += snprintf(buf + k, n - k, ", download + host fold %.1f ms", c->prof_host_ms);
    memset(c->prof_ms, 0, sizeof c->prof_ms);
    c->prof_host_ms = 0;
    c->prof_samples = 0;
    return k;
}

/* ---------------------------------------------------------------- the calib_run path */

int calib_observe_gpu(const mq_model *m, const int32_t *tokens, const size_t *starts, int samples, int seqlen,
                      int batch, obs_set *s, const calib_transform *xf, const calib_gpu_transform_fn *xf_gpu, int nxf,
                      int progress, double *seconds) {
    for (int i = 0; i < nxf; i++)
        if (xf[i].fn && !xf_gpu[i])
            return mq_fail("calib: the transform '%s' for %s has no GPU version (calib_options.gpu_transforms); use --device cpu",
                           xf[i].name ? xf[i].name : "custom", ssm_act_role_name(xf[i].role));
    if (batch > samples) batch = samples;
    be *g = be_open_model(m, BE_CUDA_F16, batch, seqlen);
    if (!g) return -1;
    calib_gpu *c = calib_gpu_new(g, s);
    if (!c) {
        be_free(g);
        return -1;
    }
    int rc = 0;
    const mq_config *cfg = &m->cfg;
    if (cfg->arch == MQ_MAMBA1) { /* Quamba's dt_proj:output has no bias (see calib.c minus_dt_bias) */
        float *bias = (float *)mq_calloc((size_t)cfg->n_layer * cfg->d_inner, sizeof(float));
        for (int l = 0; l < cfg->n_layer; l++)
            if (m->layers[l].dt_proj_b) memcpy(bias + (size_t)l * cfg->d_inner, m->layers[l].dt_proj_b, cfg->d_inner * sizeof(float));
        rc = calib_gpu_set_minus_bias(c, MQ_ACT_DT, bias);
        free(bias);
    }
    for (int i = 0; i < nxf && !rc; i++) rc = calib_gpu_set_transform(c, xf[i].role, xf[i].fn ? xf_gpu[i] : NULL, xf[i].ctx);
    int32_t *buf = (int32_t *)mq_malloc((size_t)batch * seqlen * sizeof(int32_t));
    prog_bar bar;
    prog_start(&bar, "calib", "samples", samples, !progress);
    double t0 = prog_now();
    for (int i = 0; i < samples && !rc; i += batch) {
        int B = samples - i < batch ? samples - i : batch;
        for (int b = 0; b < B; b++) memcpy(buf + (size_t)b * seqlen, tokens + starts[i + b], seqlen * sizeof(int32_t));
        rc = calib_gpu_observe(c, buf, B);
        prog_update(&bar, i + B, (int64_t)(i + B) * seqlen);
    }
    if (seconds) *seconds = prog_now() - t0;
    if (!rc) prog_finish(&bar);
    else if (progress && bar.tty && bar.drawn) fputc('\n', stderr);
    free(buf);
    calib_gpu_free(c);
    be_free(g);
    return rc;
}

/* ---------------------------------------------------------------- self test */

int calib_gpu_selftest(const float *x, int mode, int B, int rows, int cols, int nparts, const double *pct, int nq,
                       int ngroup, int gsize, int gaxis, float *pct_out, float *absmax, float *gabsmax,
                       int64_t *hist) {
    if (nparts < 1 || nparts > MAX_PARTS || nparts > cols) return mq_fail("selftest: %d parts of %d columns", nparts, cols);
    eng e;
    if (eng_init(&e, 1, 1, B, pct, nq, ngroup)) return -1;
    const int f32 = mode == 1, esz = f32 ? 4 : 2, ld = cols + 3; /* odd padding: unaligned rows too */
    const size_t n = (size_t)B * rows * ld;
    void *hx = mq_calloc(n, esz), *dx;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float v = x[((size_t)b * rows + r) * cols + c];
                size_t k = ((size_t)b * rows + r) * ld + c;
                if (f32) ((float *)hx)[k] = v;
                else ((__half *)hx)[k] = __float2half_rn(v);
            }
    if (dev_alloc(&dx, n * esz, "selftest data")) { free(hx); eng_free(&e); return -1; }
    CUDA_CHECK(cudaMemcpy(dx, hx, n * esz, cudaMemcpyHostToDevice));
    view views[MAX_PARTS];
    grp g = {ngroup, gsize, gaxis};
    for (int p = 0; p < nparts; p++) {
        int c0 = p * cols / nparts, c1 = (p + 1) * cols / nparts;
        view &v = views[p];
        v.x = (const char *)dx + (size_t)c0 * esz;
        v.f32 = f32;
        v.ld = ld;
        v.rows_s = rows;
        v.ncols = c1 - c0;
        v.gcol0 = c0;
        v.part = p;
        eng_observe(&e, 0, 0, mode != 0, v, B, g, 0);
    }
    eng_complete(&e, 0, 0, mode != 0, (size_t)rows * cols, views, nparts, B, g, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    eng_download(&e);
    int rc = 0;
    for (int b = 0; b < B && !rc; b++) {
        if (e.h_cnt[b] != (u64)rows * cols)
            rc = mq_fail("selftest: sample %d histogram holds %llu values, expected %zu", b, (unsigned long long)e.h_cnt[b],
                         (size_t)rows * cols);
        const float *r = e.h_res + (size_t)b * e.rs;
        for (int q = 0; q < nq; q++) pct_out[b * nq + q] = r[q];
        absmax[b] = r[nq];
        for (int k = 0; k < ngroup; k++) gabsmax[b * ngroup + k] = r[nq + 1 + k];
    }
    for (int k = 0; k < LOGB; k++) hist[k] = (int64_t)e.h_loghist[k];
    CUDA_CHECK(cudaFree(dx));
    free(hx);
    eng_free(&e);
    return rc;
}
