// metrics_test.cpp - tests of src/metrics.c: hits, loss and confusion matrix against a direct
// count; labels outside [0, classes) are not counted; sums over the (serial) communicator.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

TEST(Metrics, CountsHitsLossAndConfusion) {
  const int n = 40, classes = 5, k = 2;
  auto logits = sntest::randn((size_t)n * classes, 3);
  std::vector<float> probs(n * classes), val(n * k);
  std::vector<int32_t> idx(n * k), labels(n);
  sn_softmax(logits.data(), n, classes, probs.data());
  sn_topk(probs.data(), n, classes, k, idx.data(), val.data());
  for (int i = 0; i < n; ++i)
    labels[i] = (i * 7) % (classes + 2) - 1; // -1 .. classes: some out of range
  sn_metrics *m = nullptr;
  ASSERT_EQ(sn_metrics_create(classes, k, 1, &m), SN_OK);
  // two batches of different sizes
  sn_metrics_add(m, 15, labels.data(), idx.data(), probs.data());
  sn_metrics_add(m, n - 15, labels.data() + 15, idx.data() + 15 * k, probs.data() + 15 * classes);
  ASSERT_EQ(sn_metrics_allreduce(m, sn_comm_serial()), SN_OK);
  double rows = 0, top1 = 0, topk = 0, loss = 0, want_loss = 0;
  std::vector<double> conf(classes * classes, 0.0);
  int want_rows = 0, want1 = 0, wantk = 0;
  for (int i = 0; i < n; ++i) {
    const int y = labels[i];
    if (y < 0 || y >= classes) continue;
    ++want_rows;
    want1 += idx[i * k] == y;
    wantk += idx[i * k] == y || idx[i * k + 1] == y;
    want_loss += -std::log(std::fmax((double)probs[i * classes + y], 1e-30));
    conf[y * classes + idx[i * k]] += 1;
  }
  sn_metrics_sums(m, &rows, &top1, &topk, &loss);
  EXPECT_EQ(rows, want_rows);
  EXPECT_LT(rows, n);
  EXPECT_EQ(top1, want1);
  EXPECT_EQ(topk, wantk);
  EXPECT_EQ(loss, want_loss); // same terms in the same order
  const double *c = sn_metrics_confusion(m);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < classes * classes; ++i)
    EXPECT_EQ(c[i], conf[i]) << i;
  sn_metrics_destroy(m);
}

TEST(Metrics, WithoutConfusionOrLoss) {
  sn_metrics *m = nullptr;
  ASSERT_EQ(sn_metrics_create(3, 1, 0, &m), SN_OK);
  EXPECT_EQ(sn_metrics_confusion(m), nullptr);
  const int32_t labels[] = {0, 2, 1}, top[] = {0, 1, 1};
  sn_metrics_add(m, 3, labels, top, nullptr);
  double rows, top1, loss;
  sn_metrics_sums(m, &rows, &top1, nullptr, &loss);
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(top1, 2);
  EXPECT_EQ(loss, 0);
  sn_metrics_destroy(m);
  sn_metrics_destroy(nullptr);
}

TEST(Metrics, RefusesBadSizes) {
  sn_metrics *m = nullptr;
  EXPECT_EQ(sn_metrics_create(0, 1, 0, &m), SN_ERR_INVALID);
  EXPECT_EQ(sn_metrics_create(3, 4, 0, &m), SN_ERR_INVALID);
  EXPECT_EQ(sn_metrics_create(3, 0, 0, &m), SN_ERR_INVALID);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(sn_metrics_create(3, 1, 0, nullptr), SN_ERR_INVALID);
}
