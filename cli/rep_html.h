/* Writing primitives for `mambaq report`: a growable text buffer, HTML escaping of every string that
 * comes from a file, colour scales, and the inline SVG charts of the page (log histogram with marked
 * clips, heat map, line chart, bar chart). The output is XHTML-compatible HTML5: every element
 * closed, every attribute quoted, & < > " escaped, so a strict XML parser reads it too. */
#ifndef MQ_REP_HTML_H
#define MQ_REP_HTML_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t len, cap;
} rep_buf;

void rep_putn(rep_buf *b, const char *s, size_t n);
void rep_puts(rep_buf *b, const char *s);                    /* markup, written as is */
void rep_printf(rep_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Text or attribute value: & < > " ' escaped; control characters (other than tab and newline) and
 * bytes that are not UTF-8 written as '?', so any string read from a file stays well-formed. NULL
 * writes nothing. */
void rep_esc(rep_buf *b, const char *s);
/* A number with 4 significant digits; "—" for NaN or infinity. */
void rep_num(rep_buf *b, double v);
void rep_buf_free(rep_buf *b);

/* "#rrggbb" for t in [0, 1] (clamped): a perceptual sequential scale (dark blue -> yellow) and a
 * red -> yellow -> green scale (bad -> good). buf holds 8 bytes. */
const char *rep_colour_seq(double t, char *buf);
const char *rep_colour_rdylgn(double t, char *buf);

/* ---- charts (each writes one <svg>) ---- */

/* A vertical line at x (a value of |v|) with a label. */
typedef struct {
    double x;
    const char *label;
    const char *colour;
    int dashed;
} rep_marker;

/* One histogram: counts over calib's OBS_HIST_BINS log bins of |v| (calib/obs.h). */
typedef struct {
    const int64_t *hist;
    const char *label;
    const char *colour;
} rep_series;

/* Log histograms on one log |v| axis (bins merged so at most ~160 bars; counts on a log scale),
 * the markers drawn over them and the region above shade_from (> 0) shaded as clipped. */
void rep_svg_hist(rep_buf *b, const rep_series *s, int ns, const rep_marker *m, int nm, double shade_from, int w, int h);

/* Heat map of nrows x ncols values v[r * ncols + c] (NaN: an empty cell), coloured by colour(t)
 * with t = (v - lo) / (hi - lo). Column c links to #layer-<c>; tip(ctx, r, c, b) writes the text of
 * a cell's tooltip (escaped by the callee). A legend shows lo and hi with unit. */
typedef struct {
    int nrows, ncols;
    const char *const *row_labels;
    const double *v;
    double lo, hi;
    const char *(*colour)(double t, char *buf);
    const char *unit;
    int log10;                 /* v, lo and hi are log10 of the values: the legend shows 10^lo, 10^hi */
    void (*tip)(void *ctx, int r, int c, rep_buf *b);
    void *ctx;
} rep_heat;
void rep_svg_heat(rep_buf *b, const rep_heat *h);

/* y[i] against i = 0..n-1 (NaN points skipped), y range [lo, hi]; points link to #layer-<i>. */
void rep_svg_line(rep_buf *b, const double *y, int n, double lo, double hi, const char *ylabel, int w, int h);

/* Bars v[0..n) labelled <prefix><i>; the top `top` bars in red. */
void rep_svg_bars(rep_buf *b, const float *v, int n, const char *prefix, int top, int w, int h);

#endif
