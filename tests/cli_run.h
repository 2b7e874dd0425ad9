/* Running bin/mambaq from a test: a command's exit status with its output in a file, the file's
 * text, the last JSON object it printed, and the shared folder. For the tests that drive the CLI
 * (test_cli, test_quant_cli, test_report). */
#ifndef MQ_TEST_CLI_RUN_H
#define MQ_TEST_CLI_RUN_H
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "core/err.h"

/* Runs cmd with stdout (and stderr unless stdout_only) to the file out; returns the exit status. */
static int t_sh_to(const char *cmd, const char *out, int stdout_only) {
    char full[20000];
    if ((size_t)snprintf(full, sizeof full, "%s > '%s' 2>%s", cmd, out, stdout_only ? "/dev/null" : "&1") >= sizeof full) return 127;
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}
__attribute__((unused)) static int sh(const char *cmd, const char *out) { return t_sh_to(cmd, out, 0); }
/* stdout alone to out (stderr dropped): for JSON on stdout. */
__attribute__((unused)) static int sh_stdout(const char *cmd, const char *out) { return t_sh_to(cmd, out, 1); }

/* The file's text ("" when unreadable); the caller frees. */
__attribute__((unused)) static char *slurp(const char *path) {
    char *s = mq_read_file(path, NULL);
    return s ? s : strdup("");
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

#endif
