/* libFuzzer harness: the safetensors reader on a file's bytes (st_open_buffer): header length, JSON
 * header, dtypes, shapes, offsets, overlaps, __metadata__; then every tensor read and converted. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    st_file *f = st_open_buffer(data, n, "fuzz.safetensors");
    if (f) {
        fz_walk(f);
        st_close(f);
    }
    mq_clear_error();
    return 0;
}
