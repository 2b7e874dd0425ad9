/* libFuzzer harness: the artifact reader and validator (export/art.c art_open). The input holds
 * quant_config.json, config.json and model.safetensors separated by FZ_SEP lines (fuzz/seeds.sh packs
 * real artifacts so); they are written into a scratch artifact folder beside a tokenizer.json. */
#include "export/art.h"
#include "fuzz/fuzz.h"

#define FZ_SEP "\n#--mambaq-fuzz-part--#\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static char dir[600];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", fz_path("art"));
        if (fio_mkdir_p(dir)) abort();
        char p[700];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        fz_write(p, "{}", 2);
    }
    static const char *files[] = {"quant_config.json", "config.json", "model.safetensors"};
    const uint8_t *at = data, *end = data + n;
    for (int i = 0; i < 3; i++) {
        const uint8_t *sep = i < 2 ? memmem(at, (size_t)(end - at), FZ_SEP, strlen(FZ_SEP)) : NULL;
        const uint8_t *stop = sep ? sep : end;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        fz_write(p, at, (size_t)(stop - at));
        at = sep ? sep + strlen(FZ_SEP) : end;
    }
    art_artifact a;
    if (!art_open(dir, &a)) art_close(&a);
    mq_clear_error();
    return 0;
}
