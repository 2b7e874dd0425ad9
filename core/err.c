/* Error reporting, checked allocation and small file helpers shared by every module (see err.h). */
#include "err.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

char *mq_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) { mq_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, len = 0;
    char *buf = mq_malloc(cap + 1);
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) { free(buf); fclose(f); mq_die("out of memory reading %s", path); }
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); mq_fail("%s: read error", path); return NULL; }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

int mq_mkdir_parents(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return mq_fail("path too long: %s", path);
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = 0;
    for (char *p = buf + 1; ; p++) {
        int last = *p == 0;
        if (*p == '/' || last) {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return mq_fail("%s: cannot create the folder: %s", buf, strerror(errno));
            if (last) break;
            *p = '/';
        }
    }
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return mq_fail("%s: not a folder", buf);
    return 0;
}

int mq_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t n = strlen(path) + 32;
    char *tmp = mq_malloc(n);
    snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { mq_fail("%s: cannot create: %s", tmp, strerror(errno)); free(tmp); return -1; }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            mq_fail("%s: write failed: %s", tmp, strerror(errno));
            close(fd); unlink(tmp); free(tmp); return -1;
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        mq_fail("%s: sync/close failed: %s", tmp, strerror(errno));
        unlink(tmp); free(tmp); return -1;
    }
    if (rename(tmp, path) != 0) {
        mq_fail("%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp); free(tmp); return -1;
    }
    free(tmp);
    return 0;
}
