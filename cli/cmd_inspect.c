/* mambaq inspect ARTIFACT [--json]: validate an int8 artifact (art_open) and print what it holds:
 * method and recipe, model shape, sizes and compression against FP16, provenance, and a per-layer
 * table of activation and weight scales. Exit 0 when valid, 1 (with the validator's message naming
 * the file and tensor) when not. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "export/art.h"

/* The weights of a layer in table order, with their column titles. */
static int layer_weights(const q_model *qm, int l, const q_weight **w, const char **title) {
    const q_layer *L = &qm->layers[l];
    int n = 0;
    w[n] = &L->in_proj, title[n++] = "in_proj";
    w[n] = &L->conv1d, title[n++] = "conv1d";
    if (qm->cfg.arch == MQ_MAMBA1) {
        w[n] = &L->x_proj, title[n++] = "x_proj";
        w[n] = &L->dt_proj, title[n++] = "dt_proj";
    }
    w[n] = &L->out_proj, title[n++] = "out_proj";
    return n;
}

static float wscale_max(const q_weight *w) {
    float m = 0;
    for (int i = 0; i < w->nscale; i++)
        if (w->scale[i] > m) m = w->scale[i];
    return m;
}

/* quamba2's options in words */
static void quamba2_line(const mq_config *c, const q_options *o, char *buf, size_t n) {
    char x[96], bc[64];
    if (o->abits == 16) snprintf(x, sizeof x, "float"), snprintf(bc, sizeof bc, "float");
    else {
        if (q_uses_cluster(c, o)) snprintf(x, sizeof x, "4 x 4 clustered scales per SSD group");
        else snprintf(x, sizeof x, "one scale (percentile %g clip)", o->percentile);
        snprintf(bc, sizeof bc, "%s", c->arch == MQ_MAMBA1 ? "the x_proj output's scale" : q_uses_state_groups(c, o) ? "one scale per SSD group" : "one scale");
    }
    if (q_big_wbits(o) == 4)
        snprintf(buf, n, "%s: int4 in_proj / out_proj%s by %s, group size %d (one scale per row where it does not divide); "
                 "ssm_x %s; B / C %s", o->abits == 16 ? "w4a16" : "w4a8", o->quantize_head ? " / lm_head" : "", o->gptq ? "GPTQ" : "RTN",
                 o->group_size, x, bc);
    else
        snprintf(buf, n, "w8a8: ssm_x %s; B / C %s", x, bc);
}

static void recipe_line(const q_model *qm, char *buf, size_t n) {
    const q_options *o = &qm->opt;
    size_t k = (size_t)snprintf(buf, n, "%s:", q_method_name(o->method));
    if (q_uses_cluster(&qm->cfg, o) || (o->method == Q_QUAMBA2 && o->abits == 16)) { /* quamba2: below */ }
    else if (q_method_uses_percentile(o->method)) k += (size_t)snprintf(buf + k, n - k, " percentile %g clip on ssm_x;", o->percentile);
    else k += (size_t)snprintf(buf + k, n - k, " absmax clips;");
    if (qm->hadamard_n && k < n)
        k += (size_t)snprintf(buf + k, n - k, " Hadamard %d = %d x 2^%d on the out_proj input (fused into out_proj);",
                              qm->hadamard_n, qm->hadamard_m, qm->hadamard_k);
    if (q_method_fuses_norm(o->method) && k < n) k += (size_t)snprintf(buf + k, n - k, " RMSNorm fused into in_proj;");
    if (qm->resid_n && k < n)
        k += (size_t)snprintf(buf + k, n - k, " residual stream rotated by Hadamard %d = %d x 2^%d (embedding, in_proj, out_proj, "
                              "lm_head; norm_f fused into the lm_head);", qm->resid_n, qm->resid_m, qm->resid_k);
    if (k < n) k += (size_t)snprintf(buf + k, n - k, " int8 weights per %s", o->weight_gran == Q_GRAN_CHANNEL ? "output channel" : "tensor");
    if (o->method == Q_QUAMBA2 && k + 2 < n) {
        k += (size_t)snprintf(buf + k, n - k, "; ");
        quamba2_line(&qm->cfg, o, buf + k, n - k);
    }
}

/* Roles with a scale, in table order. */
static int roles_of(const q_model *qm, mq_act_role *roles) {
    int n = 0;
    for (int r = 0; r < MQ_ACT_NROLES; r++)
        if (r != MQ_ACT_LM_HEAD_IN && q_role_quantized(qm->cfg.arch, &qm->opt, (mq_act_role)r)) roles[n++] = (mq_act_role)r;
    return n;
}

static void print_text(const art_artifact *a) {
    const q_model *qm = &a->qm;
    const mq_config *c = &qm->cfg;
    char b1[160], line[768];
    size_t fp16 = art_fp16_params(c) * 2;
    printf("artifact   %s  (%s v%d, valid)\n", a->dir, ART_FORMAT, a->format_version);
    const int untied_here = c->tie_embeddings && q_head_untied(c, qm->opt.method);
    printf("model      %s, %d layers, d_model %d, d_inner %d, d_state %d, vocab %d%s\n", cfg_arch_name(c->arch),
           c->n_layer, c->d_model, c->d_inner, c->d_state, c->vocab_size,
           untied_here ? ", lm_head tied in the source, untied by the residual rotation" : c->tie_embeddings ? ", tied lm_head" : "");
    recipe_line(qm, line, sizeof line);
    printf("method     %s\n", line);
    printf("head       %s%s\n", qm->opt.quantize_embedding ? "embedding int8 (one scale per row), lm_head int8 (weight and input)"
                              : qm->opt.quantize_head ? "lm_head int8 (weight and input), embedding FP16" : "embedding and lm_head FP16",
           untied_here && !qm->opt.quantize_head ? " (lm_head.weight stored: norm_f and H are in it, the embedding has H only)" : "");
    printf("size       model.safetensors %s (%zu int4, %zu int8, %zu FP16, %zu FP32 scale elements)\n",
           cli_size_vs_fp16((double)a->model_bytes, (double)fp16, b1, sizeof b1), a->int4_params, a->int8_params, a->float_params, a->scale_params);
    printf("source     %s (weights sha256 %.16s...)\n", a->prov.source_model, a->prov.source_hash);
    printf("calib      %s: %ld samples, %ld tokens of %s (sha256 %.16s...)\n", a->prov.stats_file, a->prov.calib_samples,
           a->prov.calib_tokens, a->prov.calib_data, a->prov.calib_data_hash);
    printf("tool       mambaq %s\n\n", a->prov.tool_version);

    mq_act_role roles[MQ_ACT_NROLES];
    int nr = roles_of(qm, roles);
    if (!nr) printf("activation scales: none (activations stay float)\n");
    else printf("activation scales (s = clip / 127)%s%s\nlayer", c->arch == MQ_MAMBA2 ? "; conv_in = x / B / C" : "",
                qm->opt.method == Q_QUAMBA2 ? "; quamba2's ssm_x, B, C: the largest of their scales" : "");
    for (int i = 0; i < nr; i++) printf(" %*s", roles[i] == MQ_ACT_CONV_IN && c->arch == MQ_MAMBA2 ? 32 : 11, q_role_key(c->arch, roles[i]));
    if (nr) printf("\n");
    for (int l = 0; l < c->n_layer && nr; l++) {
        printf("%5d", l);
        for (int i = 0; i < nr; i++) {
            const float *s = qm->layers[l].act_scale[roles[i]];
            if (q_role_parts(c->arch, roles[i]) == 3) printf(" %10.4g/%10.4g/%10.4g", s[0], s[1], s[2]);
            else printf(" %11.4g", q_layer_scale_max(qm, l, roles[i], 0));
        }
        printf("\n");
    }
    const q_weight *w[5];
    const char *title[5];
    int nw = layer_weights(qm, 0, w, title);
    printf("\nweight scales (%s)\nlayer", qm->opt.weight_gran == Q_GRAN_CHANNEL ? "max over output channels" : "per tensor");
    for (int i = 0; i < nw; i++) printf(" %11s", title[i]);
    printf("\n");
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights(qm, l, w, title);
        printf("%5d", l);
        for (int i = 0; i < nw; i++) printf(" %11.4g", wscale_max(w[i]));
        printf("\n");
    }
    if (qm->opt.quantize_head)
        printf("lm_head: input scale %.4g, weight scale %.4g%s\n", qm->lm_head_in_scale, wscale_max(&qm->lm_head_q),
               qm->opt.weight_gran == Q_GRAN_CHANNEL ? " (max)" : "");
}

static void print_json(const art_artifact *a) {
    const q_model *qm = &a->qm;
    const mq_config *c = &qm->cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "artifact", a->dir);
    cJSON_AddBoolToObject(j, "valid", 1);
    cJSON_AddStringToObject(j, "format", ART_FORMAT);
    cJSON_AddNumberToObject(j, "format_version", a->format_version);
    cJSON_AddStringToObject(j, "method", q_method_name(qm->opt.method));
    cJSON_AddStringToObject(j, "arch", cfg_arch_name(c->arch));
    cJSON_AddNumberToObject(j, "n_layer", c->n_layer);
    cJSON_AddStringToObject(j, "weight_granularity", q_gran_name(qm->opt.weight_gran));
    if (q_method_uses_percentile(qm->opt.method)) cJSON_AddNumberToObject(j, "percentile", qm->opt.percentile);
    else cJSON_AddNullToObject(j, "percentile");
    cJSON_AddNumberToObject(j, "hadamard_order", qm->hadamard_n);
    cJSON_AddNumberToObject(j, "residual_rotation_order", qm->resid_n);
    cJSON_AddBoolToObject(j, "rmsnorm_fused", q_method_fuses_norm(qm->opt.method));
    cJSON_AddBoolToObject(j, "norm_f_fused", qm->resid_n != 0);
    cJSON_AddBoolToObject(j, "lm_head_tied_to_embedding", !q_head_untied(c, qm->opt.method));
    cJSON_AddBoolToObject(j, "quantize_head", qm->opt.quantize_head);
    cJSON_AddBoolToObject(j, "quantize_embedding", qm->opt.quantize_embedding);
    cJSON_AddNumberToObject(j, "model_bytes", (double)a->model_bytes);
    cJSON_AddNumberToObject(j, "fp16_bytes", (double)art_fp16_params(c) * 2);
    cJSON_AddNumberToObject(j, "compression_vs_fp16", (double)art_fp16_params(c) * 2 / (double)a->model_bytes);
    cJSON_AddNumberToObject(j, "int8_params", (double)a->int8_params);
    cJSON_AddNumberToObject(j, "int4_params", (double)a->int4_params);
    cJSON_AddNumberToObject(j, "fp16_params", (double)a->float_params);
    if (qm->opt.method == Q_QUAMBA2) {
        const q_options *o = &qm->opt;
        cJSON *q = cJSON_AddObjectToObject(j, "quamba2");
        cJSON_AddNumberToObject(q, "weight_bits", q_big_wbits(o));
        cJSON_AddNumberToObject(q, "activation_bits", o->abits);
        cJSON_AddNumberToObject(q, "group_size", o->group_size);
        cJSON_AddStringToObject(q, "weight_method", q_big_wbits(o) == 4 ? (o->gptq ? "gptq" : "rtn") : "absmax");
        cJSON_AddBoolToObject(q, "cluster", o->cluster);
        cJSON_AddBoolToObject(q, "state_groups", o->state_groups);
    }
    cJSON *src = cJSON_AddObjectToObject(j, "source_model");
    cJSON_AddStringToObject(src, "path", a->prov.source_model);
    cJSON_AddStringToObject(src, "hash", a->prov.source_hash);
    cJSON *cal = cJSON_AddObjectToObject(j, "calibration");
    cJSON_AddStringToObject(cal, "stats_file", a->prov.stats_file);
    cJSON_AddStringToObject(cal, "data", a->prov.calib_data);
    cJSON_AddStringToObject(cal, "data_hash", a->prov.calib_data_hash);
    cJSON_AddNumberToObject(cal, "samples", (double)a->prov.calib_samples);
    cJSON_AddNumberToObject(cal, "tokens", (double)a->prov.calib_tokens);
    cJSON *layers = cJSON_AddArrayToObject(j, "layers");
    mq_act_role roles[MQ_ACT_NROLES];
    int nr = roles_of(qm, roles);
    for (int l = 0; l < c->n_layer; l++) {
        cJSON *L = cJSON_CreateObject(), *act = cJSON_AddObjectToObject(L, "activation_scales");
        cJSON *wt = cJSON_AddObjectToObject(L, "weight_scale_max");
        cJSON_AddNumberToObject(L, "layer", l);
        for (int i = 0; i < nr; i++) {
            const float *s = qm->layers[l].act_scale[roles[i]];
            int np = q_role_parts(c->arch, roles[i]);
            if (np == 1) cJSON_AddNumberToObject(act, q_role_key(c->arch, roles[i]), q_layer_scale_max(qm, l, roles[i], 0));
            else {
                cJSON *arr = cJSON_AddArrayToObject(act, q_role_key(c->arch, roles[i]));
                for (int p = 0; p < np; p++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(s[p]));
            }
        }
        const q_weight *w[5];
        const char *title[5];
        int nw = layer_weights(qm, l, w, title);
        for (int i = 0; i < nw; i++) cJSON_AddNumberToObject(wt, title[i], wscale_max(w[i]));
        cJSON_AddItemToArray(layers, L);
    }
    if (qm->opt.quantize_head) {
        cJSON *h = cJSON_AddObjectToObject(j, "lm_head");
        cJSON_AddNumberToObject(h, "input_scale", qm->lm_head_in_scale);
        cJSON_AddNumberToObject(h, "weight_scale_max", wscale_max(&qm->lm_head_q));
    }
    cli_json_print(j, 1);
}

int cmd_inspect(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--artifact", .metavar = "DIR", .help = "the artifact directory (mambaq quantize)", .pos = 1},
        {.name = "--model", .metavar = "DIR", .help = "same as --artifact", .alias_of = "--artifact"},
        CLI_JSON,
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq inspect ARTIFACT [--json]",
              "Validates an int8 artifact (every tensor, shape and scale) and summarizes it: method, sizes and\n"
              "compression vs FP16, provenance, per-layer activation and weight scales. Exit 1 if invalid.",
              NULL, 0);
    const char *pos[1] = {cli_need(opts, "inspect", "--artifact")};
    art_artifact a;
    if (art_open(pos[0], &a)) {
        if (cli_flag(opts, "--json")) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "artifact", pos[0]);
            cJSON_AddBoolToObject(j, "valid", 0);
            cJSON_AddStringToObject(j, "error", mq_errmsg());
            cli_json_print(j, 1);
        }
        fprintf(stderr, "mambaq inspect: invalid artifact: %s\n", mq_errmsg());
        return 1;
    }
    if (cli_flag(opts, "--json")) print_json(&a);
    else print_text(&a);
    art_close(&a);
    return 0;
}
