/* Tests of config parsing: both shared proxies, synthetic transformers and state-spaces configs
 * (defaults, "auto" dt rank, vocab padding, Infinity spellings), malformed and unsupported configs
 * (each failing with a message naming the file and the field), and the cfg_to_json round trip. */
#include "tests/test.h"
#include "core/cfg.h"
#include "core/err.h"

static void expect_fail(const char *json, const char *what) {
    mq_config c;
    mq_clear_error();
    T_CHECK(cfg_parse(json, "test/config.json", &c) == -1, "should fail with '%s': %s", what, json);
    T_CHECK(strstr(mq_errmsg(), "test/config.json") != NULL, "message names the file: %s", mq_errmsg());
    T_CHECK(strstr(mq_errmsg(), what) != NULL, "message says '%s': %s", what, mq_errmsg());
}

/* cfg_to_json then cfg_parse gives back the same struct. */
static void check_roundtrip(const mq_config *c) {
    char *js = cfg_to_json(c);
    mq_config d;
    T_CHECK(cfg_parse(js, "roundtrip", &d) == 0, "%s\n%s", mq_errmsg(), js);
    memcpy(d.source, c->source, sizeof d.source); /* compare everything else byte for byte */
    T_CHECK(!memcmp(c, &d, sizeof d), "round trip differs:\n%s", js);
    free(js);
}

static void test_proxy_mamba1(void) {
    T_NEED_SHARED(dir, "models/mamba1-proxy");
    mq_config c;
    T_CHECK(cfg_load(dir, &c) == 0, "%s", mq_errmsg());
    T_CHECK(c.arch == MQ_MAMBA1 && c.d_model == 192 && c.n_layer == 24 && c.vocab_size == 50280, "dims");
    T_CHECK(c.d_inner == 384 && c.d_state == 16 && c.d_conv == 4 && c.dt_rank == 12, "mixer dims");
    T_CHECK(c.conv_bias == 1 && c.proj_bias == 0 && c.tie_embeddings == 1 && c.norm_eps == 1e-5f, "flags");
    T_CHECK(cfg_in_proj_dim(&c) == 768 && cfg_conv_dim(&c) == 384, "derived %d %d", cfg_in_proj_dim(&c), cfg_conv_dim(&c));
    T_CHECK(strstr(c.source, "mamba1-proxy/config.json") != NULL, "source %s", c.source);
    check_roundtrip(&c);
}

static void test_proxy_mamba2(void) {
    T_NEED_SHARED(dir, "models/mamba2-proxy");
    mq_config c;
    T_CHECK(cfg_load(dir, &c) == 0, "%s", mq_errmsg());
    T_CHECK(c.arch == MQ_MAMBA2 && c.d_model == 192 && c.n_layer == 20 && c.vocab_size == 50280, "dims");
    T_CHECK(c.d_inner == 384 && c.n_heads == 6 && c.head_dim == 64 && c.n_groups == 1 && c.d_state == 64, "mixer dims");
    T_CHECK(c.d_conv == 4 && c.chunk_size == 256 && c.dt_limit_min == 0.0f && isinf(c.dt_limit_max) && c.dt_limit_max > 0, "limits");
    T_CHECK(c.norm_before_gate == 0 && c.conv_bias == 1 && c.proj_bias == 0 && c.tie_embeddings == 1, "flags");
    T_CHECK(cfg_in_proj_dim(&c) == 902 && cfg_conv_dim(&c) == 512, "derived %d %d", cfg_in_proj_dim(&c), cfg_conv_dim(&c));
    check_roundtrip(&c);
}

static void test_hf_synthetic(void) {
    mq_config c;
    /* no intermediate_size: expand * hidden; "auto" rank = ceil(200/16) = 13; tie defaults to true */
    T_CHECK(cfg_parse("{\"model_type\":\"mamba\",\"hidden_size\":200,\"num_hidden_layers\":3,\"vocab_size\":1000,"
                      "\"expand\":3,\"time_step_rank\":\"auto\",\"use_bias\":true,\"layer_norm_epsilon\":1e-6}", "a", &c) == 0,
            "%s", mq_errmsg());
    T_CHECK(c.arch == MQ_MAMBA1 && c.d_inner == 600 && c.dt_rank == 13 && c.d_state == 16 && c.d_conv == 4, "defaults");
    T_CHECK(c.tie_embeddings == 1 && c.proj_bias == 1 && c.conv_bias == 1 && c.norm_eps == 1e-6f, "flags");
    check_roundtrip(&c);
    T_CHECK(cfg_parse("{\"model_type\":\"mamba\",\"hidden_size\":64,\"num_hidden_layers\":2,\"vocab_size\":10,"
                      "\"tie_word_embeddings\":false}", "b", &c) == 0 && c.dt_rank == 4 && c.d_inner == 128 && !c.tie_embeddings,
            "absent rank is auto: %s", mq_errmsg());

    /* Mamba2: tie defaults to false; limits spelled three ways */
    const char *limits[] = {"[0.001, 0.1]", "[0.0, {\"__float__\": \"Infinity\"}]", "[0.0, Infinity]"};
    for (int i = 0; i < 3; i++) {
        char js[512];
        snprintf(js, sizeof js, "{\"model_type\":\"mamba2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"vocab_size\":100,"
                 "\"num_heads\":4,\"head_dim\":32,\"n_groups\":2,\"state_size\":16,\"time_step_limit\":%s,"
                 "\"name\":\"Infinity NaN in a string\"}", limits[i]);
        T_CHECK(cfg_parse(js, "c", &c) == 0, "%s: %s", limits[i], mq_errmsg());
        T_CHECK(c.arch == MQ_MAMBA2 && c.d_inner == 128 && c.n_groups == 2 && c.chunk_size == 256 && !c.tie_embeddings, "m2 dims");
        T_CHECK(cfg_in_proj_dim(&c) == 2 * 128 + 2 * 2 * 16 + 4 && cfg_conv_dim(&c) == 128 + 64, "derived");
        if (i == 0) T_CHECK(c.dt_limit_min == 0.001f && c.dt_limit_max == 0.1f, "finite limit");
        else T_CHECK(c.dt_limit_min == 0 && isinf(c.dt_limit_max), "infinite limit %s", limits[i]);
        check_roundtrip(&c);
    }
}

static void test_state_spaces(void) {
    mq_config c;
    /* state-spaces/mamba-130m's config.json */
    T_CHECK(cfg_parse("{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, \"ssm_cfg\": {}, \"rms_norm\": true, "
                      "\"residual_in_fp32\": true, \"fused_add_norm\": true, \"pad_vocab_size_multiple\": 8}", "ss1", &c) == 0,
            "%s", mq_errmsg());
    T_CHECK(c.arch == MQ_MAMBA1 && c.d_model == 768 && c.n_layer == 24 && c.vocab_size == 50280, "padded vocab %d", c.vocab_size);
    T_CHECK(c.d_inner == 1536 && c.d_state == 16 && c.d_conv == 4 && c.dt_rank == 48, "Mamba defaults");
    T_CHECK(c.conv_bias && !c.proj_bias && c.tie_embeddings && c.norm_eps == 1e-5f, "flags");
    check_roundtrip(&c);
    /* state-spaces/mamba2-130m's config.json */
    T_CHECK(cfg_parse("{\"d_model\": 768, \"d_intermediate\": 0, \"n_layer\": 24, \"vocab_size\": 50277, "
                      "\"ssm_cfg\": {\"layer\": \"Mamba2\"}, \"attn_layer_idx\": [], \"attn_cfg\": {}, \"rms_norm\": true, "
                      "\"residual_in_fp32\": true, \"fused_add_norm\": true, \"pad_vocab_size_multiple\": 16, "
                      "\"tie_embeddings\": true}", "ss2", &c) == 0, "%s", mq_errmsg());
    T_CHECK(c.arch == MQ_MAMBA2 && c.vocab_size == 50288 && c.d_inner == 1536 && c.n_heads == 24 && c.head_dim == 64, "dims");
    T_CHECK(c.n_groups == 1 && c.d_state == 128 && c.chunk_size == 256 && c.d_conv == 4 && isinf(c.dt_limit_max), "Mamba2 defaults");
    check_roundtrip(&c);
    /* explicit values, already a multiple, untied */
    T_CHECK(cfg_parse("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 96, \"pad_vocab_size_multiple\": 32, \"tie_embeddings\": false,"
                      "\"ssm_cfg\": {\"layer\": \"Mamba1\", \"d_state\": 8, \"d_conv\": 3, \"expand\": 1.5, \"dt_rank\": 5, \"bias\": true,"
                      " \"conv_bias\": false}}", "ss3", &c) == 0, "%s", mq_errmsg());
    T_CHECK(c.vocab_size == 96 && c.d_inner == 96 && c.d_state == 8 && c.d_conv == 3 && c.dt_rank == 5, "explicit dims");
    T_CHECK(c.proj_bias && !c.conv_bias && !c.tie_embeddings, "explicit flags");
    check_roundtrip(&c);
}

static void test_bad_configs(void) {
    expect_fail("{\"model_type\": \"mamba\", ", "bad JSON");
    expect_fail("[1, 2]", "bad JSON");
    expect_fail("{\"model_type\": \"llama\", \"hidden_size\": 8}", "unsupported model_type \"llama\"");
    expect_fail("{\"model_type\": \"mamba\", \"num_hidden_layers\": 2, \"vocab_size\": 10}", "missing required field 'hidden_size'");
    expect_fail("{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10}",
                "missing required field 'num_heads'");
    expect_fail("{\"d_model\": 64, \"vocab_size\": 10}", "missing required field 'n_layer'");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 0, \"num_hidden_layers\": 2, \"vocab_size\": 10}", "hidden_size");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": -2, \"vocab_size\": 10}", "num_hidden_layers");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"state_size\": 0}", "state_size");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": \"64\", \"num_hidden_layers\": 2, \"vocab_size\": 10}",
                "field 'hidden_size' must be an integer, found a string");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 64.5, \"num_hidden_layers\": 2, \"vocab_size\": 10}", "hidden_size");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"time_step_rank\": \"big\"}",
                "time_step_rank");
    expect_fail("{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"use_bias\": 1}",
                "use_bias");
    expect_fail("{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"num_heads\": 3, "
                "\"head_dim\": 32}", "must equal expand * hidden_size");
    expect_fail("{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"num_heads\": 4, "
                "\"head_dim\": 32, \"n_groups\": 3}", "n_groups");
    expect_fail("{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"num_heads\": 4, "
                "\"head_dim\": 32, \"n_groups\": 1, \"time_step_limit\": [0.1]}", "time_step_limit");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"ssm_cfg\": {\"layer\": \"Mamba3\"}}", "ssm_cfg.layer");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"ssm_cfg\": {\"d_state\": -1}}", "d_state");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"rms_norm\": false}", "rms_norm");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"pad_vocab_size_multiple\": 0}", "pad_vocab_size_multiple");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"attn_layer_idx\": [1]}", "attn_layer_idx");
    expect_fail("{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"ssm_cfg\": {\"layer\": \"Mamba2\", \"headdim\": 48}}", "headdim");
    expect_fail("{\"hidden_size\": 64}", "not a Mamba config");
    mq_config c;
    T_CHECK(cfg_load("/nonexistent-model-dir", &c) == -1 && strstr(mq_errmsg(), "/nonexistent-model-dir/config.json"),
            "missing file: %s", mq_errmsg());
}

int main(void) {
    T_RUN(test_proxy_mamba1);
    T_RUN(test_proxy_mamba2);
    T_RUN(test_hf_synthetic);
    T_RUN(test_state_spaces);
    T_RUN(test_bad_configs);
    return t_summary();
}
