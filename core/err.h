/* Error reporting for every mambaq module.
 * Library functions report failure by returning -1 (or NULL) after calling mq_fail(), which keeps
 * one formatted message per thread; the CLI prints it with mq_errmsg() and exits non-zero. Messages
 * name the file, the tensor or field, what was expected and what was found. */
#ifndef MQ_ERR_H
#define MQ_ERR_H
#include <stddef.h>
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif

/* Set the current error message; always returns -1 so callers can `return mq_fail(...)`. */
int mq_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current message with more context ("loading X: <old message>"); returns -1. */
int mq_fail_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *mq_errmsg(void);
void mq_clear_error(void);

/* Print "mambaq: <msg>" to stderr and exit(1). For the CLI and for impossible states only. */
void mq_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Checked allocation: dies with file:line on out-of-memory (llm.c's mallocCheck). */
void *mq_malloc_check(size_t n, const char *file, int line);
void *mq_calloc_check(size_t n, size_t size, const char *file, int line);
#define mq_malloc(n) mq_malloc_check((n), __FILE__, __LINE__)
#define mq_calloc(n, s) mq_calloc_check((n), (s), __FILE__, __LINE__)

/* Read a whole regular file into a NUL-terminated buffer the caller frees; NULL + mq_fail on
 * error (FIFOs, devices and directories are refused: core/fio.h). */
char *mq_read_file(const char *path, size_t *len_out);
/* Create the missing parent directories of `path` (like mkdir -p of its dirname), so an output
 * named in a new folder (`--out out/model-w8a8`) can be written. 0, or -1 naming the folder. */
int mq_mkdir_parents(const char *path);
/* Write `len` bytes to `path` atomically, replacing it: an unnamed temporary in its folder, fsync,
 * then into place (core/fio.h; fio_write_file refuses an existing path instead). */
int mq_write_file_atomic(const char *path, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
