/* libFuzzer harness: the torch.save reader (core/pt.c: zip directory, data.pkl pickle opcodes,
 * storages and strides) on a pytorch_model.bin's bytes; then every tensor read and converted. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    st_file *f = st_open_buffer(data, n, "fuzz/pytorch_model.bin");
    if (f) {
        fz_walk(f);
        st_close(f);
    }
    mq_clear_error();
    return 0;
}
