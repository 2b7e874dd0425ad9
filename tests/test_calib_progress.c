/* The progress bar's text: durations, rates, done/total and ETA, and that a non-terminal stderr
 * gets no carriage-return redraws (only the final plain line). */
#include "tests/test.h"
#include "core/progress.h"

static void test_durations_and_rates(void) {
    char b[32];
    prog_fmt_duration(0.44, b, sizeof b);  T_CHECK(!strcmp(b, "0.4s"), "%s", b);
    prog_fmt_duration(12.4, b, sizeof b);  T_CHECK(!strcmp(b, "12s"), "%s", b);
    prog_fmt_duration(185, b, sizeof b);   T_CHECK(!strcmp(b, "3m05s"), "%s", b);
    prog_fmt_duration(3720, b, sizeof b);  T_CHECK(!strcmp(b, "1h02m"), "%s", b);
    prog_fmt_duration(-1, b, sizeof b);    T_CHECK(!strcmp(b, "?"), "%s", b);
    prog_fmt_rate(812, b, sizeof b);       T_CHECK(!strcmp(b, "812"), "%s", b);
    prog_fmt_rate(4100, b, sizeof b);      T_CHECK(!strcmp(b, "4.1k"), "%s", b);
    prog_fmt_rate(2.35e6, b, sizeof b);    T_CHECK(!strcmp(b, "2.35M"), "%s", b);
}

static void test_status_line(void) {
    prog_bar p;
    prog_start(&p, "calib", "samples", 512, 1);
    char line[160];
    prog_format(&p, 0, line, sizeof line);
    T_CHECK(!strcmp(line, "0/512 samples  0 tok/s  ETA ?"), "%s", line);
    prog_update(&p, 128, 128 * 512);
    /* 128 of 512 done in 16 s: 4096 tok/s, 48 s to go */
    prog_format(&p, 16.0, line, sizeof line);
    T_CHECK(!strcmp(line, "128/512 samples  4.1k tok/s  ETA 48s"), "%s", line);
    prog_update(&p, 512, 512 * 512);
    prog_format(&p, 64.0, line, sizeof line);
    T_CHECK(!strcmp(line, "512/512 samples  4.1k tok/s  ETA 0s"), "%s", line);
}

/* stderr redirected to a file (not a terminal): no '\r', only the final line. */
static void test_non_tty_output(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/progress.txt", t_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    T_CHECK(f != NULL, "open %s", path);
    if (!f) return;
    dup2(fileno(f), 2);
    unsetenv("MQ_PROGRESS");
    prog_bar p;
    prog_start(&p, "calib", "samples", 4, 0);
    for (int i = 1; i <= 4; i++) prog_update(&p, i, i * 256);
    prog_finish(&p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    FILE *r = fopen(path, "r");
    char text[1024] = {0};
    size_t n = r ? fread(text, 1, sizeof text - 1, r) : 0;
    if (r) fclose(r);
    T_CHECK(n > 0 && strchr(text, '\r') == NULL, "no redraws in a log: '%s'", text);
    T_CHECK(strstr(text, "calib: 4/4 samples, 1024 tokens in") == text, "final line: '%s'", text);
}

int main(void) {
    T_RUN(test_durations_and_rates);
    T_RUN(test_status_line);
    T_RUN(test_non_tty_output);
    return t_summary();
}
