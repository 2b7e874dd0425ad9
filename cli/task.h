/* Zero-shot accuracy tasks scored exactly as lm-eval-harness scores them (the protocol of
 * ../shared/datasets/accuracy_reference.json), for `mambaq eval --task`, `sweep --task`, `verify --task`.
 *   lambada {"text"}: context = text up to its last space, target = " " + the last word.
 *   choice {"context", "choices", "label"}: one continuation per choice (HellaSwag, PIQA, ARC, ...).
 * Continuation tokens = tok(context + continuation)[len(tok(context)):], no special tokens; the model
 * reads tok(context) ++ continuation, and log p of each continuation token comes from the logits of
 * the position before it. Requests of a batch are right-padded (Mamba is causal: padding never
 * changes an earlier position) and each is scored on its own tokens only. */
#ifndef MQ_CLI_TASK_H
#define MQ_CLI_TASK_H
#include <stdint.h>
#include "cli/args.h"
#include "datasets/tok.h"
#include "ssm/backend.h"

typedef enum { TASK_LAMBADA, TASK_CHOICE, TASK_NKINDS } task_kind;

/* One (example, continuation) pair: what the model reads and which tokens it scores. */
typedef struct {
    int32_t *ids;       /* tok(context) ++ continuation tokens: n_ctx + n_cont (points into the set) */
    int n_ctx, n_cont;  /* n_ctx >= 1, n_cont >= 1 */
    int example;        /* the example it belongs to */
    int bytes;          /* UTF-8 bytes of the continuation text (acc_norm's length) */
    long cont_off;      /* offset of its continuation in the flat per-token arrays of a result */
} task_req;

typedef struct {
    task_kind kind;
    const char *path;
    int n;              /* examples */
    int *first, *count; /* per example: its requests req[first .. first + count) */
    int *label;         /* per example: the correct choice (choice), 0 (lambada) */
    task_req *req;
    int n_req;
    long n_cont;        /* continuation tokens over all requests */
    long fed;           /* tokens the model reads over all requests (each minus its last token) */
    int max_fed;        /* the longest request the model reads */
    int32_t *arena;
} task_set;

typedef struct {
    task_kind kind;
    int n;
    long correct, correct_norm;
    double acc, acc_stderr;             /* acc stderr = sqrt(acc (1 - acc) / (n - 1)) */
    double acc_norm, acc_norm_stderr;   /* choice; NAN for lambada */
    double ll_mean, ll_stderr;          /* lambada: mean over examples of sum log p(target) and its stderr */
    double ppl, ppl_stderr;             /* lambada: exp(-ll_mean), ppl * ll_stderr (delta method); NAN for choice */
    double *ll;                         /* per request: sum log p(continuation | context) */
    int *pred, *pred_norm;              /* per example: the chosen continuation (lambada: 1 = all greedy, else 0) */
    int32_t *argmax;                    /* per continuation token: the argmax token id (flat, req.cont_off) */
    double seconds;                     /* scoring time */
    be_kind forward;
} task_result;

const char *task_name(task_kind k);                  /* "lambada", "choice" */
int task_from_name(const char *name, task_kind *k);  /* 0, or -1 + message */
/* The task's default data file under ../shared (or $MQ_SHARED): datasets/lambada_1000.jsonl or
 * datasets/story_choice_valid.jsonl; NULL + message naming the missing file. */
const char *task_default_data(task_kind k);

/* Context / continuation split of the protocol, shared with lm-eval (trailing whitespace of the
 * context moves to the continuation): *ctx_ids = tok(ctx), *cont_ids = tok(ctx + cont)[len(tok(ctx)):].
 * Both malloc'ed. 0, or -1 + message. */
int task_encode_pair(tok_tokenizer *tok, const char *ctx, size_t nctx, const char *cont, size_t ncont,
                     int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont);
/* lambada: the byte length of the context (text up to its last space); -1 when there is no space. */
long task_lambada_split(const char *text, size_t len);

/* Reads the first `limit` examples (all when limit <= 0) of a jsonl file (.gz too) and tokenizes them.
 * 0, or -1 + message naming the file, the line and the field. */
int task_load(task_set *ts, task_kind kind, const char *path, tok_tokenizer *tok, int limit);
void task_free(task_set *ts);

/* Scores every request of ts on b (batches of be_max_batch(b); b's sequence length must hold
 * ts->max_fed) and fills r. label: the progress bar's label (core/progress.h); quiet: no bar. */
int task_score(be *b, const task_set *ts, const char *label, int quiet, task_result *r);
void task_result_free(task_result *r);
/* Requests per backend call for a device: the CPU kinds run a call's sequences in parallel. */
int task_batch(int cuda);

/* Share of examples where a and b (two models on the same set) choose the same continuation (choice),
 * or predict the same argmax tokens for the whole target (lambada). */
double task_agreement(const task_set *ts, const task_result *a, const task_result *b);

/* ---- the commands ---- */

/* mambaq eval --task: reads --task, --data, --model / --artifact, --limit, --tokenizer, --device,
 * --threads, --json from eval's option table and prints the result. Returns the exit status. */
int task_eval_main(const cli_opt *opts);

/* sweep --task / verify --task: one task set, scored on several models. NULL when opts has no --task
 * given; exits 2 on a bad option, 1 on unreadable data. Reads --task, --task-data, --limit. */
typedef struct task_probe task_probe;
task_probe *task_probe_open(const cli_opt *opts, const char *tokenizer, int cuda, int quiet);
/* Scores a float model (FP32 on the CPU / FP16 on the GPU) or a quantized one (the CPU simulation /
 * the int8 GPU pass) and keeps its result as column `col` (0 .. 63). 0, or -1 + message. */
int task_probe_model(task_probe *p, int col, const mq_model *m);
int task_probe_qmodel(task_probe *p, int col, const q_model *qm);
const task_result *task_probe_result(const task_probe *p, int col);
/* Table cells of column col ("acc  acc_norm" for choice, "acc  ppl" for lambada), and their header. */
const char *task_probe_header(const task_probe *p);
const char *task_probe_cells(const task_probe *p, int col, char *buf, size_t n);
/* "lambada_1000.jsonl, 1000 examples" for report headers. */
const char *task_probe_describe(const task_probe *p, char *buf, size_t n);
/* Adds {"task", "data", "n", "acc", ...} of column col to o under key (or at the top when key is NULL). */
struct cJSON;
void task_probe_json(const task_probe *p, int col, struct cJSON *o, const char *key);
double task_probe_agreement(const task_probe *p, int a, int b);
/* verify: the float (column a) and int8 (column b) results and their agreement, as text lines or as
 * {"float": {...}, "int8": {...}, "agreement"} under key. */
void task_probe_print_pair(const task_probe *p, int a, int b);
void task_probe_json_pair(const task_probe *p, int a, int b, struct cJSON *o, const char *key);
void task_probe_free(task_probe *p);

#endif
