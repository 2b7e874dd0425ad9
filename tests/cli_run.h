/* Running bin/mambaq from a test: a command's exit status with its output in a file, the file's
 * text, the last JSON object it printed, and the shared folder. For the tests that drive the CLI
 * (test_cli, test_quant_cli, test_report, test_eval, test_task; test_rel_* through tests/test_cli.h). */
#ifndef MQ_TEST_CLI_RUN_H
#define MQ_TEST_CLI_RUN_H
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "core/err.h"
#include "tests/test.h"

/* Runs cmd (sh -c) with stdout (and stderr unless stdout_only) to the file out; the exit status, or
 * 128 + the signal (so a crash is never mistaken for a refusal). */
static int t_sh_to(const char *cmd, const char *out, int stdout_only) {
    char *full = mq_malloc(strlen(cmd) + strlen(out) + 32);
    sprintf(full, "%s > '%s' 2>%s", cmd, out, stdout_only ? "/dev/null" : "&1");
    int rc = system(full);
    free(full);
    if (rc == -1) return 127;
    if (WIFSIGNALED(rc)) return 128 + WTERMSIG(rc);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 127;
}
__attribute__((unused)) static int sh(const char *cmd, const char *out) { return t_sh_to(cmd, out, 0); }
/* stdout alone to out (stderr dropped): for JSON on stdout. */
__attribute__((unused)) static int sh_stdout(const char *cmd, const char *out) { return t_sh_to(cmd, out, 1); }

/* The file's text ("" when unreadable); the caller frees. */
__attribute__((unused)) static char *slurp(const char *path) {
    char *s = mq_read_file(path, NULL);
    return s ? s : strdup("");
}

/* Runs `bin/mambaq ARGS` (progress lines off) with stdout captured and stderr into err[]; the exit
 * status in *rc, and the parsed stdout when it is 0 (NULL otherwise; the caller frees). */
__attribute__((unused)) static cJSON *mambaq_json(const char *args, int *rc, char *err, size_t errsz) {
    char errpath[512], cmd[10000];
    snprintf(errpath, sizeof errpath, "%s/run_json.stderr", t_tmpdir());
    snprintf(cmd, sizeof cmd, "MQ_PROGRESS=0 bin/mambaq %s 2>%s", args, errpath);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *e = mq_read_file(errpath, NULL);
    snprintf(err, errsz, "%s", e ? e : "");
    free(e);
    return *rc == 0 ? cJSON_Parse(out) : NULL;
}

/* The last line of the file that parses as a JSON object (NULL if none); the caller frees. */
__attribute__((unused)) static cJSON *last_json(const char *path) {
    char *s = slurp(path), *line = s, *best = NULL;
    for (char *p = s; *p; p++)
        if (*p == '\n') { *p = 0; if (line[0] == '{') best = line; line = p + 1; }
    if (line[0] == '{') best = line;
    cJSON *j = best ? cJSON_Parse(best) : NULL;
    free(s);
    return j;
}

/* $MQ_SHARED, else ../shared. */
__attribute__((unused)) static const char *shared_dir(void) {
    static char buf[4096];
    const char *root = getenv("MQ_SHARED");
    snprintf(buf, sizeof buf, "%s", root && *root ? root : "../shared");
    return buf;
}

/* <shared>/rel, whether it exists or not (allocated and never freed: tests hold many). */
__attribute__((unused)) static const char *shared_path(const char *rel) {
    char *b = mq_malloc(4200);
    snprintf(b, 4200, "%s/%s", shared_dir(), rel);
    return b;
}

#endif
