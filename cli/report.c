/* The page of `mambaq report` (see report.h). Reading: the stats file through calib/calib.h, the clips
 * the recipe takes from it through quantize/cstats.h (q_role_clip: exactly what quantize computes),
 * the artifact's scales through export/art.h, the verify JSON with cJSON (every key optional).
 * Writing: rep_html.h. The estimates (clipped share, values rounding to 0, SQNR) come from the
 * 2048-bin log histogram of |v|, each bin taken at its geometric centre. */
#include "cli/report.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/calib.h"
#include "cli/cmds.h"
#include "cli/rep_html.h"
#include "core/err.h"
#include "export/art.h"
#include "quantize/cstats.h"

/* One observed activation of the stats file. */
typedef struct {
    const char *name;          /* "backbone.layers.3.mixer.x_proj:input" (owned by the stats file) */
    const char *op;            /* "x_proj:input" */
    int layer;                 /* -1: lm_head:input */
    float absmax;
    float pct[OBS_MAX_Q], ema[OBS_MAX_Q];
    int64_t *hist;             /* [OBS_HIST_BINS], or NULL when the file has none */
    float *grp;                /* per-head / per-group / per-channel absmax, or NULL */
    int ngrp;
    const char *gkind;         /* "head", "group", "channel" */
    /* the int8 scale that reads this activation as it is (NaN clips: not quantized as it is) */
    char roles[48];            /* role keys of the scale(s), "conv_in, z" */
    char rule[48];             /* "absmax", "EMA p99.999" */
    float clip_stats;          /* the recipe's clip from these statistics */
    float clip_art;            /* 127 * the artifact's scale */
    float clip;                /* the one shown: the artifact's when there is one */
    double clipped, zeroed, sqnr;
    const char *note;          /* int8 reads a transformed variant of this activation */
    const char *note_role;     /* the role key of that scale */
    float note_clip;           /* that variant's clip (artifact), or NaN */
} rep_act;

typedef struct {
    rep_options o;
    q_cstats qc;
    int qc_open;
    mq_config cfg;
    q_options qo;
    int have_art;
    art_artifact art;
    cJSON *verify;
    rep_act *acts;
    int nacts;
    const char **ops;          /* distinct ops of the layers, in file order */
    int nops;
    int *at;                   /* [nops][n_layer] act index or -1 */
    int head;                  /* act index of lm_head:input or -1 */
    double *cosine;            /* [n_layer] from the verify file, NaN when absent */
    int ncos;
    int scale_mismatch;        /* artifact scales that differ from the recipe's clip of these stats */
    char mismatch_first[256];
    char warn[8][600];
    int nwarn;
    rep_buf b;
} rep_ctx;

#define NAN_F ((float)NAN)

static void warn(rep_ctx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(rep_ctx *r, const char *fmt, ...) {
    if (r->nwarn == 8) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warn[r->nwarn], sizeof r->warn[0], fmt, ap);
    va_end(ap);
    fprintf(stderr, "mambaq report: warning: %s\n", r->warn[r->nwarn++]);
}

/* ---- reading ---- */

/* The model shape from the stats metadata: model.arch and calib_config_summary's "key=value" list. */
static int cfg_from_stats(const calib_stats *s, const char *path, mq_config *c) {
    memset(c, 0, sizeof *c);
    const char *arch = calib_stats_meta(s, "model.arch"), *sum = calib_stats_meta(s, "model.config");
    if (arch && (!strcmp(arch, "mamba1") || !strcmp(arch, "mamba"))) c->arch = MQ_MAMBA1;
    else if (arch && !strcmp(arch, "mamba2")) c->arch = MQ_MAMBA2;
    else return mq_fail("%s: metadata model.arch is '%s', expected mamba1 or mamba2", path, arch ? arch : "(absent)");
    static const struct { const char *key; size_t off; } keys[] = {
        {"d_model", offsetof(mq_config, d_model)},   {"n_layer", offsetof(mq_config, n_layer)},
        {"d_inner", offsetof(mq_config, d_inner)},   {"d_state", offsetof(mq_config, d_state)},
        {"d_conv", offsetof(mq_config, d_conv)},     {"dt_rank", offsetof(mq_config, dt_rank)},
        {"vocab", offsetof(mq_config, vocab_size)},  {"n_heads", offsetof(mq_config, n_heads)},
        {"head_dim", offsetof(mq_config, head_dim)}, {"n_groups", offsetof(mq_config, n_groups)},
        {"chunk_size", offsetof(mq_config, chunk_size)},
    };
    for (const char *p = sum; p && *p;) {
        while (*p == ' ') p++;
        const char *eq = strchr(p, '='), *sp = strchr(p, ' ');
        if (eq && (!sp || eq < sp))
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                if (strlen(keys[k].key) == (size_t)(eq - p) && !strncmp(p, keys[k].key, (size_t)(eq - p)))
                    *(int *)((char *)c + keys[k].off) = atoi(eq + 1);
        p = sp ? sp + 1 : NULL;
    }
    snprintf(c->source, sizeof c->source, "%s", path);
    return 0;
}

/* "backbone.layers.12.mixer.x_proj:input" -> 12 and "x_proj:input"; other names -1 and the name. */
static int split_name(const char *name, const char **op) {
    int layer = -1, off = 0;
    if (sscanf(name, "backbone.layers.%d.mixer.%n", &layer, &off) == 1 && off > 0) { *op = name + off; return layer; }
    *op = name;
    return -1;
}

static int read_acts(rep_ctx *r) {
    calib_stats *cs = r->qc.cs;
    const char *path = r->o.stats_path;
    int n = calib_stats_count(cs), npct = calib_stats_npct(cs), maxl = -1;
    r->acts = mq_calloc((size_t)n, sizeof *r->acts);
    r->head = -1;
    for (int i = 0; i < n; i++) {
        rep_act *a = &r->acts[r->nacts++];
        a->name = calib_stats_name(cs, i);
        a->layer = split_name(a->name, &a->op);
        if (a->layer > maxl) maxl = a->layer;
        if (!strcmp(a->name, "lm_head:input")) r->head = i;
        if (calib_stats_absmax(cs, a->name, &a->absmax)) return -1;
        const st_tensor *p = calib_stats_tensor(cs, a->name, ".percentiles"), *e = calib_stats_tensor(cs, a->name, ".ema_percentiles");
        memcpy(a->pct, p->data, (size_t)npct * sizeof(float));   /* sizes checked by calib_stats_open */
        memcpy(a->ema, e->data, (size_t)npct * sizeof(float));
        const st_tensor *h = calib_stats_tensor(cs, a->name, ".hist");
        if (h && (h->dtype != MQ_I64 || h->numel != OBS_HIST_BINS))
            return mq_fail("%s: %s.hist: expected I64 [%d] (calib/obs.h bins), found %lld values", path, a->name,
                           OBS_HIST_BINS, (long long)h->numel);
        if (h) {
            a->hist = mq_malloc(OBS_HIST_BINS * sizeof *a->hist);
            memcpy(a->hist, h->data, OBS_HIST_BINS * sizeof *a->hist);
        }
        /* one vector an activation: Mamba2's x per head (its per-channel maxima, for quamba2's
         * clustering, would be d_inner bars), Mamba1's x per channel */
        static const char *kinds[] = {"head", "group", "channel"};
        for (int k = 0; k < 3 && !a->grp; k++) {
            char suf[32];
            snprintf(suf, sizeof suf, ".absmax_per_%s", kinds[k]);
            const st_tensor *g = calib_stats_tensor(cs, a->name, suf);
            if (!g) continue;
            if (g->dtype != MQ_F32 || g->numel < 1) return mq_fail("%s: %s%s: expected F32 values", path, a->name, suf);
            a->grp = mq_malloc((size_t)g->numel * sizeof(float));
            memcpy(a->grp, g->data, (size_t)g->numel * sizeof(float));
            a->ngrp = (int)g->numel, a->gkind = kinds[k];
        }
        a->clip = a->clip_stats = a->clip_art = a->note_clip = NAN_F;
        a->clipped = a->zeroed = a->sqnr = NAN;
    }
    if (r->cfg.n_layer <= 0) r->cfg.n_layer = maxl + 1;
    if (maxl + 1 != r->cfg.n_layer)
        return mq_fail("%s: metadata model.config says n_layer=%d, but the activations go up to layer %d", path, r->cfg.n_layer, maxl);
    if (r->cfg.n_layer <= 0) return mq_fail("%s: no backbone.layers.<i> activations", path);
    /* the op x layer grid */
    r->ops = mq_malloc((size_t)n * sizeof *r->ops);
    for (int i = 0; i < n; i++) {
        if (r->acts[i].layer < 0) continue;
        int k = 0;
        while (k < r->nops && strcmp(r->ops[k], r->acts[i].op)) k++;
        if (k == r->nops) r->ops[r->nops++] = r->acts[i].op;
    }
    r->at = mq_malloc((size_t)r->nops * r->cfg.n_layer * sizeof *r->at);
    for (int k = 0; k < r->nops * r->cfg.n_layer; k++) r->at[k] = -1;
    for (int i = 0; i < n; i++) {
        if (r->acts[i].layer < 0) continue;
        for (int k = 0; k < r->nops; k++)
            if (!strcmp(r->ops[k], r->acts[i].op)) r->at[k * r->cfg.n_layer + r->acts[i].layer] = i;
    }
    return 0;
}

static int find_act(const rep_ctx *r, const char *name) {
    for (int i = 0; i < r->nacts; i++)
        if (!strcmp(r->acts[i].name, name)) return i;
    return -1;
}

/* What int8 reads when the stats file lacks the recipe's variant of a role. */
static const char *variant_note(mq_act_role role, q_stat_variant v) {
    if (role == MQ_ACT_IN_PROJ_IN && v == Q_STAT_FUSED)
        return "int8 reads x / rms(x) here (RMSNorm fused into in_proj); this histogram is of the weighted norm output";
    if (role == MQ_ACT_IN_PROJ_IN) return "int8 reads (x / rms(x)) H here (residual rotation); this histogram is not of that tensor";
    if (role == MQ_ACT_OUT_PROJ_IN) return "int8 reads H y here (Hadamard rotation); calib ran without the hadamard transform, so this is y un-rotated";
    return "int8 reads (x / rms(x)) H here (norm_f fused into the lm_head, residual rotated); this histogram is not of that tensor";
}

static void append(char *dst, size_t n, const char *s) {
    if (strstr(dst, s)) return;
    size_t k = strlen(dst);
    snprintf(dst + k, n - k, "%s%s", k ? ", " : "", s);
}

/* Every scale of the recipe: the statistic it reads, its clip from the stats and from the artifact. */
static int attach_clips(rep_ctx *r) {
    q_stats st = q_cstats_iface(&r->qc);
    const mq_arch arch = r->cfg.arch;
    for (int l = -1; l < r->cfg.n_layer; l++)
        for (int role = 0; role < MQ_ACT_NROLES; role++) {
            if ((l < 0) != (role == MQ_ACT_LM_HEAD_IN) || !q_role_quantized(arch, &r->qo, (mq_act_role)role)) continue;
            if (r->have_art && l >= 0 && q_layer_vector_scaled(&r->art.qm, l, (mq_act_role)role)) continue;   /* quamba2's vectors */
            const q_stat_variant var = q_role_variant(&r->qo, (mq_act_role)role);
            for (int p = 0; p < q_role_parts(arch, (mq_act_role)role); p++) {
                float art = NAN_F, clip = NAN_F;
                if (r->have_art) {
                    float s = l < 0 ? r->art.qm.lm_head_in_scale : r->art.qm.layers[l].act_scale[role][p];
                    art = s * QR_QMAX;
                }
                char nm[200];
                const char *name = q_cstats_name(&r->qc, l, (mq_act_role)role, p, var, nm, sizeof nm);
                if (!name) {   /* the variant is not in the file: note it on the un-transformed statistic */
                    snprintf(nm, sizeof nm, l < 0 ? "lm_head:input" : "backbone.layers.%d.mixer.%s", l,
                             role == MQ_ACT_IN_PROJ_IN ? "in_proj:input" : "out_proj:input");
                    int i = find_act(r, nm);
                    if (i >= 0) {
                        r->acts[i].note = variant_note((mq_act_role)role, var), r->acts[i].note_clip = art;
                        r->acts[i].note_role = q_role_key(arch, (mq_act_role)role);
                    }
                    continue;
                }
                if (q_role_clip(&r->qo, &st, l, (mq_act_role)role, p, &clip)) return mq_fail_ctx("report");
                int i = find_act(r, name);
                if (i < 0) return mq_fail("%s: no statistics for %s", r->o.stats_path, name);
                rep_act *a = &r->acts[i];
                append(a->roles, sizeof a->roles, q_role_key(arch, (mq_act_role)role));
                if (role == MQ_ACT_SSM_X && q_method_uses_percentile(r->qo.method) && r->qo.percentile < 100)
                    snprintf(a->rule, sizeof a->rule, "EMA p%g", r->qo.percentile);
                else snprintf(a->rule, sizeof a->rule, "absmax");
                a->clip_stats = clip, a->clip_art = art;
                a->clip = r->have_art ? art : clip;
                if (r->have_art) {
                    float want = qr_scale(clip), got = art / QR_QMAX;
                    if (fabsf(want - got) > 1e-6f * want && !r->scale_mismatch++)
                        snprintf(r->mismatch_first, sizeof r->mismatch_first, "layer %d %s: artifact clip %.6g, recipe clip %.6g",
                                 l, q_role_key(arch, (mq_act_role)role), (double)art, (double)clip);
                }
            }
        }
    for (int i = 0; arch == MQ_MAMBA2 && i < r->nacts; i++)
        if (!strcmp(r->acts[i].op, "in_proj:output"))
            r->acts[i].note = "not quantized as a whole: Mamba2 quantizes its parts z, x, B, C and dt (z_act, x_conv_in, B_conv_in, "
                              "C_conv_in, dt_act) with scales of their own";
    /* Mamba1's dt_proj input is the first dt_rank columns of the x_proj output: quantized with its scale */
    for (int l = 0; arch == MQ_MAMBA1 && l < r->cfg.n_layer; l++) {
        char nm[200];
        snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.dt_proj:input", l);
        int d = find_act(r, nm);
        snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.x_proj:output", l);
        int x = find_act(r, nm);
        if (d < 0 || x < 0 || !(r->acts[x].clip > 0)) continue;
        rep_act *a = &r->acts[d], *src = &r->acts[x];
        a->clip = src->clip, a->clip_stats = src->clip_stats, a->clip_art = src->clip_art;
        snprintf(a->rule, sizeof a->rule, "x_proj:output's");
        snprintf(a->roles, sizeof a->roles, "x_proj_out (dt columns)");
    }
    return 0;
}

/* Clipped share, share rounding to 0 and SQNR (dB) of int8 at clip c, from the log histogram.
 * A bin's values sit at its geometric centre (upper edge capped at absmax); a bin straddling c or
 * half a step is split in proportion of log width. Noise: (v - c)^2 above c, v^2 below half a step,
 * step^2 / 12 (uniform rounding) between. */
static void estimate(rep_act *a) {
    if (!a->hist || !(a->clip > 0)) return;
    /* a clip equal to absmax up to float rounding (the artifact's 127 * scale) clips nothing */
    const double c = a->clip >= a->absmax * (1 - 1e-6) ? fmax(a->clip, a->absmax) : a->clip;
    const double s = qr_scale(a->clip), half = s / 2;
    double n = 0, sig = 0, noise = 0, clipped = 0, zeroed = 0;
    for (int i = 0; i < OBS_HIST_BINS; i++) {
        double k = (double)a->hist[i];
        if (k <= 0) continue;
        double lo = i ? obs_hist_edge(i) : obs_hist_edge(1) / 2, hi = fmin(obs_hist_edge(i + 1), a->absmax);
        if (hi <= lo) hi = lo * 1.0001;
        /* pieces of the bin cut at half a step and at the clip */
        double cut[4] = {lo, fmin(fmax(half, lo), hi), fmin(fmax(c, lo), hi), hi};
        for (int j = 0; j < 3; j++) {
            if (cut[j + 1] <= cut[j]) continue;
            double w = k * log(cut[j + 1] / cut[j]) / log(hi / lo), v = sqrt(cut[j] * cut[j + 1]);
            sig += w * v * v;
            if (j == 2) noise += w * (v - c) * (v - c), clipped += w;
            else if (j == 0) noise += w * v * v, zeroed += w;
            else noise += w * s * s / 12;
        }
        n += k;
    }
    if (n <= 0) return;
    a->clipped = clipped / n, a->zeroed = zeroed / n;
    a->sqnr = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
}

static int read_verify(rep_ctx *r) {
    size_t len;
    char *txt = mq_read_file(r->o.verify_path, &len);
    if (!txt) return -1;
    r->verify = cJSON_Parse(txt);
    if (!r->verify) {
        const char *e = cJSON_GetErrorPtr();
        long at = e && e >= txt && e <= txt + len ? (long)(e - txt) : -1;
        free(txt);
        return mq_fail("%s: not valid JSON (error near byte %ld); expected the output of mambaq verify --json", r->o.verify_path, at);
    }
    free(txt);
    if (!cJSON_IsObject(r->verify)) return mq_fail("%s: expected a JSON object (mambaq verify --json)", r->o.verify_path);
    const cJSON *arch = cJSON_GetObjectItem(r->verify, "arch");
    const char *want = cfg_arch_name(r->cfg.arch);
    if (cJSON_IsString(arch) && strcmp(arch->valuestring, want) && strcmp(arch->valuestring, r->cfg.arch == MQ_MAMBA1 ? "mamba" : "mamba2"))
        return mq_fail("%s is the verify output of a %s model, but %s has statistics of a %s model", r->o.verify_path,
                       arch->valuestring, r->o.stats_path, want);
    r->cosine = mq_malloc((size_t)r->cfg.n_layer * sizeof *r->cosine);
    for (int l = 0; l < r->cfg.n_layer; l++) r->cosine[l] = NAN;
    const cJSON *cos = cJSON_GetObjectItem(r->verify, "layer_cosine");
    if (cJSON_IsArray(cos)) {
        int n = cJSON_GetArraySize(cos);
        if (n && n != r->cfg.n_layer)
            warn(r, "%s: layer_cosine has %d values, the model has %d layers (showing the first %d)", r->o.verify_path, n,
                 r->cfg.n_layer, n < r->cfg.n_layer ? n : r->cfg.n_layer);
        for (int l = 0; l < n && l < r->cfg.n_layer; l++) {
            const cJSON *v = cJSON_GetArrayItem(cos, l);
            if (cJSON_IsNumber(v)) r->cosine[l] = v->valuedouble, r->ncos = l + 1;
        }
    }
    return 0;
}

static int open_inputs(rep_ctx *r) {
    const rep_options *o = &r->o;
    calib_stats *probe = calib_stats_open_hash(o->stats_path, NULL);
    if (!probe) return -1;
    int rc = cfg_from_stats(probe, o->stats_path, &r->cfg);
    char hash[80];
    const char *h = calib_stats_meta(probe, "model.weights_sha256");
    snprintf(hash, sizeof hash, "%s", h ? h : "");
    calib_stats_close(probe);
    if (rc) return -1;
    if (o->artifact_dir) {
        if (art_open(o->artifact_dir, &r->art)) return -1;
        r->have_art = 1;
        const mq_config *ac = &r->art.qm.cfg;
        if (hash[0] && r->art.prov.source_hash[0] && strcmp(hash, r->art.prov.source_hash))
            return mq_fail("%s was quantized from %s (weights sha256 %.16s...), but %s was calibrated on other weights (sha256 "
                           "%.16s...): give the artifact made from this model", o->artifact_dir, r->art.prov.source_model,
                           r->art.prov.source_hash, o->stats_path, hash);
        if (ac->arch != r->cfg.arch || (r->cfg.n_layer && ac->n_layer != r->cfg.n_layer))
            return mq_fail("%s is a %s model with %d layers, but %s has statistics of a %s model with %d layers", o->artifact_dir,
                           cfg_arch_name(ac->arch), ac->n_layer, o->stats_path,
                           cfg_arch_name(r->cfg.arch), r->cfg.n_layer);
        r->cfg = *ac;
        r->qo = r->art.qm.opt;
    } else {
        q_options_default(&r->qo);
        if (q_method_from_name(o->method ? o->method : "quamba", &r->qo.method)) return -1;
        r->qo.percentile = o->percentile;
    }
    if (q_cstats_open(&r->qc, o->stats_path, NULL, &r->cfg)) return -1;
    r->qc_open = 1;
    if (read_acts(r) || attach_clips(r)) return -1;
    for (int i = 0; i < r->nacts; i++) estimate(&r->acts[i]);
    if (r->scale_mismatch)
        warn(r, "%d scale(s) of %s differ from the clips the recipe takes from %s (first: %s): the artifact was made from other "
                "statistics", r->scale_mismatch, o->artifact_dir, o->stats_path, r->mismatch_first);
    if (o->verify_path && read_verify(r)) return -1;
    if (!r->cosine) {
        r->cosine = mq_malloc((size_t)r->cfg.n_layer * sizeof *r->cosine);
        for (int l = 0; l < r->cfg.n_layer; l++) r->cosine[l] = NAN;
    }
    return 0;
}

static void close_inputs(rep_ctx *r) {
    for (int i = 0; i < r->nacts; i++) free(r->acts[i].hist), free(r->acts[i].grp);
    free(r->acts);
    free(r->ops);
    free(r->at);
    free(r->cosine);
    if (r->qc_open) q_cstats_close(&r->qc);
    if (r->have_art) art_close(&r->art);
    cJSON_Delete(r->verify);
}

/* ---- the page ---- */

static const char *css =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:18px 28px;color:#222;max-width:1500px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ccc;margin:28px 0 8px;padding-bottom:2px}"
    "h3{font-size:15px;margin:16px 0 6px}h4{font-size:13px;margin:12px 0 4px}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 7px;text-align:right;"
    "font-variant-numeric:tabular-nums;vertical-align:top}th{background:#f2f2f2;font-weight:600;text-align:center}"
    ".l{text-align:left}table.kv td{text-align:left}table.kv td.k{font-weight:600;background:#fafafa;white-space:nowrap}"
    "details{border:1px solid #ddd;border-radius:4px;margin:3px 0;padding:0 10px}details[open]{background:#fcfcfc;padding-bottom:8px}"
    "summary{cursor:pointer;padding:4px 0}.figs{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}"
    "figcaption{font:12px monospace;color:#333}code,.mono{font-family:monospace;font-size:12px}"
    "svg text{font:10px sans-serif}.ax{fill:#444}.plot{fill:#fff;stroke:#aaa}.grid{stroke:#ebebeb}"
    ".bars{fill-opacity:.35;stroke-width:1}.mark{stroke-width:1.6}.dash{stroke-dasharray:4 3}"
    ".clipped{fill:#d62728;fill-opacity:.10}.mlab{font-weight:600}.line{fill:none;stroke:#1f77b4;stroke-width:1.5}"
    ".pt{fill:#1f77b4}.bar{fill:#8fa9c4}.hot{fill:#d62728}.cell{stroke:#fff;stroke-width:.5}"
    ".warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:8px 0}.bad{color:#b00;font-weight:600}"
    ".muted{color:#777}.note{color:#7a4b00;font-size:12px}.nav a{margin-right:6px;font-family:monospace}";

static void th(rep_buf *b, const char *cols) {   /* "a|b|c": a header row, the first column left */
    rep_puts(b, "<tr>");
    for (const char *p = cols, *e; p; p = e ? e + 1 : NULL) {
        e = strchr(p, '|');
        rep_puts(b, p == cols ? "<th class=\"l\">" : "<th>");
        rep_putn(b, p, e ? (size_t)(e - p) : strlen(p));
        rep_puts(b, "</th>");
    }
    rep_puts(b, "</tr>");
}

static void td_num(rep_buf *b, double v) {
    rep_puts(b, "<td>");
    rep_num(b, v);
    rep_puts(b, "</td>");
}

static void td_pct(rep_buf *b, double v) {   /* a share as a percentage, small values readable */
    rep_puts(b, "<td>");
    if (!isfinite(v)) rep_puts(b, "—");
    else if (v == 0) rep_puts(b, "0");
    else rep_printf(b, "%.3g%%", 100 * v);
    rep_puts(b, "</td>");
}

static void td_text(rep_buf *b, const char *s, const char *cls) {
    rep_printf(b, "<td class=\"%s\">", cls ? cls : "l");
    rep_esc(b, s && *s ? s : "—");
    rep_puts(b, "</td>");
}

static void kv_row(rep_buf *b, const char *k, const char *v) {
    rep_puts(b, "<tr><td class=\"k\">");
    rep_esc(b, k);
    rep_puts(b, "</td><td>");
    rep_esc(b, v && *v ? v : "—");
    rep_puts(b, "</td></tr>");
}

static const char *meta(const rep_ctx *r, const char *k) { return calib_stats_meta(r->qc.cs, k); }

/* The file's percentile closest to p, for the "p99.99" column. */
static int pct_index(const rep_ctx *r, double p) {
    int best = 0, n = calib_stats_npct(r->qc.cs);
    for (int i = 1; i < n; i++)
        if (fabs(calib_stats_pct(r->qc.cs, i) - p) < fabs(calib_stats_pct(r->qc.cs, best) - p)) best = i;
    return best;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A summary row: the five layers with the lowest estimated SQNR, linked. */
static void worst_layers(rep_ctx *r) {
    rep_buf *b = &r->b;
    const int L = r->cfg.n_layer;
    double *low = mq_malloc((size_t)L * sizeof *low);
    int *at = mq_malloc((size_t)L * sizeof *at), n = 0;
    for (int l = 0; l < L; l++) low[l] = INFINITY, at[l] = -1;
    for (int i = 0; i < r->nacts; i++) {
        const rep_act *a = &r->acts[i];
        if (a->layer >= 0 && isfinite(a->sqnr) && a->sqnr < low[a->layer]) low[a->layer] = a->sqnr, at[a->layer] = i;
    }
    rep_puts(b, "<tr><td class=\"k\">lowest est. SQNR</td><td>");
    for (int k = 0; k < 5; k++) {
        int best = -1;
        for (int l = 0; l < L; l++)
            if (at[l] >= 0 && (best < 0 || low[l] < low[best])) best = l;
        if (best < 0) break;
        rep_printf(b, "%s<a href=\"#layer-%d\">layer %d</a> ", n++ ? " · " : "", best, best);
        rep_esc(b, r->acts[at[best]].op);
        rep_printf(b, " %.1f dB", low[best]);
        at[best] = -1;
    }
    rep_puts(b, n ? "</td></tr>" : "—</td></tr>");
    free(low), free(at);
}

static void summary(rep_ctx *r) {
    rep_buf *b = &r->b;
    const mq_config *c = &r->cfg;
    char line[10000];
    rep_puts(b, "<h2 id=\"summary\">Summary</h2><table class=\"kv\">");
    snprintf(line, sizeof line, "%s, %d layers, d_model %d, d_inner %d, d_state %d (%s)", cfg_arch_name(c->arch),
             c->n_layer, c->d_model, c->d_inner, c->d_state, meta(r, "model.path") ? meta(r, "model.path") : "path unknown");
    kv_row(b, "model", line);
    kv_row(b, "weights sha256", meta(r, "model.weights_sha256"));
    snprintf(line, sizeof line, "%s: %d activations", r->o.stats_path, r->nacts);
    kv_row(b, "stats file", line);
    static const char *ck[][2] = {{"calib.samples", "samples"}, {"calib.seqlen", "tokens per sample"}, {"data.path", "data"},
                                  {"calib.device", "device"}, {"calib.seed", "seed"}, {"calib.percentiles", "percentiles"},
                                  {"calib.transforms", "transforms"}};
    size_t k = 0;
    line[0] = 0;
    for (size_t i = 0; i < sizeof ck / sizeof ck[0] && k < sizeof line; i++)
        if (meta(r, ck[i][0])) k += (size_t)snprintf(line + k, sizeof line - k, "%s%s %s", k ? "; " : "", ck[i][1], meta(r, ck[i][0]));
    kv_row(b, "calibration", line);
    if (q_method_uses_percentile(r->qo.method))
        snprintf(line, sizeof line, "%s: SSM input x clipped at the EMA p%g, absmax clips elsewhere%s%s", q_method_name(r->qo.method),
                 r->qo.percentile, q_method_uses_hadamard(r->qo.method) ? "; Hadamard on y" : "",
                 q_method_fuses_norm(r->qo.method) ? "; RMSNorm fused into in_proj" : "");
    else
        snprintf(line, sizeof line, "%s: absmax clips%s", q_method_name(r->qo.method), q_method_uses_hadamard(r->qo.method) ? "; Hadamard on y" : "");
    kv_row(b, r->have_art ? "recipe (the artifact's)" : "recipe (--method, --percentile)", line);
    if (r->have_art) {
        const art_provenance *p = &r->art.prov;
        snprintf(line, sizeof line, "%s: weights per %s%s; made from %s (%ld samples)", r->art.dir, q_gran_name(r->qo.weight_gran),
                 r->qo.quantize_head ? ", lm_head int8" : "", p->stats_file, p->calib_samples);
        kv_row(b, "artifact", line);
        if (r->scale_mismatch) {
            snprintf(line, sizeof line, "%d differ from the recipe's clips of this stats file (first: %s)", r->scale_mismatch, r->mismatch_first);
            kv_row(b, "artifact scales", line);
        } else kv_row(b, "artifact scales", "all equal to the clips the recipe takes from this stats file");
    } else kv_row(b, "artifact", "none given (clips computed from the stats; pass --artifact for the scales quantize chose)");
    worst_layers(r);
    if (r->verify) {
        const cJSON *v = r->verify;
        double pf = jnum(v, "ppl_float"), p8 = jnum(v, "ppl_int8"), t1 = jnum(v, "top1_agreement"), kl = jnum(v, "kl_mean");
        size_t k = 0;
        line[0] = 0;
        if (isfinite(pf)) k += (size_t)snprintf(line + k, sizeof line - k, "ppl float %.5g; ", pf);
        if (isfinite(p8)) k += (size_t)snprintf(line + k, sizeof line - k, "ppl int8 %.5g; ", p8);
        if (isfinite(pf) && isfinite(p8) && pf > 0) k += (size_t)snprintf(line + k, sizeof line - k, "change %+.3g%%; ", 100 * (p8 / pf - 1));
        if (isfinite(t1)) k += (size_t)snprintf(line + k, sizeof line - k, "top-1 agreement %.4g%%; ", 100 * t1);
        if (isfinite(kl)) k += (size_t)snprintf(line + k, sizeof line - k, "KL %.3g; ", kl);
        if (jstr(v, "int8") && k < sizeof line) k += (size_t)snprintf(line + k, sizeof line - k, "int8: %s; ", jstr(v, "int8"));
        if (jstr(v, "data") && k < sizeof line) snprintf(line + k, sizeof line - k, "data: %s", jstr(v, "data"));
        if (!line[0]) snprintf(line, sizeof line, "the file has none of ppl_float, ppl_int8, top1_agreement, kl_mean");
        kv_row(b, "verify", line);
        int ml = -1;
        for (int l = 0; l < r->ncos; l++)
            if (isfinite(r->cosine[l]) && (ml < 0 || r->cosine[l] < r->cosine[ml])) ml = l;
        if (ml >= 0) {
            snprintf(line, sizeof line, "lowest %.6g at layer %d", r->cosine[ml], ml);
            kv_row(b, "block cosine", line);
        }
    } else kv_row(b, "verify", "none given (pass --verify FILE.json from mambaq verify --json)");
    rep_puts(b, "</table>");
}

/* Per activation over all layers. */
static void op_table(rep_ctx *r) {
    rep_buf *b = &r->b;
    const int L = r->cfg.n_layer;
    rep_puts(b, "<h3>Per activation, over all layers</h3><table>");
    th(b, "activation|int8 scale|clip rule|absmax (min – max)|clip (min – max)|max absmax / clip|max clipped|max rounding to 0|lowest est. SQNR");
    for (int k = 0; k <= r->nops; k++) {
        int n = k < r->nops ? L : 1;
        double amin = INFINITY, amax = 0, cmin = INFINITY, cmax = 0, ratio = 0, clipped = 0, zeroed = 0, sq = INFINITY;
        int sql = -1, any = 0;
        const rep_act *first = NULL;
        for (int l = 0; l < n; l++) {
            int i = k < r->nops ? r->at[k * L + l] : r->head;
            if (i < 0) continue;
            const rep_act *a = &r->acts[i];
            if (!first) first = a;
            amin = fmin(amin, a->absmax), amax = fmax(amax, a->absmax);
            if (!(a->clip > 0)) continue;
            any = 1;
            cmin = fmin(cmin, a->clip), cmax = fmax(cmax, a->clip), ratio = fmax(ratio, a->absmax / a->clip);
            clipped = fmax(clipped, a->clipped), zeroed = fmax(zeroed, a->zeroed);
            if (a->sqnr < sq) sq = a->sqnr, sql = a->layer;
        }
        if (!first) continue;
        rep_puts(b, "<tr>");
        td_text(b, first->op, "l mono");
        char what[96];
        snprintf(what, sizeof what, "%s (transformed first)", first->note_role ? first->note_role : "");
        td_text(b, any ? first->roles : first->note_role ? what : "not quantized", "l");
        td_text(b, any ? first->rule : "", "l");
        rep_puts(b, "<td>");
        rep_num(b, amin), rep_puts(b, " – "), rep_num(b, amax);
        rep_puts(b, "</td><td>");
        if (any) rep_num(b, cmin), rep_puts(b, " – "), rep_num(b, cmax);
        else rep_puts(b, "—");
        rep_puts(b, "</td>");
        td_num(b, any ? ratio : NAN);
        td_pct(b, any ? clipped : NAN);
        td_pct(b, any ? zeroed : NAN);
        if (any && sql >= 0) rep_printf(b, "<td>%.1f dB (<a href=\"#layer-%d\">layer %d</a>)</td>", sq, sql, sql);
        else if (any) rep_printf(b, "<td>%.1f dB</td>", sq);
        else rep_puts(b, "<td>—</td>");
        rep_puts(b, "</tr>");
    }
    rep_puts(b, "</table><p class=\"muted\">absmax / clip above 1: values clipped by the percentile. "
                "Clipped, rounding to 0 and SQNR (signal to int8 noise) are estimates from the log histogram at the clip "
                "shown (the artifact's when given).</p>");
}

static void verify_section(rep_ctx *r) {
    rep_buf *b = &r->b;
    if (!r->verify) return;
    rep_puts(b, "<h2 id=\"verify\">Verify</h2>");
    if (r->ncos) {
        double lo = 1;
        for (int l = 0; l < r->ncos; l++)
            if (isfinite(r->cosine[l])) lo = fmin(lo, r->cosine[l]);
        lo = 1 - (1 - lo) * 1.15 - 1e-7;
        rep_puts(b, "<h3>Per-layer block cosine (float vs int8 block output, the lowest over the checked windows)</h3>");
        rep_svg_line(b, r->cosine, r->ncos, lo, 1, "cosine", 900, 240);
    } else rep_puts(b, "<p class=\"muted\">no layer_cosine in the verify file</p>");
    const cJSON *sim = cJSON_GetObjectItem(r->verify, "simulation_check");
    const cJSON *roles = cJSON_GetObjectItem(sim, "roles");
    if (!cJSON_IsObject(roles)) {
        rep_puts(b, "<p class=\"muted\">no simulation_check.roles in the verify file (it holds them when the int8 pass ran on a "
                    "GPU and was checked against the CPU simulation)</p>");
        return;
    }
    const cJSON *ok = cJSON_GetObjectItem(sim, "ok");
    rep_printf(b, "<h3>Per-role int8 error: the GPU pass against the CPU simulation (%s)</h3><table>",
               cJSON_IsBool(ok) ? (cJSON_IsTrue(ok) ? "check passed" : "check FAILED") : "result not recorded");
    th(b, "role|values|codes differing|share|max steps|max rel. diff|worst layer");
    for (const cJSON *e = roles->child; e; e = e->next) {
        double n = jnum(e, "values"), f = jnum(e, "codes_differing"), wl = jnum(e, "worst_layer");
        rep_puts(b, "<tr>");
        td_text(b, e->string, "l mono");
        td_num(b, n);
        td_num(b, f);
        td_pct(b, n > 0 ? f / n : NAN);
        td_num(b, jnum(e, "max_steps"));
        td_num(b, jnum(e, "max_rel_diff"));
        if (isfinite(wl) && wl >= 0 && wl < r->cfg.n_layer) rep_printf(b, "<td><a href=\"#layer-%d\">%d</a></td>", (int)wl, (int)wl);
        else td_num(b, wl);
        rep_puts(b, "</tr>");
    }
    rep_puts(b, "</table>");
}

/* ---- heat maps ---- */

typedef struct {
    rep_ctx *r;
    int *rows;                 /* op index per heat-map row */
} heat_ctx;

static void heat_tip(void *ctx, int row, int col, rep_buf *b) {
    heat_ctx *h = ctx;
    int i = h->r->at[h->rows[row] * h->r->cfg.n_layer + col];
    if (i < 0) { rep_printf(b, "layer %d: no statistics", col); return; }
    const rep_act *a = &h->r->acts[i];
    rep_printf(b, "layer %d ", col);
    rep_esc(b, a->op);
    rep_printf(b, ": absmax %.4g", a->absmax);
    if (a->clip > 0) {
        rep_printf(b, ", clip %.4g (", a->clip);
        rep_esc(b, a->rule);
        rep_printf(b, "), est. SQNR %.1f dB, clipped %.3g%%, rounding to 0 %.3g%%", a->sqnr, 100 * a->clipped, 100 * a->zeroed);
    } else rep_puts(b, a->note_role ? " (int8 reads a transformed variant)" : " (not quantized as it is)");
}

static void heat_maps(rep_ctx *r) {
    rep_buf *b = &r->b;
    const int L = r->cfg.n_layer;
    int *rows = mq_malloc((size_t)(r->nops ? r->nops : 1) * sizeof *rows), nq = 0;
    const char **labels = mq_malloc((size_t)(r->nops ? r->nops : 1) * sizeof *labels);
    double *v = mq_malloc((size_t)(r->nops ? r->nops : 1) * L * sizeof *v), lo = INFINITY, hi = -INFINITY;
    /* SQNR of the quantized activations */
    for (int k = 0; k < r->nops; k++) {
        int q = 0;
        for (int l = 0; l < L; l++) q |= r->at[k * L + l] >= 0 && r->acts[r->at[k * L + l]].clip > 0;
        if (!q) continue;
        for (int l = 0; l < L; l++) {
            int i = r->at[k * L + l];
            double s = i >= 0 && r->acts[i].clip > 0 ? r->acts[i].sqnr : NAN;
            v[(size_t)nq * L + l] = s;
            if (isfinite(s)) lo = fmin(lo, s), hi = fmax(hi, s);
        }
        rows[nq] = k, labels[nq++] = r->ops[k];
    }
    heat_ctx hc = {r, rows};
    rep_puts(b, "<h2 id=\"heat\">Heat maps</h2>");
    if (nq && isfinite(lo)) {
        rep_puts(b, "<h3>Estimated int8 SQNR at the clip (dB; red: most int8 noise relative to the signal)</h3>");
        rep_heat h = {nq, L, labels, v, floor(lo / 5) * 5, fmax(ceil(hi / 5) * 5, floor(lo / 5) * 5 + 5), rep_colour_rdylgn, "dB", 0, heat_tip, &hc};
        rep_svg_heat(b, &h);
    }
    /* log10 absmax of every activation */
    lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < r->nops; k++) {
        for (int l = 0; l < L; l++) {
            int i = r->at[k * L + l];
            double s = i >= 0 && r->acts[i].absmax > 0 ? log10(r->acts[i].absmax) : NAN;
            v[(size_t)k * L + l] = s;
            if (isfinite(s)) lo = fmin(lo, s), hi = fmax(hi, s);
        }
        rows[k] = k, labels[k] = r->ops[k];
    }
    if (r->nops && isfinite(lo)) {
        rep_puts(b, "<h3>absmax of every activation (the range int8 must cover; log colour scale)</h3>");
        rep_heat h = {r->nops, L, labels, v, lo, hi, rep_colour_seq, "(absmax, log colour scale)", 1, heat_tip, &hc};
        rep_svg_heat(b, &h);
    }
    free(rows), free(labels), free(v);
}

/* ---- one layer ---- */

static const char *series_colour[] = {"#1f77b4", "#ff7f0e"};

static void act_hist(rep_ctx *r, const rep_act *a) {
    rep_buf *b = &r->b;
    rep_marker m[4];
    int nm = 0;
    char l1[96], l2[64], l3[64];
    if (a->clip > 0) {
        snprintf(l1, sizeof l1, "clip %.4g (%s)", a->clip, a->rule);
        m[nm++] = (rep_marker){a->clip, l1, "#d62728", 0};
        snprintf(l3, sizeof l3, "½ step %.2g", qr_scale(a->clip) / 2.0);
        m[nm++] = (rep_marker){qr_scale(a->clip) / 2.0, l3, "#7f7f7f", 1};
    }
    snprintf(l2, sizeof l2, "absmax %.4g", a->absmax);
    m[nm++] = (rep_marker){a->absmax, l2, "#222222", 1};
    rep_series s = {a->hist, a->op, series_colour[0]};
    rep_puts(b, "<figure><figcaption>");
    rep_esc(b, a->op);
    if (a->roles[0]) rep_puts(b, " → "), rep_esc(b, a->roles);
    rep_puts(b, "</figcaption>");
    rep_svg_hist(b, &s, 1, m, nm, a->clip > 0 && a->clip < a->absmax ? a->clip : 0, 340, 150);
    rep_puts(b, "</figure>");
}

static void layer_table(rep_ctx *r, const int *idx, int n) {
    rep_buf *b = &r->b;
    int p9999 = pct_index(r, 99.99);
    char h[400];
    snprintf(h, sizeof h, "activation|int8 scale|absmax|EMA p%g|clip|rule|absmax / clip|clipped|rounding to 0|est. SQNR%s",
             calib_stats_pct(r->qc.cs, p9999), r->have_art ? "|artifact scale" : "");
    rep_puts(b, "<table>");
    th(b, h);
    for (int j = 0; j < n; j++) {
        const rep_act *a = &r->acts[idx[j]];
        rep_puts(b, "<tr>");
        td_text(b, a->op, "l mono");
        char what[96];
        snprintf(what, sizeof what, "%s (transformed first)", a->note_role ? a->note_role : "");
        td_text(b, a->roles[0] ? a->roles : a->note_role ? what : "not quantized", "l");
        td_num(b, a->absmax);
        td_num(b, a->ema[p9999]);
        td_num(b, a->clip);
        td_text(b, a->rule, "l");
        td_num(b, a->clip > 0 ? a->absmax / a->clip : NAN);
        td_pct(b, a->clipped);
        td_pct(b, a->zeroed);
        if (isfinite(a->sqnr)) rep_printf(b, "<td>%.1f dB</td>", a->sqnr);
        else td_num(b, NAN);
        if (r->have_art) td_num(b, a->clip_art > 0 ? a->clip_art / QR_QMAX : a->note_clip / QR_QMAX);
        rep_puts(b, "</tr>");
        if (a->note) {
            rep_printf(b, "<tr><td></td><td class=\"l note\" colspan=\"%d\">", r->have_art ? 10 : 9);
            rep_esc(b, a->note);
            if (isfinite(a->note_clip)) rep_printf(b, "; the artifact's clip of it: %.4g", a->note_clip);
            rep_puts(b, "</td></tr>");
        }
    }
    rep_puts(b, "</table>");
}

/* y before (had:input) and after (out_proj:input, when calib rotated it) the Hadamard. */
static void hadamard_figure(rep_ctx *r, int l) {
    rep_buf *b = &r->b;
    char nm[200];
    snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.had:input", l);
    int iy = find_act(r, nm);
    snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.out_proj:input", l);
    int ih = find_act(r, nm);
    if (iy < 0) return;
    const rep_act *y = &r->acts[iy], *hy = ih >= 0 && r->qc.rot_in_file ? &r->acts[ih] : NULL;
    int p99 = pct_index(r, 99);
    rep_puts(b, "<h4>y before and after the Hadamard rotation</h4><div class=\"figs\"><figure>");
    rep_series s[2] = {{y->hist, "y (had:input)", series_colour[0]}, {hy ? hy->hist : NULL, "H y (out_proj:input)", series_colour[1]}};
    rep_marker m[2];
    char l1[64], l2[64];
    snprintf(l1, sizeof l1, "absmax y %.4g", y->absmax);
    m[0] = (rep_marker){y->absmax, l1, series_colour[0], 1};
    float hmax = hy ? hy->absmax : r->have_art && q_method_uses_hadamard(r->qo.method) && ih >= 0 ? r->acts[ih].note_clip : NAN_F;
    snprintf(l2, sizeof l2, "absmax H y %.4g%s", hmax, hy ? "" : " (artifact)");
    m[1] = (rep_marker){hmax, l2, series_colour[1], 1};
    rep_svg_hist(b, s, hy ? 2 : 1, m, isfinite(hmax) ? 2 : 1, 0, 520, 170);
    rep_puts(b, "</figure><div><table>");
    th(b, "|absmax|p99 (max)|absmax / p99|est. SQNR at absmax");
    for (int k = 0; k < 2; k++) {
        const rep_act *a = k ? hy : y;
        if (!a) continue;
        rep_act t = *a;
        t.clip = t.absmax;
        estimate(&t);
        rep_puts(b, "<tr>");
        td_text(b, k ? "H y" : "y", "l");
        td_num(b, a->absmax);
        td_num(b, a->pct[p99]);
        td_num(b, a->absmax / a->pct[p99]);
        if (isfinite(t.sqnr)) rep_printf(b, "<td>%.1f dB</td>", t.sqnr);
        else td_num(b, NAN);
        rep_puts(b, "</tr>");
    }
    if (!hy && isfinite(hmax)) {
        rep_puts(b, "<tr>");
        td_text(b, "H y (artifact)", "l");
        td_num(b, hmax);
        rep_puts(b, "<td>—</td><td>—</td><td>—</td></tr>");
    }
    rep_puts(b, "</table>");
    if (!hy)
        rep_printf(b, "<p class=\"note\">The stats file has no H y: calib ran without the <code>out_proj_in=hadamard</code> transform "
                      "(<code>mambaq run</code> calibrates with it)%s.</p>",
                   isfinite(hmax) ? "; its absmax is the artifact's out_proj_in clip (quantize's extra pass)" : "");
    rep_puts(b, "</div></div>");
}

/* Per-head / per-group (/ per-channel) maxima: a bar chart and the largest. */
static void group_figure(rep_ctx *r, const rep_act *a) {
    rep_buf *b = &r->b;
    if (!a->grp || a->ngrp < 2) return;
    int *idx = mq_malloc((size_t)a->ngrp * sizeof *idx);
    float *sorted = mq_malloc((size_t)a->ngrp * sizeof *sorted);
    for (int i = 0; i < a->ngrp; i++) idx[i] = i, sorted[i] = a->grp[i];
    for (int i = 1; i < a->ngrp; i++)   /* insertion sort: a layer has few heads */
        for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
            float t = sorted[j]; sorted[j] = sorted[j - 1], sorted[j - 1] = t;
            int u = idx[j]; idx[j] = idx[j - 1], idx[j - 1] = u;
        }
    const double med = sorted[a->ngrp / 2];
    rep_puts(b, "<figure><figcaption>");
    rep_esc(b, a->op);
    rep_printf(b, ": absmax per %s</figcaption>", a->gkind);
    const int top = a->ngrp < 8 ? 1 : 3, listed = a->ngrp < 3 ? 1 : 3;
    rep_svg_bars(b, a->grp, a->ngrp, a->gkind, top, a->ngrp > 64 ? 640 : 320, 130);
    rep_printf(b, "<div class=\"mono\">largest %ss:", a->gkind);
    for (int k = 0; k < listed; k++) rep_printf(b, " %d: %.4g (%.2fx median)", idx[k], sorted[k], med > 0 ? sorted[k] / med : NAN);
    rep_puts(b, "</div></figure>");
    free(idx), free(sorted);
}

static const char *weight_title[] = {"in_proj", "conv1d", "x_proj", "dt_proj", "out_proj"};

static void artifact_scales(rep_ctx *r, int l) {
    rep_buf *b = &r->b;
    if (!r->have_art) return;
    const q_layer *Q = &r->art.qm.layers[l];
    const mq_arch arch = r->cfg.arch;
    rep_puts(b, "<h4>Scales of the artifact</h4><table>");
    th(b, "role|part|scale|clip = 127 scale|recipe clip from these stats");
    for (int role = 0; role < MQ_ACT_NROLES; role++) {
        if (role == MQ_ACT_LM_HEAD_IN || !q_role_quantized(arch, &r->qo, (mq_act_role)role)) continue;
        int np = q_role_parts(arch, (mq_act_role)role);
        for (int p = 0; p < np; p++) {
            char nm[200];
            float clip = NAN_F;
            q_stats st = q_cstats_iface(&r->qc);
            if (q_cstats_name(&r->qc, l, (mq_act_role)role, p, q_role_variant(&r->qo, (mq_act_role)role), nm, sizeof nm) &&
                q_role_clip(&r->qo, &st, l, (mq_act_role)role, p, &clip))
                clip = NAN_F;
            rep_puts(b, "<tr>");
            td_text(b, q_role_key(arch, (mq_act_role)role), "l mono");
            td_text(b, np == 1 ? "" : p == 0 ? "x" : p == 1 ? "B" : "C", "l");
            td_num(b, q_layer_scale_max(&r->art.qm, l, (mq_act_role)role, p));   /* quamba2's vectors: the largest */
            td_num(b, q_layer_scale_max(&r->art.qm, l, (mq_act_role)role, p) * QR_QMAX);
            td_num(b, clip);
            rep_puts(b, "</tr>");
        }
    }
    rep_puts(b, "</table><table>");
    const q_weight *w[5] = {&Q->in_proj, &Q->conv1d, &Q->x_proj, &Q->dt_proj, &Q->out_proj};
    rep_printf(b, "<tr><th class=\"l\">weight scale (%s)</th>", r->qo.weight_gran == Q_GRAN_CHANNEL ? "max over output channels" : "per tensor");
    for (int k = 0; k < 5; k++)
        if (arch == MQ_MAMBA1 || (k != 2 && k != 3)) rep_printf(b, "<th>%s</th>", weight_title[k]);
    rep_puts(b, "</tr><tr><td></td>");
    for (int k = 0; k < 5; k++) {
        if (arch != MQ_MAMBA1 && (k == 2 || k == 3)) continue;
        float m = 0;
        for (int i = 0; w[k]->scale && i < w[k]->nscale; i++) m = fmaxf(m, w[k]->scale[i]);
        td_num(b, m);
    }
    rep_puts(b, "</tr></table>");
}

/* One collapsible section: layer l, or the lm_head input (l = -1). */
static void layer_section(rep_ctx *r, int l) {
    rep_buf *b = &r->b;
    int *idx = mq_malloc((size_t)r->nacts * sizeof *idx), n = 0;
    for (int i = 0; i < r->nacts; i++)
        if (r->acts[i].layer == l) idx[n++] = i;
    /* the summary line: the worst estimate and the most clipped */
    int worst = -1, most = -1;
    for (int j = 0; j < n; j++) {
        const rep_act *a = &r->acts[idx[j]];
        if (isfinite(a->sqnr) && (worst < 0 || a->sqnr < r->acts[worst].sqnr)) worst = idx[j];
        if (a->clipped > 0 && (most < 0 || a->clipped > r->acts[most].clipped)) most = idx[j];
    }
    if (l >= 0) rep_printf(b, "<details id=\"layer-%d\"%s><summary><b>Layer %d</b>", l, r->o.open_all ? " open=\"open\"" : "", l);
    else rep_printf(b, "<details id=\"layer-head\"%s><summary><b>lm_head input</b>", r->o.open_all ? " open=\"open\"" : "");
    rep_puts(b, " <span class=\"muted\">");
    if (worst >= 0) {
        rep_printf(b, "· lowest est. SQNR %.1f dB (", r->acts[worst].sqnr);
        rep_esc(b, r->acts[worst].op);
        rep_puts(b, ") ");
    }
    if (most >= 0) {
        rep_printf(b, "· clipped %.3g%% of ", 100 * r->acts[most].clipped);
        rep_esc(b, r->acts[most].op);
        rep_puts(b, " ");
    }
    if (l >= 0 && l < r->ncos && isfinite(r->cosine[l])) rep_printf(b, "· block cosine %.6g", r->cosine[l]);
    if (l < 0 && !r->qo.quantize_head) rep_puts(b, "· FP16 (not quantized)");
    rep_puts(b, "</span></summary>");
    layer_table(r, idx, n);
    rep_puts(b, "<div class=\"figs\">");
    for (int j = 0; j < n; j++) act_hist(r, &r->acts[idx[j]]);
    rep_puts(b, "</div>");
    int groups = 0;
    for (int j = 0; j < n; j++) groups |= r->acts[idx[j]].ngrp > 1;
    if (groups) {
        rep_puts(b, "<h4>Outlier heads and groups</h4><div class=\"figs\">");
        for (int j = 0; j < n; j++) group_figure(r, &r->acts[idx[j]]);
        rep_puts(b, "</div>");
    }
    if (l >= 0) {
        hadamard_figure(r, l);
        artifact_scales(r, l);
    }
    rep_puts(b, "</details>");
    free(idx);
}

static void layers(rep_ctx *r) {
    rep_buf *b = &r->b;
    rep_puts(b, "<h2 id=\"layers\">Layers</h2><p class=\"nav\">");
    for (int l = 0; l < r->cfg.n_layer; l++) rep_printf(b, "<a href=\"#layer-%d\">%d</a> ", l, l);
    if (r->head >= 0) rep_puts(b, "<a href=\"#layer-head\">lm_head</a>");
    rep_puts(b, "</p><p class=\"muted\">Each section: absmax against the clip (red line; shaded: clipped), the log histogram of |v| "
                "(counts on a log scale), half an int8 step (grey dashed: smaller values round to 0), absmax (black dashed), per-head / per-group maxima, "
                "y before and after the Hadamard, and the artifact's scales.</p>");
    for (int l = 0; l < r->cfg.n_layer; l++) layer_section(r, l);
    if (r->head >= 0) layer_section(r, -1);
}

static void notes(rep_ctx *r) {
    rep_buf *b = &r->b;
    int chan = 0;
    for (int i = 0; i < r->nacts; i++) chan |= r->acts[i].gkind && !strcmp(r->acts[i].gkind, "channel");
    rep_puts(b, "<h2 id=\"notes\">Notes</h2><ul>"
                "<li>Clips follow docs/recipe.md: absmax for every activation except the SSM input x (x_proj:input on Mamba1, "
                "x_conv_out:input on Mamba2), which the percentile recipes clip at the EMA of the per-sample percentiles; "
                "scale = clip / 127. With an artifact, its scales are shown and compared with the clips the recipe takes from "
                "this stats file.</li>"
                "<li>Estimates from the 2048-bin log histogram (64 bins per octave): each bin's values at its geometric centre; "
                "noise (v - clip)² above the clip, v² below half a step, step² / 12 between.</li>");
    if (!chan)
        rep_puts(b, "<li>Top outlier channels: no activation on this page is shown per channel (Mamba2's x, B, C and the state "
                    "are shown per head / group; CPU stats files from before quamba2's per-channel absmax, and GPU ones "
                    "from before 2026-12-02, have none), so outliers are shown per head and group where present.</li>");
    rep_puts(b, "</ul>");
}

int rep_build(const rep_options *o, char **html, size_t *len) {
    rep_ctx *r = mq_calloc(1, sizeof *r);
    r->o = *o;
    r->head = -1;
    int rc = open_inputs(r);
    if (!rc) {
        rep_buf *b = &r->b;
        const char *arch = cfg_arch_name(r->cfg.arch), *mp = meta(r, "model.path");
        rep_puts(b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>"
                    "<meta name=\"viewport\" content=\"width=device-width\"/><title>mambaq report: ");
        rep_esc(b, mp ? mp : o->stats_path);
        rep_printf(b, "</title><style>%s</style></head><body>\n<h1>Quantization report: ", css);
        rep_esc(b, mp ? mp : o->stats_path);
        rep_printf(b, "</h1><p class=\"muted\">%s, %d layers, recipe %s · made by mambaq %s · "
                      "<a href=\"#summary\">summary</a> · %s<a href=\"#heat\">heat maps</a> · <a href=\"#layers\">layers</a> · "
                      "<a href=\"#notes\">notes</a></p>\n",
                   arch, r->cfg.n_layer, q_method_name(r->qo.method), MQ_VERSION, r->verify ? "<a href=\"#verify\">verify</a> · " : "");
        for (int i = 0; i < r->nwarn; i++) {
            rep_puts(b, "<div class=\"warn\">");
            rep_esc(b, r->warn[i]);
            rep_puts(b, "</div>");
        }
        summary(r);
        op_table(r);
        verify_section(r);
        heat_maps(r);
        layers(r);
        notes(r);
        rep_puts(b, "\n</body></html>\n");
        *html = b->p, *len = b->len;
        r->b.p = NULL;
    }
    rep_buf_free(&r->b);
    close_inputs(r);
    free(r);
    return rc;
}
