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
void q_cli_provenance(const q_cstats *cs, const char *model_dir, art_provenance *p);

/* The quantization stage of `mambaq run`: calib (reusing a stats file that matches) -> quantize ->
 * validate -> simulated eval. Files go to out_dir/<model dir name>/{stats.safetensors,<method>/}. */
typedef struct {
    const char *model, *calib_data, *eval_data, *tokenizer, *out_dir;
    int samples, seqlen;          /* calibration windows */
    int window, windows;          /* evaluation protocol */
    q_options opt;
    int progress;
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

#endif
