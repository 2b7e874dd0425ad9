/* mambaq info: what a checkpoint directory holds: the parsed config, one line per tensor (name,
 * dtype, shape, file), the parameter count and every tensor holding NaN or Inf; then a full ssm_load,
 * so a bad checkpoint exits non-zero with the loader's message (file, tensor, expected vs found; NaN
 * or Inf in a tensor the model uses, with its index and value). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "core/cfg.h"
#include "core/err.h"
#include "core/st.h"
#include "ssm/model.h"

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* 15695040 -> "15,695,040" */
static const char *grouped(long long v, char *buf, size_t n) {
    char d[32];
    int len = snprintf(d, sizeof d, "%lld", v), k = 0;
    for (int i = 0; i < len && k + 2 < (int)n; i++) {
        if (i && (len - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = d[i];
    }
    buf[k] = 0;
    return buf;
}

static void print_config(const mq_config *c) {
    printf("config    %s\n", c->source);
    printf("arch      %s\n", cfg_arch_name(c->arch));
    printf("dims      d_model %d, n_layer %d, vocab %d, d_inner %d, d_state %d, d_conv %d\n", c->d_model, c->n_layer,
           c->vocab_size, c->d_inner, c->d_state, c->d_conv);
    if (c->arch == MQ_MAMBA1)
        printf("mamba1    dt_rank %d\n", c->dt_rank);
    else
        printf("mamba2    n_heads %d, head_dim %d, n_groups %d, chunk_size %d, dt_limit [%g, %g], norm_before_gate %s\n",
               c->n_heads, c->head_dim, c->n_groups, c->chunk_size, c->dt_limit_min, c->dt_limit_max,
               c->norm_before_gate ? "yes" : "no");
    printf("flags     conv_bias %s, proj_bias %s, tie_embeddings %s, norm_eps %g\n", c->conv_bias ? "yes" : "no",
           c->proj_bias ? "yes" : "no", c->tie_embeddings ? "yes" : "no", c->norm_eps);
    printf("derived   in_proj %d, conv_dim %d\n", cfg_in_proj_dim(c), cfg_conv_dim(c));
}

static void print_tensors(const st_file *f, int table) {
    int w = 4;
    for (int i = 0; i < st_count(f); i++) {
        int n = (int)strlen(st_get(f, i)->name);
        if (n > w) w = n;
    }
    if (table) printf("\n%-*s  %-5s  %-18s  %s\n", w, "name", "dtype", "shape", "file");
    long long params = 0;
    size_t bytes = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        char shape[128];
        int k = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim && k < (int)sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (k < (int)sizeof shape) snprintf(shape + k, sizeof shape - (size_t)k, "]");
        if (table) printf("%-*s  %-5s  %-18s  %s\n", w, t->name, mq_dtype_name(t->dtype), shape, base_name(t->file));
        params += t->numel;
        bytes += t->nbytes;
    }
    char g[32];
    printf("\n%d tensors, %s parameters, %.1f MB as stored (%s)\n", st_count(f), grouped(params, g, sizeof g),
           bytes / 1e6, base_name(st_path(f)));
}

/* Every float tensor holding NaN or Inf, named with its first bad index and value (printed, or added
 * to list for --json); their count. */
static int report_nonfinite(const st_file *f, cJSON *list) {
    int bad = 0;
    for (int i = 0; i < st_count(f); i++) {
        if (!st_check_finite(st_get(f, i))) continue;
        if (bad++ >= 20) continue;
        if (list) cJSON_AddItemToArray(list, cJSON_CreateString(mq_errmsg()));
        else printf("nonfinite %s\n", mq_errmsg());
    }
    if (bad > 20 && !list) printf("nonfinite ... and %d more tensors\n", bad - 20);
    mq_clear_error();
    return bad;
}

int cmd_info(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("checkpoint directory (config.json + model.safetensors or a sharded index; default: "
                  "<shared>/models/mamba1-proxy); an int8 artifact is summarized as by mambaq inspect"),
        {.name = "--no-tensors", .help = "print the config and the summary only, not the tensor table"},
        CLI_JSON,
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq info [MODEL] [--no-tensors] [--json]",
              "Prints a checkpoint's config, its tensors (name, dtype, shape, file) and parameter count, and checks\n"
              "that it loads: every tensor present with the shape the config implies, and nothing else.", NULL, 0);
    const char *dir = cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    if (!dir) { fprintf(stderr, "mambaq info: no MODEL given and <shared>/models/mamba1-proxy not found (" CLI_SHARED_HINT ")\n"); return 2; }
    const int json = cli_flag(opts, "--json");
    if (fwd_is_artifact(dir)) {   /* an artifact: what inspect says about it */
        char *args[] = {"inspect", (char *)dir, json ? "--json" : NULL, NULL};
        return cmd_inspect(json ? 3 : 2, args);
    }

    mq_config cfg;
    if (cfg_load(dir, &cfg)) { fprintf(stderr, "mambaq info: %s\n", mq_errmsg()); return 1; }
    st_file *f = st_open(dir);
    if (!f) { fprintf(stderr, "mambaq info: %s\n", mq_errmsg()); return 1; }
    const char *layout = st_find(f, "backbone.embeddings.weight") ? "transformers"
                         : st_find(f, "backbone.embedding.weight") ? "state-spaces" : "unknown";
    if (!json) {
        printf("model     %s\n", dir);
        printf("layout    %s (%s)\n", layout, base_name(st_path(f)));
        print_config(&cfg);
        print_tensors(f, !cli_flag(opts, "--no-tensors"));
    }
    long long params = 0;
    size_t bytes = 0;
    for (int i = 0; i < st_count(f); i++) params += st_get(f, i)->numel, bytes += st_get(f, i)->nbytes;
    const int ntensors = st_count(f);
    cJSON *nonfinite_list = json ? cJSON_CreateArray() : NULL;
    int nonfinite = report_nonfinite(f, nonfinite_list);
    st_close(f);

    mq_model m;
    if (ssm_load(dir, &m)) {
        fprintf(stderr, "mambaq info: invalid checkpoint: %s\n", mq_errmsg());
        return 1;
    }
    if (json) {
        char *cj = cfg_to_json(&cfg);
        cJSON *j = cJSON_CreateObject(), *c = cJSON_Parse(cj);
        free(cj);
        cJSON_AddStringToObject(j, "model", dir);
        cJSON_AddStringToObject(j, "arch", cfg_arch_name(cfg.arch));
        cJSON_AddStringToObject(j, "layout", layout);
        cJSON_AddNumberToObject(j, "tensors", ntensors);
        cJSON_AddNumberToObject(j, "params", (double)params);
        cJSON_AddNumberToObject(j, "bytes", (double)bytes);
        cJSON_AddBoolToObject(j, "valid", 1);
        cJSON_AddItemToObject(j, "nonfinite", nonfinite_list);   /* NaN/Inf in tensors the model does not use */
        if (c) cJSON_AddItemToObject(j, "config", c);
        cli_json_print(j, 1);
    } else {
        printf("valid     loads as a %s model: %d layers, vocab %d, %.1f MB as FP32\n", cfg_arch_name(m.cfg.arch),
               m.cfg.n_layer, m.cfg.vocab_size, m.arena_bytes / 1e6);
        /* the loader converts only the tensors the model uses, and refuses NaN/Inf in them */
        if (nonfinite)
            printf("note      %d tensor%s with NaN/Inf listed above %s not used by the model (e.g. a stored lm_head tied to the "
                   "embedding)\n", nonfinite, nonfinite > 1 ? "s" : "", nonfinite > 1 ? "are" : "is");
    }
    ssm_free(&m);
    return 0;
}
