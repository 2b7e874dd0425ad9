/* HTML/SVG writing for `mambaq report` (see rep_html.h): buffer, escaping, colour scales, charts.
 * Charts are plain SVG elements with <title> tooltips and href links; no script, no external file.
 * Histogram axes follow calib/obs.h's bins: bin i covers |v| in [2^(-16 + i/64), 2^(-16 + (i+1)/64)). */
#include "cli/rep_html.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/obs.h"
#include "core/err.h"

/* ---- buffer ---- */

static void grow(rep_buf *b, size_t need) {
    if (b->len + need + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + need + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) mq_die("report: out of memory growing the page to %zu bytes", cap);
    b->p = p, b->cap = cap;
}

void rep_putn(rep_buf *b, const char *s, size_t n) {
    grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void rep_puts(rep_buf *b, const char *s) { rep_putn(b, s, strlen(s)); }

void rep_printf(rep_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        grow(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one. */
static int utf8_len(const unsigned char *s) {
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 2 && s[0] < 0xc2) return 0;   /* overlong */
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

void rep_esc(rep_buf *b, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
        int n = utf8_len(p);
        switch (*p) {
        case '&': rep_puts(b, "&amp;"); break;
        case '<': rep_puts(b, "&lt;"); break;
        case '>': rep_puts(b, "&gt;"); break;
        case '"': rep_puts(b, "&quot;"); break;
        case '\'': rep_puts(b, "&#39;"); break;
        default:
            if (!n || (*p < 0x20 && *p != '\t' && *p != '\n')) rep_puts(b, "?"), n = 1;   /* not text: shown as ? */
            else rep_putn(b, (const char *)p, (size_t)n);
        }
        p += n ? n : 1;
    }
}

void rep_num(rep_buf *b, double v) {
    if (!isfinite(v)) rep_puts(b, "—");
    else rep_printf(b, "%.4g", v);
}

void rep_buf_free(rep_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- colours ---- */

static const char *ramp(const unsigned *stops, int n, double t, char *buf) {
    if (!(t >= 0)) t = 0;   /* NaN too */
    if (t > 1) t = 1;
    double x = t * (n - 1);
    int i = (int)x;
    if (i >= n - 1) i = n - 2;
    double f = x - i;
    int rgb[3];
    for (int k = 0; k < 3; k++) {
        int a = (int)(stops[i] >> (16 - 8 * k) & 255), c = (int)(stops[i + 1] >> (16 - 8 * k) & 255);
        rgb[k] = (int)lround(a + f * (c - a));
    }
    snprintf(buf, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
    return buf;
}

const char *rep_colour_seq(double t, char *buf) {   /* viridis */
    static const unsigned s[] = {0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e, 0x1f9e89, 0x35b779, 0x6ece58, 0xb5de2b, 0xfde725};
    return ramp(s, 10, t, buf);
}

const char *rep_colour_rdylgn(double t, char *buf) {
    static const unsigned s[] = {0xd73027, 0xf46d43, 0xfdae61, 0xfee08b, 0xffffbf, 0xd9ef8b, 0xa6d96a, 0x66bd63, 0x1a9850};
    return ramp(s, 9, t, buf);
}

/* ---- axes ---- */

/* Tick label: 3 significant digits, no trailing noise ("0.001", "20", "1e+04"). */
static void tick_label(rep_buf *b, double v) {
    char s[32];
    snprintf(s, sizeof s, "%.3g", v);
    rep_esc(b, s);
}

static void text(rep_buf *b, double x, double y, const char *anchor, const char *cls, const char *s) {
    rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
    rep_esc(b, s);
    rep_puts(b, "</text>");
}

/* Ticks for [lo, hi]: about n values at 1, 2 or 5 times a power of ten. Returns the step. */
static double nice_step(double lo, double hi, int n) {
    double span = hi - lo;
    if (!(span > 0)) return 1;
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* ---- log histogram ---- */

static double bin_log2(int i) { return OBS_HIST_LOG2_MIN + (double)i / OBS_HIST_PER_OCTAVE; }

void rep_svg_hist(rep_buf *b, const rep_series *s, int ns, const rep_marker *m, int nm, double shade_from, int w, int h) {
    /* range: every non-empty bin and every marker, widened to whole octaves */
    int lo = OBS_HIST_BINS, hi = -1;
    double maxc = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; s[k].hist && i < OBS_HIST_BINS; i++)
            if (s[k].hist[i] > 0) {
                if (i < lo) lo = i;
                if (i > hi) hi = i;
            }
    for (int k = 0; k < nm; k++)
        if (m[k].x > 0 && isfinite(m[k].x)) {
            int i = obs_hist_bin((float)m[k].x);
            if (i < lo) lo = i;
            if (i > hi) hi = i;
        }
    rep_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", w, h, w, h);
    if (hi < 0) {
        text(b, w / 2.0, h / 2.0, "middle", "ax", "no histogram in the stats file");
        rep_puts(b, "</svg>");
        return;
    }
    lo = lo / OBS_HIST_PER_OCTAVE * OBS_HIST_PER_OCTAVE;
    hi = (hi / OBS_HIST_PER_OCTAVE + 1) * OBS_HIST_PER_OCTAVE;   /* exclusive */
    if (hi > OBS_HIST_BINS) hi = OBS_HIST_BINS;
    if (hi - lo < 2 * OBS_HIST_PER_OCTAVE) lo = hi - 2 * OBS_HIST_PER_OCTAVE > 0 ? hi - 2 * OBS_HIST_PER_OCTAVE : 0;
    int g = 1;
    while ((hi - lo + g - 1) / g > 160) g *= 2;
    const int nb = (hi - lo + g - 1) / g;
    for (int k = 0; k < ns; k++)
        for (int j = 0; s[k].hist && j < nb; j++) {
            double c = 0;
            for (int i = lo + j * g; i < lo + (j + 1) * g && i < hi; i++) c += (double)s[k].hist[i];
            if (c > maxc) maxc = c;
        }
    const double ml = 40, mr = 8, mt = 6 + 11.0 * (nm > 0 ? nm : 1), mb = 30;
    const double pw = w - ml - mr, ph = h - mt - mb, L0 = bin_log2(lo), L1 = bin_log2(hi);
    const double ly = log10(1 + maxc);
#define XOF(l2) (ml + ((l2) - L0) / (L1 - L0) * pw)
#define YOF(c) (mt + ph - (ly > 0 ? log10(1 + (c)) / ly : 0) * ph)
    /* axes: x at powers of ten (and 2x, 5x when the range is narrow), y at powers of ten of the count */
    rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"plot\"/>", ml, mt, pw, ph);
    int decades = (int)floor(L1 / log2(10)) - (int)ceil(L0 / log2(10)) + 1;
    for (int e = (int)floor(L0 / log2(10)) - 1; e <= (int)ceil(L1 / log2(10)); e++)
        for (int f = 1; f <= 5; f += (decades >= 3 ? 10 : f == 1 ? 1 : 3)) {
            double v = f * pow(10, e), l2 = log2(v);
            if (l2 < L0 || l2 > L1) continue;
            double x = XOF(l2);
            rep_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", x, mt, x, mt + ph);
            rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\">", x, mt + ph + 12);
            tick_label(b, v);
            rep_puts(b, "</text>");
        }
    text(b, ml + pw / 2, h - 3, "middle", "ax", lo == 0 ? "|v| (log scale; the first bin also holds |v| < 2^-16)" : "|v| (log scale)");
    int ystep = ly > 6 ? 2 : 1;
    for (int e = 0; pow(10, e) <= maxc; e += ystep) {
        double y = YOF(pow(10, e));
        rep_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", ml, y, ml + pw, y);
        char lab[16];
        snprintf(lab, sizeof lab, e <= 2 ? "%.0f" : "1e%.0f", e <= 2 ? pow(10, e) : (double)e);
        text(b, ml - 3, y + 3, "end", "ax", lab);
    }
    if (shade_from > 0 && isfinite(shade_from) && log2(shade_from) < L1) {
        double x = log2(shade_from) > L0 ? XOF(log2(shade_from)) : ml;
        rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"clipped\"><title>clipped: |v| above %.4g saturates at ±127</title></rect>",
                   x, mt, ml + pw - x, ph, shade_from);
    }
    /* each series as one closed step outline */
    for (int k = 0; k < ns; k++) {
        if (!s[k].hist) continue;
        rep_printf(b, "<path fill=\"%s\" stroke=\"%s\" class=\"bars\" d=\"M%.1f %.1f", s[k].colour, s[k].colour, ml, mt + ph);
        for (int j = 0; j < nb; j++) {
            double c = 0;
            for (int i = lo + j * g; i < lo + (j + 1) * g && i < hi; i++) c += (double)s[k].hist[i];
            int e = lo + (j + 1) * g < hi ? lo + (j + 1) * g : hi;
            rep_printf(b, "V%.1fH%.1f", YOF(c), XOF(bin_log2(e)));
        }
        rep_printf(b, "V%.1fZ\"><title>", mt + ph);
        rep_esc(b, s[k].label);
        rep_printf(b, " (%d bins per bar, %d per octave)</title></path>", g, OBS_HIST_PER_OCTAVE / g);
        if (ns > 1) {
            double lx = ml + 6 + 110.0 * k;
            rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\"/>", lx, mt + 4, s[k].colour);
            text(b, lx + 12, mt + 12, "start", "ax", s[k].label);
        }
    }
    for (int k = 0; k < nm; k++) {
        if (!(m[k].x > 0) || !isfinite(m[k].x)) continue;
        double x = XOF(log2(m[k].x)), ty = 10 + 11.0 * k;
        rep_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" class=\"%s\"/>", x, ty - 3, x, mt + ph,
                   m[k].colour, m[k].dashed ? "mark dash" : "mark");
        double tw = 5.6 * (double)strlen(m[k].label);   /* about 5.6 px per character at 10 px */
        int right = x + 3 + tw > w - 2 && x - 3 - tw >= 0;
        rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\" class=\"mlab\">", right ? x - 3 : x + 3, ty,
                   right ? "end" : "start", m[k].colour);
        rep_esc(b, m[k].label);
        rep_puts(b, "</text>");
    }
#undef XOF
#undef YOF
    rep_puts(b, "</svg>");
}

/* ---- heat map ---- */

void rep_svg_heat(rep_buf *b, const rep_heat *h) {
    const double lw = 150, top = 18, cw = fmax(4, fmin(36, 1000.0 / (h->ncols ? h->ncols : 1))), ch = 17;
    const int w = (int)ceil(lw + cw * h->ncols + 10), hh = (int)ceil(top + ch * h->nrows + 40);
    char col[8];
    rep_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", w, hh, w, hh);
    int every = 1;
    while (every * cw < 22) every = every == 1 ? 2 : every == 2 ? 5 : every * 2;
    for (int c = 0; c < h->ncols; c += every) {
        rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\">%d</text>", lw + cw * (c + 0.5), top - 5, c);
    }
    for (int r = 0; r < h->nrows; r++) {
        text(b, lw - 5, top + ch * r + ch * 0.7, "end", "ax", h->row_labels[r]);
        for (int c = 0; c < h->ncols; c++) {
            double v = h->v[(size_t)r * h->ncols + c];
            const char *fill = isfinite(v) ? h->colour((v - h->lo) / (h->hi - h->lo > 0 ? h->hi - h->lo : 1), col) : "#eeeeee";
            rep_printf(b, "<a href=\"#layer-%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" class=\"cell\"><title>",
                       c, lw + cw * c, top + ch * r, cw, ch, fill);
            if (h->tip) h->tip(h->ctx, r, c, b);
            rep_puts(b, "</title></rect></a>");
        }
    }
    /* legend */
    const double ly = top + ch * h->nrows + 12;
    for (int i = 0; i < 20; i++)
        rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"10\" fill=\"%s\"/>", lw + 8.0 * i, ly, h->colour(i / 19.0, col));
    rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"ax\">", lw - 4, ly + 9);
    rep_num(b, h->log10 ? pow(10, h->lo) : h->lo);
    rep_printf(b, "</text><text x=\"%.1f\" y=\"%.1f\" class=\"ax\">", lw + 164, ly + 9);
    rep_num(b, h->log10 ? pow(10, h->hi) : h->hi);
    rep_puts(b, " ");
    rep_esc(b, h->unit);
    rep_printf(b, "</text><rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"#eeeeee\"/>", lw + 330, ly);
    text(b, lw + 344, ly + 9, "start", "ax", "not quantized / no data");
    text(b, lw, ly + 24, "start", "ax", "columns: layers (click a cell for the layer's section; hover for values)");
    rep_puts(b, "</svg>");
}

/* ---- line chart ---- */

void rep_svg_line(rep_buf *b, const double *y, int n, double lo, double hi, const char *ylabel, int w, int h) {
    const double ml = 56, mr = 10, mt = 10, mb = 30, pw = w - ml - mr, ph = h - mt - mb;
    if (!(hi > lo)) hi = lo + 1e-6;
    rep_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", w, h, w, h);
    rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"plot\"/>", ml, mt, pw, ph);
#define XI(i) (ml + (n > 1 ? (double)(i) / (n - 1) : 0.5) * pw)
#define YV(v) (mt + ph - ((v) - lo) / (hi - lo) * ph)
    double st = nice_step(lo, hi, 5);
    for (double t = ceil(lo / st) * st; t <= hi + st * 1e-9; t += st) {
        rep_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", ml, YV(t), ml + pw, YV(t));
        rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"ax\">%.6g</text>", ml - 3, YV(t) + 3, t);
    }
    int every = 1;
    while (every * pw / (n > 1 ? n - 1 : 1) < 24) every = every == 1 ? 2 : every == 2 ? 5 : every * 2;
    for (int i = 0; i < n; i += every)
        rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\">%d</text>", XI(i), mt + ph + 12, i);
    text(b, ml + pw / 2, h - 3, "middle", "ax", "layer");
    rep_printf(b, "<text x=\"12\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\" transform=\"rotate(-90 12 %.1f)\">", mt + ph / 2, mt + ph / 2);
    rep_esc(b, ylabel);
    rep_puts(b, "</text><path class=\"line\" d=\"");
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) { pen = 0; continue; }
        rep_printf(b, "%s%.1f %.1f", pen ? "L" : "M", XI(i), YV(fmin(fmax(y[i], lo), hi)));
        pen = 1;
    }
    rep_puts(b, "\"/>");
    for (int i = 0; i < n; i++)
        if (isfinite(y[i]))
            rep_printf(b, "<a href=\"#layer-%d\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" class=\"pt\"><title>layer %d: %.6g</title></circle></a>",
                       i, XI(i), YV(fmin(fmax(y[i], lo), hi)), i, y[i]);
#undef XI
#undef YV
    rep_puts(b, "</svg>");
}

/* ---- bars ---- */

static int desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void rep_svg_bars(rep_buf *b, const float *v, int n, const char *prefix, int top, int w, int h) {
    const double ml = 44, mr = 8, mt = 8, mb = 24, pw = w - ml - mr, ph = h - mt - mb;
    float *sorted = mq_malloc((size_t)(n > 0 ? n : 1) * sizeof *sorted);
    memcpy(sorted, v, (size_t)n * sizeof *v);
    qsort(sorted, (size_t)n, sizeof *sorted, desc);
    const float vmax = n ? fmaxf(sorted[0], 0) : 0, hot = top > 0 && n ? sorted[(top < n ? top : n) - 1] : INFINITY;
    rep_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", w, h, w, h);
    rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"plot\"/>", ml, mt, pw, ph);
    double st = nice_step(0, vmax, 4);
    for (double t = 0; vmax > 0 && t <= vmax * 1.0001; t += st) {
        double y = mt + ph - t / vmax * ph;
        rep_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"ax\">%.3g</text>",
                   ml, y, ml + pw, y, ml - 3, y + 3, t);
    }
    const double bw = n ? pw / n : pw;
    int every = 1;
    while (every * bw < 18) every *= 2;
    for (int i = 0; i < n; i++) {
        double bh = vmax > 0 ? v[i] / vmax * ph : 0;
        rep_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"%s\"><title>", ml + bw * i + bw * 0.1,
                   mt + ph - bh, bw * 0.8, bh, v[i] >= hot ? "bar hot" : "bar");
        rep_esc(b, prefix);
        rep_printf(b, "%d: %.5g</title></rect>", i, v[i]);
        if (i % every == 0) {
            rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\">", ml + bw * (i + 0.5), mt + ph + 12);
            rep_printf(b, "%d</text>", i);
        }
    }
    rep_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ax\">", ml + pw / 2, (double)h - 2);
    rep_esc(b, prefix);
    rep_puts(b, " index (red: the largest)</text></svg>");
    free(sorted);
}
