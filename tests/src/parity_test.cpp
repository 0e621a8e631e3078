// parity_test.cpp - inference parity against PyTorch references (tests/fixtures, made by
// gen_fixtures.py): 19 reduced-width models, weights in torchvision or Keras legacy HDF5 layout,
// logits / softmax / pooled features compared with the tolerances of docs/models.md, "Numerical
// parity". The Keras files of keras_resnet50_probs, keras_resnet50v2_probs (classifier "probs"),
// keras_resnet50_v02 (the Keras <= 2.2.4 ResNet50's names) and the LeNets were written from the
// layer lists of the Keras code itself; the first two load by position with one renamed layer.
//
// The references are float64 computations on float32-representable weights; when the fixtures
// were generated, PyTorch's own float32 forward stayed within 10 % of every tolerance below (the
// generator's log), so a correct float32 engine has a wide margin and a failure is a bug.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "parity_util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

using sntest::H5Reader;

struct Expected {
  std::vector<float> input, logits, probs, features;
  int n = 0, k = 0, d = 0;
};

// Reads <name>.expected.h5; failures are reported through gtest.
void read_expected(const H5Reader &f, Expected *e) {
  std::vector<int64_t> di, dl, dp, df;
  ASSERT_TRUE(f.ok()) << "cannot open " << f.path();
  ASSERT_TRUE(f.read_f32("input", e->input, &di)) << f.path() << ": /input";
  ASSERT_TRUE(f.read_f32("logits", e->logits, &dl)) << f.path() << ": /logits";
  ASSERT_TRUE(f.read_f32("probs", e->probs, &dp)) << f.path() << ": /probs";
  ASSERT_TRUE(f.read_f32("features", e->features, &df)) << f.path() << ": /features";
  ASSERT_EQ(di.size(), 4u);
  ASSERT_EQ(dl.size(), 2u);
  ASSERT_EQ(df.size(), 2u);
  e->n = (int)di[0];
  e->k = (int)dl[1];
  e->d = (int)df[1];
  ASSERT_EQ(dl[0], e->n);
  ASSERT_EQ(df[0], e->n);
  ASSERT_EQ(dp, dl);
  ASSERT_EQ(di[1], (int64_t)f.attr("height"));
  ASSERT_EQ(di[2], (int64_t)f.attr("width"));
  ASSERT_EQ(di[3], (int64_t)f.attr("channels"));
  ASSERT_EQ(e->k, (int)f.attr("classes"));
}

// docs/models.md, "Numerical parity": logits max |d| <= 1e-4 + 1e-4 max|ref|, max|ref| over the
// whole reference (all images; `scale`, 0: of these values). Prints the error as a fraction of the
// tolerance.
void expect_logits(const float *got, const float *ref, size_t count, const std::string &what,
                   double scale = 0) {
  double d = sntest::diff_max(got, ref, count);
  double m = scale > 0 ? scale : sntest::abs_max(ref, count);
  double tol = 1e-4 + 1e-4 * m;
  EXPECT_LE(d, tol) << what << ": logits max|d| " << d << ", max|ref| " << m;
  std::printf("  %s: logits max|d| %.2e = %.3f of tolerance\n", what.c_str(), d, d / tol);
}

// docs/models.md, "Numerical parity": intermediate outputs max |d| / max|ref| <= 1e-4 (scale as
// above).
void expect_features(const float *got, const float *ref, size_t count, const std::string &what,
                     double scale = 0) {
  double d = sntest::diff_max(got, ref, count);
  double m = scale > 0 ? scale : sntest::abs_max(ref, count);
  EXPECT_LE(d, 1e-4 * m) << what << ": features max|d| " << d << ", max|ref| " << m << " (relative "
                         << d / m << ")";
  std::printf("  %s: features max|d|/max|ref| %.2e = %.3f of tolerance\n", what.c_str(), d / m,
              d / m / 1e-4);
}

class InferenceParity : public ::testing::TestWithParam<const char *> {};

// Full model: logits, softmax probabilities, pooled features; batched and one image at a time.
TEST_P(InferenceParity, LogitsProbsFeatures) {
  const std::string name = GetParam();
  H5Reader f(sntest::fixture(name + ".expected.h5"));
  Expected e;
  ASSERT_NO_FATAL_FAILURE(read_expected(f, &e));
  std::string err;
  sn_net *net = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  ASSERT_NE(net, nullptr) << err;
  sn_weights_info info;
  ASSERT_EQ(
      sn_weights_load_info(net, sntest::fixture(name + ".h5").c_str(), SN_WEIGHTS_AUTO, 0, &info),
      SN_OK)
      << sn_last_error();
  // Names that agree are loaded silently; the "probs" files have one other name, which the
  // loader reports (the file's layers are paired by position, as Keras pairs them).
  const bool alias = name.size() > 6 && name.compare(name.size() - 6, 6, "_probs") == 0;
  EXPECT_EQ(info.renamed, alias ? 1 : 0) << info.note;
  if (alias)
    EXPECT_NE(std::string(info.note).find("(probs for predictions)"), std::string::npos)
        << info.note;
  else
    EXPECT_STREQ(info.note, "");
  ASSERT_EQ(sn_net_feature_dim(net), e.d);
  ASSERT_EQ(sn_net_plan(net, e.n, 0), SN_OK) << sn_last_error();
  int oh = 0, ow = 0, oc = 0;
  sn_net_output_shape(net, &oh, &ow, &oc);
  ASSERT_EQ(oc, e.k);

  std::vector<float> out((size_t)e.n * e.k), probs(out.size());
  ASSERT_EQ(sn_net_forward(net, e.input.data(), e.n, out.data()), SN_OK) << sn_last_error();
  expect_logits(out.data(), e.logits.data(), out.size(), name);
  const float *feat = sn_net_features(net);
  ASSERT_NE(feat, nullptr);
  expect_features(feat, e.features.data(), (size_t)e.n * e.d, name);
  // Keras models end in a softmax (docs/models.md); the probabilities must match too.
  sn_softmax(out.data(), e.n, e.k, probs.data());
  double dp = sntest::diff_max(probs.data(), e.probs.data(), probs.size());
  EXPECT_LE(dp, 1e-4) << name << ": probs max|d| " << dp;
  for (int i = 0; i < e.n; ++i) {
    const float *r = &e.logits[(size_t)i * e.k], *g = &out[(size_t)i * e.k];
    EXPECT_EQ(std::max_element(g, g + e.k) - g, std::max_element(r, r + e.k) - r)
        << name << ": top-1 of image " << i;
  }

  // The last image alone (a batch smaller than planned) gives the same answer, within the same
  // tolerances (scaled by the whole reference, as above).
  const size_t img = e.input.size() / e.n;
  std::vector<float> one(e.k);
  ASSERT_EQ(sn_net_forward(net, e.input.data() + (e.n - 1) * img, 1, one.data()), SN_OK)
      << sn_last_error();
  expect_logits(one.data(), &e.logits[(size_t)(e.n - 1) * e.k], e.k, name + " (n=1)",
                sntest::abs_max(e.logits.data(), e.logits.size()));
  expect_features(sn_net_features(net), &e.features[(size_t)(e.n - 1) * e.d], e.d, name + " (n=1)",
                  sntest::abs_max(e.features.data(), e.features.size()));
  sn_net_destroy(net);
}

// No-top feature extractor (include_top 0, pooling avg): its output is the pooled feature
// vector. The parameters are copied by (layer, role) from a full net that loaded the fixture, so
// that this test does not depend on how the loader treats the file's classifier tensors.
// LeNet is excluded: its classifier input is dense_1's output, not a pooled map.
TEST_P(InferenceParity, NoTopAvgPoolIsFeatures) {
  const std::string name = GetParam();
  if (name.rfind("lenet", 0) == 0) GTEST_SKIP() << "LeNet's features are not a pooled map";
  H5Reader f(sntest::fixture(name + ".expected.h5"));
  Expected e;
  ASSERT_NO_FATAL_FAILURE(read_expected(f, &e));
  std::string err;
  sn_net *top = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  ASSERT_NE(top, nullptr) << err;
  sn_net *notop = sntest::fixture_net(f, name, 0, SN_POOL_AVG, &err);
  ASSERT_NE(notop, nullptr) << err;
  ASSERT_EQ(sn_weights_load(top, sntest::fixture(name + ".h5").c_str(), SN_WEIGHTS_AUTO, nullptr),
            SN_OK)
      << sn_last_error();
  ASSERT_EQ(sn_net_num_params(notop) + 2, sn_net_num_params(top))
      << "the no-top net should lack exactly the classifier's kernel and bias";
  for (int i = 0; i < sn_net_num_params(notop); ++i) {
    sn_param_info p, q;
    ASSERT_EQ(sn_net_param(notop, i, &p), SN_OK);
    int j = sn_net_find_param(top, p.layer, p.role);
    ASSERT_GE(j, 0) << sntest::param_name(notop, i) << " missing from the full model";
    ASSERT_EQ(sn_net_param(top, j, &q), SN_OK);
    ASSERT_EQ(p.count, q.count) << sntest::param_name(notop, i);
    std::memcpy(p.data, q.data, (size_t)p.count * sizeof(float));
  }
  ASSERT_EQ(sn_net_plan(notop, e.n, 0), SN_OK) << sn_last_error();
  int oh = 0, ow = 0, oc = 0;
  sn_net_output_shape(notop, &oh, &ow, &oc);
  ASSERT_EQ(oc, e.d);
  ASSERT_EQ(sn_net_feature_dim(notop), e.d);
  std::vector<float> out((size_t)e.n * e.d);
  ASSERT_EQ(sn_net_forward(notop, e.input.data(), e.n, out.data()), SN_OK) << sn_last_error();
  expect_features(out.data(), e.features.data(), out.size(), name + " (no top)");
  sn_net_destroy(notop);
  sn_net_destroy(top);
}

// No-top feature extractor loaded from files: the full file with SN_LOAD_IGNORE_HEAD (the file's
// classifier, whatever its name, skipped by position) and, where the fixture has one, the no-top
// file written from the Keras code with include_top=False (<name>.notop.h5). Both give /features.
TEST_P(InferenceParity, NoTopFromFiles) {
  const std::string name = GetParam();
  if (name.rfind("lenet", 0) == 0) GTEST_SKIP() << "LeNet's features are not a pooled map";
  H5Reader f(sntest::fixture(name + ".expected.h5"));
  Expected e;
  ASSERT_NO_FATAL_FAILURE(read_expected(f, &e));
  const std::string notop = sntest::fixture(name + ".notop.h5");
  FILE *probe = std::fopen(notop.c_str(), "rb");
  const bool has_notop = probe != nullptr;
  if (probe) std::fclose(probe);
  for (int from_notop = 0; from_notop <= (has_notop ? 1 : 0); ++from_notop) {
    const std::string file = from_notop ? notop : sntest::fixture(name + ".h5");
    std::string err;
    sn_net *net = sntest::fixture_net(f, name, 0, SN_POOL_AVG, &err);
    ASSERT_NE(net, nullptr) << err;
    ASSERT_EQ(sn_weights_load_ex(net, file.c_str(), SN_WEIGHTS_AUTO,
                                 from_notop ? SN_LOAD_STRICT : SN_LOAD_IGNORE_HEAD, nullptr),
              SN_OK)
        << sn_last_error();
    ASSERT_EQ(sn_net_plan(net, e.n, 0), SN_OK) << sn_last_error();
    std::vector<float> out((size_t)e.n * e.d);
    ASSERT_EQ(sn_net_forward(net, e.input.data(), e.n, out.data()), SN_OK) << sn_last_error();
    expect_features(out.data(), e.features.data(), out.size(),
                    name + (from_notop ? " (no-top file)" : " (top file, head ignored)"));
    sn_net_destroy(net);
  }
}

const char *const kFixtures[] = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "keras_resnet50",
    "keras_resnet101",
    "keras_resnet152",
    "keras_resnet50v2",
    "keras_resnet101v2",
    "keras_resnet152v2",
    "resnet20",
    "lenet",
    "lenet_bn",
    "lenet_bn_conventional",
    "keras_resnet50_probs",
    "keras_resnet50v2_probs",
    "keras_resnet50_v02",
};

INSTANTIATE_TEST_SUITE_P(Fixtures, InferenceParity, ::testing::ValuesIn(kFixtures),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           return std::string(i.param);
                         });

} // namespace
