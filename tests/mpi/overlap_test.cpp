// overlap_test.cpp - polling the gradient buckets during backward (sn_comm_test after each layer)
// only changes when the all-reduces progress, never the result: gradients and parameters are bit
// for bit the same with polling on and off, and the same up to rounding with one bucket (no
// overlap). Also: sn_comm_test on
// its own (drives a pending all-reduce to completion; sn_comm_wait afterwards is still required
// and returns at once) and the communication counters (sn_net_comm_stats).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

const int kSteps = 2;
const int kLocalBatch = 2;

class Overlap : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(sn_comm_create_world(&comm_), SN_OK) << sn_last_error();
    rank_ = sn_comm_rank(comm_);
    size_ = sn_comm_size(comm_);
    // Ranks sharing few cores: see syncbn_test.cpp (spinning OpenMP threads vs MPI polling).
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

struct TrainRun {
  std::vector<std::vector<float>> grads; // after each step's all-reduce
  std::vector<float> params;             // after the last SGD step
  double exposed_s = -1;
  int64_t bytes = -1;
  int64_t buckets = -1, buckets_early = -1; // launched; complete when backward ended
  size_t trainable = 0;
};

// kSteps training steps of a narrow resnet20 on this rank's rows; bucket_mb 0 keeps the default.
TrainRun train(sn_comm *comm, int poll, double bucket_mb) {
  TrainRun out;
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.classes = 10;
  cfg.base_width = 4;
  cfg.height = cfg.width = 16;
  cfg.channels = 1;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 77, &net), SN_OK) << sn_last_error();
  if (!net) return out;
  sn_engine_options o = *sn_net_options(net);
  o.comm_poll = poll;
  EXPECT_EQ(sn_net_set_options(net, &o), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_plan(net, kLocalBatch, 1), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_set_comm(net, comm, 1), SN_OK);
  if (bucket_mb > 0) sn_net_set_bucket_mb(net, bucket_mb);
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.lr = 0.05f;
  tc.momentum = 0.9f;
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  const size_t image = 16 * 16;
  for (int s = 0; s < kSteps; ++s) {
    std::vector<float> x =
        sntest::randn(kLocalBatch * image, 500 + 17 * static_cast<uint64_t>(s * size + rank));
    std::vector<int32_t> y(kLocalBatch);
    for (int i = 0; i < kLocalBatch; ++i)
      y[i] = (rank * 3 + i * 7 + s) % 10;
    float loss = 0;
    int correct = 0;
    EXPECT_EQ(sn_net_train_step(net, x.data(), y.data(), kLocalBatch, kLocalBatch * size, &tc,
                                &loss, &correct),
              SN_OK)
        << sn_last_error();
    size_t ng = 0;
    const float *g = sn_net_grad_block(net, &ng);
    out.grads.emplace_back(g, g + ng);
    out.trainable = ng;
    EXPECT_EQ(sn_net_sgd_update(net, &tc, tc.lr), SN_OK) << sn_last_error();
  }
  size_t np = 0;
  const float *p = sn_net_param_block(net, &np);
  out.params.assign(p, p + np);
  sn_net_comm_stats(net, &out.exposed_s, &out.bytes);
  sn_net_comm_buckets(net, &out.buckets, &out.buckets_early);
  sn_net_destroy(net);
  return out;
}

} // namespace

TEST_F(Overlap, PollingDoesNotChangeTheResult) {
  // 0.002 MiB buckets: dozens of all-reduces in flight during backward.
  const TrainRun polled = train(comm_, 1, 0.002);
  const TrainRun unpolled = train(comm_, 0, 0.002);
  const TrainRun one_bucket = train(comm_, 1, 4096);
  ASSERT_EQ(polled.grads.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(unpolled.grads.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(one_bucket.grads.size(), static_cast<size_t>(kSteps));
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(polled.grads[s], unpolled.grads[s]) << "step " << s << ": polling changed gradients";
    // Other bucket boundaries: the same sums, but the summation order of an element depends on
    // its position in the bucket (the ring all-reduce, mpi/ring.c), so only close.
    const std::vector<float> &a = polled.grads[s], &b = one_bucket.grads[s];
    ASSERT_EQ(a.size(), b.size());
    EXPECT_LE(sntest::max_abs_diff(a.data(), b.data(), a.size()),
              1e-5 * std::max(1.0, sntest::max_abs(b.data(), b.size())))
        << "step " << s << ": buckets changed gradients";
  }
  EXPECT_EQ(polled.params, unpolled.params);
  // The replicas hold the same parameters.
  std::vector<float> lo = polled.params, hi = polled.params;
  ASSERT_EQ(sn_comm_allreduce(comm_, lo.data(), lo.size(), SN_F32, SN_MIN), SN_OK);
  ASSERT_EQ(sn_comm_allreduce(comm_, hi.data(), hi.size(), SN_F32, SN_MAX), SN_OK);
  EXPECT_EQ(lo, hi);
  // Counters: every step all-reduces the whole gradient block once (nothing with one rank).
  const int64_t expect_bytes =
      size_ > 1 ? static_cast<int64_t>(kSteps * polled.trainable * sizeof(float)) : 0;
  for (const TrainRun *r : {&polled, &unpolled, &one_bucket}) {
    EXPECT_EQ(r->bytes, expect_bytes);
    EXPECT_GE(r->exposed_s, 0.0);
    if (size_ == 1) EXPECT_EQ(r->exposed_s, 0.0);
    EXPECT_GE(r->buckets_early, 0);
    EXPECT_LE(r->buckets_early, r->buckets);
  }
  // Same bucket boundaries with and without polling; one bucket per step with a huge size.
  EXPECT_EQ(polled.buckets, unpolled.buckets);
  if (size_ > 1) {
    EXPECT_GT(polled.buckets, 4 * kSteps) << "0.002 MiB buckets should give many all-reduces";
    EXPECT_EQ(one_bucket.buckets, kSteps);
    EXPECT_EQ(one_bucket.buckets_early, 0) << "the only bucket starts after backward";
  } else {
    EXPECT_EQ(polled.buckets, 0);
  }
}

TEST_F(Overlap, TestDrivesAPendingAllreduceToCompletion) {
  // Both algorithms: the ring posts its next step inside sn_comm_test, Open MPI's inside any call.
  for (sn_allreduce_algo algo : {SN_ALLREDUCE_RING, SN_ALLREDUCE_MPI}) {
    SCOPED_TRACE(sn_allreduce_name(algo));
    ASSERT_EQ(sn_comm_set_allreduce(comm_, algo), SN_OK) << sn_last_error();
    const size_t n = 300000; // above the eager limits: a multi-message protocol
    std::vector<float> buf(n);
    for (size_t i = 0; i < n; ++i)
      buf[i] = static_cast<float>((i % 7) + rank_);
    sn_request *req = nullptr;
    ASSERT_EQ(sn_comm_iallreduce_f32(comm_, buf.data(), n, &req), SN_OK) << sn_last_error();
    int done = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (!done && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
      ASSERT_EQ(sn_comm_test(comm_, req, &done), SN_OK) << sn_last_error();
    EXPECT_EQ(done, 1) << "sn_comm_test never completed the all-reduce";
    // Testing a completed request again is fine; the wait frees it.
    ASSERT_EQ(sn_comm_test(comm_, req, &done), SN_OK);
    EXPECT_EQ(done, 1);
    ASSERT_EQ(sn_comm_wait(comm_, req), SN_OK) << sn_last_error();
    const float ranks_sum = static_cast<float>(size_ * (size_ - 1) / 2);
    for (size_t i = 0; i < n; i += 9973)
      ASSERT_EQ(buf[i], static_cast<float>(size_ * static_cast<int>(i % 7)) + ranks_sum) << i;
  }
  ASSERT_EQ(sn_comm_set_allreduce(comm_, SN_ALLREDUCE_AUTO), SN_OK);

  // NULL is a completed request, on any communicator; serial requests complete at once.
  int done = 0;
  EXPECT_EQ(sn_comm_test(comm_, nullptr, &done), SN_OK);
  EXPECT_EQ(done, 1);
  sn_request *serial = nullptr;
  float one = 1.0f;
  ASSERT_EQ(sn_comm_iallreduce_f32(sn_comm_serial(), &one, 1, &serial), SN_OK);
  done = 0;
  EXPECT_EQ(sn_comm_test(sn_comm_serial(), serial, &done), SN_OK);
  EXPECT_EQ(done, 1);
  EXPECT_EQ(sn_comm_wait(sn_comm_serial(), serial), SN_OK);
  EXPECT_EQ(one, 1.0f);
}
