/* Option parsing shared by every subcommand: a table of options with help text and defaults, so
 * each command's --help is generated from the same table that parses it. The options several
 * commands take are defined once here (CLI_MODEL, CLI_DEVICE, CLI_RECIPE, ...): same name, same
 * meaning everywhere. A command's main input may be given positionally or by its flag (.pos). */
#ifndef MQ_ARGS_H
#define MQ_ARGS_H

typedef struct {
    const char *name;     /* "--model" */
    const char *metavar;  /* "DIR"; NULL for a flag without a value */
    const char *help;     /* NULL for a hidden, renamed option (see alias_of) */
    const char *def;      /* default value shown in --help and returned when not given; may be NULL */
    const char *value;    /* filled by cli_parse: the given value, or def ("1" for a given flag) */
    int given;            /* set by cli_parse */
    int pos;              /* n > 0: the n-th positional argument is this option's value */
    const char *alias_of; /* another name of that option; with help NULL a renamed one (a note says so) */
} cli_opt;

/* Parses argv[1..] (argv[0] is the command name). Prints help and exits 0 on --help/-h; prints a
 * clear error and exits 2 on an unknown option, a missing value, or a value given both by position
 * and by flag. Positional arguments fill the options with .pos first; the rest are stored in
 * positional[] (at most max_pos; more is an error); returns their count. */
int cli_parse(int argc, char **argv, cli_opt *opts, const char *usage, const char *description,
              const char **positional, int max_pos);

const char *cli_get(const cli_opt *opts, const char *name);   /* value or NULL */
int cli_flag(const cli_opt *opts, const char *name);          /* 1 if given */
/* Integer/float values with range checks; exit 2 with a message naming the option when invalid. */
long cli_int(const cli_opt *opts, const char *name, long lo, long hi);
double cli_double(const cli_opt *opts, const char *name, double lo, double hi);
/* Exits 2 naming the command and the options when a required value is missing ("MODEL (or
 * --model)" in the message, from the table). */
const char *cli_need(const cli_opt *opts, const char *cmd, const char *name);

/* Applies --threads N (the CPU threads OpenMP uses) when the table has it and it was given. */
void cli_threads(const cli_opt *opts);

/* The shared folder (models/, datasets/): $MQ_SHARED when set, else the folder `shared` beside the
 * repository bin/mambaq was built in, else ../shared from the current directory. Returns
 * <shared>/rel as an absolute path when it exists (caller owns it for the process), else NULL. */
const char *cli_default_path(const char *rel_to_shared);
/* tokenizer.json for a model or artifact directory: given, else DIR/tokenizer.json,
 * DIR/../tokenizer.json, <shared>/models/tokenizer.json; NULL when none exists. */
const char *cli_tokenizer(const char *dir, const char *given);
/* tokenize / detokenize: the --tokenizer file (CLI_TOKENIZER_FILE; exits 2 when there is none), then
 * --out checked (exits 1 when it exists without --force, or cannot be written); *force = --force. */
const char *cli_tokenizer_file(const cli_opt *opts, const char *cmd, int *force);
/* Prints j on stdout (pretty: indented, else one line) and deletes it. */
struct cJSON;
void cli_json_print(struct cJSON *j, int pretty);
/* realpath of p when it exists (recorded in metadata, read again from elsewhere), else p. */
const char *cli_abspath(const char *p);
/* "25.59 MB, 1.23 times smaller than FP16 (31.39 MB)" or "... times larger than ..." */
const char *cli_size_vs_fp16(double bytes, double fp16_bytes, char *buf, unsigned n);

/* ---- the options several commands share ---- */
#define CLI_END {0}
#define CLI_SHARED_HINT "$MQ_SHARED, default: ../shared beside the repository"
#define CLI_MODEL(help_) {.name = "--model", .metavar = "DIR", .help = help_, .pos = 1}
#define CLI_ARTIFACT_SYNONYM {.name = "--artifact", .metavar = "DIR", .help = "same as --model (an artifact directory)", .alias_of = "--model"}
#define CLI_TOKENIZER {.name = "--tokenizer", .metavar = "FILE", .help = "tokenizer.json for text data (default: DIR/tokenizer.json, " \
                       "DIR/../tokenizer.json, then <shared>/models/tokenizer.json)"}
#define CLI_TOKENIZER_FILE {.name = "--tokenizer", .metavar = "FILE", .help = "tokenizer.json (Hugging Face byte-level BPE)", \
                            .def = cli_default_path("models/tokenizer.json")}
#define CLI_DATA(help_, def_) {.name = "--data", .metavar = "FILE", .help = help_, .def = def_}
#define CLI_FIELD {.name = "--field", .metavar = "NAME", .help = "JSON-lines field holding the text", .def = "text"}
/* --data, --tokenizer, --field: text (.txt, .jsonl, .gz) or token ids (.bin, .ids) */
#define CLI_DATA_OPTS(def_) \
    CLI_DATA("text (.txt, .jsonl, optionally .gz) or int32 token ids (.bin, .ids)", def_), CLI_TOKENIZER, CLI_FIELD
#define CLI_DEVICE_HELP(def_, help_) {.name = "--device", .metavar = "cpu|cuda|auto", .help = help_, .def = def_}
#define CLI_DEVICE(def_) CLI_DEVICE_HELP(def_, "where the forward runs (auto: cuda when a GPU is usable)")
#define CLI_THREADS {.name = "--threads", .metavar = "N", .help = "CPU threads (default: all cores)"}
#define CLI_JSON {.name = "--json", .help = "print one JSON object on stdout instead of the text report"}
#define CLI_QUIET {.name = "--quiet", .help = "no progress output on stderr"}
/* how a long command runs and reports: CPU threads, JSON on stdout, no progress */
#define CLI_RUN_OPTS CLI_THREADS, CLI_JSON, CLI_QUIET
#define CLI_OUT(meta_, help_, pos_) {.name = "--out", .metavar = meta_, .help = help_, .pos = pos_}
#define CLI_FORCE {.name = "--force", .help = "replace an existing output (atomically)"}
/* the evaluation protocol: non-overlapping windows of --window tokens, the first --windows */
#define CLI_WINDOWS(def_) {.name = "--window", .metavar = "N", .help = "tokens per window", .def = "1024"}, \
    {.name = "--windows", .metavar = "N", .help = "windows scored, the first N (0 = all)", .def = def_}
/* calibration windows (mambaq calib, and quantize / run when they calibrate) */
#define CLI_CALIB_OPTS(def_samples) {.name = "--samples", .metavar = "N", .help = "calibration samples (token windows)", .def = def_samples}, \
    {.name = "--seqlen", .metavar = "N", .help = "tokens per calibration sample", .def = "512"}
/* the recipe (docs/recipe.md); percentile 99.999 is the sweep's choice (docs/results.md) */
#define CLI_METHOD_HELP "naive | quamba | quamba-rot | quamba2 | percentile-only | hadamard-only (docs/recipe.md)"
#define CLI_RECIPE_DEFAULT_PERCENTILE "99.999"
#define CLI_METHOD_OPTS \
    {.name = "--method", .metavar = "NAME", .help = CLI_METHOD_HELP, .def = "quamba"}, \
    {.name = "--percentile", .metavar = "P", .help = "percentile clip of the SSM input x, in percent (methods with a percentile clip)", \
     .def = CLI_RECIPE_DEFAULT_PERCENTILE}
#define CLI_WEIGHT_OPTS \
    {.name = "--weight-granularity", .metavar = "G", .help = "tensor | channel (one weight scale per output channel)", .def = "tensor"}, \
    {.name = "--quantize-head", .help = "also quantize the lm_head (weight and input) to int8; default: FP16"}, \
    {.name = "--quantize-embedding", .help = "int8 embedding (one scale per row) and int8 lm_head: about 2x smaller than FP16"}
/* quamba2's options (q_cli_options refuses them with another method) */
#define CLI_QUAMBA2_OPTS \
    {.name = "--bits", .metavar = "B", .help = "quamba2: w8a8 | w4a8 | w4a16 (int4 in_proj, out_proj; float activations with a16)", .def = "w8a8"}, \
    {.name = "--weight-method", .metavar = "M", .help = "quamba2 int4 weights: gptq (Hessian of the calibration inputs) | rtn", .def = "gptq"}, \
    CLI_QUAMBA2_LAYOUT_OPTS
/* the ones that are not lists in sweep */
#define CLI_QUAMBA2_LAYOUT_OPTS \
    {.name = "--group-size", .metavar = "N", .help = "quamba2 int4 weights: columns per scale; per row when N does not divide the row, or -1", .def = "128"}, \
    {.name = "--no-cluster", .help = "quamba2: one ssm_x scale per tensor (percentile clip) instead of the 4 x 4 clustered scales"}, \
    {.name = "--no-state-groups", .help = "quamba2: one B / C scale per tensor instead of one per SSD group (Mamba2)"}
#define CLI_RECIPE_OPTS CLI_METHOD_OPTS, CLI_WEIGHT_OPTS, CLI_QUAMBA2_OPTS
/* zero-shot tasks (cli/task.h): eval --task scores one instead of perplexity (its examples are --data);
 * sweep and verify add one to their report (its examples are --task-data) */
#define CLI_TASK_DEFAULT_DATA "<shared>/datasets/lambada_1000.jsonl, story_choice_valid.jsonl"
#define CLI_TASK(help_) {.name = "--task", .metavar = "NAME", .help = help_}
#define CLI_TASK_LIMIT {.name = "--limit", .metavar = "N", .help = "--task: the first N examples only (default: all)"}
#define CLI_TASK_OPTS(help_) CLI_TASK(help_ ": lambada or choice (mambaq eval --task)"), \
    {.name = "--task-data", .metavar = "FILE", .help = "--task examples (default: " CLI_TASK_DEFAULT_DATA ")"}, CLI_TASK_LIMIT

#endif
