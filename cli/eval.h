/* Perplexity evaluation shared by `mambaq eval` and `mambaq run`, under the protocol of
 * ../shared/models/README.md: tokenize the whole text (no special tokens), cut it into
 * non-overlapping windows of `window` tokens, score every token after the first of each window,
 * use the first `windows` windows, ppl = exp(mean NLL). */
#ifndef MQ_EVAL_H
#define MQ_EVAL_H
#include "ssm/backend.h"

typedef struct {
    const char *model;      /* a model or an int8 artifact directory (cli/fwd.h) */
    const char *device;     /* cpu, cuda or auto (NULL: cpu) */
    const char *data;       /* text (.txt, .jsonl, optionally .gz) or .bin/.ids int32 token ids */
    const char *tokenizer;  /* tokenizer.json; needed for text data only */
    const char *field;      /* JSON-lines field with the text (NULL = "text") */
    int window, windows;    /* windows 0 = every full window */
    int progress;           /* progress on stderr as it goes (core/progress.h) */
    const char *cmd;        /* the command, for the warning when the data has fewer windows than asked */
} eval_spec;

typedef struct {
    double ppl, nll_mean;
    double nll_stderr;      /* standard error of the mean per-token NLL (llama-perplexity's) */
    double ppl_err;         /* ppl * nll_stderr: ppl is reported as ppl +/- ppl_err */
    long tokens_scored;     /* windows * (window - 1) */
    long data_tokens;       /* tokens in the whole data file */
    int windows;            /* windows actually scored (fewer than asked when the data is short) */
    double seconds;         /* scoring time (forward + logits + NLL), model loading excluded */
    double load_seconds;    /* model loading + tokenization */
    const char *arch;       /* "mamba1" / "mamba2" (static text) */
    double params;          /* parameter count of the model */
    const char *method;     /* the artifact's recipe (static text), NULL for a model */
    be_kind kind;           /* the forward that ran */
    char forward[128];      /* the forward in words (fwd_describe: quamba2 says its bits) */
} eval_result;

/* Standard error of the mean of n per-token NLLs with this sum and sum of squares (llama-perplexity's). */
double eval_nll_stderr(double sum, double sum_sq, long n);

/* Returns 0, or -1 with mq_errmsg() set (unreadable model or data, data shorter than a window). */
int eval_run(const eval_spec *spec, eval_result *res);

#endif
