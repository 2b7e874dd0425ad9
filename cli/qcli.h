/* Helpers shared by the commands that quantize (quantize, sweep, run): option values -> q_options,
 * the provenance recorded in an artifact, the two stages (calibrate with the recipe's transforms;
 * stats -> artifact) and the quantization stage of run. */
#ifndef MQ_QCLI_H
#define MQ_QCLI_H
#include "cli/args.h"
#include "export/art.h"
#include "quantize/cstats.h"

/* --method, --percentile, --weight-granularity, --quantize-head, --quantize-embedding -> o; exits 2
 * on invalid values. */
void q_cli_options(const cli_opt *opts, q_options *o);
/* quamba2's options (CLI_QUAMBA2_OPTS), refused by the commands when no quamba2 recipe is asked for */
#define Q_CLI_NQ2_OPTS 5
extern const char *const q_cli_q2_opts[Q_CLI_NQ2_OPTS];
/* "w8a8" | "w4a8" | "w4a16" -> the weight and activation bits of quamba2's in_proj / out_proj; 0, or
 * -1 for another name (no message: the caller names the option) */
int q_cli_bits(const char *name, int *wbits, int *abits);
/* The provenance an artifact records: hashes, counts and file names; whole host paths only with
 * record_paths (they would make the same artifact differ between checkouts). */
void q_cli_provenance(const q_cstats *cs, const char *model_dir, int record_paths, art_provenance *p);

/* Calibration of model on data for recipe o, with the recipe's transforms (so quantizing needs no
 * extra pass), on the CPU, into the stats file stats_out. 0, or -1 + mq_errmsg(). */
typedef struct {
    const char *model, *data, *tokenizer, *field;
    int samples, seqlen;
    int progress;                 /* a line on stderr, and core/progress during the forward */
    int record_paths;             /* whole paths in the stats file's metadata (calib_options) */
} q_cal_spec;
int q_cli_calibrate(const q_cal_spec *s, const q_options *o, const char *stats_out);

/* stats -> artifact: refuses stats of other weights and statistics calib_stats_check refuses, loads
 * the model, runs the extra pass when the file lacks statistics the recipe's fusions need (over the
 * data q_cli_calib_data finds, calib_data: the data file named by the user or NULL), quantizes,
 * writes the artifact atomically (force: replace an existing one; record_paths: host paths in its
 * provenance, see q_cli_provenance). stats_file_note: what the provenance names as the stats file
 * (NULL: the file's name, or path). *extra_pass: whether it ran. 0, or -1 + mq_errmsg(). */
int q_cli_quantize(const char *model, const char *stats, const char *calib_data, const char *tokenizer, const q_options *o,
                   const char *out, int force, int record_paths, int progress, const char *stats_file_note, int *extra_pass);

/* The calibration data of the stats file cs (for the passes that repeat its windows) into cs->data:
 * given (quantize --calib FILE) when its sha256 is the file's data.sha256 (else an error); else the
 * recorded data.path when it is absolute (calib --record-paths, older files) and its hash matches;
 * else <shared>/datasets/<recorded name> when its hash matches; else an error naming the stats file,
 * the recorded name and hash, and --calib FILE. 0, or -1 + mq_errmsg(). */
int q_cli_calib_data(q_cstats *cs, const char *given);

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
    double ppl, ppl_err;          /* simulated W8A8 perplexity and its standard error */
    size_t artifact_bytes, fp16_bytes;
    const char *method;
    char forward[128];            /* the simulated forward in words ("simulated W8A8 on the CPU", quamba2's bits) */
} q_run_result;

int q_cli_run(const q_run_spec *s, q_run_result *r);
/* What q_cli_run checks before any work (run calls it before its FP32 evaluation too): the output
 * folder made, an artifact or a non-matching stats file there refused unless force, writable. */
int q_cli_run_prepare(const q_run_spec *s, q_run_result *r);

#endif
