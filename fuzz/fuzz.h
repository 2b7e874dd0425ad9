/* Shared by the libFuzzer harnesses (fuzz/fuzz_*.c, built by `make fuzz` with clang and ASan +
 * UBSan): a private scratch folder on tmpfs for the readers that take paths, the folder of data the
 * seed script prepared (FUZZ_DATA, build/fuzz/data), and a walk over an opened st_file that touches
 * every byte a caller could (st_find, st_to_f32, the non-finite scan). Every input must either be
 * refused with a message or be read without a sanitizer report; a crash, a leak, an allocation
 * beyond -malloc_limit_mb or a timeout is a finding. */
#ifndef MQ_FUZZ_H
#define MQ_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/err.h"
#include "core/fio.h"
#include "core/st.h"

#ifndef FUZZ_DATA
#define FUZZ_DATA "build/fuzz/data"
#endif

static char fz_dir[256];

static void fz_cleanup(void) {
    if (fz_dir[0]) fio_rm_tree(fz_dir);
}

/* This process's scratch folder (/dev/shm when there is one: the harnesses write a file per input). */
__attribute__((unused)) static const char *fz_tmpdir(void) {
    if (!fz_dir[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/mambaq-fuzz-%d", base, (int)getpid());
        fio_rm_tree(fz_dir);
        if (fio_mkdir_p(fz_dir)) { fprintf(stderr, "%s\n", mq_errmsg()); abort(); }
        atexit(fz_cleanup);
    }
    return fz_dir;
}

/* fz_tmpdir()/name, static buffer per call site pattern: copy when keeping two. */
__attribute__((unused)) static const char *fz_path(const char *name) {
    static char p[4][512];
    static int k;
    char *b = p[k++ % 4];
    snprintf(b, sizeof p[0], "%s/%s", fz_tmpdir(), name);
    return b;
}

__attribute__((unused)) static void fz_write(const char *path, const void *data, size_t n) {
    if (mq_write_file_atomic(path, data, n)) { fprintf(stderr, "%s\n", mq_errmsg()); abort(); }
}

/* FUZZ_DATA/rel (static buffer). */
__attribute__((unused)) static const char *fz_data(const char *rel) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", FUZZ_DATA, rel);
    return p;
}

/* Reads every tensor the way the loaders do; asserts what the reader promises. */
__attribute__((unused)) static void fz_walk(const st_file *f) {
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        if (st_find(f, t->name) != t) abort();                /* names are unique and findable */
        if (t->nbytes != (size_t)t->numel * mq_dtype_size(t->dtype)) abort();
        st_count_nonfinite(t, NULL, NULL);
        if (t->dtype == MQ_F32 || t->dtype == MQ_F16 || t->dtype == MQ_BF16) {
            float *v = malloc((size_t)t->numel * sizeof *v + 1);
            st_to_f32(t, v);
            free(v);
        }
        volatile unsigned char sum = 0;                       /* every byte is readable */
        for (size_t k = 0; k < t->nbytes; k++) sum ^= ((const unsigned char *)t->data)[k];
        (void)sum;
    }
    st_metadata(f, "format");
    mq_clear_error();
}

#endif
