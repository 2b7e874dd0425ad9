/* Zero-shot accuracy tasks (see task.h): jsonl examples -> (context, continuation) requests tokenized
 * as lm-eval-harness does -> batched, right-padded prefills on any ssm/backend.h forward -> per-token
 * log-softmax in double of only the rows that score a continuation -> acc, acc_norm, ppl and their
 * standard errors. The commands' entry points (eval --task, the sweep / verify probe) are at the end. */
#include "cli/task.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cli/fwd.h"
#include "cli/qcli.h"
#include "core/err.h"
#include "core/mat.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "ssm/ops.h"

/* ---------------------------------------------------------------- names, files */

static const char *names[TASK_NKINDS] = {"lambada", "choice"};
static const char *default_files[TASK_NKINDS] = {"datasets/lambada_1000.jsonl", "datasets/story_choice_valid.jsonl"};

const char *task_name(task_kind k) { return (unsigned)k < TASK_NKINDS ? names[k] : "?"; }

int task_from_name(const char *name, task_kind *k) {
    for (int i = 0; i < TASK_NKINDS; i++)
        if (name && !strcmp(name, names[i])) return *k = (task_kind)i, 0;
    return mq_fail("--task: expected lambada or choice, got '%s'", name ? name : "");
}

const char *task_default_data(task_kind k) {
    const char *p = cli_default_path(default_files[k]);
    if (!p) mq_fail("no --data given and ../shared/%s not found (set MQ_SHARED, or give --data FILE.jsonl)", default_files[k]);
    return p;
}

/* ---------------------------------------------------------------- tokenization */

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

int task_encode_pair(tok_tokenizer *tok, const char *ctx, size_t nctx, const char *cont, size_t ncont,
                     int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont) {
    /* lm-eval: trailing whitespace of the context belongs to the continuation (ASCII whitespace here;
     * Python's rstrip also takes Unicode spaces, which no data file ends a context with) */
    size_t keep = nctx;
    while (keep > 0 && is_space((unsigned char)ctx[keep - 1])) keep--;
    char *whole = mq_malloc(nctx + ncont + 1);
    memcpy(whole, ctx, nctx);
    memcpy(whole + nctx, cont, ncont);
    int32_t *c = NULL, *w = NULL;
    size_t nc = 0, nw = 0;
    if (tok_encode(tok, whole, keep, &c, &nc) || tok_encode(tok, whole, nctx + ncont, &w, &nw)) {
        free(whole), free(c), free(w);
        return -1;
    }
    free(whole);
    if (nw <= nc) {
        free(c), free(w);
        return mq_fail("the continuation adds no token to its context (%zu tokens, %zu with the continuation)", nc, nw);
    }
    *n_cont = (int)(nw - nc);
    *cont_ids = mq_malloc((nw - nc) * sizeof(int32_t));
    memcpy(*cont_ids, w + nc, (nw - nc) * sizeof(int32_t));
    free(w);
    *ctx_ids = c, *n_ctx = (int)nc;
    return 0;
}

long task_lambada_split(const char *text, size_t len) {
    for (size_t i = len; i > 0; i--)
        if (text[i - 1] == ' ') return (long)(i - 1);
    return -1;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    task_set *ts;
    int cap_req, cap_ex;
    long n_ids, cap_ids;
    int32_t eot;       /* context of an empty context: lm-eval's prefix token (<|endoftext|>) */
} loader;

static void push_ids(loader *L, const int32_t *ids, int n) {
    if (L->n_ids + n > L->cap_ids) {
        while (L->n_ids + n > L->cap_ids) L->cap_ids = L->cap_ids ? 2 * L->cap_ids : 1 << 16;
        L->ts->arena = realloc(L->ts->arena, (size_t)L->cap_ids * sizeof(int32_t));
        if (!L->ts->arena) mq_die("out of memory: task tokens");
    }
    memcpy(L->ts->arena + L->n_ids, ids, (size_t)n * sizeof(int32_t));
    L->n_ids += n;
}

/* One request of example e: context text + continuation text. ids stays an offset until the end. */
static int add_request(loader *L, tok_tokenizer *tok, int e, const char *ctx, size_t nctx, const char *cont, size_t ncont) {
    task_set *ts = L->ts;
    int32_t *ci, *ki;
    int nc, nk;
    if (task_encode_pair(tok, ctx, nctx, cont, ncont, &ci, &nc, &ki, &nk)) return -1;
    if (ts->n_req == L->cap_req) {
        L->cap_req = L->cap_req ? 2 * L->cap_req : 1024;
        ts->req = realloc(ts->req, (size_t)L->cap_req * sizeof *ts->req);
        if (!ts->req) mq_die("out of memory: task requests");
    }
    task_req *r = &ts->req[ts->n_req++];
    memset(r, 0, sizeof *r);
    r->ids = (int32_t *)(intptr_t)L->n_ids;
    if (nc == 0) push_ids(L, &L->eot, 1), nc = 1;
    else push_ids(L, ci, nc);
    push_ids(L, ki, nk);
    free(ci), free(ki);
    r->n_ctx = nc, r->n_cont = nk, r->example = e, r->bytes = (int)ncont;
    r->cont_off = ts->n_cont;
    ts->n_cont += nk;
    const int fed = nc + nk - 1;  /* the last continuation token is scored, never read */
    ts->fed += fed;
    if (fed > ts->max_fed) ts->max_fed = fed;
    return 0;
}

static const char *str_field(const cJSON *o, const char *key, size_t *len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) return NULL;
    *len = strlen(v->valuestring);
    return v->valuestring;
}

static int load_example(loader *L, tok_tokenizer *tok, const cJSON *o, int e) {
    task_set *ts = L->ts;
    size_t n, nc;
    if (ts->kind == TASK_LAMBADA) {
        const char *text = str_field(o, "text", &n);
        if (!text) return mq_fail("no string field \"text\"");
        long sp = task_lambada_split(text, n);
        if (sp < 0) return mq_fail("\"text\" has no space to split the last word off");
        ts->label[e] = 0;
        return add_request(L, tok, e, text, (size_t)sp, text + sp, n - (size_t)sp);
    }
    const char *ctx = str_field(o, "context", &nc);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices"), *lab = cJSON_GetObjectItemCaseSensitive(o, "label");
    if (!ctx) return mq_fail("no string field \"context\"");
    if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 2) return mq_fail("\"choices\" is not an array of at least 2 strings");
    const int k = cJSON_GetArraySize(ch);
    if (!cJSON_IsNumber(lab) || lab->valuedouble != (int)lab->valuedouble || lab->valueint < 0 || lab->valueint >= k)
        return mq_fail("\"label\" is not an index into the %d choices", k);
    ts->label[e] = lab->valueint;
    for (int i = 0; i < k; i++) {
        const cJSON *c = cJSON_GetArrayItem(ch, i);
        if (!cJSON_IsString(c)) return mq_fail("choice %d is not a string", i);
        if (add_request(L, tok, e, ctx, nc, c->valuestring, strlen(c->valuestring))) return mq_fail_ctx("choice %d", i);
    }
    return 0;
}

int task_load(task_set *ts, task_kind kind, const char *path, tok_tokenizer *tok, int limit) {
    memset(ts, 0, sizeof *ts);
    ts->kind = kind, ts->path = path;
    size_t len;
    char *buf = (char *)ds_read_bytes(path, &len);
    if (!buf) return -1;
    loader L = {.ts = ts, .eot = tok_token_to_id(tok, "<|endoftext|>")};
    if (L.eot < 0) L.eot = 0;
    int line = 0, rc = 0;
    for (size_t p = 0; p < len && (limit <= 0 || ts->n < limit);) {
        size_t e = p;
        while (e < len && buf[e] != '\n') e++;
        line++;
        size_t q = p;
        while (q < e && is_space((unsigned char)buf[q])) q++;
        if (q < e) {
            if (ts->n == L.cap_ex) {
                L.cap_ex = L.cap_ex ? 2 * L.cap_ex : 1024;
                ts->first = realloc(ts->first, (size_t)L.cap_ex * sizeof(int));
                ts->count = realloc(ts->count, (size_t)L.cap_ex * sizeof(int));
                ts->label = realloc(ts->label, (size_t)L.cap_ex * sizeof(int));
                if (!ts->first || !ts->count || !ts->label) mq_die("out of memory: task examples");
            }
            cJSON *o = cJSON_ParseWithLength(buf + p, e - p);
            ts->first[ts->n] = ts->n_req;
            if (!cJSON_IsObject(o)) rc = mq_fail("not a JSON object");
            else rc = load_example(&L, tok, o, ts->n);
            cJSON_Delete(o);
            if (rc) {
                mq_fail_ctx("%s line %d (a %s example: %s)", path, line, task_name(kind),
                            kind == TASK_LAMBADA ? "{\"text\"}" : "{\"context\", \"choices\", \"label\"}");
                break;
            }
            ts->count[ts->n] = ts->n_req - ts->first[ts->n];
            ts->n++;
        }
        p = e + 1;
    }
    free(buf);
    if (!rc && ts->n == 0) rc = mq_fail("%s: no examples", path);
    if (rc) {
        task_free(ts);
        return -1;
    }
    for (int i = 0; i < ts->n_req; i++) ts->req[i].ids = ts->arena + (intptr_t)ts->req[i].ids;
    return 0;
}

void task_free(task_set *ts) {
    free(ts->first), free(ts->count), free(ts->label), free(ts->req), free(ts->arena);
    memset(ts, 0, sizeof *ts);
}

/* ---------------------------------------------------------------- scoring */

int task_batch(int cuda) {
    const int th = mat_threads();
    return cuda ? 32 : (th * 4 > 8 ? th * 4 : 8);
}

static const task_set *sort_set; /* qsort has no context argument */
static int by_length(const void *a, const void *b) {
    const task_req *x = &sort_set->req[*(const int *)a], *y = &sort_set->req[*(const int *)b];
    const int lx = x->n_ctx + x->n_cont, ly = y->n_ctx + y->n_cont;
    if (lx != ly) return ly - lx;  /* longest first: a batch's padding stays small */
    return *(const int *)a - *(const int *)b;
}

static double stderr_of_mean(const double *x, int n, double mean) {
    if (n < 2) return NAN;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (n - 1) / n);
}

/* Rows of logits that score one request, in blocks: sum log p and the argmax of each row. */
enum { BLK = 64 };
static int score_request(be *b, const task_req *q, int row0, float *logits, int V, double *ll, int32_t *argmax) {
    double lp[BLK], sum = 0;
    for (int k0 = 0; k0 < q->n_cont; k0 += BLK) {
        const int nr = q->n_cont - k0 < BLK ? q->n_cont - k0 : BLK;
        if (be_logits(b, row0 + k0, nr, logits)) return -1;
#pragma omp parallel for schedule(static) if (nr > 1)
        for (int k = 0; k < nr; k++) {
            const float *row = logits + (size_t)k * V;
            int am = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[am]) am = v;  /* the first maximum, as torch.argmax */
            argmax[k0 + k] = am;
            lp[k] = (double)row[q->ids[q->n_ctx + k0 + k]] - op_logsumexp(row, V);
        }
        for (int k = 0; k < nr; k++) sum += lp[k]; /* in order: the same sum every run */
    }
    *ll = sum;
    return 0;
}

static void aggregate(const task_set *ts, task_result *r) {
    const int n = ts->n;
    double *x = mq_malloc((size_t)n * sizeof(double));
    r->correct = r->correct_norm = 0;
    for (int e = 0; e < n; e++) {
        const int f = ts->first[e];
        if (ts->kind == TASK_LAMBADA) {
            const task_req *q = &ts->req[f];
            int greedy = 1;
            for (int k = 0; k < q->n_cont; k++) greedy &= r->argmax[q->cont_off + k] == q->ids[q->n_ctx + k];
            r->pred[e] = r->pred_norm[e] = greedy;
            r->correct += greedy;
            x[e] = r->ll[f];
        } else {
            int best = 0, best_n = 0;  /* the first maximum, as numpy.argmax */
            for (int i = 1; i < ts->count[e]; i++) {
                if (r->ll[f + i] > r->ll[f + best]) best = i;
                if (r->ll[f + i] / ts->req[f + i].bytes > r->ll[f + best_n] / ts->req[f + best_n].bytes) best_n = i;
            }
            r->pred[e] = best, r->pred_norm[e] = best_n;
            r->correct += best == ts->label[e];
            r->correct_norm += best_n == ts->label[e];
        }
    }
    r->n = n;
    r->acc = (double)r->correct / n;
    r->acc_stderr = n > 1 ? sqrt(r->acc * (1 - r->acc) / (n - 1)) : NAN;
    r->acc_norm = r->acc_norm_stderr = r->ll_mean = r->ll_stderr = r->ppl = r->ppl_stderr = NAN;
    if (ts->kind == TASK_CHOICE) {
        r->acc_norm = (double)r->correct_norm / n;
        r->acc_norm_stderr = n > 1 ? sqrt(r->acc_norm * (1 - r->acc_norm) / (n - 1)) : NAN;
    } else {
        double s = 0;
        for (int e = 0; e < n; e++) s += x[e];
        r->ll_mean = s / n;
        r->ll_stderr = stderr_of_mean(x, n, r->ll_mean);
        r->ppl = exp(-r->ll_mean);
        r->ppl_stderr = r->ppl * r->ll_stderr; /* delta method: d exp(-m) = exp(-m) dm */
    }
    free(x);
}

int task_score(be *b, const task_set *ts, const char *label, int quiet, task_result *r) {
    memset(r, 0, sizeof *r);
    r->kind = ts->kind;
    r->forward = be_kind_of(b);
    const int B = be_max_batch(b), V = be_config(b)->vocab_size;
    if (ts->max_fed > be_max_seqlen(b))
        return mq_fail("%s: the longest request reads %d tokens, the forward holds %d", ts->path, ts->max_fed, be_max_seqlen(b));
    for (int i = 0; i < ts->n_req; i++)
        for (int k = 0; k < ts->req[i].n_ctx + ts->req[i].n_cont; k++)
            if (ts->req[i].ids[k] < 0 || ts->req[i].ids[k] >= V)
                return mq_fail("%s: example %d has token %d, outside the model's vocabulary of %d", ts->path,
                               ts->req[i].example, ts->req[i].ids[k], V);
    r->ll = mq_calloc((size_t)ts->n_req, sizeof(double));
    r->argmax = mq_calloc((size_t)ts->n_cont, sizeof(int32_t));
    r->pred = mq_calloc((size_t)ts->n, sizeof(int));
    r->pred_norm = mq_calloc((size_t)ts->n, sizeof(int));
    int *order = mq_malloc((size_t)ts->n_req * sizeof(int));
    for (int i = 0; i < ts->n_req; i++) order[i] = i;
    sort_set = ts;
    qsort(order, (size_t)ts->n_req, sizeof(int), by_length);
    int32_t *tokens = mq_malloc((size_t)B * ts->max_fed * sizeof(int32_t));
    float *logits = mq_malloc((size_t)BLK * V * sizeof(float));
    prog_bar bar;
    prog_start(&bar, label, "tokens", ts->fed, quiet);
    const double t0 = prog_now();
    long fed = 0;
    int rc = 0;
    for (int i0 = 0; i0 < ts->n_req && !rc; i0 += B) {
        const int nb = ts->n_req - i0 < B ? ts->n_req - i0 : B;
        const task_req *first = &ts->req[order[i0]];
        const int T = first->n_ctx + first->n_cont - 1;
        memset(tokens, 0, (size_t)nb * T * sizeof(int32_t)); /* right padding: id 0 (<|endoftext|>) */
        for (int j = 0; j < nb; j++) {
            const task_req *q = &ts->req[order[i0 + j]];
            memcpy(tokens + (size_t)j * T, q->ids, (size_t)(q->n_ctx + q->n_cont - 1) * sizeof(int32_t));
            fed += q->n_ctx + q->n_cont - 1;
        }
        rc = be_prefill(b, tokens, nb, T, NULL, NULL, NULL);
        for (int j = 0; j < nb && !rc; j++) {
            const int qi = order[i0 + j];
            const task_req *q = &ts->req[qi];
            /* log p(cont[k]) is read from the logits of position n_ctx - 1 + k */
            rc = score_request(b, q, j * T + q->n_ctx - 1, logits, V, &r->ll[qi], r->argmax + q->cont_off);
        }
        if (rc) mq_fail_ctx("%s: requests of examples %d..", ts->path, first->example);
        prog_update(&bar, fed, fed);
    }
    if (!rc) prog_finish(&bar);
    r->seconds = prog_now() - t0;
    free(order), free(tokens), free(logits);
    if (rc) {
        task_result_free(r);
        return -1;
    }
    aggregate(ts, r);
    return 0;
}

void task_result_free(task_result *r) {
    free(r->ll), free(r->pred), free(r->pred_norm), free(r->argmax);
    r->ll = NULL, r->pred = r->pred_norm = NULL, r->argmax = NULL;
}

double task_agreement(const task_set *ts, const task_result *a, const task_result *b) {
    long same = 0;
    for (int e = 0; e < ts->n; e++) {
        if (ts->kind == TASK_CHOICE) {
            same += a->pred[e] == b->pred[e];
            continue;
        }
        const task_req *q = &ts->req[ts->first[e]];
        int eq = 1;
        for (int k = 0; k < q->n_cont; k++) eq &= a->argmax[q->cont_off + k] == b->argmax[q->cont_off + k];
        same += eq;
    }
    return ts->n ? (double)same / ts->n : NAN;
}

/* ---------------------------------------------------------------- output */

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void result_json(cJSON *o, const task_set *ts, const task_result *r) {
    cJSON_AddStringToObject(o, "task", task_name(ts->kind));
    cJSON_AddStringToObject(o, "data", ts->path);
    cJSON_AddNumberToObject(o, "n", r->n);
    add_num(o, "acc", r->acc);
    add_num(o, "acc_stderr", r->acc_stderr);
    add_num(o, "acc_norm", r->acc_norm);
    add_num(o, "acc_norm_stderr", r->acc_norm_stderr);
    add_num(o, "ppl", r->ppl);
    add_num(o, "ppl_stderr", r->ppl_stderr);
    add_num(o, "ll_mean", r->ll_mean);
    add_num(o, "ll_stderr", r->ll_stderr);
    cJSON_AddNumberToObject(o, "correct", (double)r->correct);
    if (ts->kind == TASK_CHOICE) cJSON_AddNumberToObject(o, "correct_norm", (double)r->correct_norm);
    cJSON_AddNumberToObject(o, "sequences", ts->n_req);
    cJSON_AddNumberToObject(o, "tokens", (double)ts->fed);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->seconds > 0 ? ts->fed / r->seconds : 0);
    cJSON_AddStringToObject(o, "forward", be_kind_name(r->forward));
}

static void result_print(const task_set *ts, const task_result *r) {
    printf("task           %s: %s, %d examples (%d sequences, %ld tokens)\n", task_name(ts->kind), ts->path, ts->n,
           ts->n_req, ts->fed);
    printf("acc            %.4f ± %.4f  (%ld/%d)\n", r->acc, r->acc_stderr, r->correct, r->n);
    if (ts->kind == TASK_CHOICE)
        printf("acc_norm       %.4f ± %.4f  (%ld/%d; score / UTF-8 bytes of the choice)\n", r->acc_norm,
               r->acc_norm_stderr, r->correct_norm, r->n);
    else
        printf("ppl            %.4f ± %.4f  (mean log p(target) %.4f ± %.4f)\n", r->ppl, r->ppl_stderr, r->ll_mean,
               r->ll_stderr);
    printf("time           %.2f s scoring (%.0f tokens/s)\n", r->seconds, r->seconds > 0 ? ts->fed / r->seconds : 0);
}

/* ---------------------------------------------------------------- mambaq eval --task */

int task_eval_main(const cli_opt *opts) {
    static const char *ppl_only[] = {"--window", "--windows", "--field"};
    for (size_t i = 0; i < sizeof ppl_only / sizeof *ppl_only; i++)
        if (cli_flag(opts, ppl_only[i])) {
            fprintf(stderr, "mambaq eval: %s is for perplexity; --task scores examples (see mambaq eval --help)\n", ppl_only[i]);
            return 2;
        }
    task_kind kind = TASK_LAMBADA;
    if (task_from_name(cli_get(opts, "--task"), &kind)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        return 2;
    }
    const char *artifact = cli_get(opts, "--artifact");
    if (artifact && cli_flag(opts, "--model")) {
        fprintf(stderr, "mambaq eval: give --model or --artifact, not both\n");
        return 2;
    }
    const char *model = artifact ? artifact : cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    const char *data = cli_flag(opts, "--data") ? cli_get(opts, "--data") : task_default_data(kind);
    if (!model || !data) {
        fprintf(stderr, "mambaq eval: %s\n", !model ? "no --model given and ../shared/models/mamba1-proxy not found (set MQ_SHARED)" : mq_errmsg());
        return 1;
    }
    const int limit = cli_flag(opts, "--limit") ? (int)cli_int(opts, "--limit", 1, 1 << 30) : 0;
    const char *device = cli_get(opts, "--device") ? cli_get(opts, "--device") : "cpu";
    const int json = cli_flag(opts, "--json");
    cli_threads(opts);
    int cuda;
    if (be_device_parse(device, &cuda)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        return 2;
    }
    const char *tpath = cli_tokenizer(model, cli_get(opts, "--tokenizer"));
    tok_tokenizer *tok = tpath ? tok_load(tpath) : NULL;
    if (!tok) {
        fprintf(stderr, "mambaq eval: %s\n", tpath ? mq_errmsg() : "no tokenizer.json found (give --tokenizer)");
        return 1;
    }
    task_set ts;
    const double t0 = prog_now();
    int rc = task_load(&ts, kind, data, tok, limit);
    tok_free(tok);
    if (rc) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        return 1;
    }
    const int batch = task_batch(cuda) < ts.n_req ? task_batch(cuda) : ts.n_req;
    fwd f;
    if (fwd_open(&f, model, device, batch, ts.max_fed)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        task_free(&ts);
        return 1;
    }
    const double load_s = prog_now() - t0;
    task_result r;
    if (task_score(f.b, &ts, task_name(kind), 0, &r)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        fwd_close(&f), task_free(&ts);
        return 1;
    }
    const mq_config *c = be_config(f.b);
    const char *arch = c->arch == MQ_MAMBA1 ? "mamba1" : "mamba2";
    const char *method = f.art ? q_method_name(f.art->qm.opt.method) : NULL;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        result_json(o, &ts, &r);
        cJSON_AddNumberToObject(o, "load_seconds", load_s);
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "arch", arch);
        cJSON_AddStringToObject(o, "device", be_kind_is_cuda(r.forward) ? "cuda" : "cpu");
        cJSON_AddNumberToObject(o, "batch", batch);
        if (method) {
            cJSON_AddStringToObject(o, "artifact", model);
            cJSON_AddStringToObject(o, "method", method);
        }
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        char desc[256];
        printf("model          %s (%s)\n", model, arch);
        if (method) printf("quantization   %s\n", method);
        printf("forward        %s, %d sequences per call\n", fwd_describe(&f, desc, sizeof desc), batch);
        result_print(&ts, &r);
        printf("loading        %.2f s (model and tokenization)\n", load_s);
    }
    task_result_free(&r);
    fwd_close(&f);
    task_free(&ts);
    return 0;
}

/* ---------------------------------------------------------------- the sweep / verify probe */

#define PROBE_COLS 64
struct task_probe {
    task_set ts;
    int cuda, quiet;
    task_result res[PROBE_COLS];
    int have[PROBE_COLS];
};

task_probe *task_probe_open(const cli_opt *opts, const char *tokenizer, int cuda, int quiet) {
    if (!cli_flag(opts, "--task")) return NULL;
    task_kind kind = TASK_LAMBADA;
    if (task_from_name(cli_get(opts, "--task"), &kind)) {
        fprintf(stderr, "mambaq: %s\n", mq_errmsg());
        exit(2);
    }
    const char *data = cli_flag(opts, "--task-data") ? cli_get(opts, "--task-data") : task_default_data(kind);
    const int limit = cli_flag(opts, "--limit") ? (int)cli_int(opts, "--limit", 1, 1 << 30) : 0;
    tok_tokenizer *tok = data && tokenizer ? tok_load(tokenizer) : NULL;
    if (!data || !tok) {
        fprintf(stderr, "mambaq: --task: %s\n", !data || tokenizer ? mq_errmsg() : "no tokenizer.json found (give --tokenizer)");
        exit(1);
    }
    task_probe *p = mq_calloc(1, sizeof *p);
    p->cuda = cuda, p->quiet = quiet;
    int rc = task_load(&p->ts, kind, data, tok, limit);
    tok_free(tok);
    if (rc) {
        fprintf(stderr, "mambaq: --task: %s\n", mq_errmsg());
        exit(1);
    }
    return p;
}

static int probe_run(task_probe *p, int col, be *b) {
    if (col < 0 || col >= PROBE_COLS) return mq_fail("task probe: column %d outside 0..%d", col, PROBE_COLS - 1);
    if (!b) return -1;
    if (p->have[col]) task_result_free(&p->res[col]);
    int rc = task_score(b, &p->ts, task_name(p->ts.kind), p->quiet, &p->res[col]);
    p->have[col] = !rc;
    be_free(b);
    return rc;
}

static int probe_batch(const task_probe *p) {
    return task_batch(p->cuda) < p->ts.n_req ? task_batch(p->cuda) : p->ts.n_req;
}

int task_probe_model(task_probe *p, int col, const mq_model *m) {
    return probe_run(p, col, be_open_model(m, p->cuda ? BE_CUDA_F16 : BE_CPU_F32, probe_batch(p), p->ts.max_fed));
}

int task_probe_qmodel(task_probe *p, int col, const q_model *qm) {
    return probe_run(p, col, be_open_qmodel(qm, p->cuda ? BE_CUDA_INT8 : BE_CPU_SIM, probe_batch(p), p->ts.max_fed));
}

const task_result *task_probe_result(const task_probe *p, int col) {
    return col >= 0 && col < PROBE_COLS && p->have[col] ? &p->res[col] : NULL;
}

const char *task_probe_header(const task_probe *p) {
    return p->ts.kind == TASK_CHOICE ? "    acc acc_norm" : "    acc  lambada ppl";
}

const char *task_probe_cells(const task_probe *p, int col, char *buf, size_t n) {
    const task_result *r = task_probe_result(p, col);
    if (!r) snprintf(buf, n, "%s", p->ts.kind == TASK_CHOICE ? "      -        -" : "      -            -");
    else if (p->ts.kind == TASK_CHOICE) snprintf(buf, n, " %6.4f   %6.4f", r->acc, r->acc_norm);
    else snprintf(buf, n, " %6.4f %12.4g", r->acc, r->ppl);
    return buf;
}

const char *task_probe_describe(const task_probe *p, char *buf, size_t n) {
    snprintf(buf, n, "%s: %s, %d examples", task_name(p->ts.kind), p->ts.path, p->ts.n);
    return buf;
}

void task_probe_json(const task_probe *p, int col, cJSON *o, const char *key) {
    const task_result *r = task_probe_result(p, col);
    if (!r) return;
    cJSON *t = key ? cJSON_AddObjectToObject(o, key) : o;
    result_json(t, &p->ts, r);
}

double task_probe_agreement(const task_probe *p, int a, int b) {
    const task_result *x = task_probe_result(p, a), *y = task_probe_result(p, b);
    return x && y ? task_agreement(&p->ts, x, y) : NAN;
}

void task_probe_print_pair(const task_probe *p, int a, int b) {
    const task_result *x = task_probe_result(p, a), *y = task_probe_result(p, b);
    if (!x || !y) return;
    char d[4400];
    printf("task           %s\n", task_probe_describe(p, d, sizeof d));
    for (int i = 0; i < 2; i++) {
        const task_result *r = i ? y : x;
        printf("  %-12s acc %.4f ± %.4f", i ? "int8" : "float", r->acc, r->acc_stderr);
        if (p->ts.kind == TASK_CHOICE) printf("   acc_norm %.4f ± %.4f\n", r->acc_norm, r->acc_norm_stderr);
        else printf("   ppl %.4g ± %.3g\n", r->ppl, r->ppl_stderr);
    }
    printf("  agreement    %.2f%% of examples (%s)\n", 100 * task_agreement(&p->ts, x, y),
           p->ts.kind == TASK_CHOICE ? "the same choice" : "the same argmax tokens for the whole target");
}

void task_probe_json_pair(const task_probe *p, int a, int b, cJSON *o, const char *key) {
    if (!task_probe_result(p, a) || !task_probe_result(p, b)) return;
    cJSON *t = cJSON_AddObjectToObject(o, key);
    task_probe_json(p, a, t, "float");
    task_probe_json(p, b, t, "int8");
    cJSON_AddNumberToObject(t, "agreement", task_probe_agreement(p, a, b));
}

void task_probe_free(task_probe *p) {
    if (!p) return;
    for (int i = 0; i < PROBE_COLS; i++)
        if (p->have[i]) task_result_free(&p->res[i]);
    task_free(&p->ts);
    free(p);
}
