/* mambaq detokenize: token ids (little-endian int32 file) -> UTF-8 text with a tokenizer.json's
 * ByteLevel decoder, to --out (atomically) or stdout. */
#include <stdio.h>
#include <stdlib.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "core/fio.h"
#include "datasets/ds.h"
#include "datasets/tok.h"

int cmd_detokenize(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--ids", .metavar = "FILE", .help = "token ids, little-endian int32 (as written by mambaq tokenize --out)", .pos = 1},
        CLI_TOKENIZER_FILE,
        {.name = "--out", .metavar = "FILE", .help = "write the text here (atomically) instead of stdout"},
        CLI_FORCE,
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq detokenize IDS [--tokenizer FILE] [--out FILE]",
              "Turns token ids back into text (ids that split a character give U+FFFD, as in Hugging Face).", NULL, 0);
    const char *ids_path = cli_get(opts, "--ids"), *out = cli_get(opts, "--out");
    if (!ids_path) ids_path = cli_need(opts, "detokenize", "--ids");
    int force;
    const char *tok_path = cli_tokenizer_file(opts, "detokenize", &force);
    tok_tokenizer *tok = tok_load(tok_path);
    if (!tok) mq_die("%s", mq_errmsg());
    int32_t *ids;
    size_t n, len;
    if (ds_read_ids(ids_path, tok, &ids, &n)) mq_die("%s", mq_errmsg());
    char *text = tok_decode(tok, ids, n, &len);
    if (!text) mq_die("%s: %s", ids_path, mq_errmsg());
    if (out) {
        if (fio_write_file(out, text, len, force)) mq_die("%s", mq_errmsg());
    } else if (fwrite(text, 1, len, stdout) != len || fflush(stdout)) {
        mq_die("writing to stdout failed");
    }
    free(text);
    free(ids);
    tok_free(tok);
    return 0;
}
