/* mambaq stats: print a calibration stats file (from mambaq calib) as a per-layer table of absmax,
 * p99.95, p99.999 and their EMAs, plus the metadata that says how it was made; --json for tools.
 * Exits 1 when the values fail the checks quantize applies (calib_stats_check). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/calib.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/qcli.h"
#include "core/err.h"

static const char *meta_keys[] = {
    "format", "format_version", "tool", "model.path", "model.arch", "model.config", "model.weights_sha256",
    "data.path", "data.sha256", "data.tokens", "data.field", "tokenizer.path", "tokenizer.sha256", "calib.samples",
    "calib.seqlen", "calib.batch", "calib.device", "calib.gpu", "calib.precision", "calib.percentiles", "calib.seed", "calib.windows", "calib.ema_alpha",
    "calib.percentile_def", "calib.hist", "calib.transforms"};
#define NMETA (int)(sizeof meta_keys / sizeof meta_keys[0])

/* "backbone.layers.12.mixer.x_proj:input" -> layer 12, role "x_proj:input"; others layer -1. */
static int split_name(const char *name, const char **role) {
    int layer = -1, off = 0;
    if (sscanf(name, "backbone.layers.%d.mixer.%n", &layer, &off) == 1 && off > 0) { *role = name + off; return layer; }
    *role = name;
    return -1;
}

static void cell(const calib_stats *s, const char *name, double pct, int ema, char *buf, size_t n) {
    float v;
    if (calib_stats_percentile(s, name, pct, ema, &v) == 0) snprintf(buf, n, "%.6g", v);
    else snprintf(buf, n, "-");
}

static void print_table(const calib_stats *s, const char *path) {
    printf("%s\n", path);
    for (int i = 0; i < NMETA; i++) {
        const char *v = calib_stats_meta(s, meta_keys[i]);
        if (v) printf("  %-22s %s\n", meta_keys[i], v);
    }
    printf("\n%-6s %-22s %12s %12s %12s %12s %12s\n", "layer", "activation", "absmax", "p99.95", "p99.999", "ema p99.95", "ema p99.999");
    for (int i = 0; i < calib_stats_count(s); i++) {
        const char *name = calib_stats_name(s, i), *role;
        int layer = split_name(name, &role);
        float amax = 0;
        calib_stats_absmax(s, name, &amax);
        char p1[32], p2[32], e1[32], e2[32], lay[16];
        cell(s, name, 99.95, 0, p1, sizeof p1);
        cell(s, name, 99.999, 0, p2, sizeof p2);
        cell(s, name, 99.95, 1, e1, sizeof e1);
        cell(s, name, 99.999, 1, e2, sizeof e2);
        if (layer >= 0) snprintf(lay, sizeof lay, "%d", layer);
        else snprintf(lay, sizeof lay, "-");
        printf("%-6s %-22s %12.6g %12s %12s %12s %12s\n", lay, role, amax, p1, p2, e1, e2);
    }
}

static cJSON *floats(const st_tensor *t) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; t && i < t->numel; i++) {
        float v;
        memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);
        char num[32];
        snprintf(num, sizeof num, "%.9g", v);   /* float precision, not 17 digits of double noise */
        cJSON_AddItemToArray(a, cJSON_CreateRaw(num));
    }
    return a;
}

/* A metadata value as JSON: a number when the whole text is one ("512"), a list of numbers for
 * calib.percentiles, else the text. */
static cJSON *meta_value(const char *key, const char *v) {
    char *end;
    double x = strtod(v, &end);
    const size_t kl = strlen(key);
    if (kl >= 6 && !strcmp(key + kl - 6, "sha256")) return cJSON_CreateString(v);   /* hex, never a number */
    if (*v && !*end && end != v && isfinite(x)) return cJSON_CreateNumber(x);
    if (!strcmp(key, "calib.percentiles")) {
        cJSON *a = cJSON_CreateArray();
        for (const char *p = v; *p;) {
            x = strtod(p, &end);
            if (end == p) { cJSON_Delete(a); return cJSON_CreateString(v); }
            cJSON_AddItemToArray(a, cJSON_CreateNumber(x));
            p = *end == ',' ? end + 1 : end;
        }
        return a;
    }
    return cJSON_CreateString(v);
}

static void print_json(const calib_stats *s, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "file", path);
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    for (int i = 0; i < NMETA; i++) {
        const char *v = calib_stats_meta(s, meta_keys[i]);
        if (v) cJSON_AddItemToObject(meta, meta_keys[i], meta_value(meta_keys[i], v));
    }
    cJSON *pct = cJSON_AddArrayToObject(root, "percentiles");
    for (int i = 0; i < calib_stats_npct(s); i++) cJSON_AddItemToArray(pct, cJSON_CreateNumber(calib_stats_pct(s, i)));
    cJSON *acts = cJSON_AddArrayToObject(root, "activations");
    for (int i = 0; i < calib_stats_count(s); i++) {
        const char *name = calib_stats_name(s, i), *role;
        int layer = split_name(name, &role);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "layer", layer);
        cJSON_AddStringToObject(o, "role", role);
        float amax = 0;
        calib_stats_absmax(s, name, &amax);
        char num[32];
        snprintf(num, sizeof num, "%.9g", amax);
        cJSON_AddRawToObject(o, "absmax", num);
        cJSON_AddItemToObject(o, "percentiles", floats(calib_stats_tensor(s, name, ".percentiles")));
        cJSON_AddItemToObject(o, "ema_percentiles", floats(calib_stats_tensor(s, name, ".ema_percentiles")));
        const st_tensor *h = calib_stats_tensor(s, name, ".absmax_per_head");
        if (h) cJSON_AddItemToObject(o, "absmax_per_head", floats(h));
        const st_tensor *g = calib_stats_tensor(s, name, ".absmax_per_group");
        if (g) cJSON_AddItemToObject(o, "absmax_per_group", floats(g));
        const st_tensor *ch = calib_stats_tensor(s, name, ".absmax_per_channel");
        if (ch) cJSON_AddItemToObject(o, "absmax_per_channel", floats(ch));
        cJSON_AddItemToArray(acts, o);
    }
    cli_json_print(root, 1);
}

int cmd_stats(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--stats", .metavar = "FILE", .help = "the stats file (mambaq calib)", .pos = 1},
        {.name = "--model", .metavar = "DIR", .help = "also check that the stats were made from this model's weights"},
        {.name = "--json", .help = "print JSON (metadata, percentile list, every activation's values) instead of the table"},
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq stats FILE [--json] [--model DIR]",
              "Prints a calibration stats file written by 'mambaq calib': how it was made (model and data hashes,\n"
              "options) and, per layer and activation, absmax, p99.95, p99.999 and their EMAs.",
              NULL, 0);
    const char *path = cli_need(opts, "stats", "--stats");
    /* the layout only: the values are shown, then checked */
    calib_stats *s = cli_get(opts, "--model") ? calib_stats_open(path, cli_get(opts, "--model")) : calib_stats_open_unchecked(path);
    if (!s) mq_die("%s", mq_errmsg());
    if (cli_flag(opts, "--json")) print_json(s, path);
    else print_table(s, path);
    /* after the table, so the values can be looked at: the checks quantize applies */
    int bad = calib_stats_check(s);
    if (bad) fprintf(stderr, "mambaq stats: invalid statistics: %s\n", mq_errmsg());
    calib_stats_close(s);
    return bad ? 1 : 0;
}
