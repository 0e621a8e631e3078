// ops_test.cpp - preprocessing, softmax, top-k, the learning-rate schedule and the training
// defaults (src/ops.c).
//
// Preprocessing does 1-2 float32 operations per value: compared with the double formula to a
// few ulps of the largest value (caffe 1e-4 for values up to ~150, the others 1e-6). Softmax
// is computed in double and rounded once: 1e-7 absolute on probabilities.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"
#include <gtest/gtest.h>

namespace {
const double kCaffeBgr[3] = {103.939, 116.779, 123.68};
const double kMean[3] = {0.485, 0.456, 0.406}, kStd[3] = {0.229, 0.224, 0.225};

// Double formula of docs/models.md, "Preprocessing", for one RGB pixel.
void expect_pixel(const uint8_t *rgb, sn_preprocess mode, const float *got) {
  for (int j = 0; j < 3; ++j) {
    double e;
    double tol = 1e-6;
    switch (mode) {
    case SN_PRE_CAFFE:
      e = rgb[2 - j] - kCaffeBgr[j];
      tol = 1e-4;
      break;
    case SN_PRE_TF:
      e = rgb[j] / 127.5 - 1.0;
      break;
    case SN_PRE_TORCH:
      e = (rgb[j] / 255.0 - kMean[j]) / kStd[j];
      tol = 2e-6;
      break;
    case SN_PRE_UNIT:
      e = rgb[j] / 255.0;
      break;
    default:
      e = rgb[j];
      tol = 0;
      break;
    }
    EXPECT_NEAR(e, got[j], tol) << sn_preprocess_name(mode) << " channel " << j;
  }
}
} // namespace

TEST(OpsPreprocess, KnownPixel) {
  const uint8_t px[3] = {255, 0, 128};
  float out[3];
  sn_preprocess_u8(px, 1, 1, 1, 3, SN_PRE_CAFFE, out);
  EXPECT_NEAR(128 - 103.939, out[0], 1e-4); // B
  EXPECT_NEAR(0 - 116.779, out[1], 1e-4);   // G
  EXPECT_NEAR(255 - 123.68, out[2], 1e-4);  // R
  sn_preprocess_u8(px, 1, 1, 1, 3, SN_PRE_TF, out);
  EXPECT_FLOAT_EQ(1.0f, out[0]);
  EXPECT_FLOAT_EQ(-1.0f, out[1]);
  EXPECT_NEAR(128 / 127.5 - 1, out[2], 1e-7);
  sn_preprocess_u8(px, 1, 1, 1, 3, SN_PRE_TORCH, out);
  EXPECT_NEAR((1 - 0.485) / 0.229, out[0], 1e-6);
  EXPECT_NEAR((0 - 0.456) / 0.224, out[1], 1e-6);
  EXPECT_NEAR((128 / 255.0 - 0.406) / 0.225, out[2], 1e-6);
  sn_preprocess_u8(px, 1, 1, 1, 3, SN_PRE_UNIT, out);
  EXPECT_FLOAT_EQ(1.0f, out[0]);
  EXPECT_FLOAT_EQ(0.0f, out[1]);
  EXPECT_NEAR(128 / 255.0, out[2], 1e-7);
  sn_preprocess_u8(px, 1, 1, 1, 3, SN_PRE_NONE, out);
  EXPECT_EQ(255.0f, out[0]);
  EXPECT_EQ(128.0f, out[2]);
}

// Every mode on a batch of random images, u8 and in-place f32 paths agreeing exactly.
TEST(OpsPreprocess, ModesU8AndF32) {
  const int n = 2, h = 5, w = 7, c = 3;
  const size_t count = (size_t)n * h * w * c;
  std::vector<float> r = sntest::uniform(count, 1, 0.0f, 256.0f);
  std::vector<uint8_t> img(count);
  for (size_t i = 0; i < count; ++i)
    img[i] = (uint8_t)std::fmin(255.0f, std::floor(r[i]));
  for (sn_preprocess mode : {SN_PRE_NONE, SN_PRE_CAFFE, SN_PRE_TF, SN_PRE_TORCH, SN_PRE_UNIT}) {
    SCOPED_TRACE(sn_preprocess_name(mode));
    std::vector<float> out(count, NAN), f(img.begin(), img.end());
    sn_preprocess_u8(img.data(), n, h, w, c, mode, out.data());
    sn_preprocess_f32(f.data(), n, h, w, c, mode);
    EXPECT_EQ(out, f);
    for (size_t p = 0; p < count / 3; ++p)
      expect_pixel(&img[p * 3], mode, &out[p * 3]);
  }
}

// caffe and torch are RGB-only: for C != 3 they fall back to x/255; tf applies per value.
TEST(OpsPreprocess, NonRgbChannels) {
  const uint8_t g[4] = {0, 51, 200, 255};
  float out[4];
  for (sn_preprocess mode : {SN_PRE_CAFFE, SN_PRE_TORCH, SN_PRE_UNIT}) {
    sn_preprocess_u8(g, 1, 2, 2, 1, mode, out);
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(g[i] / 255.0, out[i], 1e-7) << sn_preprocess_name(mode);
  }
  sn_preprocess_u8(g, 1, 2, 2, 1, SN_PRE_TF, out);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(g[i] / 127.5 - 1, out[i], 1e-7);
  // Two-channel image: same fallback, channels untouched in order.
  sn_preprocess_u8(g, 1, 1, 2, 2, SN_PRE_CAFFE, out);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(g[i] / 255.0, out[i], 1e-7);
}

TEST(OpsPreprocess, NamesAndParse) {
  for (sn_preprocess m :
       {SN_PRE_DEFAULT, SN_PRE_NONE, SN_PRE_CAFFE, SN_PRE_TF, SN_PRE_TORCH, SN_PRE_UNIT}) {
    sn_preprocess back = (sn_preprocess)99;
    ASSERT_EQ(SN_OK, sn_preprocess_parse(sn_preprocess_name(m), &back)) << m;
    EXPECT_EQ(m, back);
  }
  EXPECT_STREQ("caffe", sn_preprocess_name(SN_PRE_CAFFE));
  EXPECT_STREQ("tf", sn_preprocess_name(SN_PRE_TF));
  EXPECT_STREQ("torch", sn_preprocess_name(SN_PRE_TORCH));
  EXPECT_STREQ("unit", sn_preprocess_name(SN_PRE_UNIT));
  EXPECT_STREQ("none", sn_preprocess_name(SN_PRE_NONE));
  sn_preprocess out = SN_PRE_TF;
  EXPECT_EQ(SN_ERR_INVALID, sn_preprocess_parse("imagenet", &out));
  EXPECT_NE(nullptr, strstr(sn_last_error(), "imagenet"));
  EXPECT_EQ(SN_PRE_TF, out);                                     // unchanged on failure
  EXPECT_EQ(SN_ERR_INVALID, sn_preprocess_parse("Caffe", &out)); // case-sensitive
  EXPECT_EQ(SN_ERR_INVALID, sn_preprocess_parse(nullptr, &out));
}

TEST(OpsSoftmax, RowsAndStability) {
  const int n = 4, k = 9;
  std::vector<float> l = sntest::randn((size_t)n * k, 2, 4.0f);
  l[0] = 1e4f; // row 0 dominated by one logit
  l[k] = -1e4f;
  std::vector<float> p((size_t)n * k, NAN);
  sn_softmax(l.data(), n, k, p.data());
  for (int r = 0; r < n; ++r) {
    double m = -INFINITY, s = 0, t = 0;
    for (int j = 0; j < k; ++j)
      m = std::fmax(m, l[(size_t)r * k + j]);
    for (int j = 0; j < k; ++j)
      s += std::exp((double)l[(size_t)r * k + j] - m);
    for (int j = 0; j < k; ++j) {
      const double e = std::exp((double)l[(size_t)r * k + j] - m) / s;
      EXPECT_NEAR(e, p[(size_t)r * k + j], 1e-7) << r << "," << j;
      t += p[(size_t)r * k + j];
    }
    EXPECT_NEAR(1.0, t, 1e-6);
  }
  EXPECT_FLOAT_EQ(1.0f, p[0]);
  std::vector<float> q = l;
  sn_softmax(q.data(), n, k, q.data()); // in place
  EXPECT_EQ(p, q);
}

TEST(OpsTopk, OrderAndTies) {
  const float s[2][6] = {{0.1f, 0.5f, 0.3f, 0.5f, -1.0f, 0.3f}, {3, 2, 1, 0, -1, -2}};
  int32_t idx[2][4];
  float val[2][4];
  sn_topk(&s[0][0], 2, 6, 4, &idx[0][0], &val[0][0]);
  const int32_t e0[4] = {1, 3, 2, 5}; // ties to the lower index
  const int32_t e1[4] = {0, 1, 2, 3};
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(e0[j], idx[0][j]);
    EXPECT_EQ(s[0][e0[j]], val[0][j]);
    EXPECT_EQ(e1[j], idx[1][j]);
    EXPECT_EQ(s[1][e1[j]], val[1][j]);
  }
  // k = 1 is the argmax (first of equals).
  int32_t i1;
  float v1;
  sn_topk(&s[0][0], 1, 6, 1, &i1, &v1);
  EXPECT_EQ(1, i1);
  // k > classes: the tail is -1 / -inf.
  int32_t i8[8];
  float v8[8];
  sn_topk(&s[1][0], 1, 6, 8, i8, v8);
  for (int j = 0; j < 6; ++j)
    EXPECT_EQ(j, i8[j]);
  EXPECT_EQ(-1, i8[6]);
  EXPECT_EQ(-INFINITY, v8[7]);
}

TEST(OpsTopk, MatchesFullSort) {
  const int n = 3, k = 1000, top = 5;
  std::vector<float> s = sntest::randn((size_t)n * k, 3);
  std::vector<int32_t> idx((size_t)n * top);
  std::vector<float> val((size_t)n * top);
  sn_topk(s.data(), n, k, top, idx.data(), val.data());
  for (int r = 0; r < n; ++r) {
    std::vector<int> order(k);
    for (int j = 0; j < k; ++j)
      order[j] = j;
    const float *row = &s[(size_t)r * k];
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    for (int j = 0; j < top; ++j)
      EXPECT_EQ(order[j], idx[(size_t)r * top + j]);
  }
}

// Top-k hits count a row when its label is among the k entries sn_topk lists, ties included.
TEST(OpsTopk, HitsAgreeWithTopk) {
  const int n = 64, k = 12, top = 5;
  std::vector<float> s = sntest::randn((size_t)n * k, 5);
  for (int r = 0; r < n; r += 4) // ties: a row of equal scores, and repeated values
    for (int j = 0; j < k; ++j)
      s[(size_t)r * k + j] = r % 8 ? (float)(j % 3) : 1.0f;
  std::vector<int32_t> labels(n), idx((size_t)n * top);
  std::vector<float> val((size_t)n * top);
  for (int r = 0; r < n; ++r)
    labels[r] = (r * 7) % k;
  sn_topk(s.data(), n, k, top, idx.data(), val.data());
  for (int kk = 1; kk <= top; ++kk) {
    int want = 0;
    for (int r = 0; r < n; ++r)
      for (int j = 0; j < kk; ++j)
        want += idx[(size_t)r * top + j] == labels[r];
    EXPECT_EQ(sn_topk_hits(s.data(), n, k, kk, labels.data()), want) << "k " << kk;
  }
  labels[0] = -1;
  labels[1] = k;
  int32_t two[2] = {labels[0], labels[1]};
  EXPECT_EQ(sn_topk_hits(s.data(), 2, k, k, two), 0);
}

TEST(OpsLr, WarmupThenConstant) {
  sn_lr_schedule s = {SN_SCHED_CONSTANT, 0.4f, 100, 4, 0, 1.0f};
  EXPECT_FLOAT_EQ(0.1f, sn_lr_at(&s, 0));
  EXPECT_FLOAT_EQ(0.2f, sn_lr_at(&s, 1));
  EXPECT_FLOAT_EQ(0.3f, sn_lr_at(&s, 2));
  EXPECT_FLOAT_EQ(0.4f, sn_lr_at(&s, 3));
  EXPECT_FLOAT_EQ(0.4f, sn_lr_at(&s, 4));
  EXPECT_FLOAT_EQ(0.4f, sn_lr_at(&s, 1000));
  s.warmup_steps = 0;
  EXPECT_FLOAT_EQ(0.4f, sn_lr_at(&s, 0));
}

// Step decay counts from step 0 (Goyal et al.: /10 at epochs 30, 60, 80 with 5 warm-up epochs).
TEST(OpsLr, StepDecay) {
  sn_lr_schedule s = {SN_SCHED_STEP, 1.0f, 100, 5, 30, 0.1f};
  EXPECT_FLOAT_EQ(0.2f, sn_lr_at(&s, 0));
  EXPECT_FLOAT_EQ(1.0f, sn_lr_at(&s, 5));
  EXPECT_FLOAT_EQ(1.0f, sn_lr_at(&s, 29));
  EXPECT_FLOAT_EQ(0.1f, sn_lr_at(&s, 30));
  EXPECT_FLOAT_EQ(0.01f, sn_lr_at(&s, 60));
  EXPECT_FLOAT_EQ(0.01f, sn_lr_at(&s, 89));
  EXPECT_FLOAT_EQ(0.001f, sn_lr_at(&s, 90));
}

TEST(OpsLr, CosineAfterWarmup) {
  sn_lr_schedule s = {SN_SCHED_COSINE, 0.8f, 104, 4, 0, 1.0f};
  EXPECT_FLOAT_EQ(0.2f, sn_lr_at(&s, 0));
  EXPECT_FLOAT_EQ(0.8f, sn_lr_at(&s, 3));
  EXPECT_FLOAT_EQ(0.8f, sn_lr_at(&s, 4));    // cosine starts at base_lr after warm-up
  EXPECT_NEAR(0.4f, sn_lr_at(&s, 54), 1e-7); // half-way
  EXPECT_NEAR(0.8 * 0.5 * (1 + std::cos(3.14159265358979323846 * 25 / 100)), sn_lr_at(&s, 29),
              1e-7);
  EXPECT_EQ(0.0f, sn_lr_at(&s, 104));
  EXPECT_EQ(0.0f, sn_lr_at(&s, 500));
  float prev = 1.0f;
  for (int64_t t = 4; t <= 104; ++t) {
    const float v = sn_lr_at(&s, t);
    EXPECT_LE(v, prev) << t;
    prev = v;
  }
  s.warmup_steps = 0;
  EXPECT_FLOAT_EQ(0.8f, sn_lr_at(&s, 0));
}

TEST(OpsTrainConfig, Defaults) {
  sn_train_config c;
  memset(&c, 0x7f, sizeof c);
  sn_train_config_init(&c);
  EXPECT_FLOAT_EQ(0.1f, c.lr);
  EXPECT_FLOAT_EQ(0.9f, c.momentum);
  EXPECT_EQ(0, c.nesterov);
  EXPECT_EQ(0.0f, c.weight_decay);
  EXPECT_EQ(1, c.decay_bn_and_bias);
  EXPECT_EQ(0.0f, c.label_smoothing);
  EXPECT_LT(c.bn_momentum, 0.0f);
}
