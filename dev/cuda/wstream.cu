/* wstream.cu: harness of dev/cuda/wstream.cuh (weight-streaming int8 / FP16 linear layers, M = 1..64).
 *
 *   ./wstream --cpu-selftest    no GPU: CPU emulation of the kernels' index math (per lane loads, the
 *                               k permutation against the PTX ISA mma fragment layouts, X staging,
 *                               partial sums, cluster reduction, epilogue) against a plain reference,
 *                               the quantization rule and the planner's plans for every model shape
 *   ./wstream                   GPU: read-bandwidth probe, correctness of every shape x M (int32 sums
 *                               bit-exact, epilogues exact), then the timing table (old vs new)
 *   ./wstream --tune            GPU: also time the planner's best-scored candidates per shape and
 *                               report the measured best against the planner's pick
 *   options: --no-pdl, --max-ck N (cap the cluster size), --quick (fewer shapes / M), --check-only,
 *            --time-only
 *
 * Timing: every measurement is a CUDA graph of L launches that rotate over enough weight buffers
 * (>= 4x the L2 where memory allows) that the L2 never serves the weights; 1 warm-up replay, then the
 * median of 5 timed replays, divided by L. GB/s counts weight + X + output bytes. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>
#include "dev/cuda/wstream.cuh"
#include "ssm/kern_util.cuh" /* the production GEMV's inner step and reduction, for the baseline */

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* ================================================================ small host helpers */

struct rng {
    uint64_t s;
    explicit rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uni() { return (float)((next() >> 40) * (1.0 / 16777216.0)); } /* [0, 1) */
    float sym() { return 2.0f * uni() - 1.0f; }
    int range(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); }
};

static int nthreads() {
    unsigned n = std::thread::hardware_concurrency();
    return n ? (int)n : 4;
}
static void par_for(int n, const std::function<void(int, int)> &f) { /* f(begin, end) over chunks */
    int T = std::min(nthreads(), std::max(1, n / 16));
    std::vector<std::thread> th;
    for (int i = 0; i < T; i++) {
        int b = (int)((long)n * i / T), e = (int)((long)n * (i + 1) / T);
        th.emplace_back(f, b, e);
    }
    for (auto &t : th) t.join();
}

/* ================================================================ CPU references */

static void ref_i8(const int8_t *X, long ldx, const int8_t *W, int M, int N, int K, int32_t *acc) {
    par_for(N, [&](int n0, int n1) {
        for (int n = n0; n < n1; n++) {
            const int8_t *w = W + (size_t)n * K;
            for (int m = 0; m < M; m++) {
                const int8_t *x = X + (size_t)m * ldx;
                int32_t s = 0;
                for (int k = 0; k < K; k++) s += (int32_t)x[k] * (int32_t)w[k];
                acc[(size_t)m * N + n] = s;
            }
        }
    });
}
/* FP16 reference: products exact in FP32, sums in double; also sum |x w| for the tolerance */
static void ref_f16(const __half *X, long ldx, const __half *W, int M, int N, int K, double *y, double *ay) {
    std::vector<float> xf((size_t)M * K);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) xf[(size_t)m * K + k] = __half2float(X[(size_t)m * ldx + k]);
    par_for(N, [&](int n0, int n1) {
        std::vector<float> wf(K);
        for (int n = n0; n < n1; n++) {
            for (int k = 0; k < K; k++) wf[k] = __half2float(W[(size_t)n * K + k]);
            for (int m = 0; m < M; m++) {
                const float *x = &xf[(size_t)m * K];
                double s = 0, a = 0;
                for (int k = 0; k < K; k++) {
                    float p = x[k] * wf[k];
                    s += p;
                    a += fabsf(p);
                }
                y[(size_t)m * N + n] = s, ay[(size_t)m * N + n] = a;
            }
        }
    });
}

/* ================================================================ CPU emulation of ws_kernel */

/* The mma fragment layouts as the PTX ISA tables give them (independent of ws_a_regs / ws_b_regs):
 * m16n8k32 .s8: A reg r (4 bytes e): row g + 8*(r&1), k 4t + e + 16*(r>>1); B reg r: k 4t + e + 16r,
 * col g; m16n8k16 .f16: A reg r (2 halves e): row g + 8*(r&1), k 2t + e + 8*(r>>1); B reg r: k 2t + e
 * + 8r, col g; C/D (both): reg q: row g + 8*(q>>1), col 2t + (q&1). */
static int g_emu_fail;
#define EMU_ASSERT(c, ...)                                                                         \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (g_emu_fail++ < 10) {                                                               \
                fprintf(stderr, "emulator: %s failed: ", #c);                                      \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fprintf(stderr, "\n");                                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void mma_emu(int elt, const uint32_t a[32][4], const uint32_t b[32][2], double c[32][4]) {
    double A[16][32], B[32][8];
    int cntA[16][32] = {{0}}, cntB[32][8] = {{0}};
    const int KK = elt == 1 ? 32 : 16;
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        for (int r = 0; r < 4; r++)
            for (int e = 0; e < 4 / elt; e++) {
                int row = g + 8 * (r & 1), k = elt == 1 ? 4 * t + e + 16 * (r >> 1) : 2 * t + e + 8 * (r >> 1);
                double v;
                if (elt == 1) v = (int8_t)(a[L][r] >> (8 * e));
                else {
                    __half_raw hr;
                    hr.x = (unsigned short)(a[L][r] >> (16 * e));
                    v = __half2float(__half(hr));
                }
                A[row][k] = v, cntA[row][k]++;
            }
        for (int r = 0; r < 2; r++)
            for (int e = 0; e < 4 / elt; e++) {
                int k = elt == 1 ? 4 * t + e + 16 * r : 2 * t + e + 8 * r;
                double v;
                if (elt == 1) v = (int8_t)(b[L][r] >> (8 * e));
                else {
                    __half_raw hr;
                    hr.x = (unsigned short)(b[L][r] >> (16 * e));
                    v = __half2float(__half(hr));
                }
                B[k][g] = v, cntB[k][g]++;
            }
    }
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < KK; k++) EMU_ASSERT(cntA[i][k] == 1, "A(%d,%d) covered %d times", i, k, cntA[i][k]);
    for (int k = 0; k < KK; k++)
        for (int j = 0; j < 8; j++) EMU_ASSERT(cntB[k][j] == 1, "B(%d,%d) covered %d times", k, j, cntB[k][j]);
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        for (int q = 0; q < 4; q++) {
            int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
            double s = 0;
            for (int k = 0; k < KK; k++) s += A[row][k] * B[k][col];
            c[L][q] += s;
        }
    }
}

/* Emulates one launch of ws_kernel<TR, cfg.mt, cfg.wr, cfg.ku> CTA by CTA (row blocks in rbs, or all
 * when rbs is empty), writing outputs through ws_put; wrote[m*N+n] counts writes. Sums are kept in
 * double (exact for int8). */
template <class TR>
static void emulate(const ws_cfg &cf, const uint8_t *X, long ldxb, const uint8_t *W, int M, int N, int K,
                    const typename TR::epi_t &epi, std::vector<int> rbs, std::vector<int> &wrote) {
    const int elt = TR::elt, Kb = K * elt;
    const ws_geom G = ws_geom_of(cf, M, N, Kb);
    EMU_ASSERT(cf.ok, "cfg not ok");
    if (rbs.empty())
        for (int rb = 0; rb < cf.rowblocks; rb++) rbs.push_back(rb);
    const int nwarps = G.wn * G.wk;
    for (int rb : rbs) {
        /* every CTA of the cluster: X stage, warps, partial sums */
        std::vector<std::vector<double>> red(G.ck, std::vector<double>(cf.smem / 4 + 1, NAN));
        for (int crank = 0; crank < G.ck; crank++) {
            std::vector<uint8_t> xs(cf.smem, 0xCD);
            const int P = ws_xs_pieces(G);
            for (int p = 0; p < P; p++) {
                int wki, kbl, token, q;
                ws_xs_decode(G, p, wki, kbl, token, q);
                EMU_ASSERT(16 * (long)p + 16 <= cf.smem, "X stage piece %d past smem %d", p, cf.smem);
                const int kb = ws_split(G, crank, wki) * G.nb + kbl;
                const long off = (long)kb * 64 + 16 * q;
                for (int e = 0; e < 16; e++) xs[16 * (size_t)p + e] = 0;
                if (token < M && off < Kb) {
                    EMU_ASSERT(off + 16 <= Kb, "X piece past K");
                    memcpy(&xs[16 * (size_t)p], X + token * ldxb + off, 16);
                }
            }
            for (int warp = 0; warp < nwarps; warp++) {
                const int wn_i = warp % G.wn, wk_i = warp / G.wn;
                const int row0 = ws_row0(G, rb, wn_i), split = ws_split(G, crank, wk_i);
                static double acc[2][8][32][4];
                for (int i = 0; i < G.wr; i++)
                    for (int j = 0; j < cf.mt; j++)
                        for (int L = 0; L < 32; L++)
                            for (int q = 0; q < 4; q++) acc[i][j][L][q] = 0;
                for (int s = 0; s < G.nst; s++)
                    for (int u = 0; u < G.ku; u++) {
                        const int kbl = s * G.ku + u;
                        uint4 wv[2][2][32];
                        for (int L = 0; L < 32; L++) {
                            const int g = L >> 2, t = L & 3;
                            const bool ok = kbl * 64 < ws_lim_rel(G, split, t);
                            for (int i = 0; i < G.wr; i++)
                                for (int h = 0; h < 2; h++) {
                                    const int row = ws_wrow(G, row0, i, h, g);
                                    const long off = (long)split * G.nb * 64 + 16 * t + kbl * 64;
                                    uint4 v = make_uint4(0, 0, 0, 0);
                                    if (ok) {
                                        EMU_ASSERT(row >= 0 && row < N && off >= 0 && off + 16 <= Kb,
                                                   "W load row %d off %ld", row, off);
                                        memcpy(&v, W + (size_t)row * Kb + off, 16);
                                    }
                                    wv[i][h][L] = v;
                                }
                        }
                        for (int j = 0; j < cf.mt; j++) {
                            if (cf.mt > 1 && 8 * j >= M) break;
                            for (int st = 0; st < 2; st++) {
                                uint32_t bb[32][2];
                                for (int L = 0; L < 32; L++) {
                                    const int o = ws_xs_lane(G, wk_i, kbl, j, L);
                                    EMU_ASSERT(o >= 0 && o + 16 <= cf.smem, "X lane read %d", o);
                                    uint4 xv;
                                    memcpy(&xv, &xs[o], 16);
                                    ws_b_regs(xv, st, bb[L]);
                                }
                                for (int i = 0; i < G.wr; i++) {
                                    uint32_t aa[32][4];
                                    for (int L = 0; L < 32; L++) ws_a_regs(wv[i][0][L], wv[i][1][L], st, aa[L]);
                                    mma_emu(elt, aa, bb, acc[i][j]);
                                }
                            }
                        }
                    }
                for (int i = 0; i < G.wr; i++)
                    for (int j = 0; j < cf.mt; j++)
                        for (int L = 0; L < 32; L++)
                            for (int q = 0; q < 4; q++) {
                                int rloc, token;
                                ws_acc_coord(G, wn_i, i, j, q, L, rloc, token);
                                if (token < M) {
                                    const int idx = ws_red_idx(G, wk_i, token, rloc);
                                    EMU_ASSERT(idx >= 0 && (long)idx * 4 + 4 <= cf.smem, "red idx %d", idx);
                                    EMU_ASSERT(std::isnan(red[crank][idx]), "red idx %d written twice", idx);
                                    red[crank][idx] = acc[i][j][L][q];
                                }
                            }
            }
        }
        /* phase 1: fold slots 1..wk-1 into slot 0 (per CTA, every element once) */
        for (int crank = 0; crank < G.ck; crank++) {
            const int E = M * G.R;
            for (int e = 0; e < E; e++) {
                const int m = e / G.R, rloc = e - m * G.R;
                double v = red[crank][ws_red_idx(G, 0, m, rloc)];
                EMU_ASSERT(!std::isnan(v), "partial (c %d w 0 m %d r %d) never written", crank, m, rloc);
                for (int w = 1; w < G.wk; w++) {
                    double x = red[crank][ws_red_idx(G, 0, m, rloc) + w * M * G.RS];
                    EMU_ASSERT(x == red[crank][ws_red_idx(G, w, m, rloc)], "slot stride");
                    EMU_ASSERT(!std::isnan(x), "partial (c %d w %d m %d r %d) never written", crank, w, m, rloc);
                    v += x;
                }
                red[crank][ws_red_idx(G, 0, m, rloc)] = v;
            }
        }
        /* phase 2 + epilogue, CTA by CTA, parameters from the staged [3][R] array */
        std::vector<float> par(3 * G.R);
        for (int i = 0; i < 3 * G.R; i++) {
            const int k = i / G.R, r = i - k * G.R, n = rb * G.R + r;
            const float *src = ws_par_src(epi, k);
            par[i] = src && n < N ? src[n] : 0.0f;
        }
        EMU_ASSERT(G.par_off % 16 == 0 && G.par_off + 12 * G.R <= cf.smem && G.par_off >= 4 * G.wk * M * G.RS &&
                       G.par_off >= ws_xs_pieces(G) * 16,
                   "params region");
        for (int crank = 0; crank < G.ck; crank++) {
            int e0, e1;
            ws_red_range(G, crank, e0, e1);
            for (int e = e0; e < e1; e++) {
                const int m = e / G.R, rloc = e - m * G.R, n = rb * G.R + rloc;
                if (n >= N) continue;
                double sum = 0;
                for (int c = 0; c < G.ck; c++) sum += red[c][ws_red_idx(G, 0, m, rloc)];
                wrote[(size_t)m * N + n]++;
                ws_put_p(epi, (typename TR::acc_t)sum, m, n, &par[rloc], G.R);
            }
        }
    }
}

/* ================================================================ CPU self-test */

static std::string cfg_str(const ws_cfg &c) {
    char b[128];
    snprintf(b, sizeof b, "mt%d wr%d ku%d wn%d wk%d ck%d nb%d grid%d thr%d smem%dK", c.mt, c.wr, c.ku, c.wn, c.wk, c.ck,
             c.nb, c.rowblocks * c.ck, c.threads, (c.smem + 1023) / 1024);
    return b;
}

struct shape {
    const char *model, *name;
    int N, K, ldx; /* ldx in elements */
    int i8, f16;
};
static const shape g_shapes[] = {
    {"2.8b", "in_proj", 10240, 2560, 2560, 1, 1},  {"2.8b", "out_proj", 2560, 5120, 5120, 1, 1},
    {"2.8b", "x_proj", 192, 5120, 5120, 1, 1},     {"2.8b", "dt_proj", 5120, 160, 192, 1, 1},
    {"2.8b", "lm_head", 50280, 2560, 2560, 0, 1},  {"130m", "in_proj", 3072, 768, 768, 1, 1},
    {"130m", "out_proj", 768, 1536, 1536, 1, 1},   {"130m", "x_proj", 80, 1536, 1536, 1, 1},
    {"130m", "dt_proj", 1536, 48, 80, 1, 1},       {"130m", "lm_head", 50280, 768, 768, 0, 1},
    {"m2-2.7b", "in_proj", 10576, 2560, 2560, 1, 1}, {"m2-2.7b", "out_proj", 2560, 5120, 5120, 1, 1},
};
static const int g_nshapes = sizeof g_shapes / sizeof g_shapes[0];

/* one emulated case: random data, the given cfg, all four int8 epilogues or both FP16 outputs */
static int emu_case(rng &R, int elt, int M, int N, int K, long ldx, int xoff, const ws_cfg &cf,
                    const std::vector<int> &rbs, bool verbose, bool all_kinds = false) {
    const int Kb = K * elt;
    std::vector<uint8_t> Wb((size_t)N * Kb + 16), Xb((size_t)M * ldx * elt + 64);
    int fails = 0;
    if (elt == 1) {
        for (auto &v : Wb) v = (uint8_t)R.next();
        for (auto &v : Xb) v = (uint8_t)R.next();
        const int8_t *X = (const int8_t *)Xb.data() + xoff, *W = (const int8_t *)Wb.data();
        std::vector<int32_t> ref((size_t)M * N);
        ref_i8(X, ldx, W, M, N, K, ref.data());
        std::vector<float> sw(N), qs(N), bias(N);
        double sd = 0;
        for (auto v : ref) sd += (double)v * v;
        sd = sqrt(sd / ref.size()) + 1;
        for (int n = 0; n < N; n++) sw[n] = 0.5f + R.uni(), qs[n] = (2.0f + R.uni()) / 127.0f, bias[n] = 0.5f * R.sym();
        for (int kind = all_kinds ? 0 : 3; kind < 4; kind++) {
            std::vector<uint8_t> out((size_t)M * N * 4, 0xEE);
            std::vector<int> wrote((size_t)M * N, 0);
            ws_epi8 ep = {(float)(1.0 / sd), sw.data(), kind == 1 ? nullptr : bias.data(), qs.data(), kind, out.data(), N};
            emulate<ws_i8>(cf, (const uint8_t *)X, ldx, (const uint8_t *)W, M, N, K, ep, rbs, wrote);
            std::vector<uint8_t> want((size_t)M * N * 4, 0xEE);
            ws_epi8 ew = ep;
            ew.out = want.data();
            int bad = 0;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    const int r = n / cf.R;
                    if (!rbs.empty() && std::find(rbs.begin(), rbs.end(), r) == rbs.end()) continue;
                    ws_put(ew, ref[(size_t)m * N + n], m, n);
                    if (wrote[(size_t)m * N + n] != 1) bad++;
                }
            if (memcmp(out.data(), want.data(), out.size())) bad++;
            if (bad) {
                fails++;
                if (verbose) printf("  FAIL int8 kind %d M%d N%d K%d ldx%ld xoff%d %s: %d bad\n", kind, M, N, K, ldx, xoff,
                                    cfg_str(cf).c_str(), bad);
            }
        }
    } else {
        for (size_t i = 0; i < Wb.size() / 2; i++) ((__half *)Wb.data())[i] = __float2half(R.sym());
        for (size_t i = 0; i < Xb.size() / 2; i++) ((__half *)Xb.data())[i] = __float2half(R.sym());
        const __half *X = (const __half *)Xb.data() + xoff, *W = (const __half *)Wb.data();
        std::vector<double> ref((size_t)M * N), aref((size_t)M * N);
        ref_f16(X, ldx, W, M, N, K, ref.data(), aref.data());
        std::vector<float> bias(N);
        for (int n = 0; n < N; n++) bias[n] = R.sym();
        for (int f32 = all_kinds ? 0 : 1; f32 < 2; f32++) {
            std::vector<uint8_t> out((size_t)M * N * 4, 0xFF);
            std::vector<int> wrote((size_t)M * N, 0);
            ws_epi16 ep = {f32 ? bias.data() : nullptr, out.data(), N, f32};
            emulate<ws_f16>(cf, (const uint8_t *)X, ldx * 2, (const uint8_t *)W, M, N, K, ep, rbs, wrote);
            int bad = 0;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    if (!rbs.empty() && std::find(rbs.begin(), rbs.end(), n / cf.R) == rbs.end()) continue;
                    const size_t i = (size_t)m * N + n;
                    double want = ref[i] + (f32 ? bias[n] : 0);
                    double got = f32 ? ((float *)out.data())[i] : __half2float(((__half *)out.data())[i]);
                    double tol = 1e-5 * aref[i] + 1e-6 + (f32 ? 0 : fabs(want) * (1.0 / 1024));
                    if (!(fabs(got - want) <= tol) || wrote[i] != 1) bad++;
                }
            if (bad) {
                fails++;
                if (verbose) printf("  FAIL fp16 f32=%d M%d N%d K%d ldx%ld xoff%d %s: %d bad\n", f32, M, N, K, ldx, xoff,
                                    cfg_str(cf).c_str(), bad);
            }
        }
    }
    return fails;
}

static int cpu_selftest(int sm) {
    int fails = 0, cases = 0;
    rng R(1234);
    /* 1. the quantization rule at its corners */
    {
        struct {
            float v, s;
            int q;
        } qc[] = {{0.5f, 1, 0},  {1.5f, 1, 2},  {2.5f, 1, 2},      {-0.5f, 1, 0},     {-1.5f, 1, -2}, {1000, 1, 127},
                  {-1000, 1, -127}, {NAN, 1, 0}, {INFINITY, 1, 127}, {-INFINITY, 1, -127}};
        for (auto &c : qc)
            if (qr_quant_i8(c.v, c.s) != c.q) {
                printf("FAIL quant(%g, %g) = %d, want %d\n", c.v, c.s, qr_quant_i8(c.v, c.s), c.q);
                fails++;
            }
    }
    /* 2. emulated kernels on random small shapes, each with the plan and random other candidates */
    std::vector<ws_cfg> cand(20000);
    for (int it = 0; it < 60; it++) {
        const int elt = it & 1 ? 2 : 1;
        static const int firstM[8] = {1, 8, 9, 16, 17, 33, 64, 3};
        const int M = it < 8 ? firstM[it] : R.range(1, 64);
        const int N = R.range(1, 260);
        const int K = elt == 1 ? 16 * R.range(1, 40) : 8 * R.range(1, 40);
        const long ldx = K + (R.uni() < 0.5f ? 0 : R.range(1, 40));
        const int xoff = R.uni() < 0.7f ? 0 : R.range(1, 7);
        int nc = 0;
        ws_cfg plan = ws_plan(M, N, K * elt, sm, (int)cand.size(), cand.data(), &nc);
        std::vector<ws_cfg> todo = {plan};
        for (int i = 0; i < 6 && nc; i++) todo.push_back(cand[R.next() % nc]);
        /* a split layout the planner skips: more splits than blocks (empty warps) */
        {
            ws_cfg c = ws_make_cfg(M, N, K * elt, plan.mt, 1, 2, 2, 3, 3);
            if (c.ok) todo.push_back(c);
        }
        for (auto &c : todo) {
            int f = emu_case(R, elt, M, N, K, ldx, xoff, c, {}, true, &c == &todo[0] && it % 4 < 2);
            fails += f, cases++;
        }
    }
    /* 3. every compiled (mt, wr, ku) with cluster / k-warp splits, one small shape each */
    for (int elt = 1; elt <= 2; elt++)
        for (int mt : {1, 2, 4, 8})
            for (int wr = 1; wr <= 2; wr++)
                for (int ku = 1; ku <= 4; ku *= 2) {
                    if (!ws_have(mt, wr, ku)) continue;
                    const int M = mt == 1 ? 5 : 8 * mt - 3, N = 70, K = elt == 1 ? 400 : 200;
                    for (int ck : {1, 2, 5})
                        for (int wk : {1, 3}) {
                            ws_cfg c = ws_make_cfg(M, N, K * elt, mt, wr, ku, 2, wk, ck);
                            if (!c.ok) continue;
                            fails += emu_case(R, elt, M, N, K, K + 4, 0, c, {}, true), cases++;
                        }
                }
    /* 4. model shapes: plans valid for every M, the first and last row block emulated for a few M */
    printf("plans (sm_count %d): shape, M, cfg, model us, model GB/s (weights)\n", sm);
    for (int s = 0; s < g_nshapes; s++)
        for (int elt = 1; elt <= 2; elt++) {
            const shape &sh = g_shapes[s];
            if ((elt == 1 && !sh.i8) || (elt == 2 && !sh.f16)) continue;
            for (int M = 1; M <= 64; M++) {
                ws_cfg c = ws_plan(M, sh.N, sh.K * elt, sm);
                if (!c.ok || c.threads > ws_maxt(c.mt, c.wr, c.ku) || c.smem > WS_MAX_SMEM || c.ck > 8) {
                    printf("FAIL no valid plan for %s %s %s M=%d\n", elt == 1 ? "i8" : "f16", sh.model, sh.name, M);
                    fails++;
                    continue;
                }
                const bool show = M == 1 || M == 2 || M == 4 || M == 8 || M == 16 || M == 32 || M == 64;
                if (show) {
                    double us = ws_model_us(c, M, sh.N, sh.K * elt, sm);
                    printf("  %-4s %-8s %-9s M=%2d  %-58s %7.2f us %6.0f GB/s\n", elt == 1 ? "i8" : "f16", sh.model,
                           sh.name, M, cfg_str(c).c_str(), us, (double)sh.N * sh.K * elt / us / 1e3);
                }
                if ((M == 1 || M == 13 || M == 64) && (long)sh.N * sh.K < 40000000L) {
                    std::vector<int> rbs = {0};
                    if (c.rowblocks > 1) rbs.push_back(c.rowblocks - 1);
                    fails += emu_case(R, elt, M, sh.N, sh.K, sh.ldx, 0, c, rbs, true), cases++;
                }
            }
        }
    printf("cpu selftest: %d cases, %d emulator assertion failures, %d failures\n", cases, g_emu_fail, fails);
    printf("%d passed, %d failed\n", cases - fails, fails + (g_emu_fail ? 1 : 0));
    return fails || g_emu_fail ? 1 : 0;
}

/* ================================================================ GPU side: baselines */

/* the production decode GEMV (ssm/i8_gemm.cu's body, d_gemv_i8 of ssm/kern_util.cuh) with this
 * harness's epilogue: wpr warps per output row, 16-byte loads, __dp4a */
template <int M>
__global__ void __launch_bounds__(256) base_gemv_kernel(const int8_t *X, int ldx, const int8_t *W, int N, int K, int wpr,
                                                        ws_epi8 e) {
    __shared__ int part[8][M];
    d_gemv_i8<M, 16>(X, ldx, W, N, K, wpr, part, [&](int acc, int m, int n) { ws_put(e, acc, m, n); });
}
template <int M>
static void base_gemv_launch(const int8_t *X, int ldx, const int8_t *W, int N, int K, const ws_epi8 &e, int sm,
                             cudaStream_t st) {
    int wpr = 1;
    while (wpr < 8 && (long)N * wpr * 2 <= (long)sm * 64 && K / 16 >= 32 * wpr * 2) wpr *= 2;
    base_gemv_kernel<M><<<(N + 8 / wpr - 1) / (8 / wpr), 256, 0, st>>>(X, ldx, W, N, K, wpr, e);
}
/* M <= 8, K % 16 == 0, 16-byte aligned rows (the route's own conditions); false when not applicable */
static bool base_gemv(const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const ws_epi8 &e, int sm,
                      cudaStream_t st) {
    if (M < 1 || M > 8 || K % 16 || ldx % 16 || (uintptr_t)X % 16 || (uintptr_t)W % 16) return false;
    switch (M) {
    case 1: base_gemv_launch<1>(X, ldx, W, N, K, e, sm, st); break;
    case 2: base_gemv_launch<2>(X, ldx, W, N, K, e, sm, st); break;
    case 3: base_gemv_launch<3>(X, ldx, W, N, K, e, sm, st); break;
    case 4: base_gemv_launch<4>(X, ldx, W, N, K, e, sm, st); break;
    case 5: base_gemv_launch<5>(X, ldx, W, N, K, e, sm, st); break;
    case 6: base_gemv_launch<6>(X, ldx, W, N, K, e, sm, st); break;
    case 7: base_gemv_launch<7>(X, ldx, W, N, K, e, sm, st); break;
    default: base_gemv_launch<8>(X, ldx, W, N, K, e, sm, st); break;
    }
    return true;
}

/* cuBLASLt int8 (IMMA, TN form: A = W as K x N column-major transposed, B = X as K x M), int32 out */
struct lt_plan {
    bool ok = false;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo;
};
static cublasLtHandle_t g_lt;
static void *g_lt_ws;
static const size_t g_lt_ws_bytes = 32u << 20;
static lt_plan lt_make(int M, int N, int K, int ldx) {
    lt_plan p;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32I, CUDA_R_32I) != CUBLAS_STATUS_SUCCESS) return p;
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8I, K, N, K) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8I, K, M, ldx) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32I, N, M, N) != CUBLAS_STATUS_SUCCESS)
        return p;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    size_t wsb = g_lt_ws_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g_lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS) p.algo = res.algo, p.ok = true;
    return p;
}
static void lt_free(lt_plan &p) {
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    p = lt_plan();
}
static bool lt_run(lt_plan &p, const int8_t *X, const int8_t *W, int32_t *C, cudaStream_t st) {
    const int32_t alpha = 1, beta = 0;
    return p.ok && cublasLtMatmul(g_lt, p.op, &alpha, W, p.a, X, p.b, &beta, C, p.c, C, p.c, &p.algo, g_lt_ws,
                                  g_lt_ws_bytes, st) == CUBLAS_STATUS_SUCCESS;
}
static cublasHandle_t g_cublas;
static void *g_cublas_ws;
/* FP16: Y^T (N x M, column-major) = W^T (W is K x N column-major) X^T, FP32 compute, FP16 out */
static bool cublas_f16(const __half *X, int ldx, const __half *W, int M, int N, int K, __half *Y, cudaStream_t st) {
    const float alpha = 1, beta = 0;
    cublasSetStream(g_cublas, st);
    return cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, K, X, CUDA_R_16F, ldx, &beta, Y,
                        CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
}

/* ================================================================ GPU side: utilities */

__global__ void fill_f16_kernel(__half *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        z ^= z >> 29;
        p[i] = __float2half(((float)(z & 0xFFFF) / 32768.0f - 1.0f) * 0.25f);
    }
}
/* streaming read of n 16-byte words: the ceiling the GEMMs are measured against */
__global__ void read_probe_kernel(const uint4 *p, size_t n, unsigned *sink) {
    unsigned x = 0;
    const uint64_t pol = ws_evict_first_policy();
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 v0 = ws_ldw((const uint8_t *)(p + i), true, pol), v1 = ws_ldw((const uint8_t *)(p + i + stride), true, pol);
        uint4 v2 = ws_ldw((const uint8_t *)(p + i + 2 * stride), true, pol);
        uint4 v3 = ws_ldw((const uint8_t *)(p + i + 3 * stride), true, pol);
        x ^= v0.x ^ v0.y ^ v0.z ^ v0.w ^ v1.x ^ v1.y ^ v1.z ^ v1.w ^ v2.x ^ v2.y ^ v2.z ^ v2.w ^ v3.x ^ v3.y ^ v3.z ^ v3.w;
    }
    for (; i < n; i += stride) {
        uint4 v = ws_ldw((const uint8_t *)(p + i), true, pol);
        x ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (x == 0x12345678u) *sink = x;
}

static cudaStream_t g_st;
static int g_sm;
static bool g_pdl = true;
static int g_max_ck = 8;
static size_t g_l2;

/* times launch(i) for i = 0..L-1 captured in a graph; returns microseconds per launch (median of 5
 * replays), or -1 if the launches failed */
static double time_launches(int L, const std::function<bool(int, cudaStream_t)> &launch) {
    cudaGraph_t gr;
    cudaGraphExec_t ge;
    bool ok = launch(0, g_st) && cudaStreamSynchronize(g_st) == cudaSuccess; /* eager: attributes, lazy loading */
    if (!ok) {
        cudaGetLastError();
        return -1;
    }
    CK(cudaStreamBeginCapture(g_st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < L && ok; i++) ok = launch(i, g_st);
    cudaError_t ce = cudaStreamEndCapture(g_st, &gr);
    if (!ok || ce != cudaSuccess) {
        if (ce == cudaSuccess) cudaGraphDestroy(gr);
        cudaGetLastError();
        return -1;
    }
    if (cudaGraphInstantiate(&ge, gr, 0) != cudaSuccess) {
        cudaGraphDestroy(gr);
        cudaGetLastError();
        return -1;
    }
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<float> ts;
    CK(cudaGraphLaunch(ge, g_st));
    for (int r = 0; r < 5; r++) {
        CK(cudaEventRecord(e0, g_st));
        CK(cudaGraphLaunch(ge, g_st));
        CK(cudaEventRecord(e1, g_st));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        ts.push_back(ms);
    }
    CK(cudaGetLastError());
    std::sort(ts.begin(), ts.end());
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaGraphExecDestroy(ge), cudaGraphDestroy(gr);
    return ts[2] * 1000.0 / L;
}

/* weight rotation over a pool: nbuf buffers of wbytes each (>= 4x L2 of weights per cycle) */
static uint8_t *g_pool;
static size_t g_pool_bytes;
struct rot {
    size_t stride;
    int nbuf;
    const uint8_t *at(int i) const { return g_pool + (size_t)(i % nbuf) * stride; }
};
static rot rotation(size_t wbytes) {
    rot r;
    r.stride = (wbytes + 4095) / 4096 * 4096;
    long want = (long)((4 * g_l2 + wbytes - 1) / wbytes);
    long fit = (long)(g_pool_bytes / r.stride);
    r.nbuf = (int)std::max(1L, std::min(std::min(want, fit), 1024L));
    return r;
}
static int launches_for(const rot &r, double est_us) {
    int L = (int)std::ceil(150.0 / std::max(est_us, 1.0));
    return std::max(std::min(std::max(L, r.nbuf), 1024), 4);
}

/* ================================================================ GPU correctness */

struct dbuf {
    void *p = nullptr;
    size_t n = 0;
    void alloc(size_t bytes) {
        if (bytes > n) {
            if (p) CK(cudaFree(p));
            CK(cudaMalloc(&p, bytes));
            n = bytes;
        }
    }
    ~dbuf() {
        if (p) cudaFree(p);
    }
};
static int g_fail, g_checks;
/* errors after which the context is unusable (the rest of the run would only repeat them) */
static bool sticky(cudaError_t e) {
    return e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorMisalignedAddress ||
           e == cudaErrorIllegalInstruction || e == cudaErrorHardwareStackError || e == cudaErrorInvalidPc ||
           e == cudaErrorLaunchTimeout || e == cudaErrorAssert || e == cudaErrorInvalidAddressSpace;
}
static void report(bool ok, const char *fmt, ...) {
    g_checks++;
    if (ok) return;
    g_fail++;
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* run + check one int8 case with cfg (or the public entry point when cf == NULL) for all four
 * epilogue kinds; returns false on failure */
struct i8case {
    int M, N, K, ldx, ldo, xoff;
    std::vector<int8_t> X, W;
    std::vector<int32_t> ref;
    std::vector<float> sw, qs, bias;
    float sx;
    dbuf dX, dW, dO, dsw, dqs, db;
};
/* weights once per shape (device copy kept), X / reference / scales per M */
static void i8case_w(i8case &c, int N, int K, uint64_t seed) {
    rng R(seed);
    c.N = N, c.K = K;
    c.W.resize((size_t)N * K);
    for (auto &v : c.W) v = (int8_t)R.next();
    c.dW.alloc(c.W.size() + 16);
    CK(cudaMemcpy(c.dW.p, c.W.data(), c.W.size(), cudaMemcpyHostToDevice));
}
static void i8case_x(i8case &c, int M, int ldx, int ldo, int xoff, uint64_t seed) {
    rng R(seed);
    const int N = c.N, K = c.K;
    c.M = M, c.ldx = ldx, c.ldo = ldo, c.xoff = xoff;
    c.X.assign((size_t)M * ldx + xoff + 16, 0);
    for (auto &v : c.X) v = (int8_t)R.next();
    c.ref.resize((size_t)M * N);
    ref_i8(c.X.data() + xoff, ldx, c.W.data(), M, N, K, c.ref.data());
    double sd = 0;
    for (auto v : c.ref) sd += (double)v * v;
    sd = sqrt(sd / c.ref.size()) + 1;
    c.sx = (float)(1.0 / sd);
    c.sw.resize(N), c.qs.resize(N), c.bias.resize(N);
    for (int n = 0; n < N; n++) c.sw[n] = 0.5f + R.uni(), c.qs[n] = (2.0f + R.uni()) / 127.0f, c.bias[n] = 0.5f * R.sym();
    c.dX.alloc(c.X.size()), c.dO.alloc(((size_t)M * ldo + 4096) * 4);
    c.dsw.alloc(N * 4), c.dqs.alloc(N * 4), c.db.alloc(N * 4);
    CK(cudaMemcpy(c.dX.p, c.X.data(), c.X.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(c.dsw.p, c.sw.data(), N * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(c.dqs.p, c.qs.data(), N * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(c.db.p, c.bias.data(), N * 4, cudaMemcpyHostToDevice));
}
static void i8case_make(i8case &c, int M, int N, int K, int ldx, int ldo, int xoff, uint64_t seed) {
    i8case_w(c, N, K, seed);
    i8case_x(c, M, ldx, ldo, xoff, seed + 1);
}
/* which: 0 = ws_linear_i8_e (planner), 1 = given cfg, 2 = dp4a baseline (kind 0 only) */
static bool i8case_run(i8case &c, int which, const ws_cfg *cf, const char *label, int kinds_mask = 15) {
    bool all = true;
    for (int kind = 0; kind < 4; kind++) {
        if (!(kinds_mask >> kind & 1)) continue;
        const size_t osz = kind == 0 ? 1 : kind == 1 ? 2 : 4;
        const size_t obytes = ((size_t)c.M * c.ldo + 4096) * osz;
        CK(cudaMemsetAsync(c.dO.p, kind == 0 ? 0x80 : 0xFF, obytes, g_st));
        const int8_t *X = (const int8_t *)c.dX.p + c.xoff;
        i8_epi e = {c.sx, (const float *)c.dsw.p, kind == 1 ? nullptr : (const float *)c.db.p, (const float *)c.dqs.p, kind};
        ws_epi8 ep = {e.sx, e.sw, e.bias, e.qs, kind, c.dO.p, c.ldo};
        cudaError_t err = cudaSuccess;
        if (which == 0) err = ws_linear_i8_e(X, c.ldx, (const int8_t *)c.dW.p, c.M, c.N, c.K, e, c.dO.p, c.ldo, g_sm, g_st, g_pdl, g_max_ck);
        else if (which == 1) err = ws_launch<ws_i8>(*cf, (const uint8_t *)X, c.ldx, (const uint8_t *)c.dW.p, c.M, c.N, c.K, ep, g_st, g_pdl);
        else if (!base_gemv(X, c.ldx, (const int8_t *)c.dW.p, c.M, c.N, c.K, ep, g_sm, g_st)) return true;
        if (err == cudaSuccess) err = cudaStreamSynchronize(g_st);
        if (err == cudaSuccess) err = cudaGetLastError();
        if (err != cudaSuccess) {
            report(false, "%s kind %d: %s", label, kind, cudaGetErrorString(err));
            if (sticky(err)) {
                printf("sticky CUDA error: stopping\n");
                exit(3);
            }
            return false;
        }
        std::vector<uint8_t> got(obytes), want((size_t)c.M * c.ldo * osz);
        CK(cudaMemcpy(got.data(), c.dO.p, obytes, cudaMemcpyDeviceToHost));
        ws_epi8 ew = ep;
        ew.out = want.data(), ew.sw = c.sw.data(), ew.qs = c.qs.data(), ew.bias = kind == 1 ? nullptr : c.bias.data();
        long bad = 0, off1 = 0, guard = 0;
        for (int m = 0; m < c.M; m++)
            for (int n = 0; n < c.N; n++) ws_put(ew, c.ref[(size_t)m * c.N + n], m, n);
        for (size_t i = 0; i < obytes / osz; i++) {
            const size_t m = i / c.ldo, n = i % c.ldo;
            const bool inside = m < (size_t)c.M && n < (size_t)c.N;
            const uint8_t *g = &got[i * osz];
            if (!inside) { /* poison must survive: no writes outside the M x N block */
                const uint8_t pz = kind == 0 ? 0x80 : 0xFF;
                for (size_t b = 0; b < osz; b++) guard += g[b] != pz;
                continue;
            }
            if (memcmp(g, &want[i * osz], osz)) {
                if (kind == 0 && abs((int)(int8_t)*g - (int)(int8_t)want[i]) == 1 && (int8_t)*g != -128) off1++;
                else bad++;
            }
        }
        const long tot = (long)c.M * c.N;
        const bool ok = bad == 0 && guard == 0 && off1 * 500 < tot; /* int8: <= 1 code, < 0.2% */
        report(ok, "%s kind %d: %ld wrong, %ld off by one code, %ld guard bytes overwritten (of %ld)", label, kind, bad, off1,
               guard, tot);
        all = all && ok;
    }
    return all;
}

struct f16case {
    int M, N, K, ldx, ldo, xoff;
    std::vector<__half> X, W;
    std::vector<double> ref, aref;
    std::vector<float> bias;
    dbuf dX, dW, dO, db;
};
static void f16case_w(f16case &c, int N, int K, uint64_t seed) {
    c.N = N, c.K = K;
    c.W.resize((size_t)N * K);
    par_for(N, [&](int n0, int n1) { /* 50280 x 2560 for lm_head: generate in parallel */
        for (int n = n0; n < n1; n++) {
            rng R(seed * 1000003 + n);
            for (int k = 0; k < K; k++) c.W[(size_t)n * K + k] = __float2half(R.sym() * 0.1f);
        }
    });
    c.dW.alloc(c.W.size() * 2 + 16);
    CK(cudaMemcpy(c.dW.p, c.W.data(), c.W.size() * 2, cudaMemcpyHostToDevice));
}
static void f16case_x(f16case &c, int M, int ldx, int ldo, int xoff, uint64_t seed) {
    rng R(seed);
    const int N = c.N, K = c.K;
    c.M = M, c.ldx = ldx, c.ldo = ldo, c.xoff = xoff;
    c.X.resize((size_t)M * ldx + xoff + 8);
    for (auto &v : c.X) v = __float2half(R.sym());
    c.ref.resize((size_t)M * N), c.aref.resize((size_t)M * N);
    ref_f16(c.X.data() + xoff, ldx, c.W.data(), M, N, K, c.ref.data(), c.aref.data());
    c.bias.resize(N);
    for (auto &v : c.bias) v = R.sym();
    c.dX.alloc(c.X.size() * 2), c.dO.alloc(((size_t)M * ldo + 4096) * 4), c.db.alloc(N * 4);
    CK(cudaMemcpy(c.dX.p, c.X.data(), c.X.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(c.db.p, c.bias.data(), N * 4, cudaMemcpyHostToDevice));
}
static void f16case_make(f16case &c, int M, int N, int K, int ldx, int ldo, int xoff, uint64_t seed) {
    f16case_w(c, N, K, seed);
    f16case_x(c, M, ldx, ldo, xoff, seed + 1);
}
/* which: 0 = ws_linear_f16_e, 1 = given cfg, 2 = cuBLAS (f16 out, no bias) */
static bool f16case_run(f16case &c, int which, const ws_cfg *cf, const char *label, int mask = 3) {
    bool all = true;
    for (int f32 = 0; f32 < 2; f32++) {
        if (!(mask >> f32 & 1)) continue;
        if (which == 2 && f32) continue;
        const size_t osz = f32 ? 4 : 2;
        const int ldo = which == 2 ? c.N : c.ldo;
        const size_t obytes = ((size_t)c.M * ldo + 4096) * osz;
        CK(cudaMemsetAsync(c.dO.p, 0xFF, obytes, g_st));
        const __half *X = (const __half *)c.dX.p + c.xoff;
        const float *bias = f32 ? (const float *)c.db.p : nullptr;
        cudaError_t err = cudaSuccess;
        if (which == 0) err = ws_linear_f16_e(X, c.ldx, (const __half *)c.dW.p, c.M, c.N, c.K, bias, c.dO.p, f32, ldo, g_sm, g_st, g_pdl, g_max_ck);
        else if (which == 1) {
            ws_epi16 ep = {bias, c.dO.p, ldo, f32};
            err = ws_launch<ws_f16>(*cf, (const uint8_t *)X, 2L * c.ldx, (const uint8_t *)c.dW.p, c.M, c.N, c.K, ep, g_st, g_pdl);
        } else if (!cublas_f16(X, c.ldx, (const __half *)c.dW.p, c.M, c.N, c.K, (__half *)c.dO.p, g_st)) {
            report(false, "%s: cublasGemmEx failed", label);
            return false;
        }
        if (err == cudaSuccess) err = cudaStreamSynchronize(g_st);
        if (err == cudaSuccess) err = cudaGetLastError();
        if (err != cudaSuccess) {
            report(false, "%s f32=%d: %s", label, f32, cudaGetErrorString(err));
            if (sticky(err)) {
                printf("sticky CUDA error: stopping\n");
                exit(3);
            }
            return false;
        }
        std::vector<uint8_t> got(obytes);
        CK(cudaMemcpy(got.data(), c.dO.p, obytes, cudaMemcpyDeviceToHost));
        long bad = 0, guard = 0;
        double worst = 0;
        for (size_t i = 0; i < obytes / osz; i++) {
            const size_t m = i / ldo, n = i % ldo;
            const bool inside = m < (size_t)c.M && n < (size_t)c.N;
            if (!inside) {
                for (size_t b = 0; b < osz; b++) guard += got[i * osz + b] != 0xFF;
                continue;
            }
            const size_t r = m * c.N + n;
            const double want = c.ref[r] + (bias ? c.bias[n] : 0);
            const double v = f32 ? ((float *)got.data())[i] : __half2float(((__half *)got.data())[i]);
            const double tol = 1e-4 * c.aref[r] + 1e-5 + (f32 ? 0 : fabs(want) / 1024);
            const double err_ = fabs(v - want);
            if (!(err_ <= tol)) bad++;
            if (err_ / (c.aref[r] + 1e-3) > worst) worst = err_ / (c.aref[r] + 1e-3);
        }
        const bool ok = bad == 0 && guard == 0;
        report(ok, "%s f32=%d: %ld outside tolerance, %ld guard bytes overwritten, worst |err|/sum|xw| %.2e", label, f32, bad,
               guard, worst);
        all = all && ok;
    }
    return all;
}

/* ================================================================ main */

static std::vector<int> g_check_M = {1, 2, 3, 4, 8, 13, 16, 32, 50, 64};
static std::vector<int> g_time_M = {1, 2, 4, 8, 16, 32, 64};

/* registers / local memory / occupancy of every compiled kernel, as the GPU build has them */
static void kernel_info() {
    printf("\n== kernels: registers (planner's estimate), local bytes, max threads, resident warps/SM at 1 CTA of 32*k threads ==\n");
    for (int elt = 1; elt <= 2; elt++)
        for (int mt : {1, 2, 4, 8})
            for (int wr = 1; wr <= 2; wr++)
                for (int ku = 1; ku <= 4; ku *= 2) {
                    if (!ws_have(mt, wr, ku)) continue;
                    const void *f = elt == 1 ? (const void *)ws_kernel_ptr<ws_i8>(mt, wr, ku) : (const void *)ws_kernel_ptr<ws_f16>(mt, wr, ku);
                    cudaFuncAttributes fa;
                    CK(cudaFuncGetAttributes(&fa, f));
                    int nb = 0;
                    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, f, 128, 0));
                    printf("  %-4s mt%d wr%d ku%d: %3d regs (est %3d), %3zu local bytes, max %4d threads, %2d warps/SM (128-thread CTAs)%s\n",
                           elt == 1 ? "i8" : "f16", mt, wr, ku, fa.numRegs, ws_regs_est(mt, wr, ku), fa.localSizeBytes,
                           fa.maxThreadsPerBlock, nb * 4, fa.localSizeBytes ? "  <- LOCAL MEMORY" : "");
                }
}

static void correctness(bool quick) {
    printf("\n== correctness (random data; int32 sums bit-exact, epilogues exact) ==\n");
    for (int s = 0; s < g_nshapes; s++) {
        const shape &sh = g_shapes[s];
        if (quick && strcmp(sh.model, "2.8b")) continue;
        int before = g_fail;
        i8case ci;
        f16case cf;
        if (sh.i8) i8case_w(ci, sh.N, sh.K, 100 + s * 131);
        if (sh.f16) f16case_w(cf, sh.N, sh.K, 200 + s * 131);
        for (int M : g_check_M) {
            const bool big = (long)sh.N * sh.K > 60000000L;
            if (big && M != 1 && M != 13 && M != 64) continue;
            char lab[160];
            if (sh.i8) {
                i8case_x(ci, M, sh.ldx, sh.N, 0, 300 + s * 131 + M);
                snprintf(lab, sizeof lab, "i8 %s %s M=%d", sh.model, sh.name, M);
                i8case_run(ci, 0, nullptr, lab);
                snprintf(lab, sizeof lab, "i8 %s %s M=%d dp4a baseline", sh.model, sh.name, M);
                i8case_run(ci, 2, nullptr, lab, 1);
            }
            if (sh.f16) {
                f16case_x(cf, M, sh.ldx, sh.N, 0, 400 + s * 131 + M);
                snprintf(lab, sizeof lab, "f16 %s %s M=%d", sh.model, sh.name, M);
                f16case_run(cf, 0, nullptr, lab);
                if (!big) {
                    snprintf(lab, sizeof lab, "f16 %s %s M=%d cuBLAS", sh.model, sh.name, M);
                    f16case_run(cf, 2, nullptr, lab);
                }
            }
        }
        printf("  %-8s %-9s %s\n", sh.model, sh.name, g_fail == before ? "ok" : "FAILED");
    }
    /* unaligned X (dt_proj reading an odd column offset), ldo > N, fallback shapes, M > 64 */
    struct extra {
        const char *what;
        int M, N, K, ldx, ldo, xoff;
    } ex[] = {{"dt_proj X at +1 element", 13, 5120, 160, 192, 5120, 1}, {"dt_proj X +3, ldx 193", 64, 5120, 160, 193, 5120, 3},
              {"ldo = N + 5", 7, 1000, 512, 512, 1005, 0},               {"K % 16 != 0 (fallback)", 5, 300, 100, 100, 300, 0},
              {"M = 100 (two chunks)", 100, 384, 256, 256, 384, 0},       {"N = 1", 9, 1, 2560, 2560, 1, 0}};
    int before = g_fail;
    for (auto &e : ex) {
        char lab[160];
        i8case c;
        i8case_make(c, e.M, e.N, e.K, e.ldx, e.ldo, e.xoff, 77 + e.M);
        snprintf(lab, sizeof lab, "i8 %s (M%d N%d K%d)", e.what, e.M, e.N, e.K);
        i8case_run(c, 0, nullptr, lab);
        f16case f;
        const int K16 = strstr(e.what, "fallback") ? 100 - 4 + 2 : e.K; /* 98: K % 8 != 0 */
        f16case_make(f, e.M, e.N, K16, std::max(e.ldx, K16), e.ldo, e.xoff, 88 + e.M);
        snprintf(lab, sizeof lab, "f16 %s (M%d N%d K%d)", e.what, e.M, e.N, K16);
        f16case_run(f, 0, nullptr, lab);
    }
    printf("  extra cases (unaligned X, ldo, fallback, M > 64, N = 1) %s\n", g_fail == before ? "ok" : "FAILED");
    /* every compiled kernel with k-warp and cluster splits on one shape */
    before = g_fail;
    for (int mt : {1, 2, 4, 8})
        for (int wr = 1; wr <= 2; wr++)
            for (int ku = 1; ku <= 4; ku *= 2) {
                if (!ws_have(mt, wr, ku)) continue;
                const int M = mt == 1 ? 5 : 8 * mt - 3;
                i8case c;
                i8case_make(c, M, 1000, 1024, 1024, 1000, 0, 5 + mt * 7 + wr * 3 + ku);
                f16case f;
                f16case_make(f, M, 1000, 512, 512, 1000, 0, 6 + mt * 7 + wr * 3 + ku);
                for (int ck : {1, 2, 4, 8})
                    for (int wk : {1, 2, 4}) {
                        if (ck > g_max_ck) continue;
                        char lab[160];
                        ws_cfg cf = ws_make_cfg(M, 1000, 1024, mt, wr, ku, 2, wk, ck);
                        if (cf.ok) {
                            snprintf(lab, sizeof lab, "i8 kernel %s", cfg_str(cf).c_str());
                            i8case_run(c, 1, &cf, lab, 1 << 3);
                        }
                        cf = ws_make_cfg(M, 1000, 1024, mt, wr, ku, 2, wk, ck);
                        if (cf.ok) {
                            snprintf(lab, sizeof lab, "f16 kernel %s", cfg_str(cf).c_str());
                            f16case_run(f, 1, &cf, lab, 2);
                        }
                    }
            }
    printf("  every kernel x (wk, ck) splits %s\n", g_fail == before ? "ok" : "FAILED");
}

struct row_t {
    std::string dtype, model, name;
    int M, N, K;
    double bytes, base_us, lib_us, new_us, nopdl_us, model_us;
    std::string cfg;
};

static ws_cfg plan_capped(int M, int N, int Kb) { return ws_plan_cached(M, N, Kb, g_sm, g_max_ck); }

static double time_new_i8(const shape &sh, int M, const ws_cfg &cf, bool pdl, void *dX, void *dO, const float *sw,
                          const float *qs) {
    const rot r = rotation((size_t)sh.N * sh.K);
    const double est = (double)sh.N * sh.K / 3e6 + 3;
    const int L = launches_for(r, est);
    ws_epi8 ep = {0.01f, sw, nullptr, qs, WS_EPI_I8, dO, sh.N};
    return time_launches(L, [&](int i, cudaStream_t st) {
        return ws_launch<ws_i8>(cf, (const uint8_t *)dX, sh.ldx, r.at(i), M, sh.N, sh.K, ep, st, pdl) == cudaSuccess;
    });
}
static double time_new_f16(const shape &sh, int M, const ws_cfg &cf, bool pdl, void *dX, void *dO) {
    const rot r = rotation((size_t)sh.N * sh.K * 2);
    const double est = (double)sh.N * sh.K * 2 / 3e6 + 3;
    const int L = launches_for(r, est);
    ws_epi16 ep = {nullptr, dO, sh.N, 0};
    return time_launches(L, [&](int i, cudaStream_t st) {
        return ws_launch<ws_f16>(cf, (const uint8_t *)dX, 2L * sh.ldx, r.at(i), M, sh.N, sh.K, ep, st, pdl) == cudaSuccess;
    });
}

static void timing(bool quick, std::vector<row_t> &rows) {
    printf("\n== timing ==\n");
    dbuf dX, dO, dsw, dqs, dC;
    dX.alloc((size_t)64 * 5120 * 2 + 64), dO.alloc((size_t)64 * 50280 * 4 + 64), dC.alloc((size_t)64 * 50280 * 4);
    dsw.alloc(50280 * 4), dqs.alloc(50280 * 4);
    {
        std::vector<float> ones(50280, 1.0f / 64);
        CK(cudaMemcpy(dsw.p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dqs.p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemset(dX.p, 1, dX.n));
    }
    for (int elt = 1; elt <= 2; elt++)
        for (int s = 0; s < g_nshapes; s++) {
            const shape &sh = g_shapes[s];
            if ((elt == 1 && !sh.i8) || (elt == 2 && !sh.f16)) continue;
            if (quick && strcmp(sh.model, "2.8b")) continue;
            const rot r = rotation((size_t)sh.N * sh.K * elt);
            for (int M : g_time_M) {
                row_t row;
                row.dtype = elt == 1 ? "int8" : "fp16", row.model = sh.model, row.name = sh.name;
                row.M = M, row.N = sh.N, row.K = sh.K;
                const double osz = elt == 1 ? 1 : 2;
                row.bytes = (double)sh.N * sh.K * elt + (double)M * sh.K * elt + (double)M * sh.N * osz;
                ws_cfg cf = plan_capped(M, sh.N, sh.K * elt);
                row.cfg = cfg_str(cf);
                row.model_us = ws_model_us(cf, M, sh.N, sh.K * elt, g_sm);
                const double est = (double)sh.N * sh.K * elt / 3e6 + 3;
                const int L = launches_for(r, est);
                row.base_us = row.lib_us = -1;
                if (elt == 1) {
                    row.new_us = time_new_i8(sh, M, cf, g_pdl, dX.p, dO.p, (float *)dsw.p, (float *)dqs.p);
                    row.nopdl_us = g_pdl ? time_new_i8(sh, M, cf, false, dX.p, dO.p, (float *)dsw.p, (float *)dqs.p) : row.new_us;
                    if (M <= 8) {
                        ws_epi8 ep = {0.01f, (float *)dsw.p, nullptr, (float *)dqs.p, 0, dO.p, sh.N};
                        row.base_us = time_launches(L, [&](int i, cudaStream_t st) {
                            return base_gemv((const int8_t *)dX.p, sh.ldx, (const int8_t *)r.at(i), M, sh.N, sh.K, ep, g_sm, st);
                        });
                    }
                    lt_plan p = lt_make(M, sh.N, sh.K, sh.ldx);
                    if (p.ok) {
                        lt_run(p, (const int8_t *)dX.p, (const int8_t *)r.at(0), (int32_t *)dC.p, g_st); /* warm */
                        cudaStreamSynchronize(g_st);
                        row.lib_us = time_launches(L, [&](int i, cudaStream_t st) {
                            return lt_run(p, (const int8_t *)dX.p, (const int8_t *)r.at(i), (int32_t *)dC.p, st);
                        });
                    }
                    lt_free(p);
                } else {
                    row.new_us = time_new_f16(sh, M, cf, g_pdl, dX.p, dO.p);
                    row.nopdl_us = g_pdl ? time_new_f16(sh, M, cf, false, dX.p, dO.p) : row.new_us;
                    cublas_f16((const __half *)dX.p, sh.ldx, (const __half *)r.at(0), M, sh.N, sh.K, (__half *)dC.p, g_st);
                    cudaStreamSynchronize(g_st);
                    row.lib_us = time_launches(L, [&](int i, cudaStream_t st) {
                        return cublas_f16((const __half *)dX.p, sh.ldx, (const __half *)r.at(i), M, sh.N, sh.K, (__half *)dC.p, st);
                    });
                }
                rows.push_back(row);
                printf("  %s %-7s %-8s M=%2d  new %8.2f us (%5.0f GB/s)\n", row.dtype.c_str(), sh.model, sh.name, M, row.new_us,
                       row.bytes / row.new_us / 1e3);
                fflush(stdout);
            }
        }
}

static void tune(bool quick) {
    printf("\n== tune: the planner's best-scored candidates, timed (PDL %s) ==\n", g_pdl ? "on" : "off");
    printf("%-4s %-7s %-8s %3s | %8s %-58s | %8s %-58s | %s\n", "dt", "model", "shape", "M", "plan us", "plan cfg", "best us",
           "best cfg", "plan/best");
    dbuf dX, dO, dsw, dqs;
    dX.alloc((size_t)64 * 5120 * 2 + 64), dO.alloc((size_t)64 * 50280 * 4 + 64);
    dsw.alloc(50280 * 4), dqs.alloc(50280 * 4);
    {
        std::vector<float> ones(50280, 1.0f / 64);
        CK(cudaMemcpy(dsw.p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dqs.p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemset(dX.p, 1, dX.n));
    }
    std::vector<ws_cfg> cand(20000);
    double sum_ratio = 0;
    int nratio = 0;
    for (int elt = 1; elt <= 2; elt++)
        for (int s = 0; s < g_nshapes; s++) {
            const shape &sh = g_shapes[s];
            if ((elt == 1 && !sh.i8) || (elt == 2 && !sh.f16)) continue;
            if (strcmp(sh.model, "2.8b") || !strcmp(sh.name, "lm_head")) continue;
            i8case ci;
            f16case cf16;
            if (elt == 1) i8case_w(ci, sh.N, sh.K, 997);
            else f16case_w(cf16, sh.N, sh.K, 996);
            for (int M : {1, 4, 16, 64}) {
                if (quick && M != 1 && M != 64) continue;
                int nc = 0;
                ws_cfg plan = ws_plan(M, sh.N, sh.K * elt, g_sm, (int)cand.size(), cand.data(), &nc, g_max_ck);
                std::vector<std::pair<double, ws_cfg>> sc;
                for (int i = 0; i < nc; i++)
                    if (cand[i].ck <= g_max_ck) sc.push_back({ws_model_us(cand[i], M, sh.N, sh.K * elt, g_sm), cand[i]});
                std::sort(sc.begin(), sc.end(), [](const std::pair<double, ws_cfg> &a, const std::pair<double, ws_cfg> &b) {
                    return a.first < b.first;
                });
                /* the best 5 of each (wr, ku) and the best 10 overall */
                std::vector<ws_cfg> todo;
                int per[3][5] = {{0}};
                for (size_t i = 0; i < sc.size(); i++) {
                    const ws_cfg &c = sc[i].second;
                    if (i < 10 || per[c.wr][c.ku] < 5) todo.push_back(c), per[c.wr][c.ku]++;
                }
                double plan_us = -1, best_us = 1e30;
                ws_cfg best = plan;
                /* correctness of each timed candidate (int32 / f32 outputs) on the shape itself */
                if (elt == 1) i8case_x(ci, M, sh.ldx, sh.N, 0, 999 + M);
                else f16case_x(cf16, M, sh.ldx, sh.N, 0, 998 + M);
                for (auto &c : todo) {
                    char lab[200];
                    snprintf(lab, sizeof lab, "tune %s %s M=%d %s", elt == 1 ? "i8" : "f16", sh.name, M, cfg_str(c).c_str());
                    bool ok = elt == 1 ? i8case_run(ci, 1, &c, lab, 1 << 3) : f16case_run(cf16, 1, &c, lab, 2);
                    if (!ok) continue;
                    double us = elt == 1 ? time_new_i8(sh, M, c, g_pdl, dX.p, dO.p, (float *)dsw.p, (float *)dqs.p)
                                         : time_new_f16(sh, M, c, g_pdl, dX.p, dO.p);
                    if (us < 0) continue;
                    if (us < best_us) best_us = us, best = c;
                }
                plan_us = elt == 1 ? time_new_i8(sh, M, plan, g_pdl, dX.p, dO.p, (float *)dsw.p, (float *)dqs.p)
                                   : time_new_f16(sh, M, plan, g_pdl, dX.p, dO.p);
                if (plan_us < best_us) best_us = plan_us, best = plan;
                printf("%-4s %-7s %-8s %3d | %8.2f %-58s | %8.2f %-58s | %.2f\n", elt == 1 ? "i8" : "f16", sh.model, sh.name,
                       M, plan_us, cfg_str(plan).c_str(), best_us, cfg_str(best).c_str(), plan_us / best_us);
                fflush(stdout);
                sum_ratio += plan_us / best_us, nratio++;
            }
        }
    if (nratio) printf("planner pick / measured best, mean over %d cases: %.3f\n", nratio, sum_ratio / nratio);
}

static void print_table(const std::vector<row_t> &rows, double peak_gbs) {
    printf("\n== table: us per call (GB/s = weights + X + out bytes / time; %% of 4.2 TB/s) ==\n");
    printf("old int8 = dp4a GEMV (ssm route for M <= 8, fused epilogue); cuBLASLt int8 = IMMA TN, int32 out, no epilogue;\n");
    printf("cuBLAS fp16 = cublasGemmEx FP16 out, FP32 compute; new = wstream (int8 out / FP16 out), PDL %s; read probe %.0f GB/s\n",
           g_pdl ? "on" : "off", peak_gbs);
    printf("%-4s %-7s %-8s %3s %6s %5s | %8s %6s | %8s %6s | %8s %6s %5s | %8s %8s | %s\n", "dt", "model", "shape", "M", "N",
           "K", "old us", "GB/s", "lib us", "GB/s", "new us", "GB/s", "%4.2", "noPDL us", "model us", "plan");
    for (auto &r : rows) {
        auto f = [&](double us, char *a, char *b) {
            if (us > 0) snprintf(a, 16, "%8.2f", us), snprintf(b, 16, "%6.0f", r.bytes / us / 1e3);
            else snprintf(a, 16, "%8s", "-"), snprintf(b, 16, "%6s", "-");
        };
        char a1[16], b1[16], a2[16], b2[16], a3[16], b3[16];
        f(r.base_us, a1, b1), f(r.lib_us, a2, b2), f(r.new_us, a3, b3);
        printf("%-4s %-7s %-8s %3d %6d %5d | %s %s | %s %s | %s %s %4.0f%% | %8.2f %8.2f | %s\n", r.dtype.c_str(),
               r.model.c_str(), r.name.c_str(), r.M, r.N, r.K, a1, b1, a2, b2, a3, b3,
               r.new_us > 0 ? r.bytes / r.new_us / 1e3 / 42 : 0, r.nopdl_us, r.model_us, r.cfg.c_str());
    }
}

int main(int argc, char **argv) {
    bool selftest = false, do_tune = false, quick = false, check_only = false, time_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu-selftest")) selftest = true;
        else if (!strcmp(argv[i], "--tune")) do_tune = true;
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-pdl")) g_pdl = false;
        else if (!strcmp(argv[i], "--check-only")) check_only = true;
        else if (!strcmp(argv[i], "--time-only")) time_only = true;
        else if (!strcmp(argv[i], "--max-ck") && i + 1 < argc) g_max_ck = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--cpu-selftest] [--tune] [--quick] [--no-pdl] [--max-ck N] [--check-only] [--time-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if (selftest) return cpu_selftest(132);

    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    g_sm = prop.multiProcessorCount, g_l2 = prop.l2CacheSize;
    printf("%s: %d SMs, L2 %zu MB, %.0f GB memory\n", prop.name, g_sm, g_l2 >> 20, prop.totalGlobalMem / 1e9);
    CK(cudaStreamCreateWithFlags(&g_st, cudaStreamNonBlocking));
    if (cublasLtCreate(&g_lt) != CUBLAS_STATUS_SUCCESS || cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cuBLAS init failed\n");
        return 2;
    }
    CK(cudaMalloc(&g_lt_ws, g_lt_ws_bytes));
    CK(cudaMalloc(&g_cublas_ws, g_lt_ws_bytes));
    cublasSetWorkspace(g_cublas, g_cublas_ws, g_lt_ws_bytes);
    cublasSetStream(g_cublas, g_st);

    g_pool_bytes = (size_t)1536 << 20;
    CK(cudaMalloc(&g_pool, g_pool_bytes));
    fill_f16_kernel<<<4 * g_sm, 256, 0, g_st>>>((__half *)g_pool, g_pool_bytes / 2, 42);
    CK(cudaStreamSynchronize(g_st));

    /* read-bandwidth probe over the whole pool */
    double peak = 0;
    {
        unsigned *sink;
        CK(cudaMalloc(&sink, 4));
        double us = time_launches(4, [&](int, cudaStream_t st) {
            read_probe_kernel<<<g_sm * 8, 512, 0, st>>>((const uint4 *)g_pool, g_pool_bytes / 16, sink);
            return cudaGetLastError() == cudaSuccess;
        });
        peak = g_pool_bytes / us / 1e3;
        printf("read probe: %.0f GB/s (1.5 GB, 16-byte no-allocate loads)\n", peak);
        cudaFree(sink);
    }
    kernel_info();
    if (!time_only) correctness(quick);
    std::vector<row_t> rows;
    if (!check_only) timing(quick, rows);
    if (do_tune) tune(quick);
    if (!rows.empty()) print_table(rows, peak);
    printf("\ncorrectness: %d checks, %d failed\n", g_checks, g_fail);
    printf("%d passed, %d failed\n", g_checks - g_fail, g_fail);
    return g_fail ? 1 : 0;
}
