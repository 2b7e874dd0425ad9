/* cli/fwd.h: a model or an artifact directory opened as a forward of ssm/backend.h. */
#include "cli/fwd.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/err.h"
#include "core/gpu.h"

int fwd_is_artifact(const char *dir) {
    char p[4200];
    struct stat st;
    return (size_t)snprintf(p, sizeof p, "%s/quant_config.json", dir) < sizeof p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int fwd_require_model(const char *path, const char *cmd) {
    if (!fwd_is_artifact(path)) return 0;
    char qc[4200], src[4096] = "";
    snprintf(qc, sizeof qc, "%s/quant_config.json", path);
    char *txt = mq_read_file(qc, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    const cJSON *p = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "source_model"), "path");
    if (cJSON_IsString(p)) snprintf(src, sizeof src, "%s", p->valuestring);
    cJSON_Delete(j);
    free(txt);
    return mq_fail("%s is an int8 artifact (it holds quant_config.json); %s needs the float checkpoint%s%s%s", path, cmd,
                   src[0] ? " it was made from: " : "", src, src[0] ? "" : " (a model directory)");
}

int fwd_open(fwd *f, const char *path, const char *device, int batch, int seqlen) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int cuda;
    if (be_device_parse(device, &cuda)) return -1;
    f->is_artifact = fwd_is_artifact(path);
    if (f->is_artifact) {
        f->art = mq_malloc(sizeof *f->art);
        if (art_open(path, f->art)) {
            free(f->art);
            f->art = NULL;
            return mq_fail_ctx("the artifact %s failed validation", path);
        }
        if (cuda && !strcmp(device, "auto") && f->art->qm.opt.method == Q_QUAMBA2) {
            /* every mode runs on the GPU; shapes the 4-bit kernels do not take do not: auto means the
             * CPU for them */
            f->b = be_open_qmodel(&f->art->qm, BE_CUDA_INT8, batch, seqlen);
            if (!f->b) {
                fprintf(stderr, "mambaq: note: %s on the GPU: %s; it runs on the CPU simulation\n", path, mq_errmsg());
                cuda = 0;
            }
        }
        if (!f->b) f->b = be_open_qmodel(&f->art->qm, cuda ? BE_CUDA_INT8 : BE_CPU_SIM, batch, seqlen);
    } else {
        if (ssm_load(path, &f->m)) return mq_fail_ctx("loading %s", path);
        f->b = be_open_model(&f->m, cuda ? BE_CUDA_F16 : BE_CPU_F32, batch, seqlen);
    }
    if (!f->b) {
        fwd_close(f);
        return mq_fail_ctx("%s on %s", path, cuda ? "the GPU" : "the CPU");
    }
    /* the GPU kinds copied what they need: the host copy of a float model can go */
    if (cuda && !f->is_artifact) {
        ssm_free(&f->m);
        memset(&f->m, 0, sizeof f->m);
    }
    return 0;
}

void fwd_close(fwd *f) {
    be_free(f->b);
    f->b = NULL;
    if (f->m.arena) ssm_free(&f->m);
    if (f->art) {
        art_close(f->art);
        free(f->art);
        f->art = NULL;
    }
}

const char *fwd_describe(const fwd *f, char *buf, size_t n) {
    const be_kind k = be_kind_of(f->b);
    if (f->art && f->art->qm.opt.method == Q_QUAMBA2) {   /* its bits are its own */
        const q_options *o = &f->art->qm.opt;
        if (k == BE_CPU_SIM) snprintf(buf, n, "simulated W%dA%d (quamba2) on the CPU", q_big_wbits(o), o->abits);
        else snprintf(buf, n, "W%dA%d (quamba2) on the GPU (%s)", q_big_wbits(o), o->abits, gpu_describe());
        return buf;
    }
    snprintf(buf, n, "%s%s%s%s", be_kind_text(k), be_kind_is_cuda(k) ? " (" : "", be_kind_is_cuda(k) ? gpu_describe() : "",
             be_kind_is_cuda(k) ? ")" : "");
    return buf;
}
