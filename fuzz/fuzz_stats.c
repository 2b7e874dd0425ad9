/* libFuzzer harness: calibration stats files (calib/stats.c's reader and its checks of the values):
 * format and version metadata, percentile list, the per-activation tensors; then every value read as
 * mambaq stats and the quantizer would. */
#include "calib/calib.h"
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static char path[600];
    if (!path[0]) snprintf(path, sizeof path, "%s", fz_path("stats.safetensors"));
    fz_write(path, data, n);
    calib_stats *s = calib_stats_open_unchecked(path);
    if (!s) { mq_clear_error(); return 0; }
    calib_stats_check(s);
    for (int i = 0; i < calib_stats_count(s); i++) {
        const char *name = calib_stats_name(s, i);
        float v;
        calib_stats_absmax(s, name, &v);
        for (int k = 0; k < calib_stats_npct(s); k++) {
            calib_stats_percentile(s, name, calib_stats_pct(s, k), 0, &v);
            calib_stats_percentile(s, name, calib_stats_pct(s, k), 1, &v);
        }
        calib_stats_tensor(s, name, ".hist");
        calib_stats_tensor(s, name, ".absmax_per_head");
    }
    calib_stats_meta(s, "model.weights_sha256");
    calib_stats_close(s);
    mq_clear_error();
    return 0;
}
