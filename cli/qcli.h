/* Helpers shared by the commands that quantize (quantize, sweep, run): option values -> q_options,
 * the tokenizer to copy, the provenance recorded in an artifact, and the quantization stage of run. */
#ifndef MQ_QCLI_H
#define MQ_QCLI_H
#include "cli/args.h"
#include "export/art.h"
#include "quantize/cstats.h"

/* given, else MODEL/tokenizer.json, MODEL/../tokenizer.json, ../shared/models/tokenizer.json; NULL if none. */
const char *q_cli_tokenizer(const char *model, const char *given);
/* --method, --percentile, --weight-granularity, --quantize-head -> o; exits 2 on invalid values. */
void q_cli_options(const cli_opt *opts, q_options *o);
/* The provenance an artifact records: hashes, counts and file names; whole host paths only with
 * record_paths (they would make the same artifact differ between checkouts). */
void q_cli_provenance(const q_cstats *cs, const char *model_dir, int record_paths, art_provenance *p);

/* Statistics a quantizer may trust (the reader, calib/stats.c, checks only the layout): every absmax,
 * percentile and per-head / per-group absmax finite, >= 0 and <= Q_CLI_STAT_MAX (the clip of
 * ART_SCALE_MAX), percentiles at most their absmax, and no absmax of exactly 0. 0, or -1 + a
 * message naming the file, the statistic, the index and the value. */
#define Q_CLI_STAT_MAX (ART_SCALE_MAX * QR_QMAX)
int q_cli_check_stats(const calib_stats *s, const char *path);

/* The quantization stage of `mambaq run`: calib (reusing a stats file that matches) -> quantize ->
 * validate -> simulated eval. Files go to out_dir/<model dir name>/{stats.safetensors,<method>/}. */
typedef struct {
    const char *model, *calib_data, *eval_data, *tokenizer, *out_dir;
    int samples, seqlen;          /* calibration windows */
    int window, windows;          /* evaluation protocol */
    q_options opt;
    int progress;
    int force;                    /* replace an artifact (and a stats file that does not match) */
} q_run_spec;

typedef struct {
    char stats[4200], artifact[4200];
    int stats_reused;
    double calib_seconds, quantize_seconds, eval_seconds;
    double ppl;                   /* simulated W8A8 perplexity */
    size_t artifact_bytes, fp16_bytes;
    const char *method;
} q_run_result;

int q_cli_run(const q_run_spec *s, q_run_result *r);
/* What q_cli_run checks before any work (run calls it before its FP32 evaluation too): the output
 * folder made, an artifact or a non-matching stats file there refused unless force, writable. */
int q_cli_run_prepare(const q_run_spec *s, q_run_result *r);

#endif
