/* The CPU calibration runner (see calib.h for the sample windows, the file layout and the
 * metadata; the stats file itself is written and read in stats.c). Everything that can fail cheaply
 * (model, data length, tokenizer, output path) is checked before the first forward, so a long run
 * does not die at the end. */
#include "calib/calib.h"
#include "calib/gpu.h"
#include "ssm/backend.h"
#include "core/cfg.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/gpu.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the metadata records for path: the absolute path (record) or its base name ("a/b/name/",
 * "name/./" -> "name"), into buf. */
static const char *meta_path(const char *path, int record, char *buf, size_t n) {
    char abs[PATH_MAX];
    if (realpath(path, abs)) path = abs;
    if (record) snprintf(buf, n, "%s", path);
    else fio_path_name(path, buf, n);
    return buf;
}

void calib_defaults(calib_options *o) {
    memset(o, 0, sizeof *o);
    o->samples = 512;
    o->seqlen = 512;
    o->batch = 1;
    o->device = "cpu";
    o->npct = obs_default_npct;
    memcpy(o->pct, obs_default_pct, obs_default_npct * sizeof *o->pct);
    o->tool = "mambaq";
}

void calib_config_summary(const mq_config *c, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s d_model=%d n_layer=%d d_inner=%d d_state=%d d_conv=%d vocab=%d",
                     c->arch == MQ_MAMBA1 ? "mamba1" : "mamba2", c->d_model, c->n_layer, c->d_inner, c->d_state,
                     c->d_conv, c->vocab_size);
    if (k < 0 || (size_t)k >= n) return;
    if (c->arch == MQ_MAMBA1) snprintf(buf + k, n - k, " dt_rank=%d", c->dt_rank);
    else snprintf(buf + k, n - k, " n_heads=%d head_dim=%d n_groups=%d chunk_size=%d", c->n_heads, c->head_dim,
                  c->n_groups, c->chunk_size);
}

/* ---- windows ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int calib_windows(size_t ntokens, int seqlen, int samples, int seeded, uint64_t seed, size_t *starts,
                  const char *data_name) {
    if (seqlen < 1 || samples < 1) return mq_fail("calibration needs samples >= 1 and seqlen >= 1 (got %d x %d)", samples, seqlen);
    size_t nwin = ntokens / (size_t)seqlen;
    if (nwin < (size_t)samples)
        return mq_fail("%s: too short for calibration: %d samples x %d tokens need %zu tokens, found %zu "
                       "(enough for %zu samples); use a longer file or fewer --samples / a shorter --seqlen",
                       data_name ? data_name : "data", samples, seqlen, (size_t)samples * seqlen, ntokens, nwin);
    if (!seeded) {
        for (int i = 0; i < samples; i++) starts[i] = (size_t)i * seqlen;
        return 0;
    }
    size_t *perm = mq_malloc(nwin * sizeof *perm);
    for (size_t i = 0; i < nwin; i++) perm[i] = i;
    uint64_t st = seed;
    for (size_t i = nwin - 1; i > 0; i--) {
        size_t j = (size_t)(splitmix64(&st) % (uint64_t)(i + 1));
        size_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    for (int i = 0; i < samples; i++) starts[i] = perm[i] * (size_t)seqlen;
    free(perm);
    return 0;
}

/* ---- observers and the forward ---- */

/* Quamba's MambaSimple sets dt_proj.bias = None and passes the bias to the scan as delta_bias, so its
 * dt_proj:output is x_dt @ W^T without bias; the reference forward reports it with the bias. */
static int minus_dt_bias(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    const mq_model *m = ctx;
    const float *b = m->layers[layer].dt_proj_b;
    if (!b) return 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) x[(size_t)r * ld + c] -= b[c];
    return 0;
}

obs_set *calib_observers(const mq_model *m, const calib_options *o) {
    obs_set *s = obs_set_new(&m->cfg, o->pct, o->npct);
    if (!s) return NULL;
    if (m->cfg.arch == MQ_MAMBA1)
        obs_set_transform(s, MQ_ACT_DT, minus_dt_bias, (void *)m, "minus_dt_proj_bias");
    for (int i = 0; i < o->ntransforms; i++)
        obs_set_transform(s, o->transforms[i].role, o->transforms[i].fn, o->transforms[i].ctx, o->transforms[i].name);
    return s;
}

int calib_observe_cpu(const mq_model *m, const int32_t *tokens, const size_t *starts, int samples, int seqlen,
                      obs_set *s, int progress) {
    mq_hooks hooks = obs_set_hooks(s);
    be *b = be_open_model(m, BE_CPU_F32, 1, seqlen);
    if (!b) return -1;
    prog_bar bar;
    prog_start(&bar, "calib", "samples", samples, !progress);
    int rc = 0;
    for (int i = 0; i < samples && !rc; i++) {
        obs_begin_sample(s);
        rc = be_prefill(b, tokens + starts[i], 1, seqlen, NULL, &hooks, NULL);
        if (!rc) rc = obs_end_sample(s);
        if (rc) mq_fail_ctx("calibration sample %d (tokens %zu..%zu)", i, starts[i], starts[i] + seqlen - 1);
        prog_update(&bar, i + 1, (int64_t)(i + 1) * seqlen);
    }
    if (!rc) prog_finish(&bar);
    else if (progress && bar.tty && bar.drawn) fputc('\n', stderr);
    be_free(b);
    return rc;
}

/* Can we create files next to `path`? Checked before calibrating, with a real probe file, because
 * permissions alone do not tell (read-only mounts, root). */
static int check_writable(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return mq_fail("%s: output is a directory; expected a file name such as %s/stats.safetensors", path, path);
    size_t n = strlen(path) + 32;
    char *probe = mq_malloc(n);
    snprintf(probe, n, "%s.probe.%d", path, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    int rc = 0;
    if (fd < 0) rc = mq_fail("%s: cannot write the stats file here: %s", path, strerror(errno));
    else { close(fd); unlink(probe); }
    free(probe);
    return rc;
}

/* A transform the GPU path cannot apply: one with a host fn and no GPU version (NULL when none). */
static const calib_transform *host_only_transform(const calib_options *o) {
    for (int i = 0; i < o->ntransforms; i++)
        if (o->transforms[i].fn && !o->gpu_transforms[i]) return &o->transforms[i];
    return NULL;
}

/* "cpu" or "cuda" for o->device ("auto": cuda when a GPU is usable and every transform has a GPU
 * version); NULL + message when the device asked for cannot run this calibration. */
static const char *resolve_device(const calib_options *o) {
    const char *dev = o->device ? o->device : "cpu", *why = NULL;
    if (!strcmp(dev, "auto")) return gpu_available(NULL) && !host_only_transform(o) ? "cuda" : "cpu";
    if (!strcmp(dev, "cpu")) return "cpu";
    if (strcmp(dev, "cuda")) { mq_fail("calib: device '%s': expected cpu, cuda or auto", dev); return NULL; }
    if (!gpu_available(&why)) {
        mq_fail("calib: device 'cuda' is not available: %s; use --device cpu", why ? why : "no GPU");
        return NULL;
    }
    const calib_transform *t = host_only_transform(o);
    if (t) {
        mq_fail("calib: the transform '%s' for %s has no GPU version (calib_options.gpu_transforms); use --device cpu",
                t->name ? t->name : "custom", ssm_act_role_name(t->role));
        return NULL;
    }
    return "cuda";
}

int calib_run(const calib_options *o, calib_result *res) {
    memset(res, 0, sizeof *res);
    if (!o->model_dir || !o->data_path || !o->out_path) return mq_fail("calib: model, data and output paths are required");
    const char *device = resolve_device(o);
    if (!device) return -1;
    const int cuda = !strcmp(device, "cuda");
    const int nbatch = o->batch > 0 ? o->batch : cuda ? 8 : 1;
    res->device = device;
    res->batch = nbatch;
    if (check_writable(o->out_path)) return -1;

    /* cheap checks first: config, tokens and their count, before loading and hashing the weights */
    mq_config cfg;
    if (cfg_load(o->model_dir, &cfg)) return -1;
    mq_model m;
    int loaded = 0, rc = -1;
    int32_t *ids = NULL;
    size_t nids = 0, *starts = NULL;
    obs_set *s = NULL;
    tok_tokenizer *tok = NULL;
    char tok_sha[HASH_HEX_LEN] = "";
    int is_ids = calib_has_suffix(o->data_path, ".bin") || calib_has_suffix(o->data_path, ".ids");
    if (!is_ids) {
        if (!o->tokenizer_path) { mq_fail("calib: %s is text and needs a tokenizer (tokenizer.json)", o->data_path); goto out; }
        if (!(tok = tok_load(o->tokenizer_path))) goto out;
        if (hash_file(o->tokenizer_path, tok_sha)) goto out;
    }
    ds_options dopt = {.field = o->field ? o->field : "text", .replace_invalid = 0};
    if (ds_tokens(o->data_path, &dopt, tok, &ids, &nids)) goto out;
    for (size_t i = 0; i < nids; i++)
        if (ids[i] < 0 || ids[i] >= cfg.vocab_size) {
            mq_fail("%s: token %zu is id %d, outside the model's vocabulary [0, %d)", o->data_path, i, ids[i], cfg.vocab_size);
            goto out;
        }
    starts = mq_malloc((size_t)o->samples * sizeof *starts);
    if (calib_windows(nids, o->seqlen, o->samples, o->seeded, o->seed, starts, o->data_path)) goto out;
    if (hash_file(o->data_path, res->data_sha256)) goto out;
    if (ssm_load(o->model_dir, &m)) goto out;
    loaded = 1;
    if (hash_model_weights(o->model_dir, res->model_sha256)) goto out;
    if (!(s = calib_observers(&m, o))) goto out;

    if (cuda) {
        if (calib_observe_gpu(&m, ids, starts, o->samples, o->seqlen, nbatch, s, o->transforms, o->gpu_transforms,
                              o->ntransforms, !o->quiet, &res->seconds))
            goto out;
    } else {
        double t0 = prog_now();
        if (calib_observe_cpu(&m, ids, starts, o->samples, o->seqlen, s, !o->quiet)) goto out;
        res->seconds = prog_now() - t0;
    }
    res->tokens = (int64_t)o->samples * o->seqlen;
    res->ntensors = obs_count(s);
    res->n_layer = m.cfg.n_layer;

    char cfgsum[256], samples[32], seqlen[32], batch[32], ntok[32], pcts[512], seed[32], windows[256], xf[512], hist[160];
    calib_config_summary(&m.cfg, cfgsum, sizeof cfgsum);
    snprintf(samples, sizeof samples, "%d", o->samples);
    snprintf(seqlen, sizeof seqlen, "%d", o->seqlen);
    snprintf(batch, sizeof batch, "%d", nbatch);
    snprintf(ntok, sizeof ntok, "%zu", nids);
    calib_fmt_pct_list(o->pct, o->npct, pcts, sizeof pcts);
    if (o->seeded) {
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
        snprintf(windows, sizeof windows, "seeded shuffle (Fisher-Yates, splitmix64 seed %llu) of the %zu non-overlapping "
                 "%d-token windows from offset 0; first %d", (unsigned long long)o->seed, nids / o->seqlen, o->seqlen, o->samples);
    } else {
        snprintf(seed, sizeof seed, "none");
        snprintf(windows, sizeof windows, "consecutive non-overlapping %d-token windows from offset 0", o->seqlen);
    }
    size_t k = 0;
    xf[0] = 0;
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        const char *nm = obs_transform_name(s, (mq_act_role)r);
        if (strcmp(nm, "identity") && k < sizeof xf)
            k += snprintf(xf + k, sizeof xf - k, "%s%s=%s", k ? "," : "", ssm_act_role_name((mq_act_role)r), nm);
    }
    if (!k) snprintf(xf, sizeof xf, "none");
    snprintf(hist, sizeof hist, "%d log bins of |v|: bin i = [2^(%d+i/%d), 2^(%d+(i+1)/%d)) in float32; bin 0 and the last also hold the tails",
             OBS_HIST_BINS, OBS_HIST_LOG2_MIN, OBS_HIST_PER_OCTAVE, OBS_HIST_LOG2_MIN, OBS_HIST_PER_OCTAVE);
    char mpath[PATH_MAX], dpath[PATH_MAX], tpath[PATH_MAX];
    const char *kv[] = {
        "format", CALIB_FORMAT,
        "format_version", CALIB_FORMAT_VERSION,
        "tool", o->tool ? o->tool : "mambaq",
        "model.path", meta_path(o->model_dir, o->record_paths, mpath, sizeof mpath),
        "model.arch", m.cfg.arch == MQ_MAMBA1 ? "mamba1" : "mamba2",
        "model.config", cfgsum,
        "model.weights_sha256", res->model_sha256,
        "data.path", meta_path(o->data_path, o->record_paths, dpath, sizeof dpath),
        "data.sha256", res->data_sha256,
        "data.tokens", ntok,
        "data.field", o->field ? o->field : "text",
        "tokenizer.path", is_ids ? "none (token ids)" : meta_path(o->tokenizer_path, o->record_paths, tpath, sizeof tpath),
        "tokenizer.sha256", is_ids ? "none" : tok_sha,
        "calib.samples", samples,
        "calib.seqlen", seqlen,
        "calib.batch", batch,
        "calib.device", device,
        "calib.gpu", cuda ? gpu_describe() : "none",
        "calib.precision", cuda ? "FP16 forward on the GPU (ssm/gpu.h: FP16 activations and GEMMs; FP32 residual, norms, "
                                  "SSM state); statistics of the FP16 activations, the FP32 SSM state and FP32 transforms"
                                : "FP32 reference forward on the CPU (ssm/forward.c)",
        "calib.percentiles", pcts,
        "calib.seed", seed,
        "calib.windows", windows,
        "calib.ema_alpha", "0.01",
        "calib.percentile_def", "torch.quantile(|v|.flatten(), q) 'linear' per sample (one sequence); q and rank in float32",
        "calib.hist", hist,
        "calib.transforms", xf,   /* role=transform applied to a copy before observing */
    };
    rc = calib_write_stats(s, o->out_path, kv, (int)(sizeof kv / sizeof kv[0]) / 2);
out:
    obs_set_free(s);
    free(starts);
    free(ids);
    tok_free(tok);
    if (loaded) ssm_free(&m);
    return rc;
}


#ifndef MQ_CUDA
/* calib/gpu.h without CUDA: every entry point fails, so callers take the CPU path. */
static const char *calib_no_cuda = "GPU calibration: built without CUDA";
calib_gpu *calib_gpu_new(be *b, obs_set *s) {
    (void)b; (void)s;
    mq_fail("%s", calib_no_cuda);
    return NULL;
}
void calib_gpu_free(calib_gpu *c) { (void)c; }
int calib_gpu_set_transform(calib_gpu *c, mq_act_role role, calib_gpu_transform_fn fn, void *ctx) {
    (void)c; (void)role; (void)fn; (void)ctx;
    return mq_fail("%s", calib_no_cuda);
}
int calib_gpu_set_minus_bias(calib_gpu *c, mq_act_role role, const float *bias) {
    (void)c; (void)role; (void)bias;
    return mq_fail("%s", calib_no_cuda);
}
int calib_gpu_observe(calib_gpu *c, const int32_t *tokens, int B) {
    (void)c; (void)tokens; (void)B;
    return mq_fail("%s", calib_no_cuda);
}
int64_t calib_gpu_samples(const calib_gpu *c) { (void)c; return 0; }
void calib_gpu_profile(calib_gpu *c, int on) { (void)c; (void)on; }
int calib_gpu_profile_report(calib_gpu *c, char *buf, size_t n) {
    (void)c;
    if (n) buf[0] = 0;
    return 0;
}
int calib_observe_gpu(const mq_model *m, const int32_t *tokens, const size_t *starts, int samples, int seqlen,
                      int batch, obs_set *s, const calib_transform *xf, const calib_gpu_transform_fn *xf_gpu, int nxf,
                      int progress, double *seconds) {
    (void)m; (void)tokens; (void)starts; (void)samples; (void)seqlen; (void)batch; (void)s; (void)xf; (void)xf_gpu; (void)nxf;
    (void)progress; (void)seconds;
    return mq_fail("%s", calib_no_cuda);
}
int calib_gpu_selftest(const float *x, int mode, int B, int rows, int cols, int nparts, const double *pct, int nq,
                       int ngroup, int gsize, int gaxis, float *pct_out, float *absmax, float *gabsmax,
                       int64_t *hist) {
    (void)x; (void)mode; (void)B; (void)rows; (void)cols; (void)nparts; (void)pct; (void)nq; (void)ngroup;
    (void)gsize; (void)gaxis; (void)pct_out; (void)absmax; (void)gabsmax; (void)hist;
    return mq_fail("%s", calib_no_cuda);
}
#endif
