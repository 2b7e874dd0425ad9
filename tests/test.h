/* Minimal test harness: each tests/test_*.c is a program whose main() calls T_RUN for each test
 * and returns t_summary(). Every test prints one line, PASS/FAIL/SKIP <name>; tests/run.sh adds
 * the lines of all programs up and prints the closing "N passed, N failed, N skipped". */
#ifndef MQ_TEST_H
#define MQ_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int t_checks_failed, t_npass, t_nfail, t_nskip;
static char t_skip_reason[256];

#define T_CHECK(cond, ...)                                                       \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("    check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                                 \
            printf("\n");                                                        \
            t_checks_failed++;                                                   \
        }                                                                        \
    } while (0)

/* |a - b| <= tol */
#define T_NEAR(a, b, tol, what) \
    T_CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: %.9g vs %.9g (tol %.3g)", what, (double)(a), (double)(b), (double)(tol))

#define T_SKIP(...)                                                                \
    do {                                                                           \
        snprintf(t_skip_reason, sizeof t_skip_reason, __VA_ARGS__);                \
        return;                                                                    \
    } while (0)

/* Skips the calling test where no GPU can run kernels (core/gpu.h gpu_available: the GPU test
 * programs include it). */
#define NEED_GPU()                                                   \
    do {                                                             \
        const char *why_;                                            \
        if (!gpu_available(&why_)) T_SKIP("no usable GPU: %s", why_); \
    } while (0)

static void t_run(const char *name, void (*fn)(void)) {
    int before = t_checks_failed;
    t_skip_reason[0] = 0;
    fflush(stdout);
    fn();
    if (t_checks_failed > before) { printf("FAIL %s\n", name); t_nfail++; }
    else if (t_skip_reason[0]) { printf("SKIP %s: %s\n", name, t_skip_reason); t_nskip++; }
    else { printf("PASS %s\n", name); t_npass++; }
    fflush(stdout);
}
#define T_RUN(fn) t_run(#fn, fn)

__attribute__((unused)) static int t_summary(void) {
    printf("# %d passed, %d failed, %d skipped\n", t_npass, t_nfail, t_nskip);
    return t_nfail ? 1 : 0;
}

/* ../shared (or $MQ_SHARED) joined with `rel`; NULL when it does not exist. Static buffer. */
__attribute__((unused)) static const char *t_shared(const char *rel) {
    static char buf[4096];
    const char *root = getenv("MQ_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

/* const char *var = ../shared/rel, or skip the test when it is not there */
#define T_NEED_SHARED(var, rel) \
    const char *var = t_shared(rel); \
    if (!var) T_SKIP("%s not found under ../shared (or $MQ_SHARED)", rel)

/* A scratch directory for this test program (created; never removed so failures can be inspected). */
__attribute__((unused)) static const char *t_tmpdir(void) {
    static char buf[256];
    if (!buf[0]) {
        snprintf(buf, sizeof buf, "build/tmp/%d", (int)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", buf);
        if (system(cmd) != 0) { fprintf(stderr, "cannot create %s\n", buf); exit(2); }
    }
    return buf;
}

#endif
