/* Calibration stats files: writing an obs_set with its metadata, and reading one back for the
 * quantizer and `mambaq stats` (layout in calib.h). Kept apart from the runner so that readers of
 * stats files do not link the forward pass. */
#include "calib/calib.h"
#include "core/err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int calib_has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

void calib_fmt_pct_list(const double *pct, int n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < cap; i++) k += snprintf(buf + k, cap - k, "%s%.10g", i ? "," : "", pct[i]);
}

/* ---- the values' checks, on write (path NULL: the writer names the file) and on read ---- */

/* n values of the statistic <name><suffix>: finite, in [0, CALIB_STAT_MAX], and (lim > 0) at most lim. */
static int check_values(const char *path, const char *name, const char *suffix, const float *v, int64_t n, float lim) {
    for (int64_t k = 0; k < n; k++) {
        const char *why = !isfinite(v[k]) ? "not finite" : v[k] < 0 ? "negative" : v[k] > CALIB_STAT_MAX ? "implausibly large" : NULL;
        if (!why && lim > 0 && v[k] > lim * (1 + 1e-5f) + 1e-30f) why = "above the activation's absmax";
        if (why)
            return mq_fail("%s%s%s%s[%lld] = %g is %s: a statistic of |v| must be finite and in [0, %g]%s", path ? path : "",
                           path ? ": " : "", name, suffix, (long long)k, (double)v[k], why, (double)CALIB_STAT_MAX,
                           lim > 0 ? " and at most the absmax" : "");
    }
    return 0;
}

static int check_absmax(const char *path, const char *name, float amax) {
    if (check_values(path, name, ".absmax", &amax, 1, 0)) return -1;
    if (!(amax > 0))
        return mq_fail("%s%s%s.absmax = 0: the activation was exactly zero on every calibration token, which no working "
                       "model does; %s", path ? path : "", path ? ": " : "", name,
                       path ? "the statistics are broken (re-run mambaq calib)" : "check the model's weights");
    return 0;
}

/* ---- writing ---- */

static int check_obs(const obs_tensor *t) {
    if (t->nsamples == 0) return mq_fail("%s: no calibration sample was observed", t->name);
    if (check_absmax(NULL, t->name, t->absmax) || check_values(NULL, t->name, ".percentiles", t->pmax, t->nq, t->absmax) ||
        check_values(NULL, t->name, ".ema_percentiles", t->pema, t->nq, t->absmax))
        return -1;
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".absmax_per_%s", t->gkind ? t->gkind : "group");
    return t->ngroup ? check_values(NULL, t->name, suffix, t->gabsmax, t->ngroup, t->absmax) : 0;
}

int calib_write_stats(obs_set *s, const char *path, const char *const *kv, int nkv) {
    st_writer *w = st_writer_new();
    char name[160];
    int rc = 0;
    for (int i = 0; i < obs_count(s) && !rc; i++) {
        const obs_tensor *t = obs_get(s, i);
        if ((rc = check_obs(t))) break;
        int64_t one = 1, nq = t->nq, nb = OBS_HIST_BINS, ng = t->ngroup;
        snprintf(name, sizeof name, "%s.absmax", t->name);
        rc |= st_writer_add(w, name, MQ_F32, 1, &one, &t->absmax);
        snprintf(name, sizeof name, "%s.percentiles", t->name);
        rc |= st_writer_add(w, name, MQ_F32, 1, &nq, t->pmax);
        snprintf(name, sizeof name, "%s.ema_percentiles", t->name);
        rc |= st_writer_add(w, name, MQ_F32, 1, &nq, t->pema);
        snprintf(name, sizeof name, "%s.hist", t->name);
        rc |= st_writer_add(w, name, MQ_I64, 1, &nb, t->hist);
        if (ng) {
            snprintf(name, sizeof name, "%s.absmax_per_%s", t->name, t->gkind);
            rc |= st_writer_add(w, name, MQ_F32, 1, &ng, t->gabsmax);
        }
        if (t->nchan && t->cobserved == t->nsamples) {   /* optional: older files lack it */
            int64_t nc = t->nchan;
            snprintf(name, sizeof name, "%s.absmax_per_channel", t->name);
            rc |= st_writer_add(w, name, MQ_F32, 1, &nc, t->cabsmax);
        }
    }
    for (int i = 0; i < nkv && !rc; i++) rc = st_writer_add_metadata(w, kv[2 * i], kv[2 * i + 1]);
    if (!rc) rc = st_writer_write(w, path);
    st_writer_free(w);
    return rc ? mq_fail_ctx("writing calibration stats %s", path) : 0;
}

/* ---- reading ---- */

struct calib_stats {
    st_file *f;
    char *path;
    double pct[OBS_MAX_Q];
    int npct;
    char **names;
    int nnames;
};

void calib_stats_close(calib_stats *s) {
    if (!s) return;
    st_close(s->f);
    for (int i = 0; i < s->nnames; i++) free(s->names[i]);
    free(s->names);
    free(s->path);
    free(s);
}

static int parse_pct(calib_stats *s, const char *list) {
    s->npct = 0;
    const char *p = list;
    while (p && *p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || s->npct == OBS_MAX_Q) return mq_fail("%s: metadata calib.percentiles: expected a comma-separated list, found '%s'", s->path, list);
        s->pct[s->npct++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return mq_fail("%s: metadata calib.percentiles: expected a comma-separated list, found '%s'", s->path, list);
    }
    return s->npct ? 0 : mq_fail("%s: metadata calib.percentiles is empty", s->path);
}

static calib_stats *open_stats(const char *path, const char *weights_sha256, const char *model_label) {
    calib_stats *s = mq_calloc(1, sizeof *s);
    s->path = strdup(path);
    if (!(s->f = st_open(path))) goto fail;
    const char *fmt = st_metadata(s->f, "format"), *ver = st_metadata(s->f, "format_version");
    if (!fmt || strcmp(fmt, CALIB_FORMAT)) {
        mq_fail("%s: not a calibration stats file: metadata format is '%s', expected '%s' (made by mambaq calib)", path,
                fmt ? fmt : "(absent)", CALIB_FORMAT);
        goto fail;
    }
    if (!ver || strcmp(ver, CALIB_FORMAT_VERSION)) {
        mq_fail("%s: stats format_version '%s', this mambaq reads '%s'", path, ver ? ver : "(absent)", CALIB_FORMAT_VERSION);
        goto fail;
    }
    if (parse_pct(s, st_metadata(s->f, "calib.percentiles"))) goto fail;
    const char *have = st_metadata(s->f, "model.weights_sha256");
    if (weights_sha256 && (!have || strcmp(have, weights_sha256))) {
        const char *mp = st_metadata(s->f, "model.path");
        mq_fail("%s: calibrated on other weights: made from %s (weights sha256 %.16s...), but %s has weights sha256 "
                "%.16s...; run mambaq calib on %s", path, mp ? mp : "(unknown)", have ? have : "(none)", model_label,
                weights_sha256, model_label);
        goto fail;
    }
    int n = st_count(s->f);
    s->names = mq_malloc((size_t)(n + 1) * sizeof *s->names);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_get(s->f, i);
        if (!calib_has_suffix(t->name, ".absmax")) continue;
        size_t len = strlen(t->name) - strlen(".absmax");
        char *nm = strndup(t->name, len);
        s->names[s->nnames++] = nm;
        const st_tensor *p = calib_stats_tensor(s, nm, ".percentiles"), *e = calib_stats_tensor(s, nm, ".ema_percentiles");
        if (t->dtype != MQ_F32 || t->numel != 1) { mq_fail("%s: %s: expected F32 [1]", path, t->name); goto fail; }
        if (!p || !e || p->dtype != MQ_F32 || e->dtype != MQ_F32 || p->numel != s->npct || e->numel != s->npct) {
            mq_fail("%s: %s: expected F32 .percentiles and .ema_percentiles of %d values (calib.percentiles)", path, nm, s->npct);
            goto fail;
        }
    }
    if (!s->nnames) { mq_fail("%s: no <name>.absmax tensors: not a calibration stats file", path); goto fail; }
    return s;
fail:
    calib_stats_close(s);
    return NULL;
}

static calib_stats *checked(calib_stats *s) {
    if (s && calib_stats_check(s)) {
        calib_stats_close(s);
        return NULL;
    }
    return s;
}

calib_stats *calib_stats_open_unchecked(const char *path) { return open_stats(path, NULL, NULL); }

calib_stats *calib_stats_open_hash(const char *path, const char *weights_sha256) {
    return checked(open_stats(path, weights_sha256, "the model given"));
}

calib_stats *calib_stats_open(const char *path, const char *model_dir) {
    if (!model_dir) return checked(open_stats(path, NULL, NULL));
    char hex[HASH_HEX_LEN];
    if (hash_model_weights(model_dir, hex)) return NULL;
    return checked(open_stats(path, hex, model_dir));
}

/* A statistic tensor's values as floats (F32 checked by the caller); NULL tensor: nothing to check. */
static int check_tensor(const calib_stats *s, const char *name, const char *suffix, float lim) {
    const st_tensor *t = calib_stats_tensor(s, name, suffix);
    if (!t) return 0;
    if (t->dtype != MQ_F32) return mq_fail("%s: %s%s: dtype %s, expected F32", s->path, name, suffix, mq_dtype_name(t->dtype));
    float *v = mq_malloc((size_t)t->numel * sizeof *v + 1);
    memcpy(v, t->data, (size_t)t->numel * sizeof *v);   /* the data may be unaligned */
    int rc = check_values(s->path, name, suffix, v, t->numel, lim);
    free(v);
    return rc;
}

int calib_stats_check(const calib_stats *s) {
    for (int i = 0; i < s->npct; i++)
        if (!(s->pct[i] >= 0 && s->pct[i] <= 100))
            return mq_fail("%s: metadata calib.percentiles: %g is not a percentile in [0, 100]", s->path, s->pct[i]);
    for (int i = 0; i < s->nnames; i++) {
        const char *name = s->names[i];
        float amax;
        if (calib_stats_absmax(s, name, &amax) || check_absmax(s->path, name, amax)) return -1;
        static const char *const rest[] = {".percentiles", ".ema_percentiles", ".absmax_per_head", ".absmax_per_group",
                                           ".absmax_per_channel"};
        for (int k = 0; k < 5; k++)
            if (check_tensor(s, name, rest[k], amax)) return -1;
    }
    return 0;
}

const char *calib_stats_meta(const calib_stats *s, const char *key) { return st_metadata(s->f, key); }
int calib_stats_npct(const calib_stats *s) { return s->npct; }
double calib_stats_pct(const calib_stats *s, int i) { return s->pct[i]; }
int calib_stats_count(const calib_stats *s) { return s->nnames; }
const char *calib_stats_name(const calib_stats *s, int i) { return s->names[i]; }

/* Quamba ActIdentity ops: their ":output" is the same tensor as their ":input". */
static const char *identity_ops[] = {"z_act", "x_conv_in", "B_conv_in", "C_conv_in", "x_conv_out", "B_conv_out",
                                     "C_conv_out", "dt_act", "ssm_state_act", "ssd_out_act"};

const st_tensor *calib_stats_tensor(const calib_stats *s, const char *name, const char *suffix) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    const st_tensor *t = st_find(s->f, full);
    if (t || !calib_has_suffix(name, ":output")) return t;
    const char *dot = strrchr(name, '.');
    const char *op = dot ? dot + 1 : name;
    size_t oplen = strlen(op) - strlen(":output");
    for (size_t i = 0; i < sizeof identity_ops / sizeof identity_ops[0]; i++)
        if (strlen(identity_ops[i]) == oplen && !strncmp(op, identity_ops[i], oplen)) {
            snprintf(full, sizeof full, "%.*s:input%s", (int)(strlen(name) - strlen(":output")), name, suffix);
            return st_find(s->f, full);
        }
    return NULL;
}

int calib_stats_absmax(const calib_stats *s, const char *name, float *out) {
    const st_tensor *t = calib_stats_tensor(s, name, ".absmax");
    if (!t) return mq_fail("%s: no statistics for %s", s->path, name);
    memcpy(out, t->data, sizeof *out);
    return 0;
}

int calib_stats_percentile(const calib_stats *s, const char *name, double pct, int ema, float *out) {
    const st_tensor *t = calib_stats_tensor(s, name, ema ? ".ema_percentiles" : ".percentiles");
    if (!t) return mq_fail("%s: no statistics for %s", s->path, name);
    for (int i = 0; i < s->npct; i++)
        if (fabs(s->pct[i] - pct) < 1e-9) {
            memcpy(out, (const char *)t->data + i * sizeof(float), sizeof *out);
            return 0;
        }
    char list[512];
    calib_fmt_pct_list(s->pct, s->npct, list, sizeof list);
    return mq_fail("%s: %s: percentile %g was not calibrated; the file has %s (rerun mambaq calib --percentiles)",
                   s->path, name, pct, list);
}
