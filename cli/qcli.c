/* Helpers shared by the commands that quantize (see qcli.h), and the quantization stage of
 * `mambaq run`: calibrate (with the recipe's transforms, so quantize needs no extra pass), quantize,
 * validate the artifact, evaluate it by simulation. */
#include "cli/qcli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cmds.h"
#include "cli/eval.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/hash.h"
#include "core/progress.h"

const char *const q_cli_q2_opts[Q_CLI_NQ2_OPTS] = {"--bits", "--weight-method", "--group-size", "--no-cluster", "--no-state-groups"};

int q_cli_bits(const char *name, int *wbits, int *abits) {
    if (!strcmp(name, "w8a8")) *wbits = 8, *abits = 8;
    else if (!strcmp(name, "w4a8")) *wbits = 4, *abits = 8;
    else if (!strcmp(name, "w4a16")) *wbits = 4, *abits = 16;
    else return -1;
    return 0;
}

/* Fills o from the option table; exits 2 on invalid values. */
void q_cli_options(const cli_opt *opts, q_options *o) {
    q_options_default(o);
    if (q_method_from_name(cli_get(opts, "--method"), &o->method)) {
        fprintf(stderr, "mambaq: --method: %s\n", mq_errmsg());
        exit(2);
    }
    o->percentile = cli_double(opts, "--percentile", 1e-9, 100);
    if (q_gran_from_name(cli_get(opts, "--weight-granularity"), &o->weight_gran)) {
        fprintf(stderr, "mambaq: --weight-granularity: %s\n", mq_errmsg());
        exit(2);
    }
    o->quantize_embedding = cli_flag(opts, "--quantize-embedding");
    o->quantize_head = cli_flag(opts, "--quantize-head") || o->quantize_embedding;   /* the int8 embedding is the tied lm_head */
    for (int i = 0; i < Q_CLI_NQ2_OPTS; i++)
        if (o->method != Q_QUAMBA2 && cli_flag(opts, q_cli_q2_opts[i])) {
            fprintf(stderr, "mambaq: %s belongs to --method quamba2 (method %s is W8A8 with its own options)\n", q_cli_q2_opts[i],
                    q_method_name(o->method));
            exit(2);
        }
    const char *bits = cli_get(opts, "--bits"), *wm = cli_get(opts, "--weight-method");
    if (q_cli_bits(bits, &o->wbits, &o->abits)) {
        fprintf(stderr, "mambaq: --bits: '%s' is not w8a8, w4a8 or w4a16\n", bits);
        exit(2);
    }
    if (strcmp(wm, "gptq") && strcmp(wm, "rtn")) {
        fprintf(stderr, "mambaq: --weight-method: '%s' is not gptq or rtn\n", wm);
        exit(2);
    }
    o->gptq = !strcmp(wm, "gptq");
    o->group_size = (int)cli_int(opts, "--group-size", -1, 1 << 20);
    if (o->group_size == 0) {
        fprintf(stderr, "mambaq: --group-size: 0 is not a size (-1: one scale per row)\n");
        exit(2);
    }
    o->cluster = !cli_flag(opts, "--no-cluster");
    o->state_groups = !cli_flag(opts, "--no-state-groups");
}

/* The name of the file or folder path names ("a/b/name/", "name/./" -> "name") into buf. */
static void base_name(const char *path, char *buf, size_t n) {
    char abs[PATH_MAX];
    fio_path_name(realpath(path, abs) ? abs : path, buf, n);
}

/* Provenance of an artifact made from model_dir and the stats file: hashes always, and the file
 * names; whole paths (which differ between hosts and checkouts, so two identical artifacts would
 * differ) only with record_paths. */
void q_cli_provenance(const q_cstats *cs, const char *model_dir, int record_paths, art_provenance *p) {
    memset(p, 0, sizeof *p);
    const char *v;
    char abs[PATH_MAX];
    if (record_paths) {
        snprintf(p->source_model, sizeof p->source_model, "%s", realpath(model_dir, abs) ? abs : model_dir);
        snprintf(p->stats_file, sizeof p->stats_file, "%s", realpath(cs->path, abs) ? abs : cs->path);
        if ((v = calib_stats_meta(cs->cs, "data.path"))) snprintf(p->calib_data, sizeof p->calib_data, "%s", v);
    } else {
        base_name(model_dir, p->source_model, sizeof p->source_model);
        base_name(cs->path, p->stats_file, sizeof p->stats_file);
        if ((v = calib_stats_meta(cs->cs, "data.path"))) base_name(v, p->calib_data, sizeof p->calib_data);
    }
    if ((v = calib_stats_meta(cs->cs, "model.weights_sha256"))) snprintf(p->source_hash, sizeof p->source_hash, "%s", v);
    if ((v = calib_stats_meta(cs->cs, "data.sha256"))) snprintf(p->calib_data_hash, sizeof p->calib_data_hash, "%s", v);
    long samples = (v = calib_stats_meta(cs->cs, "calib.samples")) ? atol(v) : 0;
    long seqlen = (v = calib_stats_meta(cs->cs, "calib.seqlen")) ? atol(v) : 0;
    p->calib_samples = samples;
    p->calib_tokens = samples * seqlen;
    snprintf(p->tool_version, sizeof p->tool_version, "%s", MQ_VERSION);
}

/* Does the file at path have sha256 want? (no error left behind either way) */
static int has_hash(const char *path, const char *want) {
    char hex[HASH_HEX_LEN];
    int ok = !hash_file(path, hex) && !strcmp(hex, want);
    mq_clear_error();
    return ok;
}

int q_cli_calib_data(q_cstats *cs, const char *given) {
    const char *rec = calib_stats_meta(cs->cs, "data.path"), *want = calib_stats_meta(cs->cs, "data.sha256");
    if (!rec || !want) return mq_fail("%s: metadata lacks data.path / data.sha256: cannot repeat the calibration windows", cs->path);
    char name[1024], abs[PATH_MAX], hex[HASH_HEX_LEN];
    fio_path_name(rec, name, sizeof name); /* the recorded path or name, no look-up */
    if (given) {
        if (hash_file(given, hex)) return mq_fail_ctx("--calib %s", given);
        if (strcmp(hex, want))
            return mq_fail("--calib %s: sha256 %.16s..., but %s was calibrated on %s with sha256 %.16s...: not the same data",
                           given, hex, cs->path, name, want);
        snprintf(cs->data, sizeof cs->data, "%s", realpath(given, abs) ? abs : given);
        return 0;
    }
    char tried[2 * PATH_MAX + 200] = "";
    size_t k = 0;
    if (rec[0] == '/') {
        if (has_hash(rec, want)) {
            snprintf(cs->data, sizeof cs->data, "%s", rec);
            return 0;
        }
        k += (size_t)snprintf(tried + k, sizeof tried - k, "not at the recorded %s (missing or changed)", rec);
    }
    char rel[1100];
    snprintf(rel, sizeof rel, "datasets/%s", name);
    const char *sh = name[0] && strcmp(name, ".") && strcmp(name, "..") ? cli_default_path(rel) : NULL;
    if (sh && has_hash(sh, want)) {
        snprintf(cs->data, sizeof cs->data, "%s", sh);
        return 0;
    }
    if (k < sizeof tried)
        snprintf(tried + k, sizeof tried - k, "%s%s %s%s", k ? ", " : "", sh ? "a different" : "no", sh ? sh : "<shared>/datasets/",
                 sh ? "" : name);
    return mq_fail("%s: cannot find the calibration data it was made from, %s (sha256 %.16s...), to repeat its calibration windows "
                   "(%s); pass --calib FILE naming that data", cs->path, name, want, tried);
}

/* An existing stats file can be reused when it is for these weights, this data file, these window
 * counts, and already carries the recipe's statistics (no extra pass). */
static int stats_reusable(const char *path, const q_run_spec *s, const mq_config *cfg) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    q_cstats cs;
    if (q_cstats_open(&cs, path, s->model, cfg)) return 0;
    char hex[HASH_HEX_LEN];
    const char *dh = calib_stats_meta(cs.cs, "data.sha256"), *ns = calib_stats_meta(cs.cs, "calib.samples"),
               *sl = calib_stats_meta(cs.cs, "calib.seqlen"), *seed = calib_stats_meta(cs.cs, "calib.seed");
    int ok = dh && ns && sl && !hash_file(s->calib_data, hex) && !strcmp(hex, dh) && atoi(ns) == s->samples &&
             atoi(sl) == s->seqlen && seed && !strcmp(seed, "none") && !q_cstats_missing(&cs, &s->opt);
    q_cstats_close(&cs);
    return ok;
}

int q_cli_calibrate(const q_cal_spec *s, const q_options *o, const char *stats_out) {
    mq_model m;
    if (ssm_load(s->model, &m)) return -1;
    calib_options co;
    calib_defaults(&co);
    co.model_dir = s->model;
    co.data_path = s->data;
    co.tokenizer_path = s->tokenizer;
    co.field = s->field;
    co.out_path = stats_out;
    co.samples = s->samples;
    co.seqlen = s->seqlen;
    co.quiet = !s->progress;   /* core/progress: a bar on a terminal, a line every few seconds in logs */
    co.tool = "mambaq " MQ_VERSION;
    co.record_paths = s->record_paths;
    co.ntransforms = q_cstats_transforms(&m, o, co.transforms);
    if (s->progress)
        fprintf(stderr, "calibrating %s on %d x %d tokens of %s (transforms of %s)\n", s->model, s->samples, s->seqlen, s->data,
                q_method_name(o->method));
    calib_result cr;
    int rc = calib_run(&co, &cr);
    ssm_free(&m);
    return rc ? mq_fail_ctx("calibration") : 0;
}

int q_cli_quantize(const char *model, const char *stats, const char *calib_data, const char *tokenizer, const q_options *o,
                   const char *out, int force, int record_paths, int progress, const char *stats_file_note, int *extra_pass) {
    *extra_pass = 0;
    mq_config cfg;
    if (cfg_load(model, &cfg)) return -1;
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", model);
    q_cstats cs;
    if (q_cstats_open(&cs, stats, model, &cfg)) return -1;   /* the values checked too (calib_stats_check) */
    if (progress) fprintf(stderr, "loading %s\n", model);
    mq_model m;
    if (ssm_load(model, &m)) {
        q_cstats_close(&cs);
        return -1;
    }
    int rc = 0, missing = q_cstats_missing(&cs, o), hessians = q_big_wbits(o) == 4 && o->gptq;
    /* the passes repeat the stats file's windows: find its data (a --calib FILE is checked anyway) */
    if ((missing || hessians || calib_data) && q_cli_calib_data(&cs, calib_data)) {
        q_cstats_close(&cs);
        ssm_free(&m);
        return -1;
    }
    if (missing) {
        *extra_pass = 1;
        if (progress)
            fprintf(stderr, "extra pass: %s lacks%s%s%s%s%s (calib ran without the transforms of this recipe); "
                            "repeating its calibration windows\n", stats,
                    missing & 1 ? " the in_proj input statistics of this recipe" : "", (missing & 1) && (missing & 6) ? "," : "",
                    missing & 2 ? " the rotated out_proj input statistics" : "", (missing & 2) && (missing & 4) ? "," : "",
                    missing & 4 ? " the lm_head input statistics of this recipe" : "");
        rc = q_cstats_fused_pass(&cs, &m, tokenizer, progress);
    }
    q_stats qs = q_cstats_iface(&cs);
    q_hessians hess = {0};
    if (!rc && hessians) {
        /* GPTQ: the Hessians of the int4 linears' inputs, from the same calibration windows */
        if (progress) fprintf(stderr, "Hessian pass for GPTQ over the calibration windows (at most %d tokens)\n", Q_HESS_MAX_TOKENS);
        rc = q_cstats_hessian_pass(&cs, &m, tokenizer, o, progress, &hess);
        if (!rc) qs.hess = &hess;
    }
    if (progress && !rc) fprintf(stderr, "quantizing (%s) into %s\n", q_method_name(o->method), out);
    q_model qm;
    if (!rc && (rc = q_quantize(&m, &qs, o, &qm))) mq_fail_ctx("quantizing %s with the statistics of %s", model, stats);
    q_hessians_free(&hess);
    ssm_free(&m);
    if (!rc) {
        art_provenance pv;
        q_cli_provenance(&cs, model, record_paths, &pv);
        if (stats_file_note) snprintf(pv.stats_file, sizeof pv.stats_file, "%s", stats_file_note);
        rc = art_write(out, &qm, &pv, cfg_path, tokenizer, force);
        q_model_free(&qm);
    }
    q_cstats_close(&cs);
    return rc;
}

int q_cli_run_prepare(const q_run_spec *s, q_run_result *r) {
    memset(r, 0, sizeof *r);
    mq_config cfg;
    if (cfg_load(s->model, &cfg)) return -1;
    char base[1024], dir[4096];
    base_name(s->model, base, sizeof base);   /* "models/x/" is x: never a path out of --out */
    if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
        return mq_fail("%s: cannot name a folder after this model path; give the model folder by its name", s->model);
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", s->out_dir, base) >= sizeof dir) return mq_fail("path too long: %s", s->out_dir);
    if (fio_mkdir_p(dir)) return -1;   /* in C: no shell ever sees a path */
    snprintf(r->stats, sizeof r->stats, "%s/stats.safetensors", dir);
    snprintf(r->artifact, sizeof r->artifact, "%s/%s", dir, q_method_name(s->opt.method));
    /* stats.safetensors is reused when it matches, else written (replacing one only with --force);
     * the artifact is replaced with --force only */
    r->stats_reused = stats_reusable(r->stats, s, &cfg);
    if (!s->force && !r->stats_reused && fio_check_out(r->stats, 0, 0))
        return mq_fail_ctx("run --out %s: the stats file does not match this run", s->out_dir);
    if (art_check_out(r->artifact, s->force)) return mq_fail_ctx("run --out %s", s->out_dir);
    return 0;
}

int q_cli_run(const q_run_spec *s, q_run_result *r) {
    if (q_cli_run_prepare(s, r)) return -1;

    /* 1. calibration, with the transforms of the recipe */
    double t0 = prog_now();
    if (r->stats_reused) {
        if (s->progress) fprintf(stderr, "calib: reusing %s (same weights, data, windows and transforms)\n", r->stats);
    } else {
        q_cal_spec cal = {.model = s->model, .data = s->calib_data, .tokenizer = s->tokenizer, .samples = s->samples,
                          .seqlen = s->seqlen, .progress = 1};
        if (q_cli_calibrate(&cal, &s->opt, r->stats)) return -1;
    }
    r->calib_seconds = prog_now() - t0;

    /* 2. quantization */
    t0 = prog_now();
    int extra;
    if (q_cli_quantize(s->model, r->stats, s->calib_data, s->tokenizer, &s->opt, r->artifact, s->force, 0, s->progress, NULL, &extra)) return -1;
    r->quantize_seconds = prog_now() - t0;

    /* 3. validation (what mambaq inspect checks) */
    art_artifact a;
    if (art_open(r->artifact, &a)) return mq_fail_ctx("the artifact does not validate");
    r->artifact_bytes = a.model_bytes;
    r->fp16_bytes = art_fp16_params(&a.qm.cfg) * 2;
    r->method = q_method_name(a.qm.opt.method);
    art_close(&a);

    /* 4. simulated evaluation on the same protocol as the FP32 one */
    fprintf(stderr, "run: evaluating %s (simulated on the CPU) on %s\n", r->artifact, s->eval_data);
    eval_spec es = {.model = r->artifact, .device = "cpu", .data = s->eval_data, .tokenizer = s->tokenizer,
                    .window = s->window, .windows = s->windows, .progress = s->progress};
    eval_result er;
    if (eval_run(&es, &er)) return mq_fail_ctx("simulated evaluation of %s", r->artifact);
    r->ppl = er.ppl;
    r->ppl_err = er.ppl_err;
    r->eval_seconds = er.seconds;
    snprintf(r->forward, sizeof r->forward, "%s", er.forward);
    return 0;
}
