/* The int8 artifact: a directory holding
 *   model.safetensors   int8 weights (I8, HF names and shapes), their scales (F32, "<weight
 *                       name minus .weight>.weight_scale", [1] per tensor or [out] per channel),
 *                       activation scales (F32 [1], named after the layer that consumes them, see
 *                       q_scale_name), every other tensor as F16; __metadata__ format/version
 *   quant_config.json   format and version, method, bit widths, granularity, percentile, the
 *                       Hadamard order and where it applies, the residual rotation (quamba-rot),
 *                       fusions, whether the lm_head is tied to the embedding, which activations
 *                       are quantized and where their scales are, calibration and source hashes, tool
 *   config.json         the source model's, copied
 *   tokenizer.json      copied
 * art_write builds it in a temporary sibling directory and renames it into place when complete, so
 * an interrupted write never leaves anything under the final name. art_open validates everything
 * before returning (known format version and method, every tensor present with the shape
 * config.json implies and the right dtype, no unknown tensor, every float finite, every scale in
 * [ART_SCALE_MIN, ART_SCALE_MAX], int8 values in [-127, 127]); its errors name the file, the tensor,
 * the index and the value. art_write checks the same before writing. docs/recipe.md documents it. */
#ifndef MQ_ART_H
#define MQ_ART_H
#include <stddef.h>
#include <stdint.h>
#include "quantize/q.h"
#ifdef __cplusplus
extern "C" {
#endif

#define ART_FORMAT "mambaq-w8a8"
/* The newest version this mambaq reads and writes. 2 added the int8 embedding (quantize_embedding);
 * 3 the quamba2 recipe (int4 weights packed two a byte as U8, low nibble = even column; per-group
 * scales of B / C; clustered ssm_x scales with their index; activation_bits 16). An artifact without
 * these is written as version 1 (or 2), which every mambaq reads. */
#define ART_FORMAT_VERSION 3
#define ART_FORMAT_VERSION_MIN 1
/* The version an artifact of qm is written as. */
int art_format_version(const q_model *qm);

/* Plausible scales, on write and on read (docs/reliability.md). The rule (core/qrule.h) never makes
 * one below its clip floor, 1e-5 / 127 = 7.87e-8; above 1e6 the clip would be 1.27e8, 2000 times
 * FP16's largest value, which no activation or weight of a trained model comes near: such a scale
 * comes from broken statistics (an absmax of 3e38) and would zero every value it quantizes. */
#define ART_SCALE_MIN (QR_MIN_CLIP / (float)QR_QMAX)
#define ART_SCALE_MAX 1e6f

typedef struct {
    char source_model[4096];   /* model directory quantize read */
    char source_hash[80];      /* its weights' hash (the calib stats file's definition) */
    char stats_file[4096];     /* the calibration statistics used */
    char calib_data[4096];     /* data file the statistics were collected on */
    char calib_data_hash[80];
    long calib_samples;        /* calibration sequences */
    long calib_tokens;
    char tool_version[32];
} art_provenance;

typedef struct {
    char dir[4096];
    q_model qm;                /* everything the artifact holds, decoded */
    art_provenance prov;
    int format_version;
    size_t model_bytes;        /* size of model.safetensors */
    size_t int8_params;        /* elements stored as I8 */
    size_t int4_params;        /* elements stored as int4 (two a byte, U8) */
    size_t float_params;       /* elements stored as F16 */
    size_t scale_params;       /* elements stored as F32 */
} art_artifact;

/* Writes the artifact of qm into dir. config_json: the source config.json to copy; tokenizer: the
 * tokenizer.json to copy. Refuses an existing dir unless force (then replaces it atomically).
 * 0, or -1 + mq_errmsg(); on failure nothing is left under dir (a previous artifact stays). */
int art_write(const char *dir, const q_model *qm, const art_provenance *prov, const char *config_json,
              const char *tokenizer, int force);

/* What art_write will refuse, checked before any work: dir exists (without force), is not an
 * artifact (with force), or its folder is not writable. 0 or -1 + mq_errmsg(). */
int art_check_out(const char *dir, int force);

/* Reads and validates an artifact. 0, or -1 + a message naming the file and tensor. */
int art_open(const char *dir, art_artifact *a);
void art_close(art_artifact *a);

/* Elements an FP16 copy of the same model would hold (for the compression ratio). */
size_t art_fp16_params(const mq_config *c);

/* For tests: called (when set) after the temporary directory holds model.safetensors and before it
 * is complete; a test may kill the process here or return nonzero to make art_write fail. */
extern int (*art_test_midwrite)(const char *tmpdir);

#ifdef __cplusplus
}
#endif
#endif
