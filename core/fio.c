/* File input and output (see fio.h): regular-file reads of a known size, outputs written through
 * unnamed temporaries (O_TMPFILE, linked into place when complete), --out checks before any work,
 * and the marker file by which partial output directories of dead writers are recognised. */
#include "fio.h"
#include "err.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reading ---- */

static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int fio_open_regular(const char *path, size_t *size) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return mq_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mq_fail("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mq_fail("%s: is %s; expected a regular file", path, kind_of(st.st_mode));
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return mq_fail("%s: %lld bytes: too large to read", path, (long long)st.st_size);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *size = (size_t)st.st_size;
    return fd;
}

int fio_pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path) {
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < ((size_t)1 << 30) ? n - done : (size_t)1 << 30;
        ssize_t r = pread(fd, p + done, want, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return mq_fail("%s: read error at byte %llu: %s", path, (unsigned long long)(off + done), strerror(errno));
        if (r == 0)
            return mq_fail("%s: the file shrank while being read (ends at byte %llu, expected %llu): truncated or "
                           "replaced by another process?", path, (unsigned long long)(off + done), (unsigned long long)(off + n));
        done += (size_t)r;
    }
    return 0;
}

char *fio_read_file(const char *path, size_t *len) {
    size_t n;
    int fd = fio_open_regular(path, &n);
    if (fd < 0) return NULL;
    char *buf = mq_malloc(n + 1);
    if (fio_pread_all(fd, buf, n, 0, path)) {
        close(fd);
        free(buf);
        return NULL;
    }
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* ---- writing one file ---- */

struct fio_out {
    char *path;     /* final name */
    char *tmp;      /* named temporary, or NULL for an unnamed one */
    int fd;
};

static char *dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) mq_die("out of memory");
    char *s = strrchr(d, '/');
    if (!s) strcpy(d, ".");
    else if (s == d) d[1] = 0;
    else *s = 0;
    return d;
}

fio_out *fio_create(const char *path) {
    fio_out *o = mq_calloc(1, sizeof *o);
    o->path = strdup(path);
    char *dir = dir_of(path);
    o->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    int e = errno;
    free(dir);
    if (o->fd < 0 && e != EOPNOTSUPP && e != EISDIR && e != EINVAL) {
        mq_fail("%s: cannot create: %s", path, strerror(e));
        free(o->path);
        free(o);
        return NULL;
    }
    if (o->fd < 0) {   /* no O_TMPFILE here: a named temporary, unique by mkstemp */
        size_t n = strlen(path) + 32;
        o->tmp = mq_malloc(n);
        snprintf(o->tmp, n, "%s.tmp.%d.XXXXXX", path, (int)getpid());
        o->fd = mkstemp(o->tmp);
        if (o->fd < 0) {
            mq_fail("%s: cannot create: %s", o->tmp, strerror(errno));
            free(o->tmp);
            free(o->path);
            free(o);
            return NULL;
        }
        fchmod(o->fd, 0644);
    }
    return o;
}

int fio_write(fio_out *o, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return mq_fail("%s: write failed: %s", o->path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void out_free(fio_out *o) {
    if (o->fd >= 0) close(o->fd);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o);
}

void fio_abort(fio_out *o) {
    if (o) out_free(o);
}

/* Gives the unnamed temporary a unique sibling name (for rename over an existing file). */
static int name_tmpfile(fio_out *o) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
    size_t n = strlen(o->path) + 48;
    o->tmp = mq_malloc(n);
    for (unsigned k = 0; k < 1000; k++) {
        snprintf(o->tmp, n, "%s.tmp.%d.%u", o->path, (int)getpid(), k);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
        if (errno != EEXIST) break;
    }
    int rc = mq_fail("%s: cannot name the temporary file: %s", o->path, strerror(errno));
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

int fio_commit(fio_out *o, int replace) {
    int rc = 0;
    if (fsync(o->fd) != 0) rc = mq_fail("%s: fsync failed: %s", o->path, strerror(errno));
    if (!rc && !o->tmp && !replace) {
        /* link fails with EEXIST when the name is taken: no check-then-write race */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) != 0)
            rc = errno == EEXIST ? mq_fail("%s already exists (use --force to replace it)", o->path)
                                 : mq_fail("%s: cannot create: %s", o->path, strerror(errno));
    } else if (!rc) {
        if (!o->tmp) rc = name_tmpfile(o);
        if (!rc && !replace && link(o->tmp, o->path) != 0)
            rc = errno == EEXIST ? mq_fail("%s already exists (use --force to replace it)", o->path)
                                 : mq_fail("%s: cannot create: %s", o->path, strerror(errno));
        if (!rc && replace && rename(o->tmp, o->path) != 0) rc = mq_fail("%s: cannot rename into place: %s", o->path, strerror(errno));
        else if (!rc && replace) { free(o->tmp); o->tmp = NULL; }   /* renamed: nothing to unlink */
    }
    if (close(o->fd) != 0 && !rc) rc = mq_fail("%s: close failed: %s", o->path, strerror(errno));
    o->fd = -1;
    out_free(o);
    return rc;
}

int fio_write_file(const char *path, const void *data, size_t n, int replace) {
    fio_out *o = fio_create(path);
    if (!o) return -1;
    if (fio_write(o, data, n)) { fio_abort(o); return -1; }
    return fio_commit(o, replace);
}

/* ---- output paths ---- */

int fio_mkdir_p(const char *dir) {
    size_t n = strlen(dir);
    if (!n) return 0;
    char *buf = mq_malloc(n + 1);
    memcpy(buf, dir, n + 1);
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        int last = *p == 0;
        if (*p == '/' || last) {
            *p = 0;
            if (buf[0] && mkdir(buf, 0755) != 0 && errno != EEXIST) { rc = mq_fail("%s: cannot create the folder: %s", buf, strerror(errno)); break; }
            if (last) break;
            *p = '/';
        }
    }
    struct stat st;
    if (!rc && (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))) rc = mq_fail("%s: not a folder", buf);
    free(buf);
    return rc;
}

void fio_path_name(const char *path, char *buf, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(buf, n, "%.*s", (int)(len - start), path + start);
}

int fio_check_out(const char *path, int force, int is_dir) {
    if (!path || !*path) return mq_fail("the output path is empty");
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!force) return mq_fail("%s already exists (use --force to replace it)", path);
        if (is_dir && !S_ISDIR(st.st_mode)) return mq_fail("%s exists and is not a folder: refusing to replace it", path);
        if (!is_dir && !S_ISREG(st.st_mode)) return mq_fail("%s exists and is %s: refusing to replace it", path, kind_of(st.st_mode));
    } else if (errno != ENOENT) {
        return mq_fail("%s: cannot be written: %s", path, strerror(errno));
    }
    char *dir = dir_of(path);
    int rc = fio_mkdir_p(dir);
    if (!rc) {
        int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
            size_t n = strlen(path) + 32;
            char *probe = mq_malloc(n);
            snprintf(probe, n, "%s.probe.%d.XXXXXX", path, (int)getpid());
            fd = mkstemp(probe);
            if (fd >= 0) unlink(probe);
            free(probe);
        }
        if (fd < 0) rc = mq_fail("%s: cannot write in the folder %s: %s", path, dir, strerror(errno));
        else close(fd);
    }
    free(dir);
    return rc;
}

/* ---- partial output directories ---- */

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = mq_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

int fio_mark(const char *dir, const char *what) {
    char text[512];
    int n = snprintf(text, sizeof text, "mambaq partial output (%s): removed or restored by the next mambaq run that writes "
                                        "here once this process is gone\npid %d\n", what, (int)getpid());
    char *p = join(dir, FIO_MARKER);
    int rc = fio_write_file(p, text, (size_t)n, 1);
    free(p);
    return rc;
}

long fio_marker_pid(const char *dir) {
    char *p = join(dir, FIO_MARKER);
    struct stat st;
    long pid = 0;
    if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 4096) {
        char *text = fio_read_file(p, NULL);
        const char *at = text ? strstr(text, "\npid ") : NULL;
        if (at) {
            char *end;
            pid = strtol(at + 5, &end, 10);
            if (*end != '\n' || pid <= 0) pid = 0;
        }
        free(text);
    }
    free(p);
    mq_clear_error();
    return pid;
}

int fio_marked_stale(const char *dir) {
    long pid = fio_marker_pid(dir);
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int fio_rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = join(path, e->d_name);
        fio_rm_tree(sub);
        free(sub);
    }
    closedir(d);
    return rmdir(path);
}
