/* Tokenizer tests: id-for-id parity with Hugging Face tokenizers 0.23 on the shared datasets and the
 * stress text (fixtures: gzip'ed little-endian uint16 ids), decode(encode(x)) == NFC(x), the
 * regex / added-token / NFC rules on small cases, loader errors, and encoding speed.
 * Under AddressSanitizer the big files are checked on a prefix to keep the run short. */
#include "tests/test.h"
#include "tests/test_data.h"
#include <ctype.h>
#include <stdint.h>
#include <time.h>
#include "core/err.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "datasets/unicode.h"

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif

static tok_tokenizer *g_tok;

static tok_tokenizer *tokenizer(void) {
    if (!g_tok) {
        const char *p = t_shared("models/tokenizer.json");
        if (p) g_tok = tok_load(p);
        if (p && !g_tok) printf("    tok_load: %s\n", mq_errmsg());
    }
    return g_tok;
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints ids [from, to) with their token strings, for mismatch reports. */
static void show_ids(const char *who, const int32_t *ids, size_t n, size_t from, size_t to) {
    printf("      %s:", who);
    for (size_t k = from; k < to && k < n; k++) {
        size_t l = 0;
        const char *s = tok_id_to_token(g_tok, ids[k], &l);
        printf(" %d'%.*s'", ids[k], (int)l, s ? s : "?");
    }
    printf("\n");
}

/* Encodes `text` and compares with the HF fixture ids; `prefix` means text is a prefix of the file
 * the fixture was made from (cut where the tokens of the whole file also break). */
static void check_parity(const char *name, const char *text, size_t len, const char *fixture, int prefix) {
    tok_tokenizer *t = tokenizer();
    size_t nref;
    int32_t *ref = t_fixture_ids(fixture, &nref);
    T_CHECK(ref != NULL, "%s", mq_errmsg());
    if (!ref) return;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tok_encode(t, text, len, &ids, &n);
    T_CHECK(rc == 0, "%s: %s", name, mq_errmsg());
    size_t i = 0;
    while (i < n && i < nref && ids[i] == ref[i]) i++;
    int ok = prefix ? i == n && n <= nref : i == n && n == nref;
    T_CHECK(ok, "%s: ids differ from HF at position %zu (ours %zu tokens, HF %zu%s)", name, i, n, nref,
            prefix ? " for the whole file" : "");
    if (!ok) {
        size_t from = i > 8 ? i - 8 : 0;
        show_ids("ours", ids, n, from, i + 8);
        show_ids("HF  ", ref, nref, from, i + 8);
        size_t dl;
        char *d = tok_decode(t, ids + from, (i + 8 < n ? i + 8 : n) - from, &dl);
        if (d) printf("      text: \"%s\"\n", d);
        free(d);
    }
    printf("    %s: %zu bytes -> %zu tokens (HF fixture: %zu tokens%s)\n", name, len, n, nref, prefix ? " for the whole file" : "");
    /* decode(encode(x)) gives back the normalized text */
    size_t nl, dl;
    char *norm = tok_normalize(t, text, len, &nl);
    char *dec = tok_decode(t, ids, n, &dl);
    T_CHECK(dec && dl == nl && !memcmp(dec, norm, nl), "%s: decode(encode(x)) != NFC(x) (%zu vs %zu bytes)", name, dl, nl);
    free(norm); free(dec); free(ids); free(ref);
}

static void parity_file(const char *name) {
    char rel[512], fix[512];
    snprintf(rel, sizeof rel, "datasets/%s", name);
    snprintf(fix, sizeof fix, "tests/fixtures/tok/%s.ids.u16.gz", name);
    const char *path = t_shared(rel);
    if (!tokenizer() || !path) T_SKIP("../shared/models/tokenizer.json or ../shared/datasets/%.100s not found", name);
    size_t len;
    char *text = mq_read_file(path, &len);
    T_CHECK(text != NULL, "%s", mq_errmsg());
    if (!text) return;
    int prefix = 0;
    if (T_ASAN && len > 200000) {
        /* cut between two ASCII words ("...word| next"): the whole text's tokens break there too */
        size_t cut = 150000;
        while (cut + 2 < len && !(isalpha((unsigned char)text[cut - 1]) && text[cut] == ' ' && isalpha((unsigned char)text[cut + 1])))
            cut++;
        len = cut;
        prefix = 1;
    }
    check_parity(name, text, len, fix, prefix);
    free(text);
}

static void test_parity_stress(void) {
    if (!tokenizer()) T_SKIP("../shared/models/tokenizer.json not found");
    size_t len;
    char *text = mq_read_file("tests/fixtures/tok/stress.txt", &len);
    T_CHECK(text != NULL, "%s", mq_errmsg());
    if (!text) return;
    check_parity("stress.txt", text, len, "tests/fixtures/tok/stress.txt.ids.u16.gz", 0);
    free(text);
}
static void test_parity_calib(void) { parity_file("calib.txt"); }
static void test_parity_valid(void) { parity_file("valid.txt"); }
static void test_parity_wikitext2(void) { parity_file("wikitext2-test.txt"); }

/* ids of `text` equal the tokens listed (by their tokenizer.json strings; NULL-terminated) */
static void expect(const char *text, const char **toks) {
    tok_tokenizer *t = tokenizer();
    int32_t *ids;
    size_t n, k = 0;
    T_CHECK(tok_encode(t, text, strlen(text), &ids, &n) == 0, "%s", mq_errmsg());
    int ok = 1;
    for (; toks[k]; k++) {
        int32_t want = tok_token_to_id(t, toks[k]);
        T_CHECK(want >= 0, "'%s' is not a token", toks[k]);
        if (k >= n || ids[k] != want) ok = 0;
    }
    if (k != n) ok = 0;
    T_CHECK(ok, "\"%s\": unexpected ids", text);
    if (!ok) show_ids("got", ids, n, 0, n);
    free(ids);
}
#define EXPECT(text, ...) expect(text, (const char *[]){__VA_ARGS__, NULL})

static void test_split_rules(void) {
    if (!tokenizer()) T_SKIP("../shared/models/tokenizer.json not found");
    EXPECT("Hello world", "Hello", "Ġworld");
    EXPECT("it's they're It'S", "it", "'s", "Ġthey", "'re", "ĠIt", "'", "S");
    /* whitespace: a run before a word leaves its last character to the word; runs of 2+ spaces
     * are the added tokens "  ", "   ", ... (matched before the regex, longest first) */
    EXPECT("a\n\nb", "a", "Ċ", "Ċ", "b");
    EXPECT("a\n\n", "a", "ĊĊ");
    EXPECT("a  b", "a", "  ", "b");
    EXPECT("a\t\tb", "a", "ĉ", "ĉ", "b");
    /* special tokens split the raw text; the pieces around them are tokenized on their own */
    EXPECT("x<|endoftext|>y", "x", "<|endoftext|>", "y");
    EXPECT("12345", "12345");   /* one \p{N}+ run, one token here */
    /* NFC: a decomposed e + combining acute encodes like the precomposed character */
    tok_tokenizer *t = tokenizer();
    int32_t *a, *b;
    size_t na, nb;
    T_CHECK(!tok_encode(t, "caf\xC3\xA9", 5, &a, &na) && !tok_encode(t, "cafe\xCC\x81", 6, &b, &nb), "%s", mq_errmsg());
    T_CHECK(na == nb && !memcmp(a, b, na * sizeof *a), "NFC: composed and decomposed differ");
    free(a); free(b);
    /* invalid UTF-8 is refused with its byte offset */
    T_CHECK(tok_encode(t, "ab\xFF", 3, &a, &na) == -1, "invalid UTF-8 accepted");
    T_CHECK(strstr(mq_errmsg(), "byte offset 2") != NULL, "message: %s", mq_errmsg());
    /* decode: an id outside the vocabulary is an error; a cut character becomes U+FFFD */
    int32_t bad = 999999;
    size_t dl;
    T_CHECK(tok_decode(t, &bad, 1, &dl) == NULL && strstr(mq_errmsg(), "999999"), "bad id: %s", mq_errmsg());
    T_CHECK(!tok_encode(t, "\xF0\x9F\x98\x80", 4, &a, &na) && na >= 2, "emoji: %zu ids", na);   /* U+1F600 */
    char *d = tok_decode(t, a, na - 1, &dl);
    T_CHECK(d && !strcmp(d, "\xEF\xBF\xBD"), "cut character: '%s'", d ? d : "(null)");
    free(d); free(a);
    T_CHECK(tok_vocab_size(t) == 50277, "vocab size %d", tok_vocab_size(t));
}

static void test_nfc(void) {
    struct { const char *in, *out; } cases[] = {
        {"e\xCC\x81", "\xC3\xA9"},                                    /* e + acute -> é */
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"},    /* Hangul L V T -> 각 */
        {"a\xCC\xA3\xCC\x87", "\xE1\xBA\xA1\xCC\x87"},               /* a dot-below dot-above: ạ + ̇ */
        {"a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87"},               /* same after canonical reordering */
        {"\xCC\x81" "e", "\xCC\x81" "e"},                            /* leading mark stays */
        {"\xE2\x84\xAB", "\xC3\x85"},                                /* Angstrom sign -> Å (singleton) */
        {"plain ascii", "plain ascii"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        size_t n;
        const char *in = cases[i].in;
        int changed = uni_nfc(in, strlen(in), &out, &n);
        const char *got = changed ? out : in;
        T_CHECK(!strcmp(got, cases[i].out), "case %zu: NFC gave '%s'", i, got);
        free(out);
    }
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static void load_error(const char *json, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad_tokenizer.json", t_tmpdir());
    write_file(path, json);
    tok_tokenizer *t = tok_load(path);
    T_CHECK(t == NULL, "loaded a bad tokenizer (%s)", want);
    tok_free(t);
    T_CHECK(strstr(mq_errmsg(), path) && strstr(mq_errmsg(), want), "want '%s' in: %s", want, mq_errmsg());
}

#define BASE_OK "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, " \
                "\"decoder\": {\"type\": \"ByteLevel\"}, "

static void test_load_errors(void) {
    load_error("{\"model\": ", "not valid JSON");
    load_error("{" BASE_OK "\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab");
    load_error("{" BASE_OK "\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", "model.type");
    load_error("{" BASE_OK "\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b c\"]}}", "model.merges[0]");
    load_error("{" BASE_OK "\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}", "\"ab\" is not in model.vocab");
    load_error("{" BASE_OK "\"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}", "model.vocab[\"a\"]");
    load_error("{\"normalizer\": {\"type\": \"NFKC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"},"
               "\"model\": {\"vocab\": {}, \"merges\": []}}", "normalizer");
    load_error("{" BASE_OK "\"added_tokens\": [{\"id\": 5}], \"model\": {\"vocab\": {}, \"merges\": []}}", "added_tokens[0]");
    load_error("{" BASE_OK "\"added_tokens\": [{\"id\": 5, \"content\": \"x\", \"lstrip\": 1}], \"model\": {\"vocab\": {}, \"merges\": []}}",
               "added_tokens[0].lstrip");
    load_error("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {}, \"merges\": []}}",
               "pre_tokenizer");
}

/* A tiny tokenizer exercising the added-token flags and the [a, b] merge form. */
static void test_added_flags(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/flags_tokenizer.json", t_tmpdir());
    write_file(path,
               "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
               " \"decoder\": {\"type\": \"ByteLevel\"},"
               " \"added_tokens\": ["
               "  {\"id\": 6, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"single_word\": false, \"normalized\": false, \"special\": true},"
               "  {\"id\": 7, \"content\": \"ab\", \"single_word\": true, \"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": false}],"
               " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, \"x\": 3, \"xa\": 4, \"\\u0120x\": 5},"
               "  \"merges\": [[\"x\", \"a\"], \"\\u0120 x\"]}}");
    tok_tokenizer *t = tok_load(path);
    T_CHECK(t != NULL, "%s", mq_errmsg());
    if (!t) return;
    struct { const char *in; int32_t want[8]; size_t n; } cases[] = {
        {"x <m>  x", {3, 6, 3}, 3},       /* lstrip/rstrip eat the spaces around <m> */
        {"ab", {7}, 1},                   /* single word */
        {"xab", {4, 1}, 2},               /* "ab" inside a word is not the added token: x a b -> xa b */
        {"x ab", {3, 2, 7}, 3},           /* Ġ is not \w: "ab" stands alone */
        {" x", {5}, 1},                   /* "Ġ x" merge */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids;
        size_t n;
        T_CHECK(!tok_encode(t, cases[i].in, strlen(cases[i].in), &ids, &n), "%s", mq_errmsg());
        int ok = n == cases[i].n && !memcmp(ids, cases[i].want, n * sizeof *ids);
        T_CHECK(ok, "case \"%s\": got %zu ids, first %d", cases[i].in, n, n ? ids[0] : -1);
        free(ids);
    }
    tok_free(t);
}

static void test_speed(void) {
    const char *path = t_shared("datasets/calib.txt");
    if (T_ASAN) T_SKIP("timing is meaningless under AddressSanitizer");
    if (!tokenizer() || !path) T_SKIP("../shared data not found");
    size_t len;
    char *text = mq_read_file(path, &len);
    /* a fresh tokenizer, so the word cache starts empty as in a real run */
    tok_tokenizer *t = tok_load(t_shared("models/tokenizer.json"));
    int32_t *ids;
    size_t n;
    /* CPU time of this thread, so that other jobs on the machine do not count */
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    T_CHECK(!tok_encode(t, text, len, &ids, &n), "%s", mq_errmsg());
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("    calib.txt: %zu bytes in %.3f s CPU (%.3f s wall) = %.1f MB/s (one thread, cold cache)\n", len, dc, dt, len / 1e6 / dc);
    T_CHECK(dc < 1.0, "encoding 2 MB took %.2f s of CPU time", dc);
    free(ids); free(text);
    tok_free(t);
}

int main(void) {
    T_RUN(test_nfc);
    T_RUN(test_load_errors);
    T_RUN(test_added_flags);
    T_RUN(test_split_rules);
    T_RUN(test_parity_stress);
    T_RUN(test_parity_calib);
    T_RUN(test_parity_valid);
    T_RUN(test_parity_wikitext2);
    T_RUN(test_speed);
    tok_free(g_tok);
    return t_summary();
}
