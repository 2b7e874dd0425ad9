/* q_stats over a calib stats file, and the extra pass for the statistics the fusions change
 * (see cstats.h). Name mapping: calib/obs.h's table (Quamba's observer names). */
#include "quantize/cstats.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/hash.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "hadamard/had.h"

const char *q_cstats_name(const q_cstats *s, int layer, mq_act_role role, int part, q_stat_variant var, char *buf, size_t n) {
    int m1 = s->cfg.arch == MQ_MAMBA1;
    const char *op = NULL;
    switch (role) {
    case MQ_ACT_IN_PROJ_IN: op = var == s->in_var ? "in_proj:input" : NULL; break;
    case MQ_ACT_CONV_IN:
        op = m1 ? "in_proj:output" : part == 0 ? "x_conv_in:input" : part == 1 ? "B_conv_in:input" : "C_conv_in:input";
        break;
    case MQ_ACT_Z: op = m1 ? "in_proj:output" : "z_act:input"; break;
    case MQ_ACT_SSM_X: op = m1 ? "x_proj:input" : "x_conv_out:input"; break;
    case MQ_ACT_X_PROJ_OUT: op = m1 ? "x_proj:output" : NULL; break;
    case MQ_ACT_DT: op = m1 ? "dt_proj:output" : "dt_act:input"; break;
    case MQ_ACT_B: op = m1 ? NULL : "B_conv_out:input"; break;
    case MQ_ACT_C: op = m1 ? NULL : "C_conv_out:input"; break;
    case MQ_ACT_OUT_PROJ_IN:
        op = var == Q_STAT_PLAIN ? "had:input" : s->rot_in_file ? "out_proj:input" : NULL;
        break;
    case MQ_ACT_LM_HEAD_IN: snprintf(buf, n, "lm_head:input"); return buf;
    default: break;
    }
    if (!op) return NULL;
    snprintf(buf, n, "backbone.layers.%d.mixer.%s", layer, op);
    return buf;
}

static const float *fused_table(const q_cstats *s, mq_act_role role, q_stat_variant var) {
    if (role == MQ_ACT_IN_PROJ_IN) return s->pass_in[var];
    if (role == MQ_ACT_OUT_PROJ_IN && var == Q_STAT_FUSED) return s->pass_rot;
    return NULL;
}

static int missing_fused(const q_cstats *s, int layer, mq_act_role role) {
    return mq_fail("%s: no statistics of layer %d %s for this recipe (internal error: the extra calibration pass did not run)",
                   s->path, layer, q_role_key(s->cfg.arch, role));
}

static int cs_absmax(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, float *v) {
    q_cstats *s = ctx;
    char name[160];
    if (q_cstats_name(s, layer, role, part, var, name, sizeof name)) return calib_stats_absmax(s->cs, name, v);
    const float *t = fused_table(s, role, var);
    if (!t) return missing_fused(s, layer, role);
    *v = t[layer];
    return 0;
}

static int cs_percentile(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, double p, float *v) {
    q_cstats *s = ctx;
    char name[160];
    if (!q_cstats_name(s, layer, role, part, var, name, sizeof name))
        return mq_fail("%s: percentile of layer %d %s is not available (only the SSM input x is clipped by percentile)",
                       s->path, layer, q_role_key(s->cfg.arch, role));
    return calib_stats_percentile(s->cs, name, p, Q_PERCENTILE_EMA, v);
}

q_stats q_cstats_iface(q_cstats *s) {
    q_stats st = {cs_absmax, cs_percentile, s};
    return st;
}

int q_cstats_open(q_cstats *s, const char *stats_path, const char *model_dir, const mq_config *cfg) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", stats_path);
    s->cfg = *cfg;
    if (!(s->cs = calib_stats_open(stats_path, model_dir))) return -1;
    const char *arch = calib_stats_meta(s->cs, "model.arch");
    const char *want = cfg->arch == MQ_MAMBA1 ? "mamba1" : "mamba2";
    if (arch && strcmp(arch, want) && strcmp(arch, cfg->arch == MQ_MAMBA1 ? "mamba" : "mamba2")) {
        q_cstats_close(s);
        return mq_fail("%s: statistics of a %s model, but %s is %s", stats_path, arch, model_dir, want);
    }
    /* calib.transforms: "role=transform,..." applied to a copy before observing */
    const char *tr = calib_stats_meta(s->cs, "calib.transforms");
    s->rot_in_file = tr && strstr(tr, "out_proj_in=hadamard") != NULL;
    s->in_var = tr && strstr(tr, "in_proj_in=rmsnorm_unweighted") ? Q_STAT_FUSED : Q_STAT_PLAIN;
    return 0;
}

void q_cstats_close(q_cstats *s) {
    if (s->cs) calib_stats_close(s->cs);
    free(s->pass_in[0]);
    free(s->pass_in[1]);
    free(s->pass_rot);
    memset(s, 0, sizeof *s);
}

int q_cstats_missing(const q_cstats *s, const q_options *o) {
    int m = 0;
    q_stat_variant v = q_role_variant(o, MQ_ACT_IN_PROJ_IN);
    if (v != s->in_var && !s->pass_in[v]) m |= 1;
    if (q_role_variant(o, MQ_ACT_OUT_PROJ_IN) == Q_STAT_FUSED && !s->rot_in_file && !s->pass_rot) m |= 2;
    return m;
}

/* ---- transforms for calib ---- */

static void unweight_transform(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    const mq_model *m = ctx;
    if (layer < 0 || layer >= m->cfg.n_layer) return;
    const float *w = m->layers[layer].norm_w;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float *v = &x[(size_t)r * ld + c];
            *v = w[c] != 0 ? *v / w[c] : 0.0f;   /* a zero weight hides x / rms(x): its channel counts as 0 */
        }
}

static void hadamard_transform(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    if (q_rotate_rows(x, rows, cols, ld)) mq_die("hadamard transform of layer %d: %s", layer, mq_errmsg());
}

int q_cstats_transforms(const mq_model *m, const q_options *o, calib_transform *t) {
    int n = 0;
    if (q_method_fuses_norm(o->method)) t[n++] = (calib_transform){MQ_ACT_IN_PROJ_IN, unweight_transform, (void *)m, "rmsnorm_unweighted"};
    if (q_method_uses_hadamard(o->method)) t[n++] = (calib_transform){MQ_ACT_OUT_PROJ_IN, hadamard_transform, NULL, "hadamard"};
    return n;
}

/* ---- the extra pass ---- */

typedef struct {
    const mq_model *orig;      /* for the RMSNorm weights */
    float *in_max[2], *out_max;   /* [variant][n_layer], [n_layer] */
    float *rot;                /* scratch for H y [T x d_inner] */
    int bad;
} pass_ctx;

static float absmax_rows(const float *x, int rows, int cols, int ld) {
    float m = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float a = fabsf(x[(size_t)r * ld + c]);
            if (a > m || a != a) m = a != a ? INFINITY : a;
        }
    return m;
}

static void pass_hook(void *vctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    pass_ctx *p = vctx;
    if (layer < 0) return;
    if (role == MQ_ACT_IN_PROJ_IN) {
        /* the norm-fused model gives x / rms(x); the weighted output is x / rms(x) * w */
        float m = absmax_rows(x, rows, cols, ld), mw = 0;
        const float *w = p->orig->layers[layer].norm_w;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float a = fabsf(x[(size_t)r * ld + c] * w[c]);
                if (a > mw || a != a) mw = a != a ? INFINITY : a;
            }
        if (m > p->in_max[Q_STAT_FUSED][layer]) p->in_max[Q_STAT_FUSED][layer] = m;
        if (mw > p->in_max[Q_STAT_PLAIN][layer]) p->in_max[Q_STAT_PLAIN][layer] = mw;
    } else if (role == MQ_ACT_OUT_PROJ_IN) {
        /* observe H y on a copy; the forward itself is unchanged */
        for (int r = 0; r < rows; r++) memcpy(p->rot + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * sizeof(float));
        if (had_transform_f32(p->rot, rows, cols)) { p->bad = 1; return; }
        float m = absmax_rows(p->rot, rows, cols, cols);
        if (m > p->out_max[layer]) p->out_max[layer] = m;
    }
}

static long meta_long(const calib_stats *cs, const char *key, long def) {
    const char *v = calib_stats_meta(cs, key);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* A copy of m whose RMSNorm weights are folded into in_proj (arena duplicated, pointers rebased). */
static int fused_copy(const mq_model *m, mq_model *f) {
    *f = *m;
    if (posix_memalign(&f->arena, 64, m->arena_bytes ? m->arena_bytes : 64)) mq_die("out of memory (%zu bytes)", m->arena_bytes);
    memcpy(f->arena, m->arena, m->arena_bytes);
    f->layers = mq_malloc((size_t)m->cfg.n_layer * sizeof *f->layers);
    ptrdiff_t d = (char *)f->arena - (char *)m->arena;
    const char *lo = m->arena, *hi = lo + m->arena_bytes;
#define REBASE(p) ((p) && (const char *)(p) >= lo && (const char *)(p) < hi ? (float *)((char *)(p) + d) : (p))
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mq_layer L = m->layers[l];
        float **fields[] = {&L.norm_w, &L.in_proj, &L.in_proj_b, &L.conv_w, &L.conv_b, &L.out_proj, &L.out_proj_b, &L.A_log,
                            &L.A, &L.D, &L.x_proj, &L.dt_proj, &L.dt_proj_b, &L.dt_bias, &L.gnorm_w};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) *fields[i] = REBASE(*fields[i]);
        if (L.norm_w && (const char *)m->layers[l].norm_w == (const char *)L.norm_w) {
            free(f->arena);
            free(f->layers);
            return mq_fail("fused_copy: model arrays are not in its arena (internal error)");
        }
        f->layers[l] = L;
    }
    f->embed = REBASE(m->embed);
    f->norm_f = REBASE(m->norm_f);
    f->lm_head = REBASE(m->lm_head);
#undef REBASE
    return q_fuse_norm(f);
}

int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress) {
    const calib_stats *cs = s->cs;
    const char *data = calib_stats_meta(cs, "data.path"), *want = calib_stats_meta(cs, "data.sha256");
    if (!data || !want) return mq_fail("%s: metadata lacks data.path / data.sha256: cannot repeat the calibration windows", s->path);
    char hex[HASH_HEX_LEN];
    if (hash_file(data, hex)) return mq_fail_ctx("%s: re-reading the calibration data", s->path);
    if (strcmp(hex, want))
        return mq_fail("%s: the calibration data %s changed since calibration (sha256 %.16s..., the stats say %.16s...); rerun mambaq calib",
                       s->path, data, hex, want);
    long samples = meta_long(cs, "calib.samples", 0), seqlen = meta_long(cs, "calib.seqlen", 0);
    const char *seed = calib_stats_meta(cs, "calib.seed");
    int seeded = seed && *seed && strcmp(seed, "none");
    uint64_t seedv = seeded ? strtoull(seed, NULL, 10) : 0;
    if (samples <= 0 || seqlen <= 0) return mq_fail("%s: metadata lacks calib.samples / calib.seqlen", s->path);

    tok_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int is_ids = calib_has_suffix(data, ".bin") || calib_has_suffix(data, ".ids");
    if (!is_ids && !(tok = tok_load(tokenizer))) return mq_fail_ctx("extra calibration pass");
    ds_options dso = {.field = "text", .replace_invalid = 0};
    int rc = ds_tokens(data, &dso, tok, &ids, &n);
    if (tok) tok_free(tok);
    if (rc) return mq_fail_ctx("extra calibration pass");
    size_t *starts = mq_malloc((size_t)samples * sizeof *starts);
    if (calib_windows(n, (int)seqlen, (int)samples, seeded, seedv, starts, data)) {
        free(ids);
        free(starts);
        return -1;
    }
    mq_model f;
    if (fused_copy(m, &f)) {
        free(ids);
        free(starts);
        return -1;
    }
    int L = m->cfg.n_layer;
    pass_ctx p = {m, {mq_calloc((size_t)L, sizeof(float)), mq_calloc((size_t)L, sizeof(float))}, mq_calloc((size_t)L, sizeof(float)),
                  mq_malloc((size_t)seqlen * m->cfg.d_inner * sizeof(float)), 0};
    mq_hooks h = {pass_hook, &p};
    float *hidden = mq_malloc((size_t)seqlen * m->cfg.d_model * sizeof(float));
    prog_bar bar;
    prog_start(&bar, "fused stats", "samples", samples, !progress);
    double t0 = prog_now();
    for (long i = 0; i < samples && !rc; i++) {
        if (ssm_forward(&f, ids + starts[i], (int)seqlen, &h, hidden)) rc = mq_fail_ctx("extra calibration pass, window %ld", i);
        if (p.bad) rc = -1;
        prog_update(&bar, i + 1, (i + 1) * seqlen);
    }
    prog_finish(&bar);
    for (int l = 0; l < L && !rc; l++)
        if (!isfinite(p.in_max[0][l]) || !isfinite(p.in_max[1][l]) || !isfinite(p.out_max[l]))
            rc = mq_fail("extra calibration pass: layer %d produced non-finite activations", l);
    s->pass_seconds = prog_now() - t0;
    s->pass_tokens = samples * seqlen;
    free(hidden);
    free(p.rot);
    ssm_free(&f);
    free(ids);
    free(starts);
    if (rc) {
        free(p.in_max[0]);
        free(p.in_max[1]);
        free(p.out_max);
        return -1;
    }
    for (int v = 0; v < 2; v++) {
        free(s->pass_in[v]);
        s->pass_in[v] = p.in_max[v];
    }
    free(s->pass_rot);
    s->pass_rot = p.out_max;
    return 0;
}
