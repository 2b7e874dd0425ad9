/* q_stats over a calib stats file (see cstats.h) and the calib transforms of the recipes. Name
 * mapping: calib/obs.h's table (Quamba's observer names). The extra pass is in cpass.c. */
#include "quantize/cstats.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
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
    case MQ_ACT_LM_HEAD_IN:
        if (var != s->head_var) return NULL;
        snprintf(buf, n, "lm_head:input");
        return buf;
    default: break;
    }
    if (!op) return NULL;
    snprintf(buf, n, "backbone.layers.%d.mixer.%s", layer, op);
    return buf;
}

/* The extra pass's value of (layer, role, var), or NULL. */
static const float *fused_value(const q_cstats *s, int layer, mq_act_role role, q_stat_variant var) {
    if ((unsigned)var >= Q_STAT_NVARIANTS) return NULL;
    if (role == MQ_ACT_LM_HEAD_IN) return s->pass_head ? &s->pass_head[var] : NULL;
    if (layer < 0 || layer >= s->cfg.n_layer) return NULL;
    if (role == MQ_ACT_IN_PROJ_IN) return s->pass_in[var] ? &s->pass_in[var][layer] : NULL;
    if (role == MQ_ACT_OUT_PROJ_IN && var == Q_STAT_FUSED) return s->pass_rot ? &s->pass_rot[layer] : NULL;
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
    const float *t = fused_value(s, layer, role, var);
    if (!t) return missing_fused(s, layer, role);
    *v = *t;
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

/* Is "role=name" one of the comma-separated items of list? (Whole items: one transform name may be
 * the prefix of another.) */
static int has_transform(const char *list, const char *role, const char *name) {
    char want[128];
    snprintf(want, sizeof want, "%s=%s", role, name);
    size_t n = strlen(want);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, want, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* quamba2's vectors: <name>.absmax_per_group (Mamba2 B, C) or <name>.absmax_per_channel (ssm_x, made
 * by the CPU observers since calib format 1 gained it, and by the GPU ones since 2026-12-02) */
static int cs_vector(void *ctx, int layer, mq_act_role role, const char *kind, float *v, int n) {
    q_cstats *s = ctx;
    char name[160], suffix[32];
    if (!q_cstats_name(s, layer, role, 0, Q_STAT_PLAIN, name, sizeof name))
        return mq_fail("%s: no statistics of layer %d %s", s->path, layer, q_role_key(s->cfg.arch, role));
    snprintf(suffix, sizeof suffix, ".absmax_per_%s", kind);
    const st_tensor *t = calib_stats_tensor(s->cs, name, suffix);
    if (!t)
        return mq_fail("%s: %s%s is missing: quamba2's %s scales need it; a new calibration records it (mambaq calib, "
                       "or quantize without --stats; GPU calibrations before 2026-12-02 did not); or quantize with %s", s->path,
                       name, suffix, q_role_key(s->cfg.arch, role), !strcmp(kind, "channel") ? "--no-cluster" : "--no-state-groups");
    if (t->dtype != MQ_F32 || t->numel != n)
        return mq_fail("%s: %s%s: expected F32 [%d], found %s of %lld values", s->path, name, suffix, n, mq_dtype_name(t->dtype),
                       (long long)t->numel);
    memcpy(v, t->data, (size_t)n * sizeof *v);
    return 0;
}

q_stats q_cstats_iface(q_cstats *s) {
    q_stats st = {cs_absmax, cs_percentile, s, cs_vector, NULL};
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
        mq_fail("%s: statistics of a %s model, but %s is %s", stats_path, arch, model_dir, want);
        q_cstats_close(s);
        return -1;
    }
    /* calib.transforms: "role=transform,..." applied to a copy before observing */
    const char *tr = calib_stats_meta(s->cs, "calib.transforms");
    s->rot_in_file = has_transform(tr, "out_proj_in", "hadamard");
    s->in_var = has_transform(tr, "in_proj_in", "rmsnorm_unweighted_hadamard") ? Q_STAT_ROTATED
              : has_transform(tr, "in_proj_in", "rmsnorm_unweighted")          ? Q_STAT_FUSED
                                                                                : Q_STAT_PLAIN;
    s->head_var = has_transform(tr, "lm_head_in", "norm_f_unweighted_hadamard") ? Q_STAT_ROTATED : Q_STAT_PLAIN;
    return 0;
}

void q_cstats_close(q_cstats *s) {
    if (s->cs) calib_stats_close(s->cs);
    for (int v = 0; v < Q_STAT_NVARIANTS; v++) free(s->pass_in[v]);
    free(s->pass_rot);
    free(s->pass_head);
    memset(s, 0, sizeof *s);
}

int q_cstats_missing(const q_cstats *s, const q_options *o) {
    int m = 0;
    q_stat_variant v = q_role_variant(o, MQ_ACT_IN_PROJ_IN);
    if (!q_role_quantized(s->cfg.arch, o, MQ_ACT_IN_PROJ_IN)) return 0;   /* quamba2 W4A16: no activation scale */
    if (v != s->in_var && !s->pass_in[v]) m |= 1;
    if (q_role_variant(o, MQ_ACT_OUT_PROJ_IN) == Q_STAT_FUSED && !s->rot_in_file && !s->pass_rot) m |= 2;
    v = q_role_variant(o, MQ_ACT_LM_HEAD_IN);
    if (q_role_quantized(s->cfg.arch, o, MQ_ACT_LM_HEAD_IN) && v != s->head_var && !s->pass_head) m |= 4;
    return m;
}

/* ---- transforms for calib ---- */

static int unweight_transform(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    const mq_model *m = ctx;
    if (layer < 0 || layer >= m->cfg.n_layer) return 0;
    const float *w = m->layers[layer].norm_w;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float *v = &x[(size_t)r * ld + c];
            *v = w[c] != 0 ? *v / w[c] : 0.0f;   /* a zero weight hides x / rms(x): its channel counts as 0 */
        }
    return 0;
}

static int hadamard_transform(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    return q_rotate_rows(x, rows, cols, ld) ? mq_fail_ctx("hadamard transform of layer %d", layer) : 0;
}

/* x / w, then rotated: what in_proj (w = the layer's norm weight) or the lm_head (w = norm_f) reads
 * once the weight is fused into it and the residual stream is rotated */
static int unweight_rotate_transform(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    const mq_model *m = ctx;
    if (role == MQ_ACT_IN_PROJ_IN && (layer < 0 || layer >= m->cfg.n_layer)) return 0;
    const float *w = role == MQ_ACT_LM_HEAD_IN ? m->norm_f : m->layers[layer].norm_w;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float *v = &x[(size_t)r * ld + c];
            *v = w[c] != 0 ? *v / w[c] : 0.0f;
        }
    return hadamard_transform(NULL, layer, role, x, rows, cols, ld);
}

int q_cstats_transforms(const mq_model *m, const q_options *o, calib_transform *t) {
    int n = 0, rot = q_method_rotates_residual(o->method);
    if (rot)
        t[n++] = (calib_transform){MQ_ACT_IN_PROJ_IN, unweight_rotate_transform, (void *)m, "rmsnorm_unweighted_hadamard"};
    else if (q_method_fuses_norm(o->method))
        t[n++] = (calib_transform){MQ_ACT_IN_PROJ_IN, unweight_transform, (void *)m, "rmsnorm_unweighted"};
    if (q_method_uses_hadamard(o->method)) t[n++] = (calib_transform){MQ_ACT_OUT_PROJ_IN, hadamard_transform, NULL, "hadamard"};
    if (rot) t[n++] = (calib_transform){MQ_ACT_LM_HEAD_IN, unweight_rotate_transform, (void *)m, "norm_f_unweighted_hadamard"};
    return n;
}
