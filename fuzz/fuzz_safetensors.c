/* libFuzzer harness: the safetensors reader on a file's bytes (st_open_buffer): header length, JSON
 * header, dtypes, shapes, offsets, overlaps, __metadata__; then every tensor read and converted. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) { return fz_checkpoint(data, n, "fuzz.safetensors"); }
