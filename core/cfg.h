/* Model configuration: one struct for Mamba1 and Mamba2, parsed from a transformers config.json
 * (model_type "mamba" / "mamba2") or an original state-spaces config.json (d_model, n_layer,
 * vocab_size, ssm_cfg, pad_vocab_size_multiple). Everything downstream reads only mq_config. */
#ifndef MQ_CFG_H
#define MQ_CFG_H
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MQ_MAMBA1 = 1, MQ_MAMBA2 = 2 } mq_arch;

typedef struct {
    mq_arch arch;
    int d_model;        /* hidden_size */
    int n_layer;
    int vocab_size;     /* padded vocabulary: rows of the embedding */
    int d_inner;        /* expand * d_model (Mamba2: n_heads * head_dim) */
    int d_state;
    int d_conv;         /* conv kernel width */
    int dt_rank;        /* Mamba1 only */
    int conv_bias;      /* conv1d has a bias */
    int proj_bias;      /* in_proj / out_proj have biases (use_bias) */
    int tie_embeddings; /* lm_head shares the embedding matrix */
    float norm_eps;
    /* Mamba2 only */
    int n_heads, head_dim, n_groups, chunk_size;
    float dt_limit_min, dt_limit_max;  /* clamp of dt after softplus; 0 / +inf when unlimited */
    int norm_before_gate;              /* gated RMSNorm order (false in all released models) */
    char source[512];                  /* path the config came from, for messages */
} mq_config;

/* dir: a model directory holding config.json (or the config file itself). When dir holds checkpoint
 * files (*.safetensors, *.bin), the sizes the config implies must fit in them (a lower bound: no
 * allocation is ever sized by a config that the files cannot back). */
int cfg_load(const char *dir, mq_config *out);
/* json: config text; source: name used in error messages. */
int cfg_parse(const char *json, const char *source, mq_config *out);
/* Width of in_proj's output: Mamba1 2*d_inner; Mamba2 2*d_inner + 2*n_groups*d_state + n_heads. */
int cfg_in_proj_dim(const mq_config *c);
/* Channels that go through conv1d: Mamba1 d_inner; Mamba2 d_inner + 2*n_groups*d_state. */
int cfg_conv_dim(const mq_config *c);
/* "mamba1" / "mamba2": the one spelling of the architecture in every output. */
const char *cfg_arch_name(mq_arch a);
/* Serialize back to a transformers-style config.json (caller frees). */
char *cfg_to_json(const mq_config *c);

#ifdef __cplusplus
}
#endif
#endif
