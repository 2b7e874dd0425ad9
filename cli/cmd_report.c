/* mambaq report --stats FILE [--artifact DIR] [--verify FILE.json] --out report.html: one
 * self-contained HTML page on how a model quantizes (cli/report.h). The page is built in memory and
 * written atomically, so a failed run leaves no file under --out. */
#include <stdio.h>
#include <stdlib.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/report.h"
#include "core/err.h"

int cmd_report(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--stats", .metavar = "FILE", .help = "calibration statistics (mambaq calib, or quantize --save-stats)", .pos = 1},
        {.name = "--artifact", .metavar = "DIR", .help = "the int8 artifact made from them (mambaq quantize): its recipe and scales are shown"},
        {.name = "--verify", .metavar = "FILE", .help = "the output of mambaq verify --json: block cosine per layer, per-role int8 error, perplexities"},
        {.name = "--out", .metavar = "FILE", .help = "HTML page to write", .def = "report.html"},
        CLI_METHOD_OPTS,
        {.name = "--open", .help = "expand every layer section (for printing)"},
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq report STATS [--artifact DIR] [--verify FILE.json] [--out report.html]",
              "Writes one self-contained HTML page (inline SVG and CSS, no script, nothing fetched) on how the model\n"
              "quantizes: a summary, per-activation ranges, heat maps over layers (estimated int8 SQNR at the clip,\n"
              "absmax), and per layer (collapsible) each activation's absmax against the clip int8 uses, its log\n"
              "histogram with the clip marked, per-head / per-group maxima (Mamba2), y before and after the Hadamard,\n"
              "the artifact's scales and, with --verify, the block cosine and the per-role int8 error.\n"
              "Without --artifact the clips are the recipe's (--method, --percentile) computed from the stats, as\n"
              "mambaq quantize computes them.",
              NULL, 0);
    const char *stats = cli_need(opts, "report", "--stats");
    rep_options o = {
        .stats_path = stats,
        .artifact_dir = cli_get(opts, "--artifact"),
        .verify_path = cli_get(opts, "--verify"),
        .method = cli_get(opts, "--method"),
        .percentile = cli_double(opts, "--percentile", 1e-9, 100),
        .open_all = cli_flag(opts, "--open"),
    };
    if (o.artifact_dir && (cli_flag(opts, "--method") || cli_flag(opts, "--percentile")))
        fprintf(stderr, "mambaq report: note: --method / --percentile are ignored with --artifact (the artifact's recipe is shown)\n");
    char *html = NULL;
    size_t len = 0;
    const char *out = cli_get(opts, "--out");
    if (rep_build(&o, &html, &len)) {
        fprintf(stderr, "mambaq report: %s\n", mq_errmsg());
        return 1;
    }
    int rc = mq_mkdir_parents(out) || mq_write_file_atomic(out, html, len);
    free(html);
    if (rc) {
        fprintf(stderr, "mambaq report: %s\n", mq_errmsg());
        return 1;
    }
    printf("wrote %s (%.1f kB)\n", out, len / 1e3);
    return 0;
}
