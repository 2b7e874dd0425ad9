/* Zero-shot tasks (cli/task.h): the lm-eval context / continuation split, the jsonl readers and their
 * errors, batched right-padded scoring against one unpadded forward per request, the statistics, and
 * `mambaq eval --task` on both proxies against ../shared/datasets/accuracy_reference.json:
 *   lambada, all 1000 examples: the correct count within 2, ppl within 0.1% of transformers FP32;
 *   choice, the first CHOICE_CI examples only (the full 1000 take ~6 min per proxy on 2 cores; the
 *   full-set comparison is run by hand, docs/results.md): the correct / correct_norm counts of those
 *   examples as the full run that matched the reference scored them (tests/fixtures/task/), within 2.
 * Also sweep --task and verify --task on a tiny calibration. Links the CLI's objects (Makefile). */
#include "tests/test.h"
#include "tests/cli_run.h"
#include <cjson/cJSON.h>
#include "cli/task.h"
#include "core/err.h"
#include "ssm/ops.h"

#define CHOICE_CI 200

static tok_tokenizer *g_tok;
static tok_tokenizer *tokenizer(void) {
    if (!g_tok) {
        const char *p = t_shared("models/tokenizer.json");
        if (p) g_tok = tok_load(p);
    }
    return g_tok;
}

static int same_ids(const int32_t *a, const int32_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void test_task_split(void) {
    T_CHECK(task_lambada_split("a b  c", 6) == 4, "last space of 'a b  c'");
    T_CHECK(task_lambada_split("abc", 3) == -1, "no space");
    T_CHECK(task_lambada_split(" x", 2) == 0, "leading space");
    tok_tokenizer *t = tokenizer();
    if (!t) T_SKIP("../shared/models/tokenizer.json not found");
    int32_t *c, *k, *w, *x;
    int nc, nk;
    size_t nw, nx;
    /* a clean boundary: tok(ctx) ++ cont == tok(ctx + cont) */
    T_CHECK(!task_encode_pair(t, "The cat sat on the", 18, " mat", 4, &c, &nc, &k, &nk), "%s", mq_errmsg());
    T_CHECK(!tok_encode(t, "The cat sat on the mat", 22, &w, &nw), "%s", mq_errmsg());
    T_CHECK(nc == 5 && nk == 1 && (size_t)(nc + nk) == nw && same_ids(c, w, nc) && same_ids(k, w + nc, nk),
            "split %d + %d of %zu tokens", nc, nk, nw);
    free(c), free(k), free(w);
    /* trailing whitespace of the context moves to the continuation (lm-eval) */
    T_CHECK(!task_encode_pair(t, "Hello ", 6, "world", 5, &c, &nc, &k, &nk), "%s", mq_errmsg());
    T_CHECK(!tok_encode(t, "Hello", 5, &w, &nw) && !tok_encode(t, " world", 6, &x, &nx), "%s", mq_errmsg());
    T_CHECK((size_t)nc == nw && same_ids(c, w, nc) && (size_t)nk == nx && same_ids(k, x, nk),
            "'Hello ' + 'world': context %d tokens, continuation %d (want %zu, %zu)", nc, nk, nw, nx);
    free(c), free(k), free(w), free(x);
    /* a continuation merging into the context's last token: tok(whole) minus len(tok(ctx)) tokens */
    T_CHECK(!task_encode_pair(t, "un", 2, "believable things", 17, &c, &nc, &k, &nk), "%s", mq_errmsg());
    T_CHECK(!tok_encode(t, "unbelievable things", 19, &w, &nw), "%s", mq_errmsg());
    T_CHECK((size_t)(nc + nk) == nw && same_ids(k, w + nc, nk), "merged boundary: %d + %d of %zu", nc, nk, nw);
    free(c), free(k), free(w);
    /* nothing left for the continuation is an error */
    T_CHECK(task_encode_pair(t, "abc", 3, "", 0, &c, &nc, &k, &nk) == -1, "empty continuation must fail");
}

static const char *write_file(const char *name, const char *text) {
    static char path[4][512];
    static int i;
    char *p = path[i++ % 4];
    snprintf(p, 512, "%s/%s", t_tmpdir(), name);
    T_CHECK(mq_write_file_atomic(p, text, strlen(text)) == 0, "%s", mq_errmsg());
    return p;
}

static void test_task_load(void) {
    tok_tokenizer *t = tokenizer();
    if (!t) T_SKIP("../shared/models/tokenizer.json not found");
    const char *lam = write_file("lam.jsonl", "{\"text\": \"The cat sat on the mat\"}\n\n  \n{\"text\": \"She said hello\"}\n"
                                              "{\"text\": \"One two three four\"}\n");
    task_set ts;
    T_CHECK(!task_load(&ts, TASK_LAMBADA, lam, t, 0), "%s", mq_errmsg());
    T_CHECK(ts.n == 3 && ts.n_req == 3, "3 examples (blank lines skipped), got %d / %d requests", ts.n, ts.n_req);
    T_CHECK(ts.req[0].n_ctx == 5 && ts.req[0].n_cont == 1 && ts.req[0].bytes == 4, "first request %d + %d, %d bytes",
            ts.req[0].n_ctx, ts.req[0].n_cont, ts.req[0].bytes);
    T_CHECK(ts.fed == ts.n_cont + (long)ts.req[0].n_ctx + ts.req[1].n_ctx + ts.req[2].n_ctx - 3, "fed tokens %ld", ts.fed);
    task_free(&ts);
    T_CHECK(!task_load(&ts, TASK_LAMBADA, lam, t, 2) && ts.n == 2, "--limit 2");
    task_free(&ts);

    const char *ch = write_file("ch.jsonl", "{\"context\": \"It rained.\", \"choices\": [\" We got wet.\", \" Dry.\", \" ok\"], \"label\": 0}\n");
    T_CHECK(!task_load(&ts, TASK_CHOICE, ch, t, 0), "%s", mq_errmsg());
    T_CHECK(ts.n == 1 && ts.n_req == 3 && ts.count[0] == 3 && ts.label[0] == 0, "one example, 3 requests");
    T_CHECK(ts.req[1].bytes == 5 && ts.req[1].n_ctx == ts.req[0].n_ctx, "choice bytes / shared context");
    task_free(&ts);

    struct { const char *text; task_kind k; const char *want; } bad[] = {
        {"{\"text\": \"nospace\"}\n", TASK_LAMBADA, "line 1"},
        {"{\"text\": \"a b\"}\n{\"txt\": \"a b\"}\n", TASK_LAMBADA, "line 2"},
        {"[1, 2]\n", TASK_LAMBADA, "not a JSON object"},
        {"{\"context\": \"x\", \"choices\": [\" a\", \" b\"], \"label\": 2}\n", TASK_CHOICE, "label"},
        {"{\"context\": \"x\", \"choices\": [\" a\"], \"label\": 0}\n", TASK_CHOICE, "choices"},
        {"{\"context\": \"x\", \"choices\": [\" a\", 3], \"label\": 0}\n", TASK_CHOICE, "choice 1"},
        {"\n\n", TASK_CHOICE, "no examples"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *p = write_file("bad.jsonl", bad[i].text);
        T_CHECK(task_load(&ts, bad[i].k, p, t, 0) == -1, "case %zu must fail", i);
        T_CHECK(strstr(mq_errmsg(), bad[i].want) && strstr(mq_errmsg(), "bad.jsonl"), "case %zu: message '%s' (want '%s')",
                i, mq_errmsg(), bad[i].want);
    }
    T_CHECK(task_load(&ts, TASK_CHOICE, "/nonexistent/x.jsonl", t, 0) == -1, "missing file");
}

/* Every request scored alone (one unpadded forward, all logits) against the batched, padded path. */
static void check_against_unbatched(const mq_model *m, const task_set *ts, const task_result *r) {
    const int V = m->cfg.vocab_size, D = m->cfg.d_model;
    double max_rel = 0;
    int argmax_diff = 0;
    for (int i = 0; i < ts->n_req; i++) {
        const task_req *q = &ts->req[i];
        const int T = q->n_ctx + q->n_cont;
        float *h = mq_malloc((size_t)T * D * sizeof(float)), *lg = mq_malloc((size_t)T * V * sizeof(float));
        T_CHECK(!ssm_forward(m, q->ids, T, NULL, h), "%s", mq_errmsg());
        ssm_logits(m, h, T, lg);
        double ll = 0;
        for (int k = 0; k < q->n_cont; k++) {
            const float *row = lg + (size_t)(q->n_ctx - 1 + k) * V;
            ll += row[q->ids[q->n_ctx + k]] - op_logsumexp(row, V);
            int am = 0;
            for (int v = 1; v < V; v++) am = row[v] > row[am] ? v : am;
            argmax_diff += am != r->argmax[q->cont_off + k];
        }
        max_rel = fmax(max_rel, fabs(ll - r->ll[i]) / fmax(1, fabs(ll)));
        free(h), free(lg);
    }
    T_CHECK(max_rel < 1e-5, "batched vs unbatched log-likelihood: max relative difference %.3g", max_rel);
    T_CHECK(argmax_diff == 0, "%d argmax tokens differ", argmax_diff);
}

static void test_task_scoring(void) {
    tok_tokenizer *t = tokenizer();
    const char *md = t_shared("models/mamba2-proxy");
    if (!t || !md) T_SKIP("../shared/models not found");
    char *dir = strdup(md);
    mq_model m;
    T_CHECK(!ssm_load(dir, &m), "%s", mq_errmsg());
    free(dir);
    const char *data = t_shared("datasets/story_choice_valid.jsonl");
    if (!data) T_SKIP("../shared/datasets/story_choice_valid.jsonl not found");
    task_set ts;
    T_CHECK(!task_load(&ts, TASK_CHOICE, data, t, 3), "%s", mq_errmsg());
    /* batch 5 over 12 requests of different lengths: padded rows, a short last batch */
    be *b = be_open_model(&m, BE_CPU_F32, 5, ts.max_fed);
    task_result r;
    T_CHECK(!task_score(b, &ts, "test", 1, &r), "%s", mq_errmsg());
    check_against_unbatched(&m, &ts, &r);
    /* the predictions and statistics from the log-likelihoods */
    long correct = 0, correct_norm = 0;
    for (int e = 0; e < ts.n; e++) {
        const int f = ts.first[e];
        int best = 0, bn = 0;
        for (int i = 1; i < ts.count[e]; i++) {
            best = r.ll[f + i] > r.ll[f + best] ? i : best;
            bn = r.ll[f + i] / ts.req[f + i].bytes > r.ll[f + bn] / ts.req[f + bn].bytes ? i : bn;
        }
        T_CHECK(r.pred[e] == best && r.pred_norm[e] == bn, "example %d: pred %d/%d want %d/%d", e, r.pred[e],
                r.pred_norm[e], best, bn);
        correct += best == ts.label[e], correct_norm += bn == ts.label[e];
    }
    T_CHECK(r.correct == correct && r.correct_norm == correct_norm && r.n == 3, "counts");
    T_NEAR(r.acc_stderr, sqrt(r.acc * (1 - r.acc) / 2), 1e-12, "acc stderr");
    T_CHECK(isnan(r.ppl) && !isnan(r.acc_norm), "choice: acc_norm, no ppl");
    T_NEAR(task_agreement(&ts, &r, &r), 1, 0, "self-agreement");
    task_result_free(&r);
    be_free(b);
    task_free(&ts);

    /* lambada: ppl = exp(-mean ll), its stderr by the delta method, acc from the argmax tokens */
    const char *lam = t_shared("datasets/lambada_1000.jsonl");
    if (!lam) T_SKIP("../shared/datasets/lambada_1000.jsonl not found");
    T_CHECK(!task_load(&ts, TASK_LAMBADA, lam, t, 6), "%s", mq_errmsg());
    b = be_open_model(&m, BE_CPU_F32, 4, ts.max_fed);
    T_CHECK(!task_score(b, &ts, "test", 1, &r), "%s", mq_errmsg());
    check_against_unbatched(&m, &ts, &r);
    double s = 0, ss = 0;
    for (int e = 0; e < ts.n; e++) s += r.ll[e];
    const double mean = s / ts.n;
    for (int e = 0; e < ts.n; e++) ss += (r.ll[e] - mean) * (r.ll[e] - mean);
    T_NEAR(r.ll_mean, mean, 1e-9, "ll_mean");
    T_NEAR(r.ppl, exp(-mean), 1e-9 * r.ppl, "ppl");
    T_NEAR(r.ll_stderr, sqrt(ss / (ts.n - 1) / ts.n), 1e-9, "ll stderr");
    T_NEAR(r.ppl_stderr, r.ppl * r.ll_stderr, 1e-9 * r.ppl, "ppl stderr");
    for (int e = 0; e < ts.n; e++) {
        const task_req *q = &ts.req[e];
        T_CHECK(r.pred[e] == same_ids(r.argmax + q->cont_off, q->ids + q->n_ctx, q->n_cont), "example %d greedy", e);
    }
    task_result_free(&r);
    be_free(b);
    task_free(&ts);
    ssm_free(&m);
}

/* ---- the command against the reference */


static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *load_json(const char *path) {
    char *txt = path ? mq_read_file(path, NULL) : NULL;
    cJSON *o = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    return o;
}

static void check_proxy(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", name);
    const char *d = t_shared(rel);
    if (!d) T_SKIP("../shared/models not found (set MQ_SHARED)");
    char *dir = strdup(d);
    cJSON *ref = load_json(t_shared("datasets/accuracy_reference.json"));
    cJSON *pin = load_json("tests/fixtures/task/choice_first200.json");
    if (!ref || !t_shared("datasets/lambada_1000.jsonl") || !t_shared("datasets/story_choice_valid.jsonl")) {
        free(dir), cJSON_Delete(ref), cJSON_Delete(pin);
        T_SKIP("../shared/datasets: the task files or accuracy_reference.json not found");
    }
    const cJSON *mr = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "models"), name);
    const cJSON *rl = cJSON_GetObjectItem(mr, "lambada_1000.jsonl");
    char args[4600], err[4096];
    int rc;
    /* lambada: the whole file, default --data */
    snprintf(args, sizeof args, "eval --task lambada --model %s --device cpu --json", dir);
    cJSON *o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "mambaq eval --task lambada exited %d: %s", rc, err);
    if (o) {
        const double n = num(o, "n"), acc = num(o, "acc"), ppl = num(o, "ppl"), rppl = num(rl, "ppl");
        printf("    %s lambada: n %.0f, acc %.4f (ref %.4f), ppl %.2f (ref %.2f, %+.4f%%), %.0f s\n", name, n, acc,
               num(rl, "acc"), ppl, rppl, 100 * (ppl / rppl - 1), num(o, "seconds"));
        T_CHECK(n == num(rl, "n"), "n %g vs %g", n, num(rl, "n"));
        T_CHECK(fabs(acc * n - num(rl, "acc") * n) <= 2.5, "correct %g vs %g", acc * n, num(rl, "acc") * n);
        T_CHECK(fabs(ppl / rppl - 1) <= 1e-3, "ppl %.4f vs reference %.4f", ppl, rppl);
        T_NEAR(num(o, "ppl_stderr"), ppl * num(o, "ll_stderr"), 1e-6 * ppl, "ppl stderr");
        T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "acc_norm")), "lambada has no acc_norm");
    }
    cJSON_Delete(o);
    /* choice: the first CHOICE_CI examples, against the counts the full run gave them */
    const cJSON *pc = cJSON_GetObjectItem(pin, name);
    snprintf(args, sizeof args, "eval --task choice --model %s --device cpu --limit %d --json", dir, CHOICE_CI);
    o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "mambaq eval --task choice exited %d: %s", rc, err);
    T_CHECK(pc != NULL, "tests/fixtures/task/choice_first200.json has no %s", name);
    if (o && pc) {
        const double c = num(o, "correct"), cn = num(o, "correct_norm");
        printf("    %s choice, first %d: correct %.0f (pinned %.0f), correct_norm %.0f (pinned %.0f), %.0f s\n", name,
               CHOICE_CI, c, num(pc, "correct"), cn, num(pc, "correct_norm"), num(o, "seconds"));
        T_CHECK(num(o, "n") == CHOICE_CI, "n");
        T_CHECK(fabs(c - num(pc, "correct")) <= 2 && fabs(cn - num(pc, "correct_norm")) <= 2, "counts");
        T_NEAR(num(o, "acc_stderr"), sqrt(num(o, "acc") * (1 - num(o, "acc")) / (CHOICE_CI - 1)), 1e-9, "acc stderr");
    }
    cJSON_Delete(o);
    cJSON_Delete(ref), cJSON_Delete(pin);
    free(dir);
}

static void test_task_mamba1(void) { check_proxy("mamba1-proxy"); }
static void test_task_mamba2(void) { check_proxy("mamba2-proxy"); }

static void test_task_cli_errors(void) {
    const char *d = t_shared("models/mamba1-proxy");
    if (!d) T_SKIP("../shared/models not found");
    char args[4700], err[4096];
    int rc;
    snprintf(args, sizeof args, "eval --task piqa --model %s", d);
    T_CHECK(!mambaq_json(args, &rc, err, sizeof err) && rc == 2 && strstr(err, "lambada or choice"), "unknown task: %d %s", rc, err);
    snprintf(args, sizeof args, "eval --task choice --data %s --model %s", write_file("x.jsonl", "{\"text\": \"a b\"}\n"), d);
    T_CHECK(!mambaq_json(args, &rc, err, sizeof err) && rc == 1 && strstr(err, "x.jsonl line 1") && strstr(err, "context"),
            "wrong format: %d %s", rc, err);
    snprintf(args, sizeof args, "eval --task lambada --windows 3 --model %s", d);
    T_CHECK(!mambaq_json(args, &rc, err, sizeof err) && rc == 2 && strstr(err, "--windows"), "--windows: %d %s", rc, err);
    snprintf(args, sizeof args, "eval --task lambada --model %s --data /nonexistent.jsonl", d);
    T_CHECK(!mambaq_json(args, &rc, err, sizeof err) && rc == 1 && strstr(err, "/nonexistent.jsonl"), "missing: %d %s", rc, err);
}

/* sweep --task and verify --task on a tiny calibration (mamba1): the float column is eval --task's. */
static void test_task_sweep_verify(void) {
    char model[4200], calib[4200], valid[4200], stats[600], art[600], args[16000], err[4096];
    const char *names[3] = {"models/mamba1-proxy", "datasets/calib.txt", "datasets/valid.txt"};
    char *paths[3] = {model, calib, valid};
    for (int i = 0; i < 3; i++) { /* t_shared's buffer is static */
        const char *p = t_shared(names[i]);
        if (!p) T_SKIP("../shared/%s not found", names[i]);
        snprintf(paths[i], 4200, "%s", p);
    }
    snprintf(stats, sizeof stats, "%s/stats.safetensors", t_tmpdir());
    snprintf(art, sizeof art, "%s/art", t_tmpdir());
    int rc;
    snprintf(args, sizeof args, "calib --model %s --data %s --samples 2 --seqlen 64 --device cpu --quiet --out %s > /dev/null && "
             "bin/mambaq quantize --model %s --stats %s --method naive --out %s --force --quiet > /dev/null && echo '{}'",
             model, calib, stats, model, stats, art);
    cJSON *o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "calib + quantize: %d %s", rc, err);
    cJSON_Delete(o);
    if (!o) return;

    snprintf(args, sizeof args, "eval --task choice --limit 6 --model %s --device cpu --json", model);
    cJSON *ev = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(ev != NULL, "eval: %d %s", rc, err);
    snprintf(args, sizeof args, "sweep --model %s --stats %s --data %s --window 64 --windows 1 --method naive,quamba "
             "--percentile 99.999 --task choice --limit 6 --json --quiet", model, stats, valid);
    o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "sweep --task: %d %s", rc, err);
    if (o && ev) {
        const cJSON *fp = cJSON_GetObjectItem(o, "fp32_task"), *res = cJSON_GetObjectItem(o, "results");
        T_CHECK(num(fp, "correct") == num(ev, "correct") && num(fp, "correct_norm") == num(ev, "correct_norm") &&
                num(fp, "n") == 6, "sweep's fp32 column %g/%g vs eval %g/%g", num(fp, "correct"), num(fp, "correct_norm"),
                num(ev, "correct"), num(ev, "correct_norm"));
        T_CHECK(cJSON_GetArraySize(res) == 2, "two configurations");
        for (int i = 0; i < cJSON_GetArraySize(res); i++) {
            const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(res, i), "task");
            T_CHECK(num(t, "n") == 6 && num(t, "acc") >= 0 && num(t, "acc") <= 1 && num(t, "acc_norm") >= 0, "config %d task", i);
        }
    }
    cJSON_Delete(o);
    /* the same sweep as a table: the accuracy columns */
    snprintf(args, sizeof args, "sweep --model %s --stats %s --data %s --window 64 --windows 1 --method naive "
             "--task choice --limit 6 --quiet | grep -c 'acc_norm' | sed 's/^/{\"lines\": /; s/$/}/'", model, stats, valid);
    o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o && num(o, "lines") == 1, "sweep's table has an acc_norm column: %s", err);
    cJSON_Delete(o);

    snprintf(args, sizeof args, "verify --artifact %s --model %s --data %s --window 64 --windows 1 --device cpu "
             "--task choice --limit 6 --json", art, model, valid);
    o = mambaq_json(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "verify --task: %d %s", rc, err);
    if (o && ev) {
        const cJSON *t = cJSON_GetObjectItem(o, "task");
        const cJSON *f = cJSON_GetObjectItem(t, "float"), *q = cJSON_GetObjectItem(t, "int8");
        const double ag = num(t, "agreement");
        printf("    verify --task choice, 6 examples: float %g/%g, int8 (naive, tiny calibration) %g/%g, agreement %.2f\n",
               num(f, "correct"), num(f, "correct_norm"), num(q, "correct"), num(q, "correct_norm"), ag);
        T_CHECK(num(f, "correct") == num(ev, "correct") && num(f, "correct_norm") == num(ev, "correct_norm"), "float = eval");
        T_CHECK(num(q, "n") == 6 && ag >= 0 && ag <= 1 && fabs(ag * 6 - round(ag * 6)) < 1e-9, "agreement %g", ag);
    }
    cJSON_Delete(o);
    cJSON_Delete(ev);
}

int main(void) {
    T_RUN(test_task_split);
    T_RUN(test_task_load);
    T_RUN(test_task_scoring);
    T_RUN(test_task_cli_errors);
    T_RUN(test_task_sweep_verify);
    T_RUN(test_task_mamba1);
    T_RUN(test_task_mamba2);
    if (g_tok) tok_free(g_tok);
    return t_summary();
}
