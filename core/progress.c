/* Progress bar on stderr (see progress.h). Redraws at most 10 times a second on a terminal, so a
 * fast loop spends no time printing; plain lines every 5 s otherwise. */
#include "core/progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL 0.1
#define LOG_INTERVAL 5.0

double prog_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void prog_fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    if (s < 10) { snprintf(buf, n, "%.1fs", s); return; }
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%lds", t);
    else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

void prog_fmt_rate(double r, char *buf, size_t n) {
    if (r < 1e3) snprintf(buf, n, "%.0f", r);
    else if (r < 1e6) snprintf(buf, n, "%.1fk", r / 1e3);
    else snprintf(buf, n, "%.2fM", r / 1e6);
}

double prog_elapsed(const prog_bar *p) { return prog_now() - p->t0; }

void prog_start(prog_bar *p, const char *label, const char *unit, int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t0 = p->last_print = prog_now();
    const char *env = getenv("MQ_PROGRESS");
    p->quiet = quiet || (env && !strcmp(env, "0"));
    p->tty = isatty(STDERR_FILENO);
}

void prog_format(const prog_bar *p, double elapsed, char *buf, size_t n) {
    char rate[32], eta[32];
    prog_fmt_rate(elapsed > 0 ? p->tokens / elapsed : 0, rate, sizeof rate);
    if (p->done > 0 && p->done < p->total)
        prog_fmt_duration(elapsed * (double)(p->total - p->done) / (double)p->done, eta, sizeof eta);
    else if (p->done >= p->total)
        snprintf(eta, sizeof eta, "0s");
    else
        snprintf(eta, sizeof eta, "?");
    snprintf(buf, n, "%lld/%lld %s  %s tok/s  ETA %s", (long long)p->done, (long long)p->total, p->unit, rate, eta);
}

static int term_cols(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

static void draw_tty(prog_bar *p, double elapsed) {
    char text[160], bar[128];
    prog_format(p, elapsed, text, sizeof text);
    int width = term_cols() - (int)strlen(p->label) - (int)strlen(text) - 6;
    if (width > (int)sizeof bar - 1) width = sizeof bar - 1;
    if (width < 5) width = 0;
    int fill = p->total > 0 ? (int)(width * (double)p->done / (double)p->total) : 0;
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    /* \r + clear-to-end-of-line redraws in place */
    if (width) fprintf(stderr, "\r%s [%s] %s\033[K", p->label, bar, text);
    else fprintf(stderr, "\r%s %s\033[K", p->label, text);
    fflush(stderr);
    p->drawn = 1;
}

void prog_update(prog_bar *p, int64_t done, int64_t tokens) {
    p->done = done;
    p->tokens = tokens;
    if (p->quiet) return;
    double now = prog_now();
    double interval = p->tty ? TTY_INTERVAL : LOG_INTERVAL;
    if (now - p->last_print < interval && done < p->total) return;
    if (done >= p->total) return;   /* the last line is prog_finish's */
    p->last_print = now;
    if (p->tty) draw_tty(p, now - p->t0);
    else {
        char text[160];
        prog_format(p, now - p->t0, text, sizeof text);
        fprintf(stderr, "%s: %s\n", p->label, text);
    }
}

void prog_finish(prog_bar *p) {
    if (p->quiet) return;
    double el = prog_elapsed(p);
    char dur[32], rate[32];
    prog_fmt_duration(el, dur, sizeof dur);
    prog_fmt_rate(el > 0 ? p->tokens / el : 0, rate, sizeof rate);
    if (p->tty && p->drawn) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "%s: %lld/%lld %s, %lld tokens in %s, %s tok/s\n", p->label, (long long)p->done,
            (long long)p->total, p->unit, (long long)p->tokens, dur, rate);
    p->drawn = 0;
}
