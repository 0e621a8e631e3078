// train_parity_test.cpp - three SGD steps against PyTorch references (tests/fixtures/*.train*,
// made by gen_fixtures.py): resnet20 (torchvision layout, PyTorch BN rule, label smoothing 0.1),
// lenet_bn and keras_resnet50v2 (Keras layout, Keras BN rule).
//
// Each step compares the loss, every gradient tensor and the moving statistics after the forward
// pass; after the three updates, every parameter and moving statistic. The gradient and final
// files are weights files in the model's own layout, so they are loaded with sn_weights_load into
// a second net and compared tensor by tensor with the training net.
//
// Tolerance: per tensor, max |got - ref| <= 1e-4 * max |ref| of that tensor. The reference is
// float64; the generator accepted a fixture only if PyTorch's float32 run of the same three steps
// stayed within 1e-5 of it on every tensor (10x margin for a different summation order). A
// tensor-wide scale (rather than element-wise) because single elements of a gradient can be
// arbitrarily close to zero. Exception: gradients that are zero in exact arithmetic (a conv bias
// feeding a training-mode BN: keras_resnet50v2 _0_conv/_3_conv biases) are
// round-off in both computations; a tensor whose reference is below 1e-6 of the step's largest
// gradient must instead stay below 1e-4 of that largest gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "parity_util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

using sntest::H5Reader;

constexpr double kRel = 1e-4;
constexpr double kStructuralZero = 1e-6;

// Loads a weights-layout fixture file into `ref` (a second net of the same configuration).
void load(sn_net *ref, const std::string &file) {
  ASSERT_EQ(sn_weights_load(ref, sntest::fixture(file).c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK)
      << sn_last_error();
}

bool is_stat(const sn_param_info &p) {
  return p.role == SN_ROLE_MOVING_MEAN || p.role == SN_ROLE_MOVING_VAR;
}

// Compares the training net's gradients (trainable tensors) and moving statistics with the
// tensors `ref` loaded from a grad file.
void expect_grads(sn_net *net, sn_net *ref, const std::string &what) {
  int np = sn_net_num_params(net);
  ASSERT_EQ(np, sn_net_num_params(ref));
  double big = 0; // largest reference gradient of the step
  for (int i = 0; i < np; ++i) {
    sn_param_info r;
    ASSERT_EQ(sn_net_param(ref, i, &r), SN_OK);
    if (!is_stat(r)) big = std::fmax(big, sntest::abs_max(r.data, (size_t)r.count));
  }
  ASSERT_GT(big, 0.0) << what;
  double worst = 0; // largest error as a fraction of its tolerance
  std::string worst_name;
  for (int i = 0; i < np; ++i) {
    sn_param_info p, r;
    ASSERT_EQ(sn_net_param(net, i, &p), SN_OK);
    ASSERT_EQ(sn_net_param(ref, i, &r), SN_OK);
    ASSERT_EQ(p.count, r.count);
    const std::string name = what + " " + sntest::param_name(net, i);
    double m = sntest::abs_max(r.data, (size_t)r.count);
    double d, tol;
    if (is_stat(p)) {
      d = sntest::diff_max(p.data, r.data, (size_t)p.count);
      tol = kRel * m;
      EXPECT_LE(d, tol) << name << ": max|d| " << d << ", max|ref| " << m;
    } else {
      ASSERT_TRUE(p.trainable) << name;
      ASSERT_NE(p.grad, nullptr) << name;
      if (m < kStructuralZero * big) {
        d = sntest::abs_max(p.grad, (size_t)p.count);
        tol = kRel * big;
        EXPECT_LE(d, tol) << name << ": structurally zero gradient is " << d
                          << " (largest gradient " << big << ")";
      } else {
        d = sntest::diff_max(p.grad, r.data, (size_t)p.count);
        tol = kRel * m;
        EXPECT_LE(d, tol) << name << ": gradient max|d| " << d << ", max|ref| " << m
                          << " (relative " << d / m << ")";
      }
    }
    if (d / tol > worst) {
      worst = d / tol;
      worst_name = name;
    }
  }
  std::printf("  %s: worst gradient/statistic error %.3f of tolerance (%s)\n", what.c_str(), worst,
              worst_name.c_str());
}

// Compares all parameters and moving statistics of two nets.
void expect_params(sn_net *net, sn_net *ref, const std::string &what) {
  int np = sn_net_num_params(net);
  ASSERT_EQ(np, sn_net_num_params(ref));
  double worst = 0;
  for (int i = 0; i < np; ++i) {
    sn_param_info p, r;
    ASSERT_EQ(sn_net_param(net, i, &p), SN_OK);
    ASSERT_EQ(sn_net_param(ref, i, &r), SN_OK);
    ASSERT_EQ(p.count, r.count);
    double d = sntest::diff_max(p.data, r.data, (size_t)p.count);
    double m = sntest::abs_max(r.data, (size_t)r.count);
    EXPECT_LE(d, kRel * m) << what << " " << sntest::param_name(net, i) << ": max|d| " << d
                           << ", max|ref| " << m;
    worst = std::fmax(worst, d / (kRel * m));
  }
  std::printf("  %s: worst parameter error %.3f of tolerance\n", what.c_str(), worst);
}

class TrainParity : public ::testing::TestWithParam<const char *> {};

TEST_P(TrainParity, ThreeSgdSteps) {
  const std::string name = GetParam();
  const std::string prefix = name + ".train";
  H5Reader f(sntest::fixture(prefix + ".h5"));
  ASSERT_TRUE(f.ok()) << "cannot open " << f.path();
  std::vector<float> x, loss_ref;
  std::vector<int32_t> labels, correct_ref;
  std::vector<int64_t> dx;
  ASSERT_TRUE(f.read_f32("x", x, &dx));
  ASSERT_TRUE(f.read_i32("labels", labels));
  ASSERT_TRUE(f.read_f32("loss", loss_ref));
  ASSERT_TRUE(f.read_i32("correct", correct_ref));
  const int n = (int)dx[0], steps = (int)f.attr("steps");
  ASSERT_EQ((int)labels.size(), n);
  ASSERT_EQ((int)loss_ref.size(), steps);

  std::string err;
  sn_net *net = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  ASSERT_NE(net, nullptr) << err;
  sn_net *ref = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  ASSERT_NE(ref, nullptr) << err;
  ASSERT_NO_FATAL_FAILURE(load(net, prefix + ".init.h5"));
  ASSERT_EQ(sn_net_plan(net, n, 1), SN_OK) << sn_last_error();

  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.lr = (float)f.attr("lr");
  tc.momentum = (float)f.attr("momentum");
  tc.nesterov = 0;
  tc.weight_decay = (float)f.attr("weight_decay");
  tc.decay_bn_and_bias = 1;
  tc.label_smoothing = (float)f.attr("label_smoothing");
  tc.bn_momentum = -1.0f; // the style's own rule

  for (int s = 0; s < steps; ++s) {
    const std::string what = name + " step " + std::to_string(s);
    float loss = NAN;
    int correct = -1;
    ASSERT_EQ(sn_net_train_step(net, x.data(), labels.data(), n, n, &tc, &loss, &correct), SN_OK)
        << what << ": " << sn_last_error();
    EXPECT_LE(std::fabs((double)loss - loss_ref[s]), kRel * std::fabs(loss_ref[s]))
        << what << ": loss " << loss << ", reference " << loss_ref[s];
    std::printf("  %s: loss %.6f, reference %.6f\n", what.c_str(), loss, loss_ref[s]);
    EXPECT_EQ(correct, correct_ref[s]) << what;
    ASSERT_NO_FATAL_FAILURE(load(ref, prefix + ".grad" + std::to_string(s) + ".h5"));
    expect_grads(net, ref, what);
    ASSERT_EQ(sn_net_sgd_update(net, &tc, tc.lr), SN_OK) << what << ": " << sn_last_error();
  }
  ASSERT_NO_FATAL_FAILURE(load(ref, prefix + ".final.h5"));
  expect_params(net, ref, name + " after " + std::to_string(steps) + " steps");
  sn_net_destroy(ref);
  sn_net_destroy(net);
}

const char *const kTrainFixtures[] = {"resnet20", "lenet_bn", "keras_resnet50v2"};

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainParity, ::testing::ValuesIn(kTrainFixtures),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           return std::string(i.param);
                         });

} // namespace
