/* libFuzzer harness: config.json (core/cfg.c), transformers and state-spaces forms, with Python's
 * NaN / Infinity tokens. A config that parses must serialize (cfg_to_json) to one that parses to
 * the same configuration. */
#include "core/cfg.h"
#include "fuzz/fuzz.h"

static int same(const mq_config *a, const mq_config *b) {
    return a->arch == b->arch && a->d_model == b->d_model && a->n_layer == b->n_layer && a->vocab_size == b->vocab_size &&
           a->d_inner == b->d_inner && a->d_state == b->d_state && a->d_conv == b->d_conv &&
           (a->arch == MQ_MAMBA2 || a->dt_rank == b->dt_rank) && a->conv_bias == b->conv_bias && a->proj_bias == b->proj_bias &&
           a->tie_embeddings == b->tie_embeddings && a->norm_eps == b->norm_eps && a->n_heads == b->n_heads &&
           a->head_dim == b->head_dim && a->n_groups == b->n_groups && a->chunk_size == b->chunk_size &&
           a->dt_limit_min == b->dt_limit_min && a->dt_limit_max == b->dt_limit_max && a->norm_before_gate == b->norm_before_gate;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char *text = malloc(n + 1);
    memcpy(text, data, n);
    text[n] = 0;
    mq_config c, back;
    if (!cfg_parse(text, "fuzz config.json", &c)) {
        cfg_in_proj_dim(&c);
        cfg_conv_dim(&c);
        char *js = cfg_to_json(&c);
        if (cfg_parse(js, "round trip", &back) || !same(&c, &back)) {
            fprintf(stderr, "config round trip failed: %s\n%s\n", mq_errmsg(), js);
            abort();
        }
        free(js);
    }
    free(text);
    mq_clear_error();
    return 0;
}
