/* libFuzzer harness: sharded checkpoints. The input is the index JSON (model.safetensors.index.json)
 * of a folder that also holds small real shards, safetensors and torch.save (FUZZ_DATA/index/):
 * weight_map parsing, shard names, the agreement of index and shards, duplicates across shards. */
#include <dirent.h>
#include "fuzz/fuzz.h"

static char index_path[600];

/* Copies FUZZ_DATA/index/<files> into the scratch folder once. */
static void setup(void) {
    DIR *d = opendir(fz_data("index"));
    if (!d) { fprintf(stderr, "fuzz_index: no %s (run make fuzz-seeds)\n", fz_data("index")); abort(); }
    struct dirent *e;
    char src[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(src, sizeof src, "%s/%s", fz_data("index"), e->d_name);
        size_t n;
        char *s = mq_read_file(src, &n);
        if (!s) abort();
        fz_write(fz_path(e->d_name), s, n);
        free(s);
    }
    closedir(d);
    snprintf(index_path, sizeof index_path, "%s", fz_path("model.safetensors.index.json"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (!index_path[0]) setup();
    fz_write(index_path, data, n);
    st_file *f = st_open(index_path);
    if (f) {
        fz_walk(f);
        st_close(f);
    }
    mq_clear_error();
    return 0;
}
