// syncbn_test.cpp - data-parallel training with synchronized batch norm is the same computation as
// one process with the whole global batch: N ranks splitting a global batch B (evenly, and
// unevenly such as 5 + 3) give the same loss, gradients, parameters and moving statistics after
// every one of 3 SGD steps as one process with batch B. With local batch norm (sync_bn = 0) the
// moving statistics and the loss differ.
//
// Every rank computes the one-process reference itself (serial communicator), so nothing but the
// run under test communicates.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

const int kSteps = 3;
const int kGlobalBatch = 8;

struct Model {
  const char *arch;
  int base_width;
  int bn_style;     // an sn_style, or -1: the architecture's (an int: -1 is no sn_style value)
  double bucket_mb; // gradient all-reduce bucket size; 0: the default
};

// What one step leaves behind, as seen by one rank.
struct StepRecord {
  double loss = 0;           // mean over the global batch
  int correct = 0;           // over the global batch
  std::vector<float> grads;  // trainable part, after the gradient all-reduce
  std::vector<float> params; // whole block after SGD: trainable, then moving statistics
};

sn_net *make_net(const Model &m, int max_batch) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, m.arch);
  cfg.classes = 10;
  if (m.base_width > 0) cfg.base_width = m.base_width;
  if (m.bn_style >= 0) cfg.bn_momentum_style = static_cast<sn_style>(m.bn_style);
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 1234, &net), SN_OK) << sn_last_error();
  if (!net) return nullptr;
  EXPECT_EQ(sn_net_plan(net, max_batch, 1), SN_OK) << sn_last_error();
  if (m.bucket_mb > 0) sn_net_set_bucket_mb(net, m.bucket_mb);
  return net;
}

sn_train_config train_config() {
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.lr = 0.05f;
  tc.momentum = 0.9f;
  tc.weight_decay = 1e-4f;
  return tc;
}

// Global batch of step s: images (B, H, W, C) and labels, the same on every rank.
void global_batch(const sn_net *net, int step, std::vector<float> *x, std::vector<int32_t> *y) {
  int h, w, c;
  sn_net_input_shape(net, &h, &w, &c);
  *x = sntest::randn(static_cast<size_t>(kGlobalBatch) * h * w * c, 1000 + step);
  y->resize(kGlobalBatch);
  for (int i = 0; i < kGlobalBatch; ++i)
    (*y)[i] = static_cast<int32_t>((i * 7 + step * 3) % 10);
}

// Trains kSteps steps on rows [begin, begin + count) of each global batch; comm may be serial.
// bn_comm: the batch-norm group (sn_net_set_bn_comm), NULL for all of comm.
std::vector<StepRecord> run(const Model &m, sn_comm *comm, int sync_bn, int begin, int count,
                            int max_local, sn_comm *bn_comm = nullptr) {
  std::vector<StepRecord> out;
  sn_net *net = make_net(m, max_local);
  if (!net) return out;
  EXPECT_EQ(sn_net_set_comm(net, comm, sync_bn), SN_OK);
  EXPECT_EQ(sn_net_set_bn_comm(net, bn_comm), SN_OK);
  sn_train_config tc = train_config();
  int h, w, c;
  sn_net_input_shape(net, &h, &w, &c);
  const size_t image = static_cast<size_t>(h) * w * c;
  for (int s = 0; s < kSteps; ++s) {
    std::vector<float> x;
    std::vector<int32_t> y;
    global_batch(net, s, &x, &y);
    float loss = 0;
    int correct = 0;
    sn_status st = sn_net_train_step(net, x.data() + begin * image, y.data() + begin, count,
                                     kGlobalBatch, &tc, &loss, &correct);
    EXPECT_EQ(st, SN_OK) << sn_last_error();
    // Local mean -> global mean (the distributed run's loss is over its local rows).
    double stats[2] = {static_cast<double>(loss) * count, static_cast<double>(correct)};
    EXPECT_EQ(sn_comm_allreduce(comm, stats, 2, SN_F64, SN_SUM), SN_OK);
    StepRecord r;
    r.loss = stats[0] / kGlobalBatch;
    r.correct = static_cast<int>(stats[1]);
    size_t ng = 0, np = 0;
    const float *g = sn_net_grad_block(net, &ng);
    r.grads.assign(g, g + ng);
    EXPECT_EQ(sn_net_sgd_update(net, &tc, tc.lr), SN_OK) << sn_last_error();
    const float *p = sn_net_param_block(net, &np);
    r.params.assign(p, p + np);
    out.push_back(std::move(r));
  }
  sn_net_destroy(net);
  return out;
}

// max |a - b| / max(max |b|, floor).
double rel_diff(const std::vector<float> &a, const std::vector<float> &b, size_t lo, size_t hi,
                double floor = 1e-3) {
  double d = sntest::max_abs_diff(a.data() + lo, b.data() + lo, hi - lo);
  double m = sntest::max_abs(b.data() + lo, hi - lo);
  return d / std::max(m, floor);
}

// The grouped run computed by one process: one net per group, each fed its group's rows
// [bounds[g], bounds[g + 1]) of every global batch (so each normalises with its group's
// statistics); their gradients are summed, as the gradient all-reduce over all ranks sums them,
// and every net takes the SGD step with the sum. Returns the records of group `mine` (whose
// moving statistics are its own), with the loss over the whole global batch.
std::vector<StepRecord> run_groups_serially(const Model &m, const std::vector<int> &bounds,
                                            int mine) {
  const size_t groups = bounds.size() - 1;
  std::vector<sn_net *> nets(groups, nullptr);
  std::vector<StepRecord> out;
  for (size_t g = 0; g < groups; ++g)
    if (!(nets[g] = make_net(m, bounds[g + 1] - bounds[g]))) return out;
  sn_train_config tc = train_config();
  int h, w, c;
  sn_net_input_shape(nets[0], &h, &w, &c);
  const size_t image = static_cast<size_t>(h) * w * c;
  for (int s = 0; s < kSteps; ++s) {
    std::vector<float> x;
    std::vector<int32_t> y;
    global_batch(nets[0], s, &x, &y);
    StepRecord r;
    std::vector<float> sum;
    for (size_t g = 0; g < groups; ++g) {
      const int begin = bounds[g], count = bounds[g + 1] - bounds[g];
      float loss = 0;
      int correct = 0;
      EXPECT_EQ(sn_net_train_step(nets[g], x.data() + begin * image, y.data() + begin, count,
                                  kGlobalBatch, &tc, &loss, &correct),
                SN_OK)
          << sn_last_error();
      r.loss += static_cast<double>(loss) * count / kGlobalBatch;
      r.correct += correct;
      size_t ng = 0;
      const float *gr = sn_net_grad_block(nets[g], &ng);
      if (sum.empty()) sum.assign(ng, 0.0f);
      for (size_t i = 0; i < ng; ++i)
        sum[i] += gr[i];
    }
    for (size_t g = 0; g < groups; ++g) {
      std::copy(sum.begin(), sum.end(), sn_net_grad_block(nets[g], nullptr));
      EXPECT_EQ(sn_net_sgd_update(nets[g], &tc, tc.lr), SN_OK) << sn_last_error();
    }
    r.grads = sum;
    size_t np = 0;
    const float *p = sn_net_param_block(nets[static_cast<size_t>(mine)], &np);
    r.params.assign(p, p + np);
    out.push_back(std::move(r));
  }
  for (sn_net *n : nets)
    sn_net_destroy(n);
  return out;
}

size_t trainable_count(const Model &m) {
  sn_net *net = make_net(m, 1);
  int64_t total = 0, trainable = 0, non_trainable = 0;
  if (net) sn_net_param_counts(net, &total, &trainable, &non_trainable);
  sn_net_destroy(net);
  return static_cast<size_t>(trainable);
}

// Rows [*begin, *begin + *count) of rank r under a split: "even" = sn_shard_block (B/W or B/W+1),
// "uneven" = rank 0 takes extra rows (W = 2: 5 + 3, W = 4: 3 + 2 + 2 + 1).
void split(const std::string &how, int rank, int size, int *begin, int *count, int *max_local) {
  std::vector<int> counts(static_cast<size_t>(size));
  if (how == "even" || size == 1) {
    for (int r = 0; r < size; ++r) {
      int64_t b, e;
      sn_shard_block(kGlobalBatch, r, size, &b, &e);
      counts[static_cast<size_t>(r)] = static_cast<int>(e - b);
    }
  } else if (size == 2) {
    counts = {5, 3};
  } else if (size == 4) {
    counts = {3, 2, 2, 1};
  } else { // any other size: one extra row on rank 0, taken from the last rank
    for (int r = 0; r < size; ++r) {
      int64_t b, e;
      sn_shard_block(kGlobalBatch, r, size, &b, &e);
      counts[static_cast<size_t>(r)] = static_cast<int>(e - b);
    }
    if (counts.back() > 1) {
      counts.front()++;
      counts.back()--;
    }
  }
  *begin = 0;
  for (int r = 0; r < rank; ++r)
    *begin += counts[static_cast<size_t>(r)];
  *count = counts[static_cast<size_t>(rank)];
  *max_local = *std::max_element(counts.begin(), counts.end());
}

class SyncBn : public ::testing::TestWithParam<Model> {
protected:
  void SetUp() override {
    ASSERT_EQ(sn_comm_create_world(&comm_), SN_OK) << sn_last_error();
    rank_ = sn_comm_rank(comm_);
    size_ = sn_comm_size(comm_);
    // Ranks sharing few cores: OpenMP threads that spin (the default wait policy) while MPI
    // busy-polls made a 4-rank run on 2 cores ~20x slower (2 ranks ~6x). Without
    // OMP_WAIT_POLICY=passive in the environment, run one thread per rank.
    threads_ = omp_get_max_threads();
    if (size_ > 1 && !std::getenv("OMP_WAIT_POLICY")) omp_set_num_threads(1);
  }
  void TearDown() override {
    omp_set_num_threads(threads_);
    sn_comm_destroy(comm_);
  }
  sn_comm *comm_ = nullptr;
  int rank_ = 0, size_ = 1, threads_ = 1;
};

} // namespace

TEST_P(SyncBn, MatchesOneProcessWithTheGlobalBatch) {
  const Model m = GetParam();
  const auto ref = run(m, sn_comm_serial(), 1, 0, kGlobalBatch, kGlobalBatch);
  ASSERT_EQ(ref.size(), static_cast<size_t>(kSteps));
  const size_t nt = trainable_count(m);
  for (const char *how : {"even", "uneven"}) {
    int begin, count, max_local;
    split(how, rank_, size_, &begin, &count, &max_local);
    const auto dist = run(m, comm_, 1, begin, count, max_local);
    ASSERT_EQ(dist.size(), static_cast<size_t>(kSteps));
    for (int s = 0; s < kSteps; ++s) {
      const StepRecord &a = dist[static_cast<size_t>(s)], &b = ref[static_cast<size_t>(s)];
      SCOPED_TRACE(std::string(m.arch) + " " + how + " split, rank " + std::to_string(rank_) +
                   " of " + std::to_string(size_) + ", rows " + std::to_string(begin) + "+" +
                   std::to_string(count) + ", step " + std::to_string(s));
      EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, std::fabs(b.loss)));
      EXPECT_EQ(a.correct, b.correct);
      ASSERT_EQ(a.grads.size(), b.grads.size());
      ASSERT_EQ(a.params.size(), b.params.size());
      if (std::getenv("SN_TEST_VERBOSE") && rank_ == 0)
        printf("%s %s step %d: loss %.7f vs %.7f, grads %.2e, params %.2e, moving %.2e\n", m.arch,
               how, s, a.loss, b.loss, rel_diff(a.grads, b.grads, 0, nt),
               rel_diff(a.params, b.params, 0, nt),
               rel_diff(a.params, b.params, nt, a.params.size()));
      EXPECT_LT(rel_diff(a.grads, b.grads, 0, nt), 1e-5) << "gradients";
      EXPECT_LT(rel_diff(a.params, b.params, 0, nt), 1e-6) << "trainable parameters";
      EXPECT_LT(rel_diff(a.params, b.params, nt, a.params.size()), 1e-6) << "moving statistics";
    }
    // Every rank holds the same parameters (bit for bit: the all-reduce gives every rank the same
    // sums), so the replicas cannot drift apart.
    std::vector<float> lo = dist.back().params, hi = dist.back().params;
    ASSERT_EQ(sn_comm_allreduce(comm_, lo.data(), lo.size(), SN_F32, SN_MIN), SN_OK);
    ASSERT_EQ(sn_comm_allreduce(comm_, hi.data(), hi.size(), SN_F32, SN_MAX), SN_OK);
    EXPECT_EQ(lo, hi) << how << " split: replicas differ";
  }
}

// Grouped sync BN (sn_net_set_bn_comm over sn_comm_split_groups): with groups of k consecutive
// ranks, each group's statistics are those of one process holding the group's concatenated rows,
// and the gradients and parameters those of the sum over the groups. Every divisor k of the rank
// count is tried (at 4 ranks: 1 = local, 2 = two groups of two, 4 = all), with even and uneven
// splits; groups smaller than the communicator must differ from sync BN over all ranks.
TEST_P(SyncBn, GroupsMatchOneProcessPerGroup) {
  const Model m = GetParam();
  const size_t nt = trainable_count(m);
  const auto all = run(m, sn_comm_serial(), 1, 0, kGlobalBatch, kGlobalBatch);
  for (int k = 1; k <= size_; ++k) {
    if (size_ % k != 0) continue;
    sn_comm *group = nullptr;
    ASSERT_EQ(sn_comm_split_groups(comm_, k, &group), SN_OK) << sn_last_error();
    for (const char *how : {"even", "uneven"}) {
      int begin, count, max_local;
      split(how, rank_, size_, &begin, &count, &max_local);
      // every rank's first row; a group's rows start at its first rank's
      std::vector<int32_t> mine = {begin}, got(static_cast<size_t>(size_));
      ASSERT_EQ(sn_comm_allgather(comm_, mine.data(), got.data(), sizeof(int32_t)), SN_OK);
      std::vector<int> bounds;
      for (int r = 0; r < size_; r += k)
        bounds.push_back(got[static_cast<size_t>(r)]);
      bounds.push_back(kGlobalBatch);
      const auto ref = run_groups_serially(m, bounds, rank_ / k);
      const auto dist = run(m, comm_, 1, begin, count, max_local, group);
      ASSERT_EQ(ref.size(), static_cast<size_t>(kSteps));
      ASSERT_EQ(dist.size(), static_cast<size_t>(kSteps));
      for (int s = 0; s < kSteps; ++s) {
        const StepRecord &a = dist[static_cast<size_t>(s)], &b = ref[static_cast<size_t>(s)];
        SCOPED_TRACE(std::string(m.arch) + " groups of " + std::to_string(k) + ", " + how +
                     " split, rank " + std::to_string(rank_) + ", step " + std::to_string(s));
        EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, std::fabs(b.loss)));
        EXPECT_EQ(a.correct, b.correct);
        EXPECT_LT(rel_diff(a.grads, b.grads, 0, nt), 1e-5) << "gradients";
        EXPECT_LT(rel_diff(a.params, b.params, 0, nt), 1e-6) << "trainable parameters";
        EXPECT_LT(rel_diff(a.params, b.params, nt, a.params.size()), 1e-6) << "moving statistics";
      }
      if (k < size_)
        EXPECT_GT(rel_diff(dist.back().params, all.back().params, nt, all.back().params.size()),
                  1e-4)
            << "groups of " << k << " should not normalise over all " << size_ << " ranks";
    }
    sn_comm_destroy(group);
  }
}

// Local batch norm (each rank normalises with its own rows' statistics) is a different
// computation: with more than one rank the loss and the moving statistics differ from the
// one-process run, while the replicas still agree on the trainable parameters.
TEST_P(SyncBn, LocalBatchNormDiffers) {
  const Model m = GetParam();
  const auto ref = run(m, sn_comm_serial(), 1, 0, kGlobalBatch, kGlobalBatch);
  int begin, count, max_local;
  split("uneven", rank_, size_, &begin, &count, &max_local);
  const auto local = run(m, comm_, 0, begin, count, max_local);
  ASSERT_EQ(local.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(ref.size(), static_cast<size_t>(kSteps));
  const size_t nt = trainable_count(m);
  const StepRecord &a = local.back(), &b = ref.back();
  const double moving = rel_diff(a.params, b.params, nt, a.params.size());
  if (std::getenv("SN_TEST_VERBOSE") && rank_ == 0)
    printf("%s local BN: moving %.2e, loss %.7f vs %.7f\n", m.arch, moving, a.loss, b.loss);
  if (size_ == 1) {
    EXPECT_LT(moving, 1e-6);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, std::fabs(b.loss)));
  } else {
    EXPECT_GT(moving, 1e-4) << "moving statistics should be per-rank with local BN";
    double max_loss_gap = 0;
    for (int s = 0; s < kSteps; ++s)
      max_loss_gap = std::max(max_loss_gap, std::fabs(local[static_cast<size_t>(s)].loss -
                                                      ref[static_cast<size_t>(s)].loss));
    EXPECT_GT(max_loss_gap, 1e-4) << "loss should differ with local BN";
    std::vector<float> lo(a.params.begin(), a.params.begin() + static_cast<long>(nt)), hi = lo;
    ASSERT_EQ(sn_comm_allreduce(comm_, lo.data(), lo.size(), SN_F32, SN_MIN), SN_OK);
    ASSERT_EQ(sn_comm_allreduce(comm_, hi.data(), hi.size(), SN_F32, SN_MAX), SN_OK);
    EXPECT_EQ(lo, hi) << "trainable parameters are all-reduced, so replicas agree";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, SyncBn,
                         ::testing::Values(Model{"lenet_bn", 0, -1, 0},
                                           // small buckets: many overlapped all-reduces
                                           Model{"resnet20", 4, SN_STYLE_TORCH, 0.002},
                                           Model{"resnet20", 4, SN_STYLE_KERAS, 0}),
                         [](const ::testing::TestParamInfo<Model> &info) {
                           std::string n = info.param.arch;
                           if (info.param.bn_style == SN_STYLE_TORCH) n += "_torchbn";
                           if (info.param.bn_style == SN_STYLE_KERAS) n += "_kerasbn";
                           return n;
                         });
