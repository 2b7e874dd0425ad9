/* Calibration: run a forward (ssm/backend.h: FP32 on the CPU, FP16 on the GPU) over token windows
 * of a calibration text with the observers of calib/obs.h on every quantized activation (calib/gpu.h
 * on the GPU), and write their statistics to a stats
 * file (safetensors) that records where they came from; calib_stats_open() is how the quantizer
 * reads one back, refusing a file made from other weights.
 *
 * Samples: the data file is tokenized whole (or read as ids for .bin/.ids), cut into
 * floor(tokens / seqlen) non-overlapping windows of seqlen tokens starting at offset 0; without a
 * seed the first `samples` windows are used in order (consecutive text from the start); with a
 * seed the windows are shuffled by Fisher-Yates driven by splitmix64(seed) (j = next() mod (i+1),
 * i from the last window down) and the first `samples` taken. Each window is one sequence fed to
 * the forward from an empty state, exactly like one Quamba calibration sample (batch 1).
 *
 * Stats file: F32 tensors per observed activation <name> (names in calib/obs.h):
 *   <name>.absmax            [1]      max |v| over all samples
 *   <name>.percentiles       [npct]   running max over samples of the per-sample percentiles
 *   <name>.ema_percentiles   [npct]   Quamba EMA (alpha 0.01, first sample as is) of the same
 *   <name>.hist              [2048]   I64 counts of |v| over all samples, log bins (obs.h)
 *   <name>.absmax_per_head   [n_heads]   Mamba2 x_conv_out, ssm_state_act
 *   <name>.absmax_per_group  [n_groups]  Mamba2 B_conv_out, C_conv_out
 *   <name>.absmax_per_channel [d_inner] M1 x_proj:input, M2 x_conv_out (quamba2's clustering; made
 *                                       by the CPU observers only, absent from older files)
 * and __metadata__ (all strings): format, format_version, tool, model.* (path, arch, config
 * summary, weights_sha256 = hash_model_weights), data.* (path, sha256, tokens), tokenizer.*,
 * where the paths are base names (the folder's or file's name) unless record_paths, then absolute
 * paths: the hashes identify the inputs, and the same inputs give the same bytes on every host;
 * calib.* (samples, seqlen, batch, device, percentiles, seed, windows, ema_alpha, hist,
 * percentile_def, transforms; with device cuda also calib.gpu and calib.precision). Written
 * atomically: a failed run leaves no file. */
#ifndef MQ_CALIB_H
#define MQ_CALIB_H
#include <stddef.h>
#include <stdint.h>
#include "calib/obs.h"
#include "core/hash.h"
#include "core/qrule.h"
#include "core/st.h"
#include "ssm/model.h"
#ifdef __cplusplus
extern "C" {
#endif

#define CALIB_FORMAT "mambaq.calib_stats"
#define CALIB_FORMAT_VERSION "1"

/* The GPU version of a transform (--device cuda): reads the activation x (device, FP16, or FP32 when
 * x_f32) [rows x cols] with row stride ld and writes the transformed copy to out (device FP32, dense
 * [rows x cols]), enqueued on stream (a cudaStream_t) or synchronizing it. */
typedef void (*calib_gpu_transform_fn)(void *ctx, int layer, mq_act_role role, const void *x, int x_f32, int rows,
                                       int cols, int ld, float *out, void *stream);

typedef struct {
    mq_act_role role;
    obs_transform_fn fn;
    void *ctx;
    const char *name;          /* recorded in calib.transforms */
} calib_transform;

typedef struct {
    const char *model_dir;
    const char *data_path;
    const char *tokenizer_path;  /* needed for text data; ignored for .bin/.ids */
    const char *field;           /* JSON-lines field holding the text (NULL: "text"); recorded as data.field */
    const char *out_path;
    int samples, seqlen, batch;  /* batch <= 0: 8 on cuda, 1 on cpu (the CPU runs one at a time anyway) */
    const char *device;          /* "cpu", "cuda", or "auto" (cuda when gpu_available() and every
                                    transform has a GPU version, else cpu) */
    double pct[OBS_MAX_Q];
    int npct;
    int seeded;                  /* 0: consecutive windows from offset 0; 1: shuffled with seed */
    uint64_t seed;
    int quiet;                   /* no progress bar */
    const char *tool;            /* "mambaq 0.1.0", recorded in the metadata */
    int record_paths;            /* 1: model.path, data.path and tokenizer.path are whole (absolute)
                                    paths; 0: their base names only (with the hashes, the same data
                                    gives the same stats file in any folder and on any host) */
    calib_transform transforms[8];
    int ntransforms;
    calib_gpu_transform_fn gpu_transforms[8];  /* the GPU version of transforms[i] (same ctx); NULL: a
                                                  transform with a host fn is refused on cuda */
} calib_options;

typedef struct {
    double seconds;              /* forward + observers */
    int64_t tokens;
    int ntensors;
    int n_layer;
    char model_sha256[HASH_HEX_LEN], data_sha256[HASH_HEX_LEN];
    const char *device;          /* where it ran: "cpu" or "cuda" */
    int batch;                   /* sequences per forward call it used */
} calib_result;

/* Defaults: 512 samples x 512 tokens, batch 1, cpu, obs_default_pct, no seed. Paths NULL. */
void calib_defaults(calib_options *o);
/* The whole command: load, hash, tokenize, check the data is long enough and the output writable
 * (before any compute), observe, write. 0, or -1 + mq_errmsg(). */
int calib_run(const calib_options *o, calib_result *res);

/* ---- pieces (for tests and for the GPU path) ---- */

/* Window starts (token offsets) for `samples` windows of seqlen tokens out of ntokens (see the
 * header comment). -1 + a message giving tokens needed vs found when the data is too short. */
int calib_windows(size_t ntokens, int seqlen, int samples, int seeded, uint64_t seed, size_t *starts,
                  const char *data_name);
/* Observers for m with the default transforms (Mamba1: MQ_ACT_DT minus dt_proj.bias, because
 * Quamba's dt_proj has no bias: it adds it inside the scan) and then o's transforms. */
obs_set *calib_observers(const mq_model *m, const calib_options *o);
/* Runs the FP32 CPU forward (ssm/backend.h) on each window with the observer hooks. progress: show a bar. */
int calib_observe_cpu(const mq_model *m, const int32_t *tokens, const size_t *starts, int samples, int seqlen,
                      obs_set *s, int progress);
/* The largest statistic of |v| a stats file may hold: the clip of the largest scale an artifact
 * holds (export/art.h ART_SCALE_MAX = 1e6, times 127; cli/qcli.c checks the two agree). */
#define CALIB_STAT_MAX (1e6f * QR_QMAX)
/* Writes every observer's statistics plus the metadata pairs kv[2*i], kv[2*i+1]. Refuses (writing
 * nothing) values the reader would refuse (calib_stats_check). */
int calib_write_stats(obs_set *s, const char *path, const char *const *kv, int nkv);
/* "99,99.9,100" */
void calib_fmt_pct_list(const double *pct, int n, char *buf, size_t cap);
int calib_has_suffix(const char *s, const char *suffix);
/* "mamba1 d_model=192 n_layer=24 d_inner=384 d_state=16 d_conv=4 dt_rank=12 vocab=50280" */
void calib_config_summary(const mq_config *c, char *buf, size_t n);

/* ---- reading a stats file ---- */
typedef struct calib_stats calib_stats;

/* Opens and validates a stats file: its layout and its values (calib_stats_check). model_dir
 * non-NULL: refuses (NULL + message naming both hashes and paths) a file whose model.weights_sha256
 * differs from hash_model_weights(model_dir). */
calib_stats *calib_stats_open(const char *path, const char *model_dir);
/* Same with a known weights hash (NULL: no identity check). */
calib_stats *calib_stats_open_hash(const char *path, const char *weights_sha256);
/* The layout only, for `mambaq stats`, which shows a broken file's values before refusing them. */
calib_stats *calib_stats_open_unchecked(const char *path);
/* Values a quantizer may trust: every absmax, percentile and per-head / per-group absmax finite,
 * >= 0 and <= CALIB_STAT_MAX, percentiles at most their absmax, no absmax of exactly 0, percentiles
 * in [0, 100]. 0, or -1 + a message naming the file, the statistic, the index and the value. */
int calib_stats_check(const calib_stats *s);
void calib_stats_close(calib_stats *s);

const char *calib_stats_meta(const calib_stats *s, const char *key);   /* NULL if absent */
int calib_stats_npct(const calib_stats *s);
double calib_stats_pct(const calib_stats *s, int i);
/* Observed activations, in file order. */
int calib_stats_count(const calib_stats *s);
const char *calib_stats_name(const calib_stats *s, int i);
/* The tensor <name><suffix> (suffix ".absmax", ".percentiles", ...). For Quamba ActIdentity ops
 * "<op>:output" resolves to "<op>:input" (identical activations). NULL if absent. */
const st_tensor *calib_stats_tensor(const calib_stats *s, const char *name, const char *suffix);
/* absmax, or a percentile (running max, or EMA when ema = 1) at exactly one of the file's pct
 * values. 0, or -1 + message naming the file, the tensor and the available percentiles. */
int calib_stats_absmax(const calib_stats *s, const char *name, float *out);
int calib_stats_percentile(const calib_stats *s, const char *name, double pct, int ema, float *out);

#ifdef __cplusplus
}
#endif
#endif
