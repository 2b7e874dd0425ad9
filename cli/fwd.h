/* How every command that runs a model opens it: a float checkpoint or an int8 artifact (a directory
 * holding quant_config.json is taken as an artifact wherever a model is accepted) on a device, as
 * one ssm/backend.h forward. cpu: FP32 reference (model) or simulated W8A8 (artifact); cuda: FP16
 * (model) or the int8 pass (artifact); auto: cuda when a GPU is usable. */
#ifndef MQ_CLI_FWD_H
#define MQ_CLI_FWD_H
#include "export/art.h"
#include "ssm/backend.h"

typedef struct {
    be *b;
    int is_artifact;
    mq_model m;          /* the float model (owned; the CPU forward runs on it) */
    art_artifact *art;   /* the artifact (owned; the simulation reads its q_model) */
    const char *path;
} fwd;

/* 1 when dir holds quant_config.json (an artifact of `mambaq quantize`). */
int fwd_is_artifact(const char *dir);
/* 0 when path is not an artifact; else -1 + a message saying that `cmd` needs the float checkpoint
 * and naming the artifact's source model. */
int fwd_require_model(const char *path, const char *cmd);
/* Opens path (a model or an artifact directory) on device ("cpu", "cuda" or "auto") for calls of up
 * to batch x seqlen tokens. 0, or -1 + a message naming the path. */
int fwd_open(fwd *f, const char *path, const char *device, int batch, int seqlen);
void fwd_close(fwd *f);
/* "FP16 on the GPU (NVIDIA H200, ...)" / "simulated W8A8 on the CPU": what runs, for reports. */
const char *fwd_describe(const fwd *f, char *buf, size_t n);

#endif
