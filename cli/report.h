/* The quantization report of `mambaq report`: one self-contained HTML page (inline SVG and CSS, no
 * script, nothing fetched) from a calib stats file, optionally the int8 artifact made from it and the
 * JSON of `mambaq verify --json`. It shows, per layer and activation, absmax against the clip int8
 * uses, the log histogram with the clip marked, per-head / per-group maxima, y before and after the
 * Hadamard rotation, the artifact's scales and the verify results, with a summary and heat maps. */
#ifndef MQ_REPORT_H
#define MQ_REPORT_H
#include <stddef.h>

typedef struct {
    const char *stats_path;     /* required */
    const char *artifact_dir;   /* or NULL: clips computed from the stats with method/percentile */
    const char *verify_path;    /* or NULL */
    const char *method;         /* recipe when there is no artifact (q_method_from_name) */
    double percentile;          /* its percentile clip of the SSM input x */
    int open_all;               /* every layer section expanded */
} rep_options;

/* Builds the page into *html (NUL-terminated, caller frees; *len bytes). Warnings that do not stop
 * the page (a verify file of another length, ...) are shown in it and printed to stderr.
 * 0, or -1 + mq_errmsg() naming the file and the problem (missing or invalid stats, artifact of
 * another model, unreadable verify JSON, ...). */
int rep_build(const rep_options *o, char **html, size_t *len);

#endif
