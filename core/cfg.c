/* Model configuration parsing (see cfg.h): transformers config.json (model_type "mamba" / "mamba2")
 * and the original state-spaces config.json (d_model, n_layer, ssm_cfg). Absent optional fields take
 * the defaults of transformers' MambaConfig / Mamba2Config and of mamba_ssm's MambaConfig and
 * Mamba / Mamba2 modules respectively, so a config means what the Python code would make of it. */
#include "cfg.h"
#include "err.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* No dimension of any real Mamba comes near this; it keeps every derived size inside int. */
#define CFG_MAX_DIM (1 << 24)

typedef struct {
    const cJSON *obj;
    const char *src;    /* file name for messages */
    const char *prefix; /* "" or "ssm_cfg." */
} jsec;

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

static const cJSON *field(const jsec *s, const char *key) {
    return s->obj ? cJSON_GetObjectItemCaseSensitive(s->obj, key) : NULL;
}

static int missing(const jsec *s, const char *key) {
    return mq_fail("%s: missing required field '%s%s'", s->src, s->prefix, key);
}

/* Integer field; `required` or else `def` when absent (null counts as absent, as in Python). */
static int get_int(const jsec *s, const char *key, int required, int def, int *out) {
    const cJSON *v = field(s, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return missing(s, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > INT_MAX)
        return mq_fail("%s: field '%s%s' must be an integer, found %s", s->src, s->prefix, key,
                       cJSON_IsNumber(v) ? "a non-integer number" : type_name(v));
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const jsec *s, const char *key, int required, double def, double *out) {
    const cJSON *v = field(s, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return missing(s, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return mq_fail("%s: field '%s%s' must be a number, found %s", s->src, s->prefix, key, type_name(v));
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const jsec *s, const char *key, int def, int *out) {
    const cJSON *v = field(s, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) return mq_fail("%s: field '%s%s' must be true or false, found %s", s->src, s->prefix, key, type_name(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An int or the string "auto" (then auto_value). */
static int get_int_or_auto(const jsec *s, const char *key, int auto_value, int *out) {
    const cJSON *v = field(s, key);
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "auto"))
            return mq_fail("%s: field '%s%s' must be an integer or \"auto\", found \"%s\"", s->src, s->prefix, key, v->valuestring);
        *out = auto_value;
        return 0;
    }
    return get_int(s, key, 0, auto_value, out);
}

/* A float that may be written as a number or, by transformers 5, as {"__float__": "Infinity"}. */
static int json_float(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) { *out = v->valuedouble; return 0; }
    const cJSON *f = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "__float__") : NULL;
    const char *str = cJSON_IsString(f) ? f->valuestring : cJSON_IsString(v) ? v->valuestring : NULL;
    if (!str) return -1;
    char *end;
    *out = strtod(str, &end);
    return *end || end == str ? -1 : 0;
}

/* [min, max] clamp of dt; absent or null means (0, inf). */
static int get_limit(const jsec *s, const char *key, float *lo, float *hi) {
    const cJSON *v = field(s, key);
    *lo = 0.0f;
    *hi = INFINITY;
    if (!v || cJSON_IsNull(v)) return 0;
    double a, b;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || json_float(v->child, &a) || json_float(v->child->next, &b))
        return mq_fail("%s: field '%s%s' must be [min, max] numbers (max may be {\"__float__\": \"Infinity\"})", s->src, s->prefix, key);
    if (!(a >= 0) || !(b > a))
        return mq_fail("%s: field '%s%s' must satisfy 0 <= min < max, found [%g, %g]", s->src, s->prefix, key, a, b);
    /* dt is float32: a min beyond its range would become +inf and clamp every dt to infinity */
    if (!(a <= FLT_MAX))
        return mq_fail("%s: field '%s%s': min %g is not a finite float32 (at most %g)", s->src, s->prefix, key, a, (double)FLT_MAX);
    *lo = (float)a;
    *hi = (float)b;   /* a max beyond float32 (1e39, Infinity) is +inf: no upper clamp */
    if (!(*hi > *lo))
        return mq_fail("%s: field '%s%s': [%g, %g] is empty in float32", s->src, s->prefix, key, a, b);
    return 0;
}

static int check_expand(const char *src, const char *key, double expand, int d_model) {
    if (!(expand > 0) || expand * d_model > CFG_MAX_DIM) return mq_fail("%s: field '%s' must be positive and sane, found %g", src, key, expand);
    return 0;
}

static int positive(const char *src, const char *key, int v) {
    if (v <= 0 || v > CFG_MAX_DIM) return mq_fail("%s: field '%s' must be in [1, %d], found %d", src, key, CFG_MAX_DIM, v);
    return 0;
}

/* Python's JSON writer emits the non-standard tokens Infinity, -Infinity and NaN (older transformers
 * wrote time_step_limit that way). Outside strings, rewrite them into JSON cJSON accepts: 1e999
 * parses to inf, NaN becomes null. Caller frees. */
static char *fix_nonfinite(const char *s) {
    size_t n = strlen(s);
    char *out = mq_malloc(2 * n + 16), *o = out; /* "NaN" -> "null" grows, "Infinity" -> "1e999" shrinks */
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            *o++ = c;
            if (c == '\\' && i + 1 < n) *o++ = s[++i];
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        if (!strncmp(s + i, "Infinity", 8)) { memcpy(o, "1e999", 5); o += 5; i += 7; continue; }
        if (!strncmp(s + i, "NaN", 3)) { memcpy(o, "null", 4); o += 4; i += 2; continue; }
        *o++ = c;
    }
    *o = 0;
    return out;
}

static int parse_hf_mamba(const cJSON *root, const char *src, mq_config *c) {
    jsec s = {root, src, ""};
    double expand = 2;
    if (get_int(&s, "hidden_size", 1, 0, &c->d_model) || get_int(&s, "num_hidden_layers", 1, 0, &c->n_layer) ||
        get_int(&s, "vocab_size", 1, 0, &c->vocab_size) || get_num(&s, "expand", 0, 2, &expand) ||
        get_int(&s, "state_size", 0, 16, &c->d_state) || get_int(&s, "conv_kernel", 0, 4, &c->d_conv) ||
        get_bool(&s, "use_conv_bias", 1, &c->conv_bias) || get_bool(&s, "use_bias", 0, &c->proj_bias) ||
        get_bool(&s, "tie_word_embeddings", 1, &c->tie_embeddings))
        return -1;
    if (positive(src, "hidden_size", c->d_model) || check_expand(src, "expand", expand, c->d_model)) return -1;
    if (get_int(&s, "intermediate_size", 0, (int)(expand * c->d_model), &c->d_inner) ||
        get_int_or_auto(&s, "time_step_rank", (c->d_model + 15) / 16, &c->dt_rank))
        return -1;
    return 0;
}

static int parse_hf_mamba2(const cJSON *root, const char *src, mq_config *c) {
    jsec s = {root, src, ""};
    double expand = 2;
    int rms_norm = 1;
    if (get_int(&s, "hidden_size", 1, 0, &c->d_model) || get_int(&s, "num_hidden_layers", 1, 0, &c->n_layer) ||
        get_int(&s, "vocab_size", 1, 0, &c->vocab_size) || get_int(&s, "num_heads", 1, 0, &c->n_heads) ||
        get_int(&s, "head_dim", 0, 64, &c->head_dim) || get_int(&s, "n_groups", 0, 8, &c->n_groups) ||
        get_int(&s, "state_size", 0, 128, &c->d_state) || get_num(&s, "expand", 0, 2, &expand) ||
        get_int(&s, "chunk_size", 0, 256, &c->chunk_size) || get_int(&s, "conv_kernel", 0, 4, &c->d_conv) ||
        get_limit(&s, "time_step_limit", &c->dt_limit_min, &c->dt_limit_max) ||
        get_bool(&s, "norm_before_gate", 0, &c->norm_before_gate) || get_bool(&s, "rms_norm", 1, &rms_norm) ||
        get_bool(&s, "use_conv_bias", 1, &c->conv_bias) || get_bool(&s, "use_bias", 0, &c->proj_bias) ||
        get_bool(&s, "tie_word_embeddings", 0, &c->tie_embeddings))
        return -1;
    /* transformers' Mamba2 always applies its gated RMSNorm; rms_norm is read but has no effect there */
    if (positive(src, "num_heads", c->n_heads) || positive(src, "head_dim", c->head_dim) || positive(src, "hidden_size", c->d_model))
        return -1;
    if ((long long)c->n_heads * c->head_dim > CFG_MAX_DIM)
        return mq_fail("%s: num_heads * head_dim = %lld exceeds %d", src, (long long)c->n_heads * c->head_dim, CFG_MAX_DIM);
    c->d_inner = c->n_heads * c->head_dim;
    if (fabs(expand * c->d_model - c->d_inner) > 1e-6 * c->d_inner)
        return mq_fail("%s: num_heads * head_dim = %d * %d = %d must equal expand * hidden_size = %g * %d = %g", src,
                       c->n_heads, c->head_dim, c->d_inner, expand, c->d_model, expand * c->d_model);
    return 0;
}

/* mamba_ssm's MambaConfig: d_model, n_layer, vocab_size, ssm_cfg{layer, ...}, rms_norm,
 * pad_vocab_size_multiple, tie_embeddings; the ssm_cfg defaults are those of Mamba / Mamba2. */
static int parse_state_spaces(const cJSON *root, const char *src, mq_config *c) {
    jsec s = {root, src, ""};
    int vocab = 0, mult = 8, rms_norm = 1;
    double eps = 1e-5, expand = 2;
    if (get_int(&s, "d_model", 1, 0, &c->d_model) || get_int(&s, "n_layer", 1, 0, &c->n_layer) ||
        get_int(&s, "vocab_size", 1, 0, &vocab) || get_int(&s, "pad_vocab_size_multiple", 0, 8, &mult) ||
        get_bool(&s, "rms_norm", 1, &rms_norm) || get_bool(&s, "tie_embeddings", 1, &c->tie_embeddings) ||
        get_num(&s, "norm_epsilon", 0, 1e-5, &eps))
        return -1;
    if (!rms_norm) return mq_fail("%s: field 'rms_norm' is false (LayerNorm blocks): only RMSNorm models are supported", src);
    const cJSON *attn = field(&s, "attn_layer_idx");
    if (cJSON_IsArray(attn) && cJSON_GetArraySize(attn) > 0)
        return mq_fail("%s: field 'attn_layer_idx' is not empty: hybrid attention models are not supported", src);
    int d_mlp = 0;
    if (get_int(&s, "d_intermediate", 0, 0, &d_mlp)) return -1;
    if (d_mlp > 0) return mq_fail("%s: field 'd_intermediate' = %d: blocks with an MLP are not supported", src, d_mlp);
    if (positive(src, "vocab_size", vocab) || positive(src, "pad_vocab_size_multiple", mult) || positive(src, "d_model", c->d_model))
        return -1;
    c->vocab_size = vocab + (mult - vocab % mult) % mult;
    c->norm_eps = (float)eps;

    const cJSON *ssm = field(&s, "ssm_cfg");
    if (ssm && !cJSON_IsNull(ssm) && !cJSON_IsObject(ssm))
        return mq_fail("%s: field 'ssm_cfg' must be an object, found %s", src, type_name(ssm));
    jsec ss = {cJSON_IsObject(ssm) ? ssm : NULL, src, "ssm_cfg."};
    const cJSON *layer = field(&ss, "layer");
    const char *lname = cJSON_IsString(layer) ? layer->valuestring : "Mamba1";
    if (layer && !cJSON_IsString(layer)) return mq_fail("%s: field 'ssm_cfg.layer' must be a string, found %s", src, type_name(layer));
    if (get_num(&ss, "expand", 0, 2, &expand) || get_int(&ss, "d_conv", 0, 4, &c->d_conv) ||
        get_bool(&ss, "conv_bias", 1, &c->conv_bias) || get_bool(&ss, "bias", 0, &c->proj_bias))
        return -1;
    if (check_expand(src, "ssm_cfg.expand", expand, c->d_model)) return -1;
    c->d_inner = (int)(expand * c->d_model);
    if (!strcmp(lname, "Mamba1")) {
        c->arch = MQ_MAMBA1;
        return get_int(&ss, "d_state", 0, 16, &c->d_state) || get_int_or_auto(&ss, "dt_rank", (c->d_model + 15) / 16, &c->dt_rank) ? -1 : 0;
    }
    if (strcmp(lname, "Mamba2"))
        return mq_fail("%s: field 'ssm_cfg.layer' is \"%s\": only \"Mamba1\" and \"Mamba2\" are supported", src, lname);
    c->arch = MQ_MAMBA2;
    int d_ssm = 0, rmsnorm = 1, d_has_hdim = 0;
    if (get_int(&ss, "d_state", 0, 128, &c->d_state) || get_int(&ss, "headdim", 0, 64, &c->head_dim) ||
        get_int(&ss, "ngroups", 0, 1, &c->n_groups) || get_int(&ss, "chunk_size", 0, 256, &c->chunk_size) ||
        get_int(&ss, "d_ssm", 0, c->d_inner, &d_ssm) || get_bool(&ss, "rmsnorm", 1, &rmsnorm) ||
        get_bool(&ss, "norm_before_gate", 0, &c->norm_before_gate) || get_bool(&ss, "D_has_hdim", 0, &d_has_hdim) ||
        get_limit(&ss, "dt_limit", &c->dt_limit_min, &c->dt_limit_max))
        return -1;
    if (d_ssm != c->d_inner)
        return mq_fail("%s: field 'ssm_cfg.d_ssm' = %d differs from expand * d_model = %d: partial-SSM Mamba2 is not supported", src, d_ssm, c->d_inner);
    if (!rmsnorm) return mq_fail("%s: field 'ssm_cfg.rmsnorm' is false: Mamba2 without the gated RMSNorm is not supported", src);
    if (d_has_hdim) return mq_fail("%s: field 'ssm_cfg.D_has_hdim' is true: per-channel D is not supported", src);
    if (positive(src, "ssm_cfg.headdim", c->head_dim)) return -1;
    if (c->d_inner % c->head_dim)
        return mq_fail("%s: expand * d_model = %d is not a multiple of ssm_cfg.headdim = %d", src, c->d_inner, c->head_dim);
    c->n_heads = c->d_inner / c->head_dim;
    return 0;
}

/* Checks shared by every format once the struct is filled. */
static int validate(const mq_config *c, const char *src) {
    if (positive(src, "d_model (hidden_size)", c->d_model) || positive(src, "n_layer (num_hidden_layers)", c->n_layer) ||
        positive(src, "vocab_size", c->vocab_size) || positive(src, "d_inner (intermediate_size)", c->d_inner) ||
        positive(src, "d_state (state_size)", c->d_state) || positive(src, "d_conv (conv_kernel)", c->d_conv))
        return -1;
    if (!(c->norm_eps >= 0) || !isfinite(c->norm_eps))
        return mq_fail("%s: field 'layer_norm_epsilon' must be a finite non-negative number, found %g", src, c->norm_eps);
    if (c->arch == MQ_MAMBA1) return positive(src, "dt_rank (time_step_rank)", c->dt_rank);
    if (positive(src, "n_groups (ngroups)", c->n_groups) || positive(src, "chunk_size", c->chunk_size) ||
        positive(src, "n_heads (num_heads)", c->n_heads) || positive(src, "head_dim (headdim)", c->head_dim))
        return -1;
    if (c->n_heads % c->n_groups)
        return mq_fail("%s: n_heads = %d is not a multiple of n_groups = %d", src, c->n_heads, c->n_groups);
    if ((long long)2 * c->d_inner + 2LL * c->n_groups * c->d_state + c->n_heads > CFG_MAX_DIM)
        return mq_fail("%s: in_proj width exceeds %d", src, CFG_MAX_DIM);
    return 0;
}

int cfg_parse(const char *json, const char *source, mq_config *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->source, sizeof out->source, "%s", source);
    char *fixed = fix_nonfinite(json);
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithOpts(fixed, &endp, 1);
    if (!root || !cJSON_IsObject(root)) {
        long at = endp ? (long)(endp - fixed) : -1;
        free(fixed);
        cJSON_Delete(root);
        return mq_fail("%s: bad JSON (%s near byte %ld)", source, root ? "not an object" : "parse error", at);
    }
    free(fixed);
    out->norm_eps = 1e-5f;
    out->dt_limit_max = INFINITY;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    jsec s = {root, source, ""};
    double eps = 1e-5;
    int rc;
    if (mt) {
        if (!cJSON_IsString(mt)) rc = mq_fail("%s: field 'model_type' must be a string, found %s", source, type_name(mt));
        else if (!strcmp(mt->valuestring, "mamba")) { out->arch = MQ_MAMBA1; rc = parse_hf_mamba(root, source, out); }
        else if (!strcmp(mt->valuestring, "mamba2")) { out->arch = MQ_MAMBA2; rc = parse_hf_mamba2(root, source, out); }
        else rc = mq_fail("%s: unsupported model_type \"%s\" (supported: \"mamba\", \"mamba2\")", source, mt->valuestring);
        if (!rc) rc = get_num(&s, "layer_norm_epsilon", 0, 1e-5, &eps);
        out->norm_eps = (float)eps;
    } else if (cJSON_GetObjectItemCaseSensitive(root, "d_model")) {
        rc = parse_state_spaces(root, source, out);
    } else {
        rc = mq_fail("%s: neither 'model_type' (transformers) nor 'd_model' (state-spaces): not a Mamba config", source);
    }
    cJSON_Delete(root);
    if (!rc) rc = validate(out, source);
    return rc;
}

/* Sizes come from config.json before any tensor is read, and the loaders allocate per layer and per
 * vocabulary row from them: a config saying 10,000,000 layers next to a 24-layer checkpoint would
 * have them build gigabytes of tables before finding the first missing tensor. So the weights the
 * config implies are checked against the bytes the checkpoint files in dir hold: each element takes
 * at least one byte (int8), in_proj's and out_proj's half a byte (int4, quamba2 artifacts), and each
 * tensor at least TENSOR_MIN_BYTES of header or zip entry. Only
 * a lower bound, with 1 MiB of slack so that a small damaged file gets its own, more precise error
 * from the reader; the loaders then check every tensor exactly. Skipped when dir holds no checkpoint. */
#define TENSOR_MIN_BYTES 32.0
#define CHECK_SLACK_BYTES 1048576.0
static int check_against_files(const char *dir, const mq_config *c, const char *src) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    double have = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        int ckpt = (n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) || (n > 4 && !strcmp(e->d_name + n - 4, ".bin"));
        struct stat st;
        if (ckpt && !fstatat(dirfd(d), e->d_name, &st, 0) && S_ISREG(st.st_mode)) have += (double)st.st_size;
    }
    closedir(d);
    if (have == 0) return 0;
    double D = c->d_model, Di = c->d_inner, P = cfg_in_proj_dim(c), C = cfg_conv_dim(c), K = c->d_conv;
    double layer = D + 0.5 * (P * D + D * Di) + C * K, tensors = 7;
    if (c->arch == MQ_MAMBA1) {
        double R = c->dt_rank, N = c->d_state;
        layer += (R + 2 * N) * Di + Di * R + Di + Di * N + Di;
    } else {
        layer += 3.0 * c->n_heads + Di;
    }
    double need = (double)c->vocab_size * D + D + (double)c->n_layer * (layer + tensors * TENSOR_MIN_BYTES);
    if (need > have + CHECK_SLACK_BYTES)
        return mq_fail("%s: num_hidden_layers %d, hidden_size %d and vocab_size %d imply at least %.3g bytes of weights, but the "
                       "checkpoint files in %s hold %.3g bytes: this config.json does not describe this checkpoint",
                       src, c->n_layer, c->d_model, c->vocab_size, need, dir, have);
    return 0;
}

int cfg_load(const char *dir, mq_config *out) {
    struct stat st;
    size_t n = strlen(dir) + 16;
    char *path = mq_malloc(n);
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) snprintf(path, n, "%s", dir);
    else snprintf(path, n, "%s/config.json", dir);
    char *text = mq_read_file(path, NULL);
    int rc = text ? cfg_parse(text, path, out) : -1;
    if (!rc && !(stat(dir, &st) == 0 && S_ISREG(st.st_mode))) rc = check_against_files(dir, out, path);
    free(text);
    free(path);
    return rc;
}

int cfg_in_proj_dim(const mq_config *c) {
    if (c->arch == MQ_MAMBA1) return 2 * c->d_inner;
    return 2 * c->d_inner + 2 * c->n_groups * c->d_state + c->n_heads;
}

int cfg_conv_dim(const mq_config *c) {
    if (c->arch == MQ_MAMBA1) return c->d_inner;
    return c->d_inner + 2 * c->n_groups * c->d_state;
}

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999975e-06). */
static cJSON *float_item(float v) {
    char buf[48];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static cJSON *limit_item(float v) {
    if (!isinf(v)) return float_item(v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "__float__", v > 0 ? "Infinity" : "-Infinity");
    return o;
}

char *cfg_to_json(const mq_config *c) {
    cJSON *r = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    int m2 = c->arch == MQ_MAMBA2;
    cJSON_AddItemToArray(arch, cJSON_CreateString(m2 ? "Mamba2ForCausalLM" : "MambaForCausalLM"));
    cJSON_AddItemToObject(r, "architectures", arch);
    cJSON_AddStringToObject(r, "model_type", m2 ? "mamba2" : "mamba");
    cJSON_AddNumberToObject(r, "hidden_size", c->d_model);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layer);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "state_size", c->d_state);
    cJSON_AddNumberToObject(r, "conv_kernel", c->d_conv);
    cJSON_AddNumberToObject(r, "expand", (double)c->d_inner / c->d_model);
    if (m2) {
        cJSON_AddNumberToObject(r, "num_heads", c->n_heads);
        cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(r, "n_groups", c->n_groups);
        cJSON_AddNumberToObject(r, "chunk_size", c->chunk_size);
        cJSON *lim = cJSON_CreateArray();
        cJSON_AddItemToArray(lim, limit_item(c->dt_limit_min));
        cJSON_AddItemToArray(lim, limit_item(c->dt_limit_max));
        cJSON_AddItemToObject(r, "time_step_limit", lim);
        cJSON_AddBoolToObject(r, "norm_before_gate", c->norm_before_gate);
        cJSON_AddBoolToObject(r, "rms_norm", 1);
    } else {
        cJSON_AddNumberToObject(r, "intermediate_size", c->d_inner);
        cJSON_AddNumberToObject(r, "time_step_rank", c->dt_rank);
    }
    cJSON_AddBoolToObject(r, "use_conv_bias", c->conv_bias);
    cJSON_AddBoolToObject(r, "use_bias", c->proj_bias);
    cJSON_AddItemToObject(r, "layer_norm_epsilon", float_item(c->norm_eps));
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_embeddings);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    if (!s) mq_die("out of memory serializing a config");
    return s;
}

const char *cfg_arch_name(mq_arch a) { return a == MQ_MAMBA1 ? "mamba1" : "mamba2"; }
