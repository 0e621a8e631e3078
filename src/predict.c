/* predict.c - classifying a batch in one call: forward pass, features, softmax and top-k, on the
 * public engine calls only (sn_net_forward, sn_net_features, sn_softmax, sn_topk). */
#include <string.h>

#include "shardnet.h"

sn_status sn_net_predict(sn_net *net, const float *x, int n, int k, float *out, float *features,
                         float *probs, int32_t *top_idx, float *top_val) {
  if (!net || n < 0 || (n > 0 && !x) || k < 0)
    return sn_error_set(SN_ERR_INVALID, "sn_net_predict: invalid arguments (n %d, k %d)", n, k);
  const sn_model_config *cfg = sn_net_config(net);
  const int classes = sn_net_classes(net);
  int oh, ow, oc;
  sn_net_output_shape(net, &oh, &ow, &oc);
  if ((probs || k > 0) && !cfg->include_top)
    return sn_error_set(SN_ERR_INVALID, "%s: no classifier (include_top = 0): no probabilities",
                        cfg->arch);
  if (k > 0 && (k > classes || !probs || !top_idx || !top_val))
    return sn_error_set(SN_ERR_INVALID,
                        "%s: top-%d of %d classes needs k <= classes and the probs, top_idx "
                        "and top_val buffers",
                        cfg->arch, k, classes);
  /* The output goes to out, else to probs (softmax in place), else (no classifier) to features. */
  float *dst = out ? out : probs ? probs : !cfg->include_top ? features : NULL;
  if (!dst)
    return sn_error_set(SN_ERR_INVALID,
                        "%s: sn_net_predict needs an output buffer: out, probs or (without a "
                        "classifier) features",
                        cfg->arch);
  sn_status s = sn_net_forward(net, x, n, dst);
  if (s != SN_OK) return s;
  if (features) {
    /* With a classifier, the pooled vector it reads; without one, the output is the feature. */
    const size_t width = cfg->include_top ? (size_t)sn_net_feature_dim(net) : (size_t)oh * ow * oc;
    const float *src = cfg->include_top ? sn_net_features(net) : dst;
    if (width > 0 && features != src) memcpy(features, src, (size_t)n * width * sizeof(float));
  }
  if (probs) sn_softmax(dst, n, classes, probs);
  if (k > 0) sn_topk(probs, n, classes, k, top_idx, top_val);
  return SN_OK;
}
