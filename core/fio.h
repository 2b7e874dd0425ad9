/* File input and output with the guarantees every mambaq reader and writer relies on.
 * Reading: only regular files (a FIFO, a device or a directory given as a file is refused at once,
 * never blocked on or read forever), exactly the size the file had when opened (a file that shrinks
 * while it is read is an error, not a crash). Writing: an output appears complete under its name
 * or not at all; a new output never replaces an existing path unless asked (--force); a killed
 * writer leaves no file behind, and its partial directories carry a marker file (FIO_MARKER) by
 * which later runs recognise them: nothing without the marker is ever deleted. */
#ifndef MQ_FIO_H
#define MQ_FIO_H
#include <stddef.h>
#include <stdint.h>

/* ---- reading ---- */

/* Opens path read-only when it is a regular file; *size = its size then. Never blocks (a FIFO is
 * opened non-blocking, then refused). fd, or -1 + mq_fail naming the file and what it is. */
int fio_open_regular(const char *path, size_t *size);
/* Reads exactly n bytes at offset off; a short read is an error saying the file shrank. */
int fio_pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path);
/* A whole regular file into a malloc'ed buffer with a NUL after the data; NULL + mq_fail. */
char *fio_read_file(const char *path, size_t *len);

/* ---- writing one file ---- */

typedef struct fio_out fio_out;
/* A new output file for path: an unnamed temporary (O_TMPFILE) in path's folder, which vanishes if
 * the process dies; a named temporary sibling where the file system has no O_TMPFILE. The folder
 * must exist. NULL + mq_fail when it cannot be created. */
fio_out *fio_create(const char *path);
int fio_write(fio_out *o, const void *buf, size_t n);
/* fsync, then give it its name: replace = 0 fails (and removes the temporary) when path exists,
 * atomically (link); replace = 1 renames over path. Frees o either way. 0 or -1 + mq_fail. */
int fio_commit(fio_out *o, int replace);
/* Drops the output (the temporary is removed); frees o. */
void fio_abort(fio_out *o);
/* fio_create + fio_write + fio_commit. */
int fio_write_file(const char *path, const void *data, size_t n, int replace);

/* ---- output paths ---- */

/* The check every --out gets before any work: an existing path is refused unless force (then it
 * must be of the kind written: a folder for is_dir, else a regular file); the missing parent
 * folders are created; a probe file proves the parent folder is writable (permissions alone do
 * not tell: read-only mounts, root). 0 or -1 + mq_fail naming the path. */
int fio_check_out(const char *path, int force, int is_dir);
/* mkdir -p in C (no shell): every missing folder of dir, mode 0755. 0 or -1 naming the folder. */
int fio_mkdir_p(const char *dir);
/* The last component of path into buf ("a/b/name/" -> "name"), as a string: no file system
 * look-up (resolve "." or a link with realpath first where that matters). */
void fio_path_name(const char *path, char *buf, size_t n);

/* ---- partial output directories ---- */

#define FIO_MARKER ".mambaq-partial"
/* Writes dir/FIO_MARKER, recording this process's pid and what the directory is. */
int fio_mark(const char *dir, const char *what);
/* The pid recorded in dir's marker; 0 when dir has no valid marker (then it is not ours). */
long fio_marker_pid(const char *dir);
/* 1 when dir carries a marker whose writer (another process) is no longer running. */
int fio_marked_stale(const char *dir);
/* Removes a file, or a folder and everything under it (symbolic links are removed, not followed). */
int fio_rm_tree(const char *path);

#endif
