// image_file_test.cpp - tests of io/image_file.c: sn_image_load and sn_image_load_bytes give the
// pixels of image.c's decoder and fit for every option (file and bytes alike), and refuse bad
// files and options with a message naming the file. (The Python tests compare the same calls with
// Pillow, which Keras' load_img uses.)
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "image.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// Noisy RGB pixels (h, w, 3): resizers that sample the wrong source pixel disagree on them.
std::vector<uint8_t> pixels(int h, int w, uint32_t seed) {
  std::vector<uint8_t> v((size_t)h * w * 3);
  for (auto &x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = (uint8_t)(seed >> 24);
  }
  return v;
}

std::vector<uint8_t> encode(const std::vector<uint8_t> &pix, int h, int w, bool png) {
  uint8_t *b = nullptr;
  size_t n = 0;
  sn_status s = png ? sn_image_encode_png(pix.data(), h, w, 3, &b, &n)
                    : sn_image_encode_jpeg(pix.data(), h, w, 3, 90, &b, &n);
  EXPECT_EQ(s, SN_OK);
  std::vector<uint8_t> v(b, b + n);
  free(b);
  return v;
}

std::string write_file(const std::string &name, const std::vector<uint8_t> &bytes) {
  std::string p = sntest::temp_dir() + "/" + name;
  std::ofstream(p, std::ios::binary)
      .write((const char *)bytes.data(), (std::streamsize)bytes.size());
  return p;
}

// What image.c's own calls give: decode to c channels, then sn_image_fit.
std::vector<uint8_t> reference(const std::vector<uint8_t> &bytes, const sn_image_options &o,
                               int *oh, int *ow) {
  sn_image_scratch s = {};
  char err[256];
  int h, w;
  EXPECT_EQ(sn_image_decode(bytes.data(), bytes.size(), o.channels, &s, &h, &w, err, sizeof err),
            SN_OK);
  *oh = o.height ? o.height : h;
  *ow = o.width ? o.width : w;
  std::vector<uint8_t> out((size_t)*oh * *ow * o.channels);
  EXPECT_EQ(
      sn_image_fit(s.pix, h, w, o.channels, out.data(), *oh, *ow, o.resize, o.resize_shorter, &s),
      SN_OK);
  sn_image_scratch_free(&s);
  return out;
}

} // namespace

TEST(ImageFile, DefaultsAreKerasLoadImg) {
  sn_image_options o;
  sn_image_options_init(&o);
  EXPECT_EQ(o.channels, 3);
  EXPECT_EQ(o.height, 0);
  EXPECT_EQ(o.width, 0);
  EXPECT_EQ(o.resize, SN_RESIZE_NEAREST);
  EXPECT_EQ(o.resize_shorter, 0);
}

TEST(ImageFile, PngAtItsOwnSizeIsLossless) {
  const int h = 13, w = 21;
  auto pix = pixels(h, w, 1);
  auto path = write_file("a.png", encode(pix, h, w, true));
  uint8_t *got = nullptr;
  int gh = 0, gw = 0;
  ASSERT_EQ(sn_image_load(path.c_str(), nullptr, &got, &gh, &gw), SN_OK) << sn_last_error();
  ASSERT_EQ(gh, h);
  ASSERT_EQ(gw, w);
  EXPECT_EQ(std::vector<uint8_t>(got, got + pix.size()), pix);
  sn_free(got);
}

TEST(ImageFile, EveryOptionEqualsDecodeThenFit) {
  const int h = 37, w = 50;
  auto pix = pixels(h, w, 2);
  struct {
    int channels, height, width;
    sn_resize_mode mode;
    int shorter;
  } cases[] = {{3, 0, 0, SN_RESIZE_NEAREST, 0},    {1, 0, 0, SN_RESIZE_NEAREST, 0},
               {3, 24, 24, SN_RESIZE_NEAREST, 0},  {3, 24, 31, SN_RESIZE_BILINEAR, 0},
               {1, 64, 80, SN_RESIZE_BILINEAR, 0}, {3, 20, 20, SN_RESIZE_BILINEAR, 26},
               {3, 37, 50, SN_RESIZE_NEAREST, 0}};
  for (bool png : {true, false}) {
    auto bytes = encode(pix, h, w, png);
    auto path = write_file(png ? "b.png" : "b.jpg", bytes);
    for (const auto &k : cases) {
      sn_image_options o;
      sn_image_options_init(&o);
      o.channels = k.channels;
      o.height = k.height;
      o.width = k.width;
      o.resize = k.mode;
      o.resize_shorter = k.shorter;
      int rh, rw;
      auto want = reference(bytes, o, &rh, &rw);
      uint8_t *got = nullptr;
      int gh = 0, gw = 0;
      ASSERT_EQ(sn_image_load(path.c_str(), &o, &got, &gh, &gw), SN_OK) << sn_last_error();
      EXPECT_EQ(gh, rh);
      EXPECT_EQ(gw, rw);
      EXPECT_EQ(std::vector<uint8_t>(got, got + want.size()), want)
          << (png ? "png" : "jpeg") << " c " << k.channels << " " << k.height << "x" << k.width;
      sn_free(got);
      ASSERT_EQ(sn_image_load_bytes(bytes.data(), bytes.size(), "mem", &o, &got, &gh, &gw), SN_OK);
      EXPECT_EQ(std::vector<uint8_t>(got, got + want.size()), want);
      sn_free(got);
    }
  }
}

TEST(ImageFile, BadFilesNameTheFile) {
  uint8_t *got = (uint8_t *)1;
  int h = -1, w = -1;
  auto dir = sntest::temp_dir();
  std::string missing = dir + "/missing.jpg";
  EXPECT_EQ(sn_image_load(missing.c_str(), nullptr, &got, &h, &w), SN_ERR_IO);
  EXPECT_TRUE(has(sn_last_error(), missing)) << sn_last_error();
  EXPECT_EQ(got, nullptr);
  EXPECT_EQ(sn_image_load(dir.c_str(), nullptr, &got, &h, &w), SN_ERR_IO);
  EXPECT_TRUE(has(sn_last_error(), dir)) << sn_last_error();

  auto text = write_file("notes.png", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  EXPECT_EQ(sn_image_load(text.c_str(), nullptr, &got, &h, &w), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), text)) << sn_last_error();
  EXPECT_TRUE(has(sn_last_error(), "not an image")) << sn_last_error();
  auto empty = write_file("empty.jpg", {});
  EXPECT_EQ(sn_image_load(empty.c_str(), nullptr, &got, &h, &w), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "empty")) << sn_last_error();

  for (bool png : {true, false}) {
    auto bytes = encode(pixels(40, 40, 3), 40, 40, png);
    bytes.resize(bytes.size() / 2);
    auto cut = write_file(png ? "cut.png" : "cut.jpg", bytes);
    EXPECT_EQ(sn_image_load(cut.c_str(), nullptr, &got, &h, &w), SN_ERR_FORMAT) << cut;
    EXPECT_TRUE(has(sn_last_error(), cut)) << sn_last_error();
    EXPECT_EQ(got, nullptr);
  }
  EXPECT_EQ(sn_image_load_bytes("xyz", 3, nullptr, nullptr, &got, &h, &w), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "image bytes")) << sn_last_error();
}

TEST(ImageFile, BadOptionsAreRefused) {
  auto bytes = encode(pixels(10, 10, 4), 10, 10, true);
  uint8_t *got = nullptr;
  int h, w;
  auto opts = [](int c, int hh, int ww, int mode, int shorter) {
    sn_image_options o;
    sn_image_options_init(&o);
    o.channels = c;
    o.height = hh;
    o.width = ww;
    o.resize = (sn_resize_mode)mode;
    o.resize_shorter = shorter;
    return o;
  };
  const sn_image_options bad[] = {
      opts(4, 0, 0, 0, 0),   // channels
      opts(3, 10, 0, 0, 0),  // one side only
      opts(3, -1, -1, 0, 0), // negative
      opts(3, 8, 8, 7, 0),   // resize mode
      opts(3, 0, 0, 0, 8),   // shorter without a target
      opts(3, 9, 9, 1, 8),   // crop larger than the shorter side
  };
  for (const auto &o : bad) {
    EXPECT_EQ(sn_image_load_bytes(bytes.data(), bytes.size(), "x.png", &o, &got, &h, &w),
              SN_ERR_INVALID);
    EXPECT_TRUE(has(sn_last_error(), "x.png")) << sn_last_error();
    EXPECT_EQ(got, nullptr);
  }
}
