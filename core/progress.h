/* Progress reporting for long commands (calibration, evaluation) on stderr: a redrawn one-line bar
 * with done/total, tokens/s and ETA when stderr is a terminal; otherwise (logs, CI) a plain line at
 * most every 5 s (with rate and ETA) and one at the end, so redirected output stays readable. MQ_PROGRESS=0 silences it. */
#ifndef MQ_PROGRESS_H
#define MQ_PROGRESS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char label[32];        /* "calib" */
    char unit[16];         /* "samples" */
    int64_t total, done, tokens;
    double t0;             /* monotonic start time, seconds */
    double last_print;     /* when the last line was drawn */
    int tty;               /* 1: redraw in place; 0: occasional plain lines */
    int quiet;             /* 1: print nothing (MQ_PROGRESS=0, or asked by the caller) */
    int drawn;             /* a partial tty line is on screen */
} prog_bar;

/* Starts the clock. quiet = 1 prints nothing whatever the terminal. */
void prog_start(prog_bar *p, const char *label, const char *unit, int64_t total, int quiet);
/* done units and tokens processed so far (absolute, not increments). Draws when due. */
void prog_update(prog_bar *p, int64_t done, int64_t tokens);
/* Final line ("calib: 512/512 samples, 262144 tokens in 1m02s, 4.2k tok/s"), ends the tty line. */
void prog_finish(prog_bar *p);
double prog_elapsed(const prog_bar *p);

/* The status text for `elapsed` seconds, without the bar: "128/512 samples  4.1k tok/s  ETA 1m32s".
 * Exposed for tests. */
void prog_format(const prog_bar *p, double elapsed, char *buf, size_t n);
/* "0.4s", "12s", "3m05s", "1h02m" */
void prog_fmt_duration(double seconds, char *buf, size_t n);
/* "812", "4.1k", "2.35M" */
void prog_fmt_rate(double per_s, char *buf, size_t n);
/* Monotonic clock in seconds. */
double prog_now(void);

#ifdef __cplusplus
}
#endif
#endif
