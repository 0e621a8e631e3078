// augment_test.cpp - training augmentation (src/augment.c): determinism by (seed, epoch, row),
// flips, and torchvision's RandomResizedCrop parameters and bilinear resampling.
#include <algorithm>
#include <cmath>
#include <vector>

#include "augment_impl.h"
#include "shardnet.h"
#include <gtest/gtest.h>

namespace {
// A linear ramp v = 3 y + x (+ 1000 c): bilinear resampling reproduces linear functions exactly
// where no clamping happens, so any crop of it is again a ramp.
std::vector<float> ramp(int h, int w, int c) {
  std::vector<float> x((size_t)h * w * c);
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < w; ++xx)
      for (int k = 0; k < c; ++k)
        x[((size_t)y * w + xx) * c + k] = (float)(3 * y + xx + 1000 * k);
  return x;
}
} // namespace

TEST(Augment, ParseAndNames) {
  for (sn_augment a : {SN_AUG_NONE, SN_AUG_FLIP, SN_AUG_CROP_FLIP, SN_AUG_RESIZED_CROP}) {
    sn_augment b;
    ASSERT_EQ(sn_augment_parse(sn_augment_name(a), &b), SN_OK);
    EXPECT_EQ(a, b);
  }
  sn_augment b;
  EXPECT_NE(sn_augment_parse("rotate", &b), SN_OK);
}

TEST(Augment, FlipIsMirrorOrIdentityAndDeterministic) {
  const int h = 5, w = 7, c = 2, n = 16;
  auto one = ramp(h, w, c);
  std::vector<float> x, x2, scratch(one.size());
  std::vector<int64_t> rows(n);
  for (int i = 0; i < n; ++i) {
    rows[i] = 100 + i;
    x.insert(x.end(), one.begin(), one.end());
  }
  x2 = x;
  sn_augment_batch(x.data(), n, h, w, c, SN_AUG_FLIP, 0, 0.08, 7, 3, rows.data(), scratch.data());
  sn_augment_batch(x2.data(), n, h, w, c, SN_AUG_FLIP, 0, 0.08, 7, 3, rows.data(), scratch.data());
  EXPECT_EQ(x, x2);
  int flipped = 0;
  for (int i = 0; i < n; ++i) {
    const float *im = x.data() + (size_t)i * one.size();
    const bool mirror = im[0] == one[(size_t)(w - 1) * c];
    flipped += mirror;
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx)
        for (int k = 0; k < c; ++k)
          ASSERT_EQ(im[((size_t)y * w + xx) * c + k],
                    one[((size_t)y * w + (mirror ? w - 1 - xx : xx)) * c + k]);
  }
  EXPECT_GT(flipped, 2);
  EXPECT_LT(flipped, n - 2);
}

// Crops stay inside the image, keep torchvision's area (smin-100%, smin 0.08 by default) and
// aspect (3/4-4/3) ranges up to rounding, and spread over the range.
TEST(Augment, ResizedCropParameters) {
  for (double smin : {0.08, 0.25, 0.45})
    for (auto hw : {std::pair<int, int>{224, 224}, {32, 32}, {300, 120}, {1, 1}}) {
      const int h = hw.first, w = hw.second;
      double amin = 2, amax = 0;
      for (uint64_t r = 0; r < 4000; ++r) {
        int top, left, ch, cw;
        sn_resized_crop_params(r * 0x9e3779b97f4a7c15ull, h, w, smin, &top, &left, &ch, &cw);
        ASSERT_GT(ch, 0);
        ASSERT_GT(cw, 0);
        ASSERT_GE(top, 0);
        ASSERT_GE(left, 0);
        ASSERT_LE(top + ch, h);
        ASSERT_LE(left + cw, w);
        const double a = (double)ch * cw / ((double)h * w);
        amin = std::min(amin, a);
        amax = std::max(amax, a);
        if (h >= 32 && w >= 32 && a < 0.999) { // a sampled crop (not the fallback)
          const double ratio = (double)cw / ch;
          EXPECT_GE(ratio, 0.75 * (1 - 2.0 / ch) - 1e-9) << h << "x" << w;
          EXPECT_LE(ratio, 4.0 / 3.0 * (1 + 2.0 / cw) + 1e-9) << h << "x" << w;
          EXPECT_GE(a, smin * (1 - 4.0 / std::min(ch, cw)) - 1e-9) << smin;
        }
      }
      if (h >= 32) {
        EXPECT_LT(amin, smin + 0.07) << h << "x" << w << " smin " << smin;
        // the largest crop of aspect >= 3/4 in a 300x120 image is 160x120 = 53% of it
        EXPECT_GT(amax, h == w ? 0.9 : 0.5) << h << "x" << w;
      }
    }
}

// A resized crop of a ramp is a ramp (bilinear is exact on linear functions away from the
// clamped border), every value lies inside the image's range, and the choice is deterministic.
TEST(Augment, ResizedCropResamplesBilinearly) {
  const int h = 40, w = 48, c = 3, n = 12;
  auto one = ramp(h, w, c);
  std::vector<float> x, scratch(one.size());
  std::vector<int64_t> rows(n);
  for (int i = 0; i < n; ++i) {
    rows[i] = i;
    x.insert(x.end(), one.begin(), one.end());
  }
  auto x2 = x;
  sn_augment_batch(x.data(), n, h, w, c, SN_AUG_RESIZED_CROP, 0, 0.08, 11, 0, rows.data(),
                   scratch.data());
  sn_augment_batch(x2.data(), n, h, w, c, SN_AUG_RESIZED_CROP, 0, 0.08, 11, 0, rows.data(),
                   scratch.data());
  EXPECT_EQ(x, x2);
  int changed = 0;
  for (int i = 0; i < n; ++i) {
    const float *im = x.data() + (size_t)i * one.size();
    changed += !std::equal(im, im + one.size(), one.begin());
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx) {
        const float *p = im + ((size_t)y * w + xx) * c;
        for (int k = 0; k < c; ++k) {
          ASSERT_GE(p[k], 1000.0f * k - 1e-3f);
          ASSERT_LE(p[k], 1000.0f * k + 3 * (h - 1) + (w - 1) + 1e-3f);
          ASSERT_NEAR(p[k] - p[0], 1000.0f * k, 1e-2f); // channels move together
        }
      }
    // second differences vanish inside (rows and columns sampled at a constant step)
    for (int y = h / 4; y < 3 * h / 4; ++y)
      for (int xx = w / 4; xx < 3 * w / 4; ++xx) {
        auto v = [&](int yy, int xc) { return (double)im[((size_t)yy * w + xc) * c]; };
        ASSERT_NEAR(v(y, xx + 1) - 2 * v(y, xx) + v(y, xx - 1), 0.0, 2e-3) << "image " << i;
        ASSERT_NEAR(v(y + 1, xx) - 2 * v(y, xx) + v(y - 1, xx), 0.0, 2e-3) << "image " << i;
      }
  }
  EXPECT_GE(changed, n - 1);
}

// sn_augment_crop_box names the choices sn_augment_batch makes (the decode-time crop of encoded
// datasets uses it): on a ramp, the first output pixel samples the box's top-left corner (the
// right end of the first row when flipped), and the flip matches SN_AUG_FLIP's.
TEST(Augment, CropBoxIsTheChoiceOfTheBatchAugmentation) {
  const int h = 40, w = 48, c = 1, n = 24;
  auto one = ramp(h, w, c);
  std::vector<float> x, xf, scratch(one.size());
  std::vector<int64_t> rows(n);
  for (int i = 0; i < n; ++i) {
    rows[i] = 1000 + 37 * i;
    x.insert(x.end(), one.begin(), one.end());
  }
  xf = x;
  sn_augment_batch(x.data(), n, h, w, c, SN_AUG_RESIZED_CROP, 0, 0.08, 5, 2, rows.data(),
                   scratch.data());
  sn_augment_batch(xf.data(), n, h, w, c, SN_AUG_FLIP, 0, 0.08, 5, 2, rows.data(), scratch.data());
  int flips = 0;
  for (int i = 0; i < n; ++i) {
    int box[4], flip = -1;
    sn_augment_crop_box(5, 2, rows[i], h, w, 0.08, box, &flip);
    ASSERT_TRUE(flip == 0 || flip == 1);
    flips += flip;
    ASSERT_GE(box[0], 0);
    ASSERT_GE(box[1], 0);
    ASSERT_LE(box[0] + box[2], h);
    ASSERT_LE(box[1] + box[3], w);
    const float *im = x.data() + (size_t)i * one.size();
    const double fy = std::max(0.0, 0.5 * box[2] / h - 0.5),
                 fx = std::max(0.0, 0.5 * box[3] / w - 0.5);
    const double want = 3 * (box[0] + fy) + (box[1] + fx); // ramp(y, x) = 3 y + x
    EXPECT_NEAR(im[flip ? w - 1 : 0], want, 1e-3) << "row " << rows[i];
    const float *fl = xf.data() + (size_t)i * one.size();
    EXPECT_EQ(fl[0] == one[w - 1], flip == 1) << "row " << rows[i];
    int again[4], flip2;
    sn_augment_crop_box(5, 2, rows[i], h, w, 0.08, again, &flip2);
    EXPECT_TRUE(std::equal(box, box + 4, again) && flip2 == flip);
  }
  EXPECT_GT(flips, 4);
  EXPECT_LT(flips, n - 4);
}
