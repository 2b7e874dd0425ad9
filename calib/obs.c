/* Activation observers (see obs.h for the names, the statistics and their exact definitions).
 * Per sample and tensor: one pass over the data builds a per-sample log histogram, the absmax and
 * the per-head maxima; the histogram then tells which bin holds the lowest rank any requested
 * percentile needs, so only the values from that bin up (about 1% of them for the default list)
 * are copied out and ranked by quickselect. Exact, and close to one read of the data. */
#include "calib/obs.h"
#include "core/err.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const double obs_default_pct[] = {99, 99.9, 99.95, 99.99, 99.995, 99.999, 100};
const int obs_default_npct = 7;

/* ---- histogram ---- */

/* mant_edge[k] = 2^(k/64) rounded to float, k = 0..64; cell_k[c] = the k with
 * mant_edge[k] <= 1 + c/4096 < mant_edge[k+1]. A 4096-cell is narrower than any bin (1/4096 <
 * 2^(1/64) - 1), so a value's bin is cell_k or cell_k + 1: one table read and one compare. */
static float mant_edge[OBS_HIST_PER_OCTAVE + 1];
static unsigned char cell_k[4096];

__attribute__((constructor)) static void init_hist_tables(void) {
    for (int k = 0; k <= OBS_HIST_PER_OCTAVE; k++) mant_edge[k] = (float)exp2((double)k / OBS_HIST_PER_OCTAVE);
    int k = 0;
    for (int c = 0; c < 4096; c++) {
        float m = 1.0f + (float)c / 4096.0f;
        while (k + 1 < OBS_HIST_PER_OCTAVE && mant_edge[k + 1] <= m) k++;
        cell_k[c] = (unsigned char)k;
    }
}

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

#define HIST_LO 0x1p-16f
#define HIST_HI 0x1p16f

int obs_hist_bin(float a) {
    if (!(a >= HIST_LO)) return 0;
    if (a >= HIST_HI) return OBS_HIST_BINS - 1;
    uint32_t u = f2u(a);                       /* a is normal here: exponent field is exact */
    int e = (int)((u >> 23) & 0xff) - 127;
    int k = cell_k[(u >> 11) & 0xfff];
    float m = u2f((u & 0x7fffff) | 0x3f800000u); /* mantissa in [1, 2) */
    if (m >= mant_edge[k + 1]) k++;
    return (e - OBS_HIST_LOG2_MIN) * OBS_HIST_PER_OCTAVE + k;
}

float obs_hist_edge(int i) {
    return ldexpf(mant_edge[i % OBS_HIST_PER_OCTAVE], i / OBS_HIST_PER_OCTAVE + OBS_HIST_LOG2_MIN);
}

/* ---- percentiles ---- */

typedef struct { size_t below, above; float w; } qrank;

/* torch.quantile's rank arithmetic: q and the rank in float32. */
static qrank rank_of(size_t n, double pct) {
    float q = (float)(pct / 100.0);
    float rank = q * (float)(n - 1);
    qrank r;
    r.below = (size_t)rank;
    r.above = (size_t)ceilf(rank);
    if (r.above > n - 1) r.above = n - 1;
    r.w = rank - (float)r.below;
    return r;
}

/* torch's lerp: the form is chosen by the weight so that w = 0 and w = 1 return the endpoints exactly. */
static float lerp_torch(float lo, float hi, float w) {
    volatile float d = hi - lo;   /* volatile: no FMA contraction, same result in every caller */
    volatile float t = w < 0.5f ? w * d : d * (1.0f - w);
    return w < 0.5f ? lo + t : hi - t;
}

float obs_quantile_sorted(const float *a, size_t n, double pct) {
    qrank r = rank_of(n, pct);
    return lerp_torch(a[r.below], a[r.above], r.w);
}

static int cmp_float(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static inline void swapf(float *a, float *b) { float t = *a; *a = *b; *b = t; }

/* Quickselect on a[lo, hi): afterwards a[k] holds the value of rank k, a[lo..k) <= a[k] <= a(k..hi).
 * Three-way partition so long runs of equal values (ties, zeros) cost nothing; median of three
 * pivots; a sort fallback bounds the worst case. */
static void select_k(float *a, size_t lo, size_t hi, size_t k) {
    int budget = 64;
    while (hi - lo > 16) {
        if (budget-- == 0) { qsort(a + lo, hi - lo, sizeof *a, cmp_float); return; }
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        float p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (a[i] < p) swapf(&a[lt++], &a[i++]);
            else if (a[i] > p) swapf(&a[i], &a[--gt]);
            else i++;
        }
        if (k < lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return;
    }
    for (size_t i = lo + 1; i < hi; i++) {      /* insertion sort of the last few */
        float v = a[i];
        size_t j = i;
        for (; j > lo && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

static int cmp_size(const void *x, const void *y) {
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

/* a[0..m) holds exactly the values of global ascending ranks base..base+m-1 (unordered) of an array
 * of n; place every rank the percentiles need by successive selection, then interpolate. */
static void percentiles_from(float *a, size_t m, size_t base, size_t n, const double *pct, int nq, float *out) {
    qrank r[OBS_MAX_Q];
    size_t idx[2 * OBS_MAX_Q];
    int ni = 0;
    for (int q = 0; q < nq; q++) {
        r[q] = rank_of(n, pct[q]);
        idx[ni++] = r[q].below - base;
        idx[ni++] = r[q].above - base;
    }
    qsort(idx, ni, sizeof *idx, cmp_size);
    size_t lo = 0;
    for (int i = 0; i < ni; i++) {
        if (i && idx[i] == idx[i - 1]) continue;
        select_k(a, lo, m, idx[i]);
        lo = idx[i] + 1;
    }
    for (int q = 0; q < nq; q++) out[q] = lerp_torch(a[r[q].below - base], a[r[q].above - base], r[q].w);
}

void obs_percentiles(float *a, size_t n, const double *pct, int nq, float *out) {
    percentiles_from(a, n, 0, n, pct, nq, out);
}

/* Histogram-guided selection over a strided rows x cols block (element (r, c) at x[r*ld + c], |.| taken
 * here): find the highest bin whose count-below is <= the lowest rank needed, copy only the values
 * from that bin's lower edge up into cand, and select within them. */
static void percentiles_hist_strided(const float *x, int rows, int cols, size_t ld, const int64_t *hist,
                                     const double *pct, int nq, float *cand, float *out) {
    size_t n = (size_t)rows * cols;
    size_t rmin = n - 1;
    for (int q = 0; q < nq; q++) {
        size_t b = rank_of(n, pct[q]).below;
        if (b < rmin) rmin = b;
    }
    int b = OBS_HIST_BINS - 1;
    size_t from_b = 0;
    for (; b > 0; b--) {
        from_b += (size_t)hist[b];
        if (n - from_b <= rmin) break;
    }
    float edge = b > 0 ? obs_hist_edge(b) : 0.0f;    /* bin 0: every value is a candidate */
    size_t m = 0;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ld;
        for (int c = 0; c < cols; c++) {
            float v = fabsf(xr[c]);
            if (v >= edge) cand[m++] = v;
        }
    }
    if (b > 0 && m != from_b) mq_die("obs: histogram and bin edge disagree (bin %d: %zu vs %zu values)", b, m, from_b);
    percentiles_from(cand, m, n - m, n, pct, nq, out);
}

void obs_percentiles_hist(const float *a, size_t n, const int64_t *hist, const double *pct, int nq,
                          float *cand, float *out) {
    percentiles_hist_strided(a, 1, (int)n, n, hist, pct, nq, cand, out);
}

float obs_ema(float prev, float cur, int first) {
    if (first) return cur;
    volatile float step = OBS_EMA_ALPHA * (cur - prev);   /* float32, no contraction, as torch */
    return prev + step;
}

/* ---- one tensor ---- */

void obs_tensor_init(obs_tensor *t, const char *name, int layer, const double *pct, int nq) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = layer;
    t->nq = nq;
    memcpy(t->pct, pct, nq * sizeof *pct);
    t->hist = mq_calloc(OBS_HIST_BINS, sizeof *t->hist);
}

void obs_tensor_set_groups(obs_tensor *t, int ngroup, int gsize, int gaxis, const char *kind) {
    if (ngroup < 1 || ngroup > OBS_MAX_GROUPS || gsize < 1)
        mq_die("%s: %d %ss of %d (at most %d groups)", t->name, ngroup, kind, gsize, OBS_MAX_GROUPS);
    t->ngroup = ngroup;
    t->gsize = gsize;
    t->gaxis = gaxis;
    t->gkind = kind;
    free(t->gabsmax);
    t->gabsmax = mq_calloc(ngroup, sizeof *t->gabsmax);
}

void obs_tensor_set_channels(obs_tensor *t, int ncols) {
    t->nchan = ncols;
    free(t->cabsmax);
    t->cabsmax = mq_calloc((size_t)ncols, sizeof *t->cabsmax);
}

void obs_tensor_free(obs_tensor *t) {
    free(t->hist);
    free(t->gabsmax);
    free(t->cabsmax);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* Per-thread scratch reused across calls: the percentile candidates. */
static _Thread_local float *g_cand;
static _Thread_local size_t g_cand_cap;

static float *scratch(size_t n) {
    if (n > g_cand_cap) {
        free(g_cand);
        g_cand_cap = n + n / 4;
        g_cand = mq_malloc(g_cand_cap * sizeof *g_cand);
    }
    return g_cand;
}

static inline float maxf(float a, float b) { return b > a ? b : a; }

int obs_tensor_observe(obs_tensor *t, const float *x, int rows, int cols, int ld) {
    size_t n = (size_t)rows * cols;
    if (n == 0) return mq_fail("%s: empty activation (%d x %d)", t->name, rows, cols);
    int64_t hist[OBS_HIST_BINS];
    memset(hist, 0, sizeof hist);
    float gmax[OBS_MAX_GROUPS];
    int ng = t->ngroup;
    for (int g = 0; g < ng; g++) gmax[g] = 0;
    float amax = 0;
    int bad = 0;
    /* pass 1: histogram, absmax, per-group maxima, finiteness */
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ld;
        float rmax = 0;
        for (int c = 0; c < cols; c++) {
            float v = fabsf(xr[c]);
            bad |= !(v <= FLT_MAX);
            rmax = maxf(rmax, v);
            hist[obs_hist_bin(v)]++;
        }
        amax = maxf(amax, rmax);
        if (ng && t->gaxis == 1)
            for (int g = 0; g < ng; g++)
                for (int c = g * t->gsize; c < (g + 1) * t->gsize && c < cols; c++) gmax[g] = maxf(gmax[g], fabsf(xr[c]));
        if (ng && t->gaxis == 0 && r / t->gsize < ng) gmax[r / t->gsize] = maxf(gmax[r / t->gsize], rmax);
    }
    if (bad) {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (!(fabsf(x[(size_t)r * ld + c]) <= FLT_MAX))
                    return mq_fail("%s: non-finite activation %g at row %d, column %d of %d x %d, calibration sample %lld",
                                   t->name, (double)x[(size_t)r * ld + c], r, c, rows, cols, (long long)t->nsamples);
    }
    /* pass 2: exact percentiles from the top candidates */
    float p[OBS_MAX_Q];
    percentiles_hist_strided(x, rows, cols, (size_t)ld, hist, t->pct, t->nq, scratch(n), p);
    int first = t->nsamples == 0;
    for (int q = 0; q < t->nq; q++) {
        t->plast[q] = p[q];
        t->pmax[q] = first ? p[q] : maxf(t->pmax[q], p[q]);
        t->pema[q] = obs_ema(t->pema[q], p[q], first);
    }
    t->absmax = maxf(t->absmax, amax);
    for (int b = 0; b < OBS_HIST_BINS; b++) t->hist[b] += hist[b];
    for (int g = 0; g < ng; g++) t->gabsmax[g] = maxf(t->gabsmax[g], gmax[g]);
    if (t->nchan == cols) {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t->cabsmax[c] = maxf(t->cabsmax[c], fabsf(x[(size_t)r * ld + c]));
        t->cobserved++;
    }
    t->numel += (int64_t)n;
    t->nsamples++;
    return 0;
}

/* Composite tensors: gather part `part` of nparts; observe once all parts of the sample are in. */
static int tensor_add_part(obs_tensor *t, int part, const float *x, int rows, int cols, int ld) {
    if (t->parts_seen & (1u << part))
        return mq_fail("%s: part %d produced twice in one calibration sample", t->name, part);
    size_t n = (size_t)rows * cols;
    if (t->nbuf + n > t->capbuf) {
        t->capbuf = t->nbuf + n;
        float *nb = realloc(t->buf, t->capbuf * sizeof *nb);
        if (!nb) mq_die("out of memory gathering %s", t->name);
        t->buf = nb;
    }
    for (int r = 0; r < rows; r++) memcpy(t->buf + t->nbuf + (size_t)r * cols, x + (size_t)r * ld, cols * sizeof *x);
    t->nbuf += n;
    t->parts_seen |= 1u << part;
    if (t->parts_seen != (1u << t->nparts) - 1) return 0;
    int rc = obs_tensor_observe(t, t->buf, 1, (int)t->nbuf, (int)t->nbuf);
    t->nbuf = 0;
    t->parts_seen = 0;
    t->seen = 1;
    return rc;
}

/* ---- the set for a model ---- */

enum { MAX_TARGETS = 4 };
typedef struct { int tensor, col0, ncols, part; } target;   /* part -1: the whole tensor */
typedef struct {
    int n;
    target tg[MAX_TARGETS];
    int rows, cols;                                          /* expected shape; rows 0 = any */
} route;

struct obs_set {
    mq_config cfg;
    obs_tensor *t;
    int nt, capt;
    route *routes;                                           /* [n_layer + 1][MQ_ACT_NROLES]; last row: lm_head */
    struct { obs_transform_fn fn; void *ctx; char name[64]; } xf[MQ_ACT_NROLES];
    float *xbuf;
    size_t xcap;
    int64_t nsamples;
    int failed;
    char err[1024];
};

static const char *role_names[MQ_ACT_NROLES] = {
    "in_proj_in", "conv_in", "z", "ssm_x", "x_proj_out", "dt", "B", "C", "ssm_out", "out_proj_in",
    "ssm_state", "lm_head_in", "resid"};

static int add_tensor(obs_set *s, int layer, const char *op, const double *pct, int nq) {
    MQ_GROW(s->t, s->capt, (size_t)s->nt + 1, 64);
    char name[112];
    if (layer < 0) snprintf(name, sizeof name, "%s", op);
    else snprintf(name, sizeof name, "backbone.layers.%d.mixer.%s", layer, op);
    obs_tensor_init(&s->t[s->nt], name, layer, pct, nq);
    return s->nt++;
}

static route *route_of(obs_set *s, int layer, mq_act_role role) {
    return &s->routes[(size_t)layer * MQ_ACT_NROLES + role];
}

static void add_target(obs_set *s, int layer, mq_act_role role, int rows, int cols, int tensor, int col0, int ncols, int part) {
    route *r = route_of(s, layer, role);
    r->rows = rows;
    r->cols = cols;
    r->tg[r->n++] = (target){tensor, col0, ncols, part};
}

obs_set *obs_set_new(const mq_config *c, const double *pct, int nq) {
    if (nq < 1 || nq > OBS_MAX_Q) { mq_fail("percentile list: expected 1 to %d values, found %d", OBS_MAX_Q, nq); return NULL; }
    for (int q = 0; q < nq; q++)
        if (!(pct[q] >= 0 && pct[q] <= 100)) { mq_fail("percentile list: %g is outside [0, 100]", pct[q]); return NULL; }
    obs_set *s = mq_calloc(1, sizeof *s);
    s->cfg = *c;
    s->routes = mq_calloc((size_t)(c->n_layer + 1) * MQ_ACT_NROLES, sizeof *s->routes);
    for (int r = 0; r < MQ_ACT_NROLES; r++) snprintf(s->xf[r].name, sizeof s->xf[r].name, "identity");
    int di = c->d_inner, dm = c->d_model, N = c->d_state;
    for (int l = 0; l < c->n_layer; l++) {
        int t = add_tensor(s, l, "in_proj:input", pct, nq);
        add_target(s, l, MQ_ACT_IN_PROJ_IN, 0, dm, t, 0, dm, -1);
        if (c->arch == MQ_MAMBA1) {
            t = add_tensor(s, l, "in_proj:output", pct, nq);
            s->t[t].nparts = 2;
            add_target(s, l, MQ_ACT_CONV_IN, 0, di, t, 0, di, 0);
            add_target(s, l, MQ_ACT_Z, 0, di, t, 0, di, 1);
            int xo = c->dt_rank + 2 * N;
            t = add_tensor(s, l, "x_proj:input", pct, nq);
            obs_tensor_set_channels(&s->t[t], di);
            add_target(s, l, MQ_ACT_SSM_X, 0, di, t, 0, di, -1);
            t = add_tensor(s, l, "x_proj:output", pct, nq);
            add_target(s, l, MQ_ACT_X_PROJ_OUT, 0, xo, t, 0, xo, -1);
            t = add_tensor(s, l, "dt_proj:input", pct, nq);
            add_target(s, l, MQ_ACT_X_PROJ_OUT, 0, xo, t, 0, c->dt_rank, -1);
            t = add_tensor(s, l, "dt_proj:output", pct, nq);
            add_target(s, l, MQ_ACT_DT, 0, di, t, 0, di, -1);
            t = add_tensor(s, l, "ssm_state_act:input", pct, nq);
            add_target(s, l, MQ_ACT_SSM_STATE, di, N, t, 0, N, -1);
        } else {
            int G = c->n_groups, H = c->n_heads, P = c->head_dim, cd = di + 2 * G * N;  /* = cfg_conv_dim */
            t = add_tensor(s, l, "in_proj:output", pct, nq);
            s->t[t].nparts = 3;
            add_target(s, l, MQ_ACT_Z, 0, di, t, 0, di, 0);
            add_target(s, l, MQ_ACT_CONV_IN, 0, cd, t, 0, cd, 1);
            add_target(s, l, MQ_ACT_DT, 0, H, t, 0, H, 2);
            t = add_tensor(s, l, "z_act:input", pct, nq);
            add_target(s, l, MQ_ACT_Z, 0, di, t, 0, di, -1);
            t = add_tensor(s, l, "x_conv_in:input", pct, nq);
            add_target(s, l, MQ_ACT_CONV_IN, 0, cd, t, 0, di, -1);
            t = add_tensor(s, l, "B_conv_in:input", pct, nq);
            add_target(s, l, MQ_ACT_CONV_IN, 0, cd, t, di, G * N, -1);
            t = add_tensor(s, l, "C_conv_in:input", pct, nq);
            add_target(s, l, MQ_ACT_CONV_IN, 0, cd, t, di + G * N, G * N, -1);
            t = add_tensor(s, l, "dt_act:input", pct, nq);
            add_target(s, l, MQ_ACT_DT, 0, H, t, 0, H, -1);
            t = add_tensor(s, l, "x_conv_out:input", pct, nq);
            obs_tensor_set_groups(&s->t[t], H, P, 1, "head");
            obs_tensor_set_channels(&s->t[t], di);
            add_target(s, l, MQ_ACT_SSM_X, 0, di, t, 0, di, -1);
            t = add_tensor(s, l, "B_conv_out:input", pct, nq);
            obs_tensor_set_groups(&s->t[t], G, N, 1, "group");
            add_target(s, l, MQ_ACT_B, 0, G * N, t, 0, G * N, -1);
            t = add_tensor(s, l, "C_conv_out:input", pct, nq);
            obs_tensor_set_groups(&s->t[t], G, N, 1, "group");
            add_target(s, l, MQ_ACT_C, 0, G * N, t, 0, G * N, -1);
            t = add_tensor(s, l, "ssm_state_act:input", pct, nq);
            obs_tensor_set_groups(&s->t[t], H, P, 0, "head");
            add_target(s, l, MQ_ACT_SSM_STATE, H * P, N, t, 0, N, -1);
        }
        t = add_tensor(s, l, "had:input", pct, nq);
        add_target(s, l, MQ_ACT_SSM_OUT, 0, di, t, 0, di, -1);
        t = add_tensor(s, l, "out_proj:input", pct, nq);
        add_target(s, l, MQ_ACT_OUT_PROJ_IN, 0, di, t, 0, di, -1);
    }
    int t = add_tensor(s, -1, "lm_head:input", pct, nq);
    add_target(s, c->n_layer, MQ_ACT_LM_HEAD_IN, 0, dm, t, 0, dm, -1);
    return s;
}

void obs_set_free(obs_set *s) {
    if (!s) return;
    for (int i = 0; i < s->nt; i++) obs_tensor_free(&s->t[i]);
    free(s->t);
    free(s->routes);
    free(s->xbuf);
    free(s);
}

void obs_set_transform(obs_set *s, mq_act_role role, obs_transform_fn fn, void *ctx, const char *name) {
    s->xf[role].fn = fn;
    s->xf[role].ctx = ctx;
    snprintf(s->xf[role].name, sizeof s->xf[role].name, "%s", fn ? (name ? name : "custom") : "identity");
}

const char *obs_transform_name(const obs_set *s, mq_act_role role) { return s->xf[role].name; }

static void set_failed(obs_set *s) {
    if (s->failed) return;
    s->failed = 1;
    snprintf(s->err, sizeof s->err, "%s", mq_errmsg());
}

/* Observes host FP32 activations; the first failure is kept and stops the forward. */
static int on_activation(void *ctx, const mq_act *a) {
    obs_set *s = ctx;
    int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    mq_act_role role = a->role;
    float *x = a->x;
    if (s->failed) return mq_fail("%s", s->err);
    if (role < 0 || role >= MQ_ACT_NROLES || role == MQ_ACT_RESID) return 0;
    if (role == MQ_ACT_LM_HEAD_IN) layer = s->cfg.n_layer;
    else if (layer < 0 || layer >= s->cfg.n_layer) return 0;
    route *r = route_of(s, layer, role);
    if (!r->n) return 0;                                     /* not a quantized activation (M1 B, C) */
    if (a->dtype != MQ_F32 || a->device) {
        mq_fail("layer %d activation %s: the CPU observers read host FP32 data", layer, role_names[role]);
        set_failed(s);
        return -1;
    }
    if (cols != r->cols || (r->rows && rows != r->rows)) {
        char want[64];
        if (r->rows) snprintf(want, sizeof want, "%d x %d", r->rows, r->cols);
        else snprintf(want, sizeof want, "T x %d", r->cols);
        mq_fail("layer %d activation %s (feeds %s): expected %s, found %d x %d", layer, role_names[role],
                s->t[r->tg[0].tensor].name, want, rows, cols);
        set_failed(s);
        return -1;
    }
    if (s->xf[role].fn) {                                    /* transform a copy, never the forward's data */
        size_t n = (size_t)rows * cols;
        if (n > s->xcap) { free(s->xbuf); s->xcap = n; s->xbuf = mq_malloc(n * sizeof *s->xbuf); }
        for (int i = 0; i < rows; i++) memcpy(s->xbuf + (size_t)i * cols, x + (size_t)i * ld, cols * sizeof *x);
        if (s->xf[role].fn(s->xf[role].ctx, layer, role, s->xbuf, rows, cols, cols)) {
            set_failed(s);
            return -1;
        }
        x = s->xbuf;
        ld = cols;
    }
    for (int i = 0; i < r->n; i++) {
        target *tg = &r->tg[i];
        obs_tensor *t = &s->t[tg->tensor];
        int rc;
        if (tg->part >= 0) rc = tensor_add_part(t, tg->part, x + tg->col0, rows, tg->ncols, ld);
        else if (t->seen) rc = mq_fail("%s: produced twice in one calibration sample", t->name);
        else { rc = obs_tensor_observe(t, x + tg->col0, rows, tg->ncols, ld); t->seen = 1; }
        if (rc) { set_failed(s); return -1; }
    }
    return 0;
}

mq_hooks obs_set_hooks(obs_set *s) { return (mq_hooks){on_activation, s}; }

void obs_begin_sample(obs_set *s) {
    for (int i = 0; i < s->nt; i++) {
        s->t[i].seen = 0;
        s->t[i].parts_seen = 0;
        s->t[i].nbuf = 0;
    }
}

void obs_list_missing(char *buf, size_t size, int *n, const char *name) {
    if ((*n)++ >= 3) return;
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s", len ? ", " : "", name);
}

int obs_end_sample(obs_set *s) {
    if (s->failed) return mq_fail("%s", s->err);
    char missing[512] = "";
    int nmiss = 0;
    for (int i = 0; i < s->nt; i++)
        if (!s->t[i].seen) obs_list_missing(missing, sizeof missing, &nmiss, s->t[i].name);
    if (nmiss)
        return mq_fail("calibration sample %lld: %d activation(s) were never produced by the forward (%s%s); "
                       "expected every layer to call the hooks for its roles", (long long)s->nsamples, nmiss,
                       missing, nmiss > 3 ? ", ..." : "");
    s->nsamples++;
    return 0;
}

int64_t obs_samples(const obs_set *s) { return s->nsamples; }
int obs_count(const obs_set *s) { return s->nt; }
obs_tensor *obs_get(obs_set *s, int i) { return i >= 0 && i < s->nt ? &s->t[i] : NULL; }

obs_tensor *obs_find(obs_set *s, const char *name) {
    for (int i = 0; i < s->nt; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}
