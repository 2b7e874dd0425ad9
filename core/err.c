/* Error reporting, checked allocation and small file helpers shared by every module (see err.h). */
#include "err.h"
#include "fio.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static _Thread_local char g_msg[2048];

int mq_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int mq_fail_ctx(const char *fmt, ...) {
    char prefix[1024], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    /* Long messages are cut at the buffer size: the prefix matters most, the tail least. */
    size_t n = strlen(prefix);
    if (n > sizeof g_msg - 3) n = sizeof g_msg - 3;
    memcpy(g_msg, prefix, n);
    memcpy(g_msg + n, ": ", 2);
    size_t room = sizeof g_msg - n - 3, olen = strlen(old);
    if (olen > room) olen = room;
    memcpy(g_msg + n + 2, old, olen);
    g_msg[n + 2 + olen] = 0;
    return -1;
}

const char *mq_errmsg(void) { return g_msg[0] ? g_msg : "unknown error"; }
void mq_clear_error(void) { g_msg[0] = 0; }

void mq_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mambaq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *mq_malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) mq_die("%s:%d: out of memory allocating %zu bytes", file, line, n);
    return p;
}

void *mq_calloc_check(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mq_die("%s:%d: out of memory allocating %zu x %zu bytes", file, line, n, size);
    return p;
}

/* The file helpers are core/fio.c's, under the names the modules have always used. */
char *mq_read_file(const char *path, size_t *len_out) { return fio_read_file(path, len_out); }

int mq_mkdir_parents(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) mq_die("out of memory");
    int rc = fio_mkdir_p(dir);
    free(dir);
    return rc;
}

int mq_write_file_atomic(const char *path, const void *data, size_t len) { return fio_write_file(path, data, len, 1); }
