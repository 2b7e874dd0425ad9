/* mambaq tokenize: a text file (.txt / .jsonl, optionally .gz) -> token ids with a tokenizer.json.
 * Ids go to --out as little-endian int32 (written atomically), or to stdout as text; --stats
 * reports size, token count and encoding speed (encode only, one thread). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "core/fio.h"
#include "datasets/ds.h"
#include "datasets/tok.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU time of this thread: the fair speed figure on a machine shared with other jobs */
static double cpu_s(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

int cmd_tokenize(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--data", .metavar = "FILE", .help = "text: .txt, or .jsonl (records joined by a blank line); either may be .gz", .pos = 1},
        CLI_TOKENIZER_FILE,
        CLI_FIELD,
        {.name = "--out", .metavar = "FILE", .help = "write the ids here as little-endian int32 (atomically)"},
        CLI_FORCE,
        {.name = "--stats", .help = "print bytes, tokens, bytes/token and MB/s"},
        {.name = "--replace-invalid", .help = "replace invalid UTF-8 with U+FFFD instead of failing"},
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq tokenize FILE [--tokenizer FILE] [--out ids.bin] [--stats]",
              "Tokenizes a text file exactly as Hugging Face tokenizers does (no special tokens added).\n"
              "Without --out or --stats the ids are printed, separated by spaces.", NULL, 0);
    const char *data = cli_get(opts, "--data"), *out = cli_get(opts, "--out");
    if (!data) data = cli_need(opts, "tokenize", "--data");
    int force;
    const char *tok_path = cli_tokenizer_file(opts, "tokenize", &force);

    double t0 = now_s();
    tok_tokenizer *tok = tok_load(tok_path);
    if (!tok) mq_die("%s", mq_errmsg());
    double t_load = now_s() - t0;
    ds_options dopt = {cli_get(opts, "--field"), cli_flag(opts, "--replace-invalid")};
    size_t len, n;
    char *text = ds_read_text(data, &dopt, &len);
    if (!text) mq_die("%s", mq_errmsg());
    int32_t *ids;
    t0 = now_s();
    double c0 = cpu_s();
    if (tok_encode(tok, text, len, &ids, &n)) mq_die("%s: %s", data, mq_errmsg());
    if (len && !n)
        mq_die("%s: %zu bytes of text encode to no tokens with %s (its vocabulary lacks their bytes and has no unk token)", data, len,
               tok_path);
    double t_enc = now_s() - t0, c_enc = cpu_s() - c0;

    if (out) {
        /* ids as little-endian int32 regardless of the host's byte order */
        unsigned char *buf = mq_malloc(n * 4);
        for (size_t i = 0; i < n; i++)
            for (int b = 0; b < 4; b++) buf[4 * i + b] = (unsigned char)((uint32_t)ids[i] >> (8 * b));
        if (fio_write_file(out, buf, n * 4, force)) mq_die("%s", mq_errmsg());
        free(buf);
    }
    if (cli_flag(opts, "--stats")) {
        printf("file         %s\n", data);
        printf("bytes        %zu\n", len);
        printf("tokens       %zu\n", n);
        printf("bytes/token  %.3f\n", n ? (double)len / (double)n : 0.0);
        printf("encode       %.3f s wall, %.3f s CPU (one thread): %.1f MB/s of CPU time, %.1f MB/s wall\n", t_enc, c_enc,
               c_enc > 0 ? (double)len / 1e6 / c_enc : 0.0, t_enc > 0 ? (double)len / 1e6 / t_enc : 0.0);
        printf("load         %.3f s (tokenizer.json)\n", t_load);
        if (out) printf("wrote        %s (%zu int32 ids)\n", out, n);
    } else if (!out) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    tok_free(tok);
    return 0;
}
