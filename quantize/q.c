/* The recipes' choice of statistics and clips (see q.h). */
#include "quantize/q.h"
#include "core/err.h"

q_stat_variant q_role_variant(const q_options *o, mq_act_role role) {
    if ((role == MQ_ACT_IN_PROJ_IN || role == MQ_ACT_LM_HEAD_IN) && q_method_rotates_residual(o->method)) return Q_STAT_ROTATED;
    if (role == MQ_ACT_IN_PROJ_IN && q_method_fuses_norm(o->method)) return Q_STAT_FUSED;
    if (role == MQ_ACT_OUT_PROJ_IN && q_method_uses_hadamard(o->method)) return Q_STAT_FUSED;
    return Q_STAT_PLAIN;
}

int q_role_clip(const q_options *o, const q_stats *st, int layer, mq_act_role role, int part, float *clip) {
    q_stat_variant var = q_role_variant(o, role);
    int rc;
    if (role == MQ_ACT_SSM_X && q_method_uses_percentile(o->method) && o->percentile < 100.0)
        rc = st->percentile(st->ctx, layer, role, part, var, o->percentile, clip);
    else
        rc = st->absmax(st->ctx, layer, role, part, var, clip);
    if (rc) return -1;
    if (!(*clip > 0 && *clip <= 1.27e8f))   /* the clip of export/art.h's largest scale (calib.h CALIB_STAT_MAX) */
        return mq_fail("statistics of layer %d %s: clip value %g is outside (0, 1.27e8]: the statistics are broken",
                       layer, q_role_key(MQ_MAMBA2, role), (double)*clip);
    return 0;
}
