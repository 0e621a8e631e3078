// image_test.cpp - tests of io/image.c's crop taken at decode (sn_image_decode_crop), what
// RandomResizedCrop training on an encoded dataset runs: bit for bit torchvision's
// F.resized_crop (+ F.hflip) on the PIL image and, with jpeg_scale, PIL's draft mode + resize with
// a box (tests/fixtures/resized_crop.h5, made by gen_crop_fixture.py); bit for bit a full decode
// cropped and resized, for every JPEG kind the encoder makes and PNG, with random boxes; and the
// errors. (Decoding and the plain resizes are tested in dataset_test.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "image.h"
#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// The crop handed to sn_image_decode_crop, and the picture size it was chosen for.
struct Pick {
  sn_image_crop crop;
  int h = 0, w = 0;
};
void choose(void *ctx, int h, int w, sn_image_crop *crop) {
  Pick *p = static_cast<Pick *>(ctx);
  p->h = h;
  p->w = w;
  *crop = p->crop;
}

template <typename T> std::vector<T> read_all(hid_t f, const char *name, hid_t mtype) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  std::vector<T> v(static_cast<size_t>(H5Sget_simple_extent_npoints(s)));
  H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(s);
  H5Dclose(d);
  return v;
}

// A picture with texture everywhere (every resampling weight matters), (h, w, c).
std::vector<uint8_t> textured(int h, int w, int c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(static_cast<size_t>(h) * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        const double smooth = 128 + 90 * std::sin(0.11 * x + 0.07 * y + k) * std::cos(0.05 * y);
        v[(static_cast<size_t>(y) * w + x) * c + k] = static_cast<uint8_t>(
            std::clamp(smooth + static_cast<double>(rng() % 41) - 20, 0.0, 255.0));
      }
  return v;
}

// What the crop must equal: the full decode, the box copied out, resized, mirrored.
std::vector<uint8_t> reference(const std::vector<uint8_t> &file, int channels,
                               const sn_image_crop &cr) {
  sn_image_scratch s{};
  int h = 0, w = 0;
  char err[256] = "";
  EXPECT_EQ(sn_image_decode(file.data(), file.size(), channels, &s, &h, &w, err, sizeof err), SN_OK)
      << err;
  std::vector<uint8_t> box(static_cast<size_t>(cr.height) * cr.width * channels);
  for (int y = 0; y < cr.height; ++y)
    std::memcpy(box.data() + static_cast<size_t>(y) * cr.width * channels,
                s.pix + (static_cast<size_t>(cr.top + y) * w + cr.left) * channels,
                static_cast<size_t>(cr.width) * channels);
  std::vector<uint8_t> out(static_cast<size_t>(cr.out_h) * cr.out_w * channels);
  EXPECT_EQ(sn_image_resize(box.data(), cr.height, cr.width, channels, out.data(), cr.out_h,
                            cr.out_w, SN_RESIZE_BILINEAR, &s),
            SN_OK);
  if (cr.flip)
    for (int y = 0; y < cr.out_h; ++y)
      for (int a = 0, b = cr.out_w - 1; a < b; ++a, --b)
        for (int k = 0; k < channels; ++k)
          std::swap(out[(static_cast<size_t>(y) * cr.out_w + a) * channels + k],
                    out[(static_cast<size_t>(y) * cr.out_w + b) * channels + k]);
  sn_image_scratch_free(&s);
  return out;
}

} // namespace

TEST(ImageCrop, MatchesTorchvisionResizedCropOnThePilImage) {
  sn_h5_init();
  hid_t f = H5Fopen(sntest::fixture("resized_crop.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0) << "tests/fixtures/resized_crop.h5 (gen_crop_fixture.py)";
  const auto images = read_all<uint8_t>(f, "images", H5T_NATIVE_UINT8);
  const auto img_off = read_all<int64_t>(f, "image_offsets", H5T_NATIVE_INT64);
  const auto channels = read_all<int32_t>(f, "image_channels", H5T_NATIVE_INT32);
  const auto cases = read_all<int32_t>(f, "cases", H5T_NATIVE_INT32);
  const auto expected = read_all<uint8_t>(f, "expected", H5T_NATIVE_UINT8);
  const auto exp_off = read_all<int64_t>(f, "expected_offsets", H5T_NATIVE_INT64);
  const auto normalized = read_all<float>(f, "normalized", H5T_NATIVE_FLOAT);
  const auto norm_cases = read_all<int32_t>(f, "normalized_cases", H5T_NATIVE_INT32);
  H5Fclose(f);
  const size_t m = cases.size() / 10;
  ASSERT_GT(m, 50u);
  sn_image_scratch s{};
  size_t reduced = 0, norm_next = 0, norm_pos = 0;
  for (size_t i = 0; i < m; ++i) {
    const int32_t *c = &cases[i * 10];
    const int pic = c[0], ch = channels[static_cast<size_t>(pic)];
    Pick p;
    p.crop = sn_image_crop{c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]};
    std::vector<uint8_t> out(static_cast<size_t>(c[5]) * c[6] * ch);
    char err[256] = "";
    const uint8_t *file = images.data() + img_off[static_cast<size_t>(pic)];
    const size_t n = static_cast<size_t>(img_off[static_cast<size_t>(pic) + 1] -
                                         img_off[static_cast<size_t>(pic)]);
    ASSERT_EQ(sn_image_decode_crop(file, n, ch, choose, &p, out.data(), &s, err, sizeof err), SN_OK)
        << "case " << i << ": " << err;
    ASSERT_EQ(static_cast<int64_t>(out.size()), exp_off[i + 1] - exp_off[i]);
    const uint8_t *want = expected.data() + exp_off[i];
    size_t differ = 0;
    for (size_t k = 0; k < out.size(); ++k)
      differ += out[k] != want[k];
    EXPECT_EQ(differ, 0u) << "case " << i << " (picture " << pic << ", box " << c[3] << "x" << c[4]
                          << " at " << c[1] << "," << c[2] << " to " << c[5] << "x" << c[6]
                          << ", flip " << c[7] << ", jpeg_scale " << c[8] << ", k " << c[9]
                          << "): " << differ << " of " << out.size() << " values differ";
    reduced += c[8] != 0;
    // torch preprocessing of the crop: ToTensor + Normalize(ImageNet mean, std)
    if (norm_next < norm_cases.size() && norm_cases[norm_next] == static_cast<int32_t>(i)) {
      std::vector<float> x(out.size());
      sn_preprocess_u8(out.data(), 1, c[5], c[6], 3, SN_PRE_TORCH, x.data());
      EXPECT_LE(sntest::max_abs_diff(x.data(), normalized.data() + norm_pos, x.size()), 0.0)
          << "case " << i << ": torch preprocessing";
      norm_pos += x.size();
      ++norm_next;
    }
  }
  EXPECT_EQ(norm_next, norm_cases.size());
  EXPECT_GE(reduced, 10u) << "the fixture should hold reduced-scale cases";
  sn_image_scratch_free(&s);
}

TEST(ImageCrop, EqualsTheFullDecodeCroppedAndResized) {
  // JPEG 4:2:0 (libjpeg's default for RGB), grey, CMYK (decoded to RGB and to grey), and PNG:
  // boxes anywhere (edges, corners, one pixel wide), scaled down and up, flipped or not.
  struct Kind {
    const char *name;
    int enc_c, dec_c, png;
  };
  const Kind kinds[] = {{"jpeg rgb", 3, 3, 0},  {"jpeg rgb to grey", 3, 1, 0},
                        {"jpeg grey", 1, 1, 0}, {"jpeg grey to rgb", 1, 3, 0},
                        {"jpeg cmyk", 4, 3, 0}, {"png rgb", 3, 3, 1}};
  std::mt19937 rng(5);
  sn_image_scratch s{};
  for (const Kind &kd : kinds) {
    const int h = 67 + static_cast<int>(rng() % 90), w = 59 + static_cast<int>(rng() % 110);
    const auto pix = textured(h, w, kd.enc_c, rng());
    uint8_t *enc = nullptr;
    size_t n = 0;
    ASSERT_EQ(kd.png ? sn_image_encode_png(pix.data(), h, w, kd.enc_c, &enc, &n)
                     : sn_image_encode_jpeg(pix.data(), h, w, kd.enc_c, 90, &enc, &n),
              SN_OK);
    const std::vector<uint8_t> file(enc, enc + n);
    free(enc);
    for (int t = 0; t < 40; ++t) {
      sn_image_crop cr{};
      cr.height = 1 + static_cast<int>(rng() % h);
      cr.width = t == 0 ? 1 : 1 + static_cast<int>(rng() % w);
      cr.top = t == 1 ? h - cr.height : static_cast<int>(rng() % (h - cr.height + 1));
      cr.left = t == 1 ? w - cr.width : static_cast<int>(rng() % (w - cr.width + 1));
      cr.out_h = 1 + static_cast<int>(rng() % 70);
      cr.out_w = 1 + static_cast<int>(rng() % 70);
      cr.flip = static_cast<int>(rng() % 2);
      Pick p;
      p.crop = cr;
      std::vector<uint8_t> out(static_cast<size_t>(cr.out_h) * cr.out_w * kd.dec_c);
      char err[256] = "";
      ASSERT_EQ(sn_image_decode_crop(file.data(), file.size(), kd.dec_c, choose, &p, out.data(), &s,
                                     err, sizeof err),
                SN_OK)
          << kd.name << ": " << err;
      EXPECT_EQ(p.h, h);
      EXPECT_EQ(p.w, w);
      ASSERT_EQ(out, reference(file, kd.dec_c, cr))
          << kd.name << " " << h << "x" << w << ": box " << cr.height << "x" << cr.width << " at "
          << cr.top << "," << cr.left << " to " << cr.out_h << "x" << cr.out_w << " flip "
          << cr.flip;
    }
  }
  sn_image_scratch_free(&s);
}

TEST(ImageCrop, ReducedJpegScaleStaysCloseToTheFullDecode) {
  // A large picture, small crops of it: decoded at k/8 of its size, resampled from there. Not the
  // same bits, but the same picture: mean difference under 2 levels.
  const int h = 480, w = 640;
  const auto pix = textured(h, w, 3, 11);
  uint8_t *enc = nullptr;
  size_t n = 0;
  ASSERT_EQ(sn_image_encode_jpeg(pix.data(), h, w, 3, 90, &enc, &n), SN_OK);
  sn_image_scratch s{};
  for (const auto &box : std::vector<std::array<int, 4>>{
           {0, 0, 480, 640}, {100, 50, 300, 400}, {7, 9, 200, 150}, {200, 300, 160, 120}}) {
    Pick full, red;
    full.crop = sn_image_crop{box[0], box[1], box[2], box[3], 56, 56, 0, 0};
    red.crop = full.crop;
    red.crop.jpeg_scale = 1;
    std::vector<uint8_t> a(56 * 56 * 3), b(a.size());
    char err[256] = "";
    ASSERT_EQ(sn_image_decode_crop(enc, n, 3, choose, &full, a.data(), &s, err, sizeof err), SN_OK);
    ASSERT_EQ(sn_image_decode_crop(enc, n, 3, choose, &red, b.data(), &s, err, sizeof err), SN_OK);
    double sum = 0;
    for (size_t i = 0; i < a.size(); ++i)
      sum += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
    EXPECT_LT(sum / static_cast<double>(a.size()), 2.0) << "box " << box[2] << "x" << box[3];
    EXPECT_NE(a, b) << "box " << box[2] << "x" << box[3] << " should be decoded at a reduced scale";
  }
  free(enc);
  sn_image_scratch_free(&s);
}

TEST(ImageCrop, Errors) {
  const auto pix = textured(40, 60, 3, 3);
  uint8_t *enc = nullptr;
  size_t n = 0;
  ASSERT_EQ(sn_image_encode_jpeg(pix.data(), 40, 60, 3, 90, &enc, &n), SN_OK);
  const std::vector<uint8_t> jpeg(enc, enc + n);
  free(enc);
  ASSERT_EQ(sn_image_encode_png(pix.data(), 40, 60, 3, &enc, &n), SN_OK);
  const std::vector<uint8_t> png(enc, enc + n);
  free(enc);
  sn_image_scratch s{};
  std::vector<uint8_t> out(32 * 32 * 3);
  char err[256];
  // a box outside the picture, for both decoders
  for (const auto *file : {&jpeg, &png}) {
    Pick p;
    p.crop = sn_image_crop{30, 0, 20, 10, 32, 32, 0, 0};
    EXPECT_EQ(sn_image_decode_crop(file->data(), file->size(), 3, choose, &p, out.data(), &s, err,
                                   sizeof err),
              SN_ERR_INVALID);
    EXPECT_TRUE(has(err, "crop 10x20 at (0, 30) to 32x32 does not fit a 60x40 image")) << err;
  }
  // truncated: the missing part lies below the box, whose rows decode fine; still an error
  Pick top;
  top.crop = sn_image_crop{0, 0, 8, 8, 32, 32, 0, 0};
  EXPECT_EQ(sn_image_decode_crop(jpeg.data(), jpeg.size() * 2 / 3, 3, choose, &top, out.data(), &s,
                                 err, sizeof err),
            SN_ERR_FORMAT);
  EXPECT_TRUE(has(err, "corrupt JPEG")) << err;
  std::vector<uint8_t> junk = jpeg;
  for (size_t i = 200; i < junk.size(); i += 7)
    junk[i] ^= 0x5A;
  EXPECT_EQ(sn_image_decode_crop(junk.data(), junk.size(), 3, choose, &top, out.data(), &s, err,
                                 sizeof err),
            SN_ERR_FORMAT);
  EXPECT_EQ(sn_image_decode_crop(jpeg.data(), 0, 3, choose, &top, out.data(), &s, err, sizeof err),
            SN_ERR_FORMAT);
  EXPECT_TRUE(has(err, "empty")) << err;
  EXPECT_EQ(sn_image_decode_crop(jpeg.data(), jpeg.size(), 2, choose, &top, out.data(), &s, err,
                                 sizeof err),
            SN_ERR_INVALID);
  sn_image_scratch_free(&s);
}
