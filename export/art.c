/* Artifact writer, reader and validator (see art.h). One table of expected tensors, built from the
 * config and the recipe options, drives both directions: the writer stores exactly these tensors in
 * this order, the reader requires exactly these (name, dtype, shape) and decodes them into q_model. */
#include "export/art.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core/err.h"
#include "core/fio.h"
#include "core/st.h"
#include "hadamard/had.h"

int (*art_test_midwrite)(const char *tmpdir);

#define ART_PATH 4096

/* buf = a + "/" + b (b may be empty: then a alone); -1 + mq_fail when it does not fit. */
static int pjoin(char *buf, const char *a, const char *b) {
    if ((size_t)snprintf(buf, ART_PATH, "%s%s%s", a, *b ? "/" : "", b) >= ART_PATH)
        return mq_fail("path too long: %s/%s", a, b);
    return 0;
}

/* ---- the tensor table ---- */

/* T_I4: an int4 weight packed two a byte (U8, q_i4_pack); T_IDX: quamba2's ssm_x scale index (I8) */
typedef enum { T_F16, T_I8, T_WSCALE, T_ASCALE, T_I4, T_IDX } tkind;

typedef struct {
    char name[160];
    tkind kind;
    int ndim;
    int64_t shape[3];
    float **f;          /* T_F16: the q_model field holding the array */
    q_weight *w;        /* T_I8 / T_WSCALE */
    float *s;           /* T_ASCALE */
    int8_t **idx;       /* T_IDX */
} tspec;

typedef struct {
    tspec *t;
    int n, cap;
} tlist;

static tspec *add(tlist *L, tkind k, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static tspec *add(tlist *L, tkind k, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...) {
    MQ_GROW(L->t, L->cap, (size_t)L->n + 1, 64);
    tspec *t = &L->t[L->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->kind = k;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    return t;
}

static void add_f16(tlist *L, float **f, int ndim, int64_t d0, int64_t d1, const char *name) {
    add(L, T_F16, ndim, d0, d1, 0, "%s", name)->f = f;
}

/* An int8 weight [rows x cols] (or the conv's [rows x 1 x cols]) and its scale tensor. */
static void add_weight(tlist *L, q_weight *w, q_granularity g, int conv, int64_t rows, int64_t cols, const char *prefix) {
    tspec *t = conv ? add(L, T_I8, 3, rows, 1, cols, "%s.weight", prefix) : add(L, T_I8, 2, rows, cols, 0, "%s.weight", prefix);
    t->w = w;
    w->rows = (int)rows;
    w->cols = (int)cols;
    w->nscale = g == Q_GRAN_CHANNEL ? (int)rows : 1;
    add(L, T_WSCALE, 1, w->nscale, 0, 0, "%s.weight_scale", prefix)->w = w;
}

/* in_proj, out_proj, lm_head: int8 as add_weight, or (quamba2 wbits 4) int4 packed [rows, cols / 2]
 * with scales [rows, cols / group] ([rows] when one group is the whole row) */
static void add_big(tlist *L, q_weight *w, const q_options *o, int64_t rows, int64_t cols, const char *prefix) {
    if (q_big_wbits(o) == 8) {
        add_weight(L, w, o->weight_gran, 0, rows, cols, prefix);
        return;
    }
    w->rows = (int)rows;
    w->cols = (int)cols;
    w->bits = 4;
    w->group = q_i4_group(o, (int)cols);
    w->nscale = (int)(rows * (cols / w->group));
    add(L, T_I4, 2, rows, cols / 2, 0, "%s.weight", prefix)->w = w;
    if (w->group == cols) add(L, T_WSCALE, 1, rows, 0, 0, "%s.weight_scale", prefix)->w = w;
    else add(L, T_WSCALE, 2, rows, cols / w->group, 0, "%s.weight_scale", prefix)->w = w;
}

/* an activation scale held in an array of its own (quamba2), allocated for the reader */
static tspec *add_vec_scale(tlist *L, float **arr, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *name) {
    int64_t n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    if (!*arr) *arr = mq_calloc((size_t)n, sizeof **arr);
    tspec *t = add(L, T_ASCALE, ndim, d0, d1, d2, "%s", name);
    t->s = *arr;
    return t;
}

static void build_table(q_model *qm, tlist *L) {
    const mq_config *c = &qm->cfg;
    const q_options *o = &qm->opt;
    int64_t D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c), CD = cfg_conv_dim(c), V = c->vocab_size;
    char p[128], s[160];
    if (o->quantize_embedding) add_weight(L, &qm->embed_q, Q_GRAN_CHANNEL, 0, V, D, "backbone.embeddings");
    else add_f16(L, &qm->embed, 2, V, D, "backbone.embeddings.weight");
    for (int l = 0; l < c->n_layer; l++) {
        q_layer *Q = &qm->layers[l];
        snprintf(p, sizeof p, "backbone.layers.%d", l);
        snprintf(s, sizeof s, "%s.norm.weight", p);
        add_f16(L, &Q->norm_w, 1, D, 0, s);
        snprintf(s, sizeof s, "%s.mixer.in_proj", p);
        add_big(L, &Q->in_proj, o, N, D, s);
        if (c->proj_bias) add(L, T_F16, 1, N, 0, 0, "%s.mixer.in_proj.bias", p)->f = &Q->in_proj_b;
        snprintf(s, sizeof s, "%s.mixer.conv1d", p);
        add_weight(L, &Q->conv1d, o->weight_gran, 1, CD, c->d_conv, s);
        if (c->conv_bias) add(L, T_F16, 1, CD, 0, 0, "%s.mixer.conv1d.bias", p)->f = &Q->conv_b;
        if (c->arch == MQ_MAMBA1) {
            snprintf(s, sizeof s, "%s.mixer.x_proj", p);
            add_weight(L, &Q->x_proj, o->weight_gran, 0, c->dt_rank + 2 * c->d_state, E, s);
            snprintf(s, sizeof s, "%s.mixer.dt_proj", p);
            add_weight(L, &Q->dt_proj, o->weight_gran, 0, E, c->dt_rank, s);
            add(L, T_F16, 1, E, 0, 0, "%s.mixer.dt_proj.bias", p)->f = &Q->dt_proj_b;
            add(L, T_F16, 2, E, c->d_state, 0, "%s.mixer.A_log", p)->f = &Q->A_log;
            add(L, T_F16, 1, E, 0, 0, "%s.mixer.D", p)->f = &Q->D;
        } else {
            add(L, T_F16, 1, c->n_heads, 0, 0, "%s.mixer.dt_bias", p)->f = &Q->dt_bias;
            add(L, T_F16, 1, c->n_heads, 0, 0, "%s.mixer.A_log", p)->f = &Q->A_log;
            add(L, T_F16, 1, c->n_heads, 0, 0, "%s.mixer.D", p)->f = &Q->D;
            add(L, T_F16, 1, E, 0, 0, "%s.mixer.norm.weight", p)->f = &Q->gnorm_w;
        }
        snprintf(s, sizeof s, "%s.mixer.out_proj", p);
        add_big(L, &Q->out_proj, o, D, E, s);
        if (c->proj_bias) add(L, T_F16, 1, D, 0, 0, "%s.mixer.out_proj.bias", p)->f = &Q->out_proj_b;
        for (int r = 0; r < MQ_ACT_NROLES; r++) {
            if (r == MQ_ACT_LM_HEAD_IN || !q_role_quantized(c->arch, o, (mq_act_role)r)) continue;
            char nm[160];
            q_scale_name(c->arch, l, (mq_act_role)r, nm, sizeof nm);
            if (r == MQ_ACT_SSM_X && q_uses_cluster(c, o)) {
                /* quamba2: [n_groups, head groups, dimension groups], and each channel's slot */
                add_vec_scale(L, &Q->x_scale, 3, c->arch == MQ_MAMBA2 ? c->n_groups : 1, Q_XHG, Q_XDG, nm);
                if (!Q->x_index) Q->x_index = mq_calloc((size_t)E, 1);
                add(L, T_IDX, 1, E, 0, 0, "%s_index", nm)->idx = &Q->x_index;
            } else if ((r == MQ_ACT_B || r == MQ_ACT_C) && q_uses_state_groups(c, o)) {
                add_vec_scale(L, &Q->bc_scale[r == MQ_ACT_C], 1, c->n_groups, 0, 0, nm);   /* one per SSD group */
            } else {
                add(L, T_ASCALE, 1, q_role_parts(c->arch, (mq_act_role)r), 0, 0, "%s", nm)->s = Q->act_scale[r];
            }
        }
    }
    add_f16(L, &qm->norm_f, 1, D, 0, "backbone.norm_f.weight");
    if (o->quantize_embedding && !q_head_untied(c, o->method)) {
        if (q_role_quantized(c->arch, o, MQ_ACT_LM_HEAD_IN))   /* the weight is the embedding's; W4A16: no input scale */
            add(L, T_ASCALE, 1, 1, 0, 0, "lm_head.input_scale")->s = &qm->lm_head_in_scale;
    } else if (o->quantize_head) {
        add_big(L, &qm->lm_head_q, o, V, D, "lm_head");
        if (q_role_quantized(c->arch, o, MQ_ACT_LM_HEAD_IN)) add(L, T_ASCALE, 1, 1, 0, 0, "lm_head.input_scale")->s = &qm->lm_head_in_scale;
    } else if (q_head_untied(c, o->method)) {
        add_f16(L, &qm->lm_head, 2, V, D, "lm_head.weight");
    }
}

static int64_t numel(const tspec *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int art_format_version(const q_model *qm) { return qm->opt.method == Q_QUAMBA2 ? 3 : qm->opt.quantize_embedding ? 2 : 1; }

size_t art_fp16_params(const mq_config *c) {
    size_t D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c), CD = cfg_conv_dim(c), V = c->vocab_size;
    size_t per = D + N * D + (c->proj_bias ? N + D : 0) + CD * c->d_conv + (c->conv_bias ? CD : 0) + D * E;
    if (c->arch == MQ_MAMBA1)
        per += (size_t)(c->dt_rank + 2 * c->d_state) * E + E * c->dt_rank + E + E * c->d_state + E;
    else
        per += 3 * (size_t)c->n_heads + E;
    return per * c->n_layer + V * D + D + (c->tie_embeddings ? 0 : V * D);
}

/* ---- quant_config.json ---- */

static const char *role_clip_desc(const q_model *qm, mq_act_role r) {
    if (r == MQ_ACT_SSM_X && q_method_uses_percentile(qm->opt.method) && qm->opt.percentile < 100)
        return "percentile";
    return "absmax";
}

static int act_bits(const q_options *o) { return o->method == Q_QUAMBA2 ? o->abits : 8; }

/* quant_config.json "quamba2": the options and the layouts they give (docs/recipe.md, "Quamba2") */
static void add_quamba2(cJSON *j, const q_model *qm) {
    const q_options *o = &qm->opt;
    const mq_config *c = &qm->cfg;
    cJSON *q = cJSON_AddObjectToObject(j, "quamba2");
    cJSON_AddStringToObject(q, "bits", q_big_wbits(o) == 4 ? (o->abits == 16 ? "w4a16" : "w4a8") : "w8a8");
    cJSON_AddStringToObject(q, "weight_method", q_big_wbits(o) == 4 ? (o->gptq ? "gptq" : "rtn") : "absmax");
    cJSON_AddNumberToObject(q, "group_size", o->group_size);
    cJSON_AddBoolToObject(q, "cluster", o->cluster);
    cJSON_AddBoolToObject(q, "state_groups", o->state_groups);
    if (q_big_wbits(o) == 4) {
        cJSON_AddStringToObject(q, "int4_weights", "in_proj, out_proj (and lm_head with quantize_head): U8 [rows, cols / 2], two codes a byte, "
                                                   "column 2j in the low nibble, 2j+1 in the high nibble, two's complement, codes in [-7, 7]; "
                                                   "weight_scale F32 [rows, cols / group] (group = group_size when it divides cols, else "
                                                   "[rows]: one per row); w = code * scale; conv1d, x_proj, dt_proj stay int8");
        cJSON_AddStringToObject(q, "int4_rule", "s = max(absmax of the group, 1e-5) / 7, q = clamp(rint(v / s), -7, 7)");
    }
    if (q_uses_cluster(c, o))
        cJSON_AddStringToObject(q, "ssm_x_scales", "x scale tensor F32 [n_groups, 4 head groups, 4 dimension groups] (Mamba1: [1, 4, 4]); "
                                                   "<name>_index I8 [d_inner]: channel c uses scale[group of c][index[c] / 4][index[c] % 4]");
    if (q_uses_state_groups(c, o)) cJSON_AddStringToObject(q, "bc_scales", "B_scale, C_scale F32 [n_groups]: one per SSD group of d_state columns");
}

static char *quant_config_json(const q_model *qm, const art_provenance *pv) {
    const mq_config *c = &qm->cfg;
    const q_options *o = &qm->opt;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", ART_FORMAT);
    cJSON_AddNumberToObject(j, "format_version", art_format_version(qm));
    cJSON_AddStringToObject(j, "method", q_method_name(o->method));
    cJSON_AddStringToObject(j, "arch", cfg_arch_name(c->arch));
    cJSON_AddNumberToObject(j, "weight_bits", q_big_wbits(o));
    cJSON_AddNumberToObject(j, "activation_bits", act_bits(o));
    cJSON_AddStringToObject(j, "weight_granularity", q_gran_name(o->weight_gran));
    if (o->method == Q_QUAMBA2) add_quamba2(j, qm);
    cJSON_AddStringToObject(j, "activation_granularity", "tensor");
    cJSON_AddStringToObject(j, "quant_rule", "q = clamp(rint(v / s), -127, 127), round half to even, NaN -> 0; v' = q * s; s = max(clip, 1e-5) / 127");
    if (q_method_uses_percentile(o->method)) {
        cJSON_AddNumberToObject(j, "percentile", o->percentile);
        cJSON_AddStringToObject(j, "percentile_applies_to", "ssm_x");
    } else {
        cJSON_AddNullToObject(j, "percentile");
    }
    cJSON *had = cJSON_AddArrayToObject(j, "hadamard");
    if (qm->hadamard_n) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "applies_to", "out_proj_in");
        cJSON_AddStringToObject(h, "online", "y <- H y on the SSM output (M2: the gated-RMSNorm output) before quantizing it");
        cJSON_AddStringToObject(h, "fused_into", "out_proj.weight = W H^T");
        cJSON_AddNumberToObject(h, "order", qm->hadamard_n);
        cJSON_AddNumberToObject(h, "m", qm->hadamard_m);
        cJSON_AddNumberToObject(h, "k", qm->hadamard_k);
        cJSON_AddStringToObject(h, "matrix", "hadamard/had.h: H = (A_m kron Sylvester_2^k) / sqrt(n), symmetric, orthogonal");
        cJSON_AddItemToArray(had, h);
    }
    if (qm->resid_n) {
        cJSON *r = cJSON_AddObjectToObject(j, "residual_rotation");
        cJSON_AddStringToObject(r, "applies_to", "residual stream: embedding output and every out_proj output, hence in_proj_in and lm_head_in");
        cJSON_AddStringToObject(r, "online", "none (every rotation is in the weights)");
        cJSON_AddStringToObject(r, "fused_into", "embeddings.weight = E H; in_proj.weight = W diag(norm.weight) H; out_proj.weight = H W H_y^T; "
                                                 "out_proj.bias = b H; lm_head.weight = L diag(norm_f.weight) H; norm.weight = norm_f.weight = 1");
        cJSON_AddNumberToObject(r, "order", qm->resid_n);
        cJSON_AddNumberToObject(r, "m", qm->resid_m);
        cJSON_AddNumberToObject(r, "k", qm->resid_k);
        cJSON_AddStringToObject(r, "matrix", "hadamard/had.h: H = (A_m kron Sylvester_2^k) / sqrt(n), symmetric, orthogonal");
    } else {
        cJSON_AddNullToObject(j, "residual_rotation");
    }
    cJSON_AddBoolToObject(j, "rmsnorm_fused_into_in_proj", q_method_fuses_norm(o->method));
    cJSON_AddBoolToObject(j, "norm_f_fused_into_lm_head", qm->resid_n != 0);
    cJSON_AddBoolToObject(j, "lm_head_tied_to_embedding", !q_head_untied(c, o->method));
    cJSON_AddBoolToObject(j, "quantize_head", o->quantize_head);
    if (o->quantize_embedding) cJSON_AddBoolToObject(j, "quantize_embedding", 1);
    cJSON *acts = cJSON_AddObjectToObject(j, "quantized_activations");
    char nm[160];
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        if (!q_role_quantized(c->arch, o, (mq_act_role)r)) continue;
        cJSON *a = cJSON_AddObjectToObject(acts, q_role_key(c->arch, (mq_act_role)r));
        const char *sn = r == MQ_ACT_LM_HEAD_IN ? "lm_head.input_scale" : q_scale_name(c->arch, 0, (mq_act_role)r, nm, sizeof nm);
        if (r != MQ_ACT_LM_HEAD_IN) {
            char pat[200];
            snprintf(pat, sizeof pat, "backbone.layers.{i}.mixer.%s", sn + strlen("backbone.layers.0.mixer."));
            cJSON_AddStringToObject(a, "scale_tensor", pat);
        } else {
            cJSON_AddStringToObject(a, "scale_tensor", sn);
        }
        cJSON_AddStringToObject(a, "clip", role_clip_desc(qm, (mq_act_role)r));
        if (q_role_parts(c->arch, (mq_act_role)r) == 3) {
            cJSON *parts = cJSON_AddArrayToObject(a, "parts");
            const char *pn[3] = {"x", "B", "C"};
            for (int k = 0; k < 3; k++) cJSON_AddItemToArray(parts, cJSON_CreateString(pn[k]));
        }
        if (r == MQ_ACT_DT && c->arch == MQ_MAMBA1)
            cJSON_AddStringToObject(a, "note", "dt_proj output without dt_proj.bias; the bias is added after dequantization");
        q_stat_variant var = q_role_variant(o, (mq_act_role)r);
        cJSON_AddStringToObject(a, "statistics", var == Q_STAT_ROTATED ? "after the norm fusion and the residual rotation ((x / rms(x)) H)"
                                : var == Q_STAT_FUSED ? (r == MQ_ACT_IN_PROJ_IN ? "after RMSNorm fusion (x / rms(x))" : "after Hadamard rotation (H y)")
                                : "as in the source model");
    }
    cJSON *fl = cJSON_AddArrayToObject(j, "float_tensors");
    cJSON_AddItemToArray(fl, cJSON_CreateString("F16: embeddings unless quantize_embedding, norms, conv1d.bias, A_log, D, dt bias, "
                                                "M2 gated-norm weight, lm_head unless quantize_head (its own lm_head.weight when "
                                                "lm_head_tied_to_embedding is false)"));
    if (o->quantize_embedding)
        cJSON_AddItemToArray(fl, cJSON_CreateString("I8: backbone.embeddings.weight with backbone.embeddings.weight_scale [vocab] (per row); "
                                                    "a tied lm_head is that table with its scales (no lm_head.weight)"));
    cJSON *cal = cJSON_AddObjectToObject(j, "calibration");
    cJSON_AddStringToObject(cal, "stats_file", pv->stats_file);
    cJSON_AddStringToObject(cal, "data", pv->calib_data);
    cJSON_AddStringToObject(cal, "data_hash", pv->calib_data_hash);
    cJSON_AddNumberToObject(cal, "samples", (double)pv->calib_samples);
    cJSON_AddNumberToObject(cal, "tokens", (double)pv->calib_tokens);
    cJSON *src = cJSON_AddObjectToObject(j, "source_model");
    cJSON_AddStringToObject(src, "path", pv->source_model);
    cJSON_AddStringToObject(src, "hash", pv->source_hash);
    cJSON *tool = cJSON_AddObjectToObject(j, "tool");
    cJSON_AddStringToObject(tool, "name", "mambaq");
    cJSON_AddStringToObject(tool, "version", pv->tool_version);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    return txt;
}

/* ---- checks shared by writing and reading ---- */

/* Every scale s[n] of tensor name is finite and in [ART_SCALE_MIN, ART_SCALE_MAX]. */
static int check_scales(const char *file, const char *name, const float *s, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        if (!(s[k] >= ART_SCALE_MIN && s[k] <= ART_SCALE_MAX)) {
            char at[32] = "";
            if (n > 1) snprintf(at, sizeof at, "[%lld]", (long long)k);
            return mq_fail("%s: scale %s%s = %g is %s: a scale must be finite and in [%g, %g] (the rule's floor 1e-5/127 .. a "
                           "clip of 1.27e8); broken calibration statistics?", file, name, at, (double)s[k],
                           isnan(s[k]) ? "NaN" : isinf(s[k]) ? "infinite" : s[k] <= 0 ? "not > 0" : "implausible",
                           (double)ART_SCALE_MIN, (double)ART_SCALE_MAX);
        }
    return 0;
}

/* A float tensor stored as F16: finite, and inside F16's range (or it would be stored as Inf). */
static int check_f16_range(const char *name, const float *f, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(f[k]) || fabsf(f[k]) > 65504.0f)
            return mq_fail("artifact: tensor %s[%lld] = %g %s", name, (long long)k, (double)f[k],
                           isfinite(f[k]) ? "is outside the FP16 range (|v| <= 65504) it is stored in" : "is not finite");
    return 0;
}

/* ---- writing ---- */

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *buf = mq_read_file(from, &n);
    if (!buf) return -1;
    int rc = mq_write_file_atomic(to, buf, n);
    free(buf);
    return rc;
}

/* config.json for Hugging Face tools: the source's fields, torch_dtype "float16" (the tensors that
 * are not int8) and a quantization_config block in the style of the Hugging Face quantization
 * formats (GPTQ, AWQ, compressed-tensors): quant_method, bits, group_size (GPTQ's convention: -1 =
 * one scale per output channel; 0 = one per tensor), where the scales are, the recipe. It is
 * informational: quant_config.json stays authoritative (art_open reads the shapes from it and the
 * config fields only). */
static int write_hf_config(const char *src, const char *dst, const q_model *qm, const art_provenance *pv) {
    char *txt = mq_read_file(src, NULL);
    if (!txt) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mq_fail("%s: not a JSON object", src);
    }
    const q_options *o = &qm->opt;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "torch_dtype");
    cJSON_AddStringToObject(j, "torch_dtype", "float16");
    if (cJSON_GetObjectItemCaseSensitive(j, "dtype")) cJSON_ReplaceItemInObjectCaseSensitive(j, "dtype", cJSON_CreateString("float16"));
    cJSON *q = cJSON_AddObjectToObject(j, "quantization_config");
    cJSON_AddStringToObject(q, "quant_method", "mambaq");
    cJSON_AddStringToObject(q, "format", ART_FORMAT);
    cJSON_AddNumberToObject(q, "version", art_format_version(qm));
    cJSON_AddStringToObject(q, "tool_version", pv->tool_version);
    cJSON_AddNumberToObject(q, "bits", q_big_wbits(o));
    cJSON_AddNumberToObject(q, "activation_bits", act_bits(o));
    cJSON_AddBoolToObject(q, "sym", 1);
    if (q_big_wbits(o) == 4) cJSON_AddNumberToObject(q, "group_size", o->group_size > 0 ? o->group_size : -1);
    else cJSON_AddNumberToObject(q, "group_size", o->weight_gran == Q_GRAN_CHANNEL ? -1 : 0);
    cJSON_AddStringToObject(q, "weight_granularity", q_gran_name(o->weight_gran));
    cJSON_AddStringToObject(q, "activation_scheme", "static");
    cJSON_AddStringToObject(q, "recipe", q_method_name(o->method));
    if (o->method == Q_QUAMBA2) {
        cJSON *r = cJSON_AddObjectToObject(q, "recipe_options");
        cJSON_AddStringToObject(r, "weight_method", q_big_wbits(o) == 4 ? (o->gptq ? "gptq" : "rtn") : "absmax");
        cJSON_AddBoolToObject(r, "cluster", o->cluster);
        cJSON_AddBoolToObject(r, "state_groups", o->state_groups);
        cJSON_AddStringToObject(r, "note", "group_size: columns per int4 weight scale of in_proj / out_proj / lm_head where it divides "
                                           "the row, else one per row; conv1d, x_proj, dt_proj stay int8");
    }
    if (q_method_uses_percentile(o->method)) cJSON_AddNumberToObject(q, "percentile", o->percentile);
    else cJSON_AddNullToObject(q, "percentile");
    if (qm->hadamard_n) cJSON_AddNumberToObject(q, "hadamard", qm->hadamard_n);
    else cJSON_AddNullToObject(q, "hadamard");
    if (qm->resid_n) cJSON_AddNumberToObject(q, "residual_rotation", qm->resid_n);
    else cJSON_AddNullToObject(q, "residual_rotation");
    cJSON_AddStringToObject(q, "weight_scales", "model.safetensors: <weight name without .weight>.weight_scale, F32 [1] or [rows]; "
                                                 "weight = int8 * scale");
    cJSON *as = cJSON_AddObjectToObject(q, "activation_scales");
    cJSON_AddStringToObject(as, "file", "model.safetensors");
    cJSON_AddStringToObject(as, "rule", "int8 = clamp(rint(x / scale), -127, 127), one static F32 scale per tensor (Mamba2 conv1d input: [3], for x, B and C)");
    cJSON *names = cJSON_AddArrayToObject(as, "tensors");
    char nm[160];
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        if (r == MQ_ACT_LM_HEAD_IN || !q_role_quantized(qm->cfg.arch, o, (mq_act_role)r)) continue;
        q_scale_name(qm->cfg.arch, 0, (mq_act_role)r, nm, sizeof nm);
        char pat[200];
        snprintf(pat, sizeof pat, "backbone.layers.{i}.%s", nm + strlen("backbone.layers.0."));
        cJSON_AddItemToArray(names, cJSON_CreateString(pat));
    }
    if (q_role_quantized(qm->cfg.arch, o, MQ_ACT_LM_HEAD_IN)) cJSON_AddItemToArray(names, cJSON_CreateString("lm_head.input_scale"));
    cJSON_AddBoolToObject(q, "quantize_head", o->quantize_head);
    cJSON_AddBoolToObject(q, "quantize_embedding", o->quantize_embedding);
    cJSON *keep = cJSON_AddArrayToObject(q, "modules_not_to_convert");
    if (!o->quantize_embedding) cJSON_AddItemToArray(keep, cJSON_CreateString("backbone.embeddings"));
    if (!o->quantize_head) cJSON_AddItemToArray(keep, cJSON_CreateString("lm_head"));
    cJSON_AddStringToObject(q, "config_file", "quant_config.json");
    char *out = cJSON_Print(j);
    cJSON_Delete(j);
    int rc = mq_write_file_atomic(dst, out, strlen(out));
    free(out);
    return rc;
}

/* The Hugging Face files beside the source config.json, copied when present. */
static int copy_companions(const char *config_json, const char *tmp) {
    static const char *names[] = {"generation_config.json", "tokenizer_config.json", "special_tokens_map.json"};
    char dir[ART_PATH], from[ART_PATH], to[ART_PATH];
    snprintf(dir, sizeof dir, "%s", config_json);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    else snprintf(dir, sizeof dir, ".");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct stat st;
        if (pjoin(from, dir, names[i]) || pjoin(to, tmp, names[i])) return -1;
        if (stat(from, &st) == 0 && copy_file(from, to)) return mq_fail_ctx("copying %s", from);
    }
    return 0;
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_contents(const char *tmp, const q_model *qm, const art_provenance *pv, const char *config_json, const char *tokenizer) {
    /* build_table takes a mutable q_model (the reader fills it); here it only re-sets the weights'
     * rows / cols / nscale to the values they already have */
    tlist L = {0};
    build_table((q_model *)qm, &L);
    st_writer *w = st_writer_new();
    st_writer_add_metadata(w, "format", ART_FORMAT);
    char ver[16];
    snprintf(ver, sizeof ver, "%d", art_format_version(qm));
    st_writer_add_metadata(w, "format_version", ver);
    st_writer_add_metadata(w, "method", q_method_name(qm->opt.method));
    int rc = 0;
    for (int i = 0; i < L.n && !rc; i++) {
        const tspec *t = &L.t[i];
        int64_t n = numel(t);
        if (t->kind == T_F16) {
            const float *f = *t->f;
            if (!f) { rc = mq_fail("artifact: tensor %s has no data (internal error)", t->name); break; }
            if ((rc = check_f16_range(t->name, f, n))) break;
            uint16_t *h = mq_malloc((size_t)n * 2);
            for (int64_t k = 0; k < n; k++) h[k] = st_f32_to_f16(f[k]);
            rc = st_writer_add(w, t->name, MQ_F16, t->ndim, t->shape, h);
            free(h);
        } else if (t->kind == T_I8) {
            if (!t->w->q) { rc = mq_fail("artifact: weight %s has no data (internal error)", t->name); break; }
            rc = st_writer_add(w, t->name, MQ_I8, t->ndim, t->shape, t->w->q);
        } else if (t->kind == T_I4) {
            if (!t->w->q || t->w->bits != 4) { rc = mq_fail("artifact: int4 weight %s has no data (internal error)", t->name); break; }
            uint8_t *pk = mq_malloc((size_t)n);
            q_i4_pack(t->w->q, (size_t)n * 2, pk);
            rc = st_writer_add(w, t->name, MQ_U8, t->ndim, t->shape, pk);
            free(pk);
        } else if (t->kind == T_IDX) {
            rc = st_writer_add(w, t->name, MQ_I8, t->ndim, t->shape, *t->idx);
        } else if (t->kind == T_WSCALE) {
            rc = check_scales("artifact", t->name, t->w->scale, n) || st_writer_add(w, t->name, MQ_F32, t->ndim, t->shape, t->w->scale);
        } else {
            rc = check_scales("artifact", t->name, t->s, n) || st_writer_add(w, t->name, MQ_F32, t->ndim, t->shape, t->s);
        }
    }
    free(L.t);
    char path[ART_PATH];
    if (!rc) rc = pjoin(path, tmp, "model.safetensors");
    if (!rc) rc = st_writer_write(w, path);
    st_writer_free(w);
    if (!rc && art_test_midwrite && art_test_midwrite(tmp)) rc = mq_fail("%s: write interrupted (test hook)", tmp);
    if (!rc) {
        char *qc = quant_config_json(qm, pv);
        rc = pjoin(path, tmp, "quant_config.json");
        if (!rc) rc = mq_write_file_atomic(path, qc, strlen(qc));
        free(qc);
    }
    if (!rc && (pjoin(path, tmp, "config.json") || write_hf_config(config_json, path, qm, pv))) rc = mq_fail_ctx("writing config.json");
    if (!rc && (pjoin(path, tmp, "tokenizer.json") || copy_file(tokenizer, path))) rc = mq_fail_ctx("copying tokenizer.json");
    if (!rc) rc = copy_companions(config_json, tmp);
    if (!rc && fsync_path(tmp)) rc = mq_fail("%s: fsync failed: %s", tmp, strerror(errno));
    return rc;
}

static void parent_of(const char *path, char *buf, size_t n) {
    if ((size_t)snprintf(buf, n, "%s", path) >= n) buf[0] = 0;
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    char *sl = strrchr(buf, '/');
    if (!sl) snprintf(buf, n, ".");
    else if (sl == buf) buf[1] = 0;
    else *sl = 0;
}

/* Partial outputs of writers that died, recognised by the marker file they carry (core/fio.h),
 * never by name alone: "<final>.tmp.*" (an unfinished artifact) is removed; "<final>.old.*" (the
 * previous artifact, moved aside by a --force write that died before it finished) is put back when
 * final is absent, removed otherwise. Anything without a marker is the user's and is left alone. */
static void recover_stale(const char *final) {
    char parent[ART_PATH], prefix[ART_PATH];
    parent_of(final, parent, sizeof parent);
    const char *base = strrchr(final, '/');
    base = base ? base + 1 : final;
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int is_tmp = 0, is_old = 0;
        snprintf(prefix, sizeof prefix, "%s.tmp.", base);
        is_tmp = !strncmp(e->d_name, prefix, strlen(prefix));
        snprintf(prefix, sizeof prefix, "%s.old.", base);
        is_old = !strncmp(e->d_name, prefix, strlen(prefix));
        char path[ART_PATH];
        struct stat st;
        if ((!is_tmp && !is_old) || pjoin(path, parent, e->d_name) || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
            !fio_marked_stale(path))
            continue;
        if (is_old && lstat(final, &st) != 0) {
            char marker[ART_PATH + 32];
            snprintf(marker, sizeof marker, "%s/%s", path, FIO_MARKER);
            unlink(marker);
            if (rename(path, final) == 0) fprintf(stderr, "mambaq: restored %s from %s (left by a writer that died)\n", final, path);
        } else {
            fio_rm_tree(path);
        }
    }
    closedir(d);
    mq_clear_error();
}

/* --force replaces an artifact (or an empty folder), never an arbitrary directory. */
static int replaceable(const char *final) {
    char qc[ART_PATH];
    struct stat qs;
    DIR *d = opendir(final);
    int empty = 1;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = 0; break; }
    if (d) closedir(d);
    if (!empty && (pjoin(qc, final, "quant_config.json") || stat(qc, &qs) != 0))
        return mq_fail("%s exists and is not a mambaq artifact (no quant_config.json): refusing to replace it", final);
    return 0;
}

int art_check_out(const char *dir, int force) {
    struct stat st;
    if (fio_check_out(dir, force, 1)) return -1;
    return lstat(dir, &st) == 0 ? replaceable(dir) : 0;
}

/* A new, empty, uniquely named sibling folder "<final>.<kind>.<pid>.XXXXXX". */
static int make_sibling(const char *final, const char *kind, char *out) {
    if ((size_t)snprintf(out, ART_PATH, "%s.%s.%d.XXXXXX", final, kind, (int)getpid()) >= ART_PATH)
        return mq_fail("path too long: %s", final);
    if (!mkdtemp(out)) return mq_fail("%s: cannot create: %s", out, strerror(errno));
    return 0;
}

int art_write(const char *dir, const q_model *qm, const art_provenance *pv, const char *config_json,
              const char *tokenizer, int force) {
    char final[ART_PATH], tmp[ART_PATH], old[ART_PATH], parent[ART_PATH], marker[ART_PATH + 32];
    if (pjoin(final, dir, "")) return -1;
    size_t len = strlen(final);
    while (len > 1 && final[len - 1] == '/') final[--len] = 0;
    if (mq_mkdir_parents(final)) return -1;
    recover_stale(final);
    struct stat st;
    int exists = lstat(final, &st) == 0;
    if (exists && !force) return mq_fail("%s already exists (use --force to replace it)", final);
    if (exists && !S_ISDIR(st.st_mode)) return mq_fail("%s exists and is not a directory", final);
    if (exists && replaceable(final)) return -1;
    /* the artifact is built in a marked temporary folder; the marker goes just before the rename */
    if (make_sibling(final, "tmp", tmp)) return -1;
    snprintf(marker, sizeof marker, "%s/%s", tmp, FIO_MARKER);
    if (fio_mark(tmp, "an artifact being written") || write_contents(tmp, qm, pv, config_json, tokenizer) || unlink(marker) != 0 ||
        fsync_path(tmp)) {
        mq_fail_ctx("writing the artifact %s", final);
        fio_rm_tree(tmp);
        return -1;
    }
    if (exists) {
        /* move the old artifact aside (onto a reserved empty folder), put the new one in place, then
         * delete the old one: at every instant the final name is either absent or a complete
         * artifact, and a writer dying in between leaves the old one marked for restoring */
        if (make_sibling(final, "old", old)) { fio_rm_tree(tmp); return -1; }
        if (rename(final, old) != 0) {
            int e = errno;
            rmdir(old);
            fio_rm_tree(tmp);
            return mq_fail("%s: cannot move the existing artifact aside: %s", final, strerror(e));
        }
        fio_mark(old, "the previous artifact, being replaced");
    }
    if (rename(tmp, final) != 0) {
        int e = errno;
        if (exists && rename(old, final) == 0) {
            snprintf(marker, sizeof marker, "%s/%s", final, FIO_MARKER);
            unlink(marker);
        }
        fio_rm_tree(tmp);
        return mq_fail("%s: cannot rename %s into place: %s", final, tmp, strerror(e));
    }
    if (exists) fio_rm_tree(old);
    parent_of(final, parent, sizeof parent);
    fsync_path(parent);
    return 0;
}

/* ---- reading ---- */

static int jstr(const cJSON *j, const char *key, const char *file, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v)) return mq_fail("%s: field \"%s\" missing or not a string", file, key);
    *out = v->valuestring;
    return 0;
}

static void jcopy(const cJSON *j, const char *key, char *dst, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsString(v)) snprintf(dst, n, "%s", v->valuestring);
}

/* A provenance count (calibration samples, tokens) into *dst when present: a whole number in
 * [0, 1e15], else an error (a double outside long's range does not convert). */
static int jcount(const cJSON *j, const char *key, const char *path, long *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v)) return 0;
    const double d = v->valuedouble;
    if (!(d >= 0 && d <= 1e15) || d != (double)(long)d)
        return mq_fail("%s: field \"calibration\".\"%s\" = %g is not a count", path, key, d);
    *dst = (long)d;
    return 0;
}

/* quant_config.json's "quamba2" object into o */
static int read_quamba2(const cJSON *j, const char *path, q_options *o) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quamba2");
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(q, "bits"), *wm = cJSON_GetObjectItemCaseSensitive(q, "weight_method");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(q, "group_size"), *cl = cJSON_GetObjectItemCaseSensitive(q, "cluster");
    const cJSON *sg = cJSON_GetObjectItemCaseSensitive(q, "state_groups");
    if (!cJSON_IsObject(q) || !cJSON_IsString(bits) || !cJSON_IsString(wm) || !cJSON_IsNumber(gs) || !cJSON_IsBool(cl) || !cJSON_IsBool(sg))
        return mq_fail("%s: method quamba2 needs the object \"quamba2\" with bits, weight_method, group_size, cluster, state_groups", path);
    if (!strcmp(bits->valuestring, "w8a8")) o->wbits = 8, o->abits = 8;
    else if (!strcmp(bits->valuestring, "w4a8")) o->wbits = 4, o->abits = 8;
    else if (!strcmp(bits->valuestring, "w4a16")) o->wbits = 4, o->abits = 16;
    else return mq_fail("%s: quamba2.bits \"%s\" is not w8a8, w4a8 or w4a16", path, bits->valuestring);
    o->gptq = !strcmp(wm->valuestring, "gptq");
    o->group_size = gs->valueint;
    if (gs->valuedouble != o->group_size || (o->group_size < 1 && o->group_size != -1))
        return mq_fail("%s: quamba2.group_size %g is not a positive size or -1", path, gs->valuedouble);
    o->cluster = cJSON_IsTrue(cl);
    o->state_groups = cJSON_IsTrue(sg);
    return 0;
}

/* tied: lm_head_tied_to_embedding, or -1 when the field is absent (artifacts written before it) */
static int read_quant_config(const char *dir, art_artifact *a, int *tied) {
    char path[ART_PATH];
    if (pjoin(path, dir, "quant_config.json")) return -1;
    char *txt = mq_read_file(path, NULL);
    if (!txt) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) return mq_fail("%s: not valid JSON", path);
    int rc = -1;
    const char *s = NULL;
    q_options *o = &a->qm.opt;
    q_options_default(o);
    const cJSON *v;
    if (jstr(j, "format", path, &s)) goto out;
    if (strcmp(s, ART_FORMAT)) { mq_fail("%s: format \"%s\" is not a mambaq artifact (expected \"%s\")", path, s, ART_FORMAT); goto out; }
    v = cJSON_GetObjectItemCaseSensitive(j, "format_version");
    if (!cJSON_IsNumber(v)) { mq_fail("%s: field \"format_version\" missing or not a number", path); goto out; }
    a->format_version = v->valueint;
    if (v->valuedouble != a->format_version || a->format_version < ART_FORMAT_VERSION_MIN || a->format_version > ART_FORMAT_VERSION) {
        mq_fail("%s: unknown format_version %g (this mambaq reads versions %d to %d)", path, v->valuedouble, ART_FORMAT_VERSION_MIN,
                ART_FORMAT_VERSION);
        goto out;
    }
    if (jstr(j, "method", path, &s)) goto out;
    if (q_method_from_name(s, &o->method)) { mq_fail_ctx("%s: field \"method\"", path); goto out; }
    if (jstr(j, "weight_granularity", path, &s)) goto out;
    if (q_gran_from_name(s, &o->weight_gran)) { mq_fail_ctx("%s: field \"weight_granularity\"", path); goto out; }
    v = cJSON_GetObjectItemCaseSensitive(j, "weight_bits");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(j, "activation_bits");
    if (o->method == Q_QUAMBA2) {
        if (a->format_version < 3) { mq_fail("%s: method quamba2 needs format_version 3", path); goto out; }
        if (read_quamba2(j, path, o)) goto out;
    }
    if (!cJSON_IsNumber(v) || v->valueint != q_big_wbits(o) || !cJSON_IsNumber(ab) || ab->valueint != act_bits(o)) {
        mq_fail("%s: weight_bits and activation_bits must be %d and %d (method %s)", path, q_big_wbits(o), act_bits(o), q_method_name(o->method));
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "percentile");
    if (q_method_uses_percentile(o->method)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble <= 100)) {
            mq_fail("%s: method %s needs a percentile in (0, 100]", path, q_method_name(o->method));
            goto out;
        }
        o->percentile = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "quantize_head");
    if (!cJSON_IsBool(v)) { mq_fail("%s: field \"quantize_head\" missing or not a boolean", path); goto out; }
    o->quantize_head = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(j, "quantize_embedding");   /* absent before format version 2 */
    if (v && !cJSON_IsBool(v)) { mq_fail("%s: field \"quantize_embedding\" is not a boolean", path); goto out; }
    o->quantize_embedding = cJSON_IsTrue(v);
    if (o->quantize_embedding && (a->format_version < 2 || !o->quantize_head)) {
        mq_fail("%s: quantize_embedding needs format_version 2 and quantize_head", path);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "rmsnorm_fused_into_in_proj");
    if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != q_method_fuses_norm(o->method)) {
        mq_fail("%s: field \"rmsnorm_fused_into_in_proj\" missing or inconsistent with method %s", path, q_method_name(o->method));
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "hadamard");
    int nhad = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (nhad != (q_method_uses_hadamard(o->method) ? 1 : 0)) {
        mq_fail("%s: field \"hadamard\" must list %d rotation(s) for method %s", path, q_method_uses_hadamard(o->method), q_method_name(o->method));
        goto out;
    }
    if (nhad == 1) {
        const cJSON *h = cJSON_GetArrayItem(v, 0), *ord = cJSON_GetObjectItemCaseSensitive(h, "order");
        if (!cJSON_IsNumber(ord)) { mq_fail("%s: hadamard[0].order missing", path); goto out; }
        a->qm.hadamard_n = ord->valueint;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "residual_rotation");
    if (q_method_rotates_residual(o->method)) {
        const cJSON *ord = cJSON_GetObjectItemCaseSensitive(v, "order");
        if (!cJSON_IsObject(v) || !cJSON_IsNumber(ord)) {
            mq_fail("%s: method %s needs field \"residual_rotation\" with its \"order\"", path, q_method_name(o->method));
            goto out;
        }
        a->qm.resid_n = ord->valueint;
    } else if (v && !cJSON_IsNull(v)) {
        mq_fail("%s: field \"residual_rotation\" is set, but method %s does not rotate the residual stream", path, q_method_name(o->method));
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "norm_f_fused_into_lm_head");
    if ((v || q_method_rotates_residual(o->method)) && (!cJSON_IsBool(v) || cJSON_IsTrue(v) != q_method_rotates_residual(o->method))) {
        mq_fail("%s: field \"norm_f_fused_into_lm_head\" missing or inconsistent with method %s", path, q_method_name(o->method));
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "lm_head_tied_to_embedding");
    *tied = -1;
    if (v && !cJSON_IsBool(v)) { mq_fail("%s: field \"lm_head_tied_to_embedding\" is not a boolean", path); goto out; }
    if (v) *tied = cJSON_IsTrue(v);
    else if (q_method_rotates_residual(o->method)) {
        mq_fail("%s: field \"lm_head_tied_to_embedding\" missing (method %s)", path, q_method_name(o->method));
        goto out;
    }
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(j, "calibration");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source_model");
    const cJSON *tool = cJSON_GetObjectItemCaseSensitive(j, "tool");
    jcopy(cal, "stats_file", a->prov.stats_file, sizeof a->prov.stats_file);
    jcopy(cal, "data", a->prov.calib_data, sizeof a->prov.calib_data);
    jcopy(cal, "data_hash", a->prov.calib_data_hash, sizeof a->prov.calib_data_hash);
    if (jcount(cal, "samples", path, &a->prov.calib_samples) || jcount(cal, "tokens", path, &a->prov.calib_tokens)) goto out;
    jcopy(src, "path", a->prov.source_model, sizeof a->prov.source_model);
    jcopy(src, "hash", a->prov.source_hash, sizeof a->prov.source_hash);
    jcopy(tool, "version", a->prov.tool_version, sizeof a->prov.tool_version);
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

static const char *shape_str(int ndim, const int64_t *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static int read_tensors(const char *dir, art_artifact *a) {
    char path[ART_PATH];
    if (pjoin(path, dir, "model.safetensors")) return -1;
    struct stat stt;
    if (stat(path, &stt) != 0) return mq_fail("%s: missing (%s)", path, strerror(errno));
    a->model_bytes = (size_t)stt.st_size;
    st_file *f = st_open(path);
    if (!f) return -1;
    const char *fmt = st_metadata(f, "format");
    if (fmt && strcmp(fmt, ART_FORMAT)) {
        /* the message before st_close: fmt points into f */
        mq_fail("%s: __metadata__ format \"%.200s\" is not \"%s\"", path, fmt, ART_FORMAT);
        st_close(f);
        return -1;
    }
    q_model *qm = &a->qm;
    tlist L = {0};
    build_table(qm, &L);
    int rc = 0;
    char b1[96], b2[96];
    mq_dtype want[] = {[T_F16] = MQ_F16, [T_I8] = MQ_I8, [T_WSCALE] = MQ_F32, [T_ASCALE] = MQ_F32, [T_I4] = MQ_U8, [T_IDX] = MQ_I8};
    for (int i = 0; i < L.n && !rc; i++) {
        tspec *t = &L.t[i];
        const st_tensor *x = st_find(f, t->name);
        int64_t n = numel(t);
        if (!x) { rc = mq_fail("%s: tensor %s is missing", path, t->name); break; }
        if (x->dtype != want[t->kind]) {
            rc = mq_fail("%s: tensor %s has dtype %s, expected %s", path, t->name, mq_dtype_name(x->dtype), mq_dtype_name(want[t->kind]));
            break;
        }
        int same = x->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = x->shape[d] == t->shape[d];
        if (!same) {
            rc = mq_fail("%s: tensor %s has shape %s, but config.json and quant_config.json imply %s", path, t->name,
                         shape_str(x->ndim, x->shape, b1, sizeof b1), shape_str(t->ndim, t->shape, b2, sizeof b2));
            break;
        }
        if (t->kind == T_F16) {
            *t->f = mq_malloc((size_t)n * sizeof(float));
            if ((rc = st_to_f32(x, *t->f))) break;   /* NaN / Inf refused, named */
            a->float_params += (size_t)n;
        } else if (t->kind == T_I8) {
            t->w->q = mq_malloc((size_t)n);
            memcpy(t->w->q, x->data, (size_t)n);
            for (int64_t k = 0; k < n; k++)
                if (t->w->q[k] == -128) { rc = mq_fail("%s: tensor %s[%lld] = -128, outside the symmetric range [-127, 127]", path, t->name, (long long)k); break; }
            a->int8_params += (size_t)n;
        } else if (t->kind == T_I4) {
            t->w->q = mq_malloc((size_t)n * 2);
            long bad = q_i4_unpack(x->data, (size_t)n * 2, t->w->q);
            if (bad >= 0) { rc = mq_fail("%s: tensor %s: int4 code -8 at element %ld, outside the symmetric range [-7, 7]", path, t->name, bad); break; }
            a->int4_params += (size_t)n * 2;
        } else if (t->kind == T_IDX) {
            memcpy(*t->idx, x->data, (size_t)n);
            for (int64_t k = 0; k < n; k++)
                if ((*t->idx)[k] < 0 || (*t->idx)[k] >= Q_XCL) { rc = mq_fail("%s: tensor %s[%lld] = %d is not a scale slot in [0, %d)", path, t->name, (long long)k, (*t->idx)[k], Q_XCL); break; }
        } else {
            float *dst;
            if (t->kind == T_WSCALE) dst = t->w->scale = mq_malloc((size_t)n * sizeof(float));
            else dst = t->s;
            memcpy(dst, x->data, (size_t)n * sizeof(float));
            a->scale_params += (size_t)n;
            rc = check_scales(path, t->name, dst, n);
        }
    }
    for (int i = 0; i < st_count(f) && !rc; i++) {
        const char *nm = st_get(f, i)->name;
        int known = 0;
        for (int k = 0; k < L.n && !known; k++) known = !strcmp(L.t[k].name, nm);
        if (!known) rc = mq_fail("%s: unexpected tensor %s (not part of a %s artifact of this model)", path, nm, q_method_name(qm->opt.method));
    }
    free(L.t);
    st_close(f);
    return rc;
}

int art_open(const char *dir, art_artifact *a) {
    memset(a, 0, sizeof *a);
    if (pjoin(a->dir, dir, "")) return -1;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return mq_fail("%s: not an artifact directory", dir);
    int tied = -1;
    if (read_quant_config(dir, a, &tied)) return -1;
    if (cfg_load(dir, &a->qm.cfg)) return mq_fail_ctx("artifact %s", dir);
    q_model *qm = &a->qm;
    const char *arch = NULL;
    char path[ART_PATH];
    if (pjoin(path, dir, "quant_config.json")) return -1;
    {
        char *txt = mq_read_file(path, NULL);
        cJSON *j = txt ? cJSON_Parse(txt) : NULL;
        free(txt);
        int bad = !j || jstr(j, "arch", path, &arch);
        /* "mamba" is how artifacts before the one spelling named Mamba1 */
        if (!bad && strcmp(arch, cfg_arch_name(qm->cfg.arch)) && !(qm->cfg.arch == MQ_MAMBA1 && !strcmp(arch, "mamba"))) {
            mq_fail("%s: arch \"%s\" does not match config.json (%s)", path, arch, cfg_arch_name(qm->cfg.arch));
            bad = 1;
        }
        cJSON_Delete(j);
        if (bad) return -1;
    }
    if (q_method_uses_hadamard(qm->opt.method)) {
        if (qm->hadamard_n != qm->cfg.d_inner)
            return mq_fail("%s: hadamard order %d does not match d_inner %d of config.json", path, qm->hadamard_n, qm->cfg.d_inner);
        if (had_factor(qm->hadamard_n, &qm->hadamard_m, &qm->hadamard_k)) return mq_fail_ctx("%s", path);
    }
    if (q_method_rotates_residual(qm->opt.method)) {
        if (qm->resid_n != qm->cfg.d_model)
            return mq_fail("%s: residual_rotation order %d does not match d_model %d of config.json", path, qm->resid_n, qm->cfg.d_model);
        if (had_factor(qm->resid_n, &qm->resid_m, &qm->resid_k)) return mq_fail_ctx("%s", path);
    }
    /* the tensor table follows config.json's tie flag and the method: the field must agree */
    if (tied >= 0 && tied != !q_head_untied(&qm->cfg, qm->opt.method))
        return mq_fail("%s: lm_head_tied_to_embedding is %s, but config.json (tie_word_embeddings %s) and method %s imply %s", path,
                       tied ? "true" : "false", qm->cfg.tie_embeddings ? "true" : "false", q_method_name(qm->opt.method),
                       tied ? "false" : "true");
    if (pjoin(path, dir, "tokenizer.json")) return -1;
    if (stat(path, &st) != 0) return mq_fail("%s: missing (an artifact carries its tokenizer)", path);
    qm->layers = mq_calloc((size_t)qm->cfg.n_layer, sizeof *qm->layers);
    if (read_tensors(dir, a)) {
        q_model_free(qm);
        return -1;
    }
    if (qm->opt.quantize_embedding) {
        q_embed_dequantize(qm);   /* what the forwards read */
        if (!q_head_untied(&qm->cfg, qm->opt.method)) q_weight_copy(&qm->embed_q, &qm->lm_head_q);
    }
    return 0;
}

void art_close(art_artifact *a) {
    q_model_free(&a->qm);
    memset(a, 0, sizeof *a);
}
