// dataset_test.cpp - tests of io/dataset.c and io/image.c: raw and encoded datasets, row reads
// in any order, every validation error, JPEG/PNG decoding and Pillow-exact resizing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "image.h"
#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto &x : v)
    x = (uint8_t)(rng() & 0xFF);
  return v;
}

// A smooth RGB or grey test image (JPEG-friendly: no sharp edges), (h, w, c).
std::vector<uint8_t> smooth_image(int h, int w, int c, int seed) {
  std::vector<uint8_t> v((size_t)h * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        int t = x * (120 + 20 * k) / std::max(w - 1, 1) + y * (90 - 20 * k) / std::max(h - 1, 1) +
                10 * k + 7 * (seed % 4);
        v[((size_t)y * w + x) * c + k] = (uint8_t)std::min(t, 255);
      }
  return v;
}

struct H5File {
  hid_t f;
  explicit H5File(const std::string &p) {
    sn_h5_init();
    f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  }
  ~H5File() { H5Fclose(f); }
  void write(const char *name, hid_t ftype, hid_t mtype, std::vector<hsize_t> dims,
             const void *data, hsize_t chunk0 = 0) {
    hid_t s = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk0 > 0) {
      std::vector<hsize_t> ch = dims;
      ch[0] = chunk0;
      H5Pset_chunk(dcpl, (int)ch.size(), ch.data());
    }
    hid_t d = H5Dcreate2(f, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (data) H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(s);
  }
  void attr(const char *obj, const char *name, int64_t v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    sn_h5_write_int_attr(o, name, v, "test");
    H5Oclose(o);
  }
  void vlen_strings(const char *name, const std::vector<const char *> &s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    write(name, t, t, {s.size()}, s.data());
    H5Tclose(t);
  }
};

struct Raw {
  int n = 10, h = 4, w = 5, c = 3;
  std::vector<uint8_t> img;
  std::vector<int16_t> labels;
  std::string path;
};

Raw make_raw(const std::string &dir, int n = 10) {
  Raw r;
  r.n = n;
  r.path = dir + "/raw.h5";
  r.img = random_bytes((size_t)n * r.h * r.w * r.c, 7);
  for (int i = 0; i < n; ++i)
    r.labels.push_back((int16_t)(i % 3));
  H5File f(r.path);
  f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8,
          {(hsize_t)n, (hsize_t)r.h, (hsize_t)r.w, (hsize_t)r.c}, r.img.data(), 3);
  f.write("labels", H5T_STD_I16LE, H5T_NATIVE_INT16, {(hsize_t)n}, r.labels.data());
  f.vlen_strings("classes", {"cat", "dog", "bird"});
  return r;
}

sn_status open_status(const std::string &path, std::string *msg) {
  sn_dataset *ds = nullptr;
  sn_status s = sn_dataset_open(path.c_str(), sn_comm_serial(), &ds);
  *msg = sn_last_error();
  sn_dataset_close(ds);
  return s;
}

TEST(Dataset, RawRowsAnyOrderWithRepeats) {
  std::string dir = sntest::temp_dir();
  Raw r = make_raw(dir);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(r.path.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  const sn_dataset_info *info = sn_dataset_get_info(ds);
  EXPECT_EQ(info->n, 10);
  EXPECT_EQ(info->h, 4);
  EXPECT_EQ(info->w, 5);
  EXPECT_EQ(info->c, 3);
  EXPECT_EQ(info->dtype, SN_U8);
  EXPECT_EQ(info->encoded, 0);
  EXPECT_EQ(info->has_labels, 1);
  EXPECT_EQ(info->num_classes, 3);
  EXPECT_STREQ(sn_dataset_class_name(ds, 1), "dog");
  EXPECT_EQ(sn_dataset_class_name(ds, 3), nullptr);
  const size_t row = 4 * 5 * 3;
  for (auto rows : std::vector<std::vector<int64_t>>{
           {0, 1, 2, 3}, {7, 2, 3, 4, 2, 9}, {9}, {5, 6, 7, 8, 9, 0, 1, 2, 3, 4}, {3, 3, 3}}) {
    std::vector<uint8_t> out(rows.size() * row, 0xAB);
    std::vector<int32_t> lab(rows.size(), -1);
    ASSERT_EQ(sn_dataset_read_rows(ds, rows.data(), (int)rows.size(), out.data(), lab.data()),
              SN_OK)
        << sn_last_error();
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(0, memcmp(out.data() + i * row, r.img.data() + rows[i] * row, row)) << i;
      EXPECT_EQ(lab[i], r.labels[rows[i]]);
    }
  }
  int64_t bad = 10;
  std::vector<uint8_t> out(row);
  EXPECT_EQ(sn_dataset_read_rows(ds, &bad, 1, out.data(), nullptr), SN_ERR_INVALID);
  EXPECT_TRUE(has(sn_last_error(), "row 10 out of range [0, 10)")) << sn_last_error();
  EXPECT_EQ(sn_dataset_read_rows(ds, nullptr, 0, nullptr, nullptr), SN_OK);
  EXPECT_EQ(sn_dataset_set_decode(ds, 8, 8, SN_RESIZE_BILINEAR, 0), SN_ERR_INVALID);
  EXPECT_EQ(sn_dataset_set_decode(ds, 4, 5, SN_RESIZE_BILINEAR, 0), SN_OK);
  sn_dataset_close(ds);
}

TEST(Dataset, Float32ImagesWithoutLabels) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/f.h5";
  std::vector<float> img = sntest::uniform(6 * 2 * 2 * 1, 3, 0, 255);
  {
    H5File f(p);
    f.write("images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {6, 2, 2, 1}, img.data());
  }
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_dataset_get_info(ds)->dtype, SN_F32);
  EXPECT_EQ(sn_dataset_get_info(ds)->has_labels, 0);
  EXPECT_EQ(sn_dataset_get_info(ds)->num_classes, 0);
  EXPECT_EQ(sn_dataset_labels(ds), nullptr);
  int64_t rows[2] = {5, 1};
  float out[8];
  ASSERT_EQ(sn_dataset_read_rows(ds, rows, 2, out, nullptr), SN_OK) << sn_last_error();
  EXPECT_EQ(0, memcmp(out, img.data() + 20, 16));
  EXPECT_EQ(0, memcmp(out + 4, img.data() + 4, 16));
  int32_t lab[2];
  EXPECT_EQ(sn_dataset_read_rows(ds, rows, 2, out, lab), SN_ERR_INVALID);
  sn_dataset_close(ds);
}

TEST(Dataset, OpenErrors) {
  std::string dir = sntest::temp_dir();
  std::string msg;
  EXPECT_EQ(open_status(dir + "/missing.h5", &msg), SN_ERR_IO);
  EXPECT_TRUE(has(msg, "missing.h5: cannot open: No such file")) << msg;

  {
    std::ofstream o(dir + "/text.h5");
    o << "this is not an HDF5 file at all, just some text\n";
  }
  EXPECT_EQ(open_status(dir + "/text.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "text.h5: not an HDF5 file")) << msg;

  Raw r = make_raw(dir, 200);
  { // truncated copy
    std::ifstream in(r.path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream o(dir + "/trunc.h5", std::ios::binary);
    o.write(all.data(), (std::streamsize)(all.size() / 2));
  }
  sn_status s = open_status(dir + "/trunc.h5", &msg);
  EXPECT_EQ(s, SN_ERR_FORMAT) << msg;
  EXPECT_TRUE(has(msg, "trunc.h5")) << msg;

  {
    H5File f(dir + "/noimg.h5");
    int32_t l[3] = {0, 1, 2};
    f.write("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {3}, l);
  }
  EXPECT_EQ(open_status(dir + "/noimg.h5", &msg), SN_ERR_NOTFOUND);
  EXPECT_EQ(msg, "file " + dir + "/noimg.h5: dataset /images not found");

  {
    H5File f(dir + "/rank3.h5");
    std::vector<uint8_t> z(3 * 4 * 4);
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {3, 4, 4}, z.data());
  }
  EXPECT_EQ(open_status(dir + "/rank3.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "dataset /images has rank 3, expected 4")) << msg;

  {
    H5File f(dir + "/i16.h5");
    std::vector<int16_t> z(2 * 4 * 4 * 3);
    f.write("images", H5T_STD_I16LE, H5T_NATIVE_INT16, {2, 4, 4, 3}, z.data());
  }
  EXPECT_EQ(open_status(dir + "/i16.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "dataset /images has type int16, expected uint8 or float32")) << msg;

  { // absurd dims: declared but never written (no allocation happens at open)
    H5File f(dir + "/huge.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {2, 100000, 4, 3}, nullptr, 1);
  }
  EXPECT_EQ(open_status(dir + "/huge.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "outside the accepted range")) << msg;

  {
    H5File f(dir + "/c7.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {2, 4, 4, 7}, nullptr, 1);
  }
  EXPECT_EQ(open_status(dir + "/c7.h5", &msg), SN_ERR_FORMAT);

  std::vector<uint8_t> img(5 * 2 * 2 * 1);
  {
    H5File f(dir + "/nlab.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 2, 1}, img.data());
    int64_t l[4] = {0, 1, 2, 3};
    f.write("labels", H5T_STD_I64LE, H5T_NATIVE_INT64, {4}, l);
  }
  EXPECT_EQ(open_status(dir + "/nlab.h5", &msg), SN_ERR_SHAPE);
  EXPECT_TRUE(has(msg, "/images has 5 rows but /labels has 4 entries")) << msg;

  {
    H5File f(dir + "/range.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 2, 1}, img.data());
    uint8_t l[5] = {0, 1, 2, 12, 1};
    f.write("labels", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5}, l);
    f.vlen_strings("classes", {"a", "b", "c"});
  }
  EXPECT_EQ(open_status(dir + "/range.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "row 3 has label 12, outside [0, 3)")) << msg;

  {
    H5File f(dir + "/neg.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 2, 1}, img.data());
    int32_t l[5] = {0, 1, -1, 2, 1};
    f.write("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {5}, l);
  }
  EXPECT_EQ(open_status(dir + "/neg.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "row 2 has label -1")) << msg;

  {
    H5File f(dir + "/flab.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 2, 1}, img.data());
    float l[5] = {0, 1, 1, 2, 1};
    f.write("labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {5}, l);
  }
  EXPECT_EQ(open_status(dir + "/flab.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "/labels has type float32, expected an integer type")) << msg;

  { // 64-bit labels within range are fine; classes come from max + 1
    H5File f(dir + "/u64.h5");
    f.write("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 2, 1}, img.data());
    uint64_t l[5] = {0, 1, 4, 2, 1};
    f.write("labels", H5T_STD_U64LE, H5T_NATIVE_UINT64, {5}, l);
  }
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open((dir + "/u64.h5").c_str(), sn_comm_serial(), &ds), SN_OK)
      << sn_last_error();
  EXPECT_EQ(sn_dataset_get_info(ds)->num_classes, 5);
  sn_dataset_close(ds);
}

// Encoded dataset from in-memory files; returns the path.
std::string make_encoded(const std::string &dir, const std::vector<std::vector<uint8_t>> &files,
                         int h, int w, int c, const char *name = "enc.h5",
                         std::vector<int64_t> *offsets_override = nullptr) {
  std::vector<uint8_t> all;
  std::vector<int64_t> off{0};
  for (auto &f : files) {
    all.insert(all.end(), f.begin(), f.end());
    off.push_back((int64_t)all.size());
  }
  if (offsets_override) off = *offsets_override;
  std::string p = dir + "/" + name;
  H5File f(p);
  f.write("encoded", H5T_STD_U8LE, H5T_NATIVE_UINT8, {all.size()}, all.data(),
          std::min<hsize_t>(all.size(), 4096));
  f.write("offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, {off.size()}, off.data());
  f.attr("encoded", "height", h);
  f.attr("encoded", "width", w);
  f.attr("encoded", "channels", c);
  std::vector<int32_t> lab(off.size() - 1);
  for (size_t i = 0; i < lab.size(); ++i)
    lab[i] = (int32_t)(i % 2);
  f.write("labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {lab.size()}, lab.data());
  return p;
}

std::vector<uint8_t> jpeg_of(const std::vector<uint8_t> &pix, int h, int w, int c, int q = 95) {
  uint8_t *b = nullptr;
  size_t n = 0;
  EXPECT_EQ(sn_image_encode_jpeg(pix.data(), h, w, c, q, &b, &n), SN_OK);
  std::vector<uint8_t> v(b, b + n);
  free(b);
  return v;
}
std::vector<uint8_t> png_of(const std::vector<uint8_t> &pix, int h, int w, int c) {
  uint8_t *b = nullptr;
  size_t n = 0;
  EXPECT_EQ(sn_image_encode_png(pix.data(), h, w, c, &b, &n), SN_OK);
  std::vector<uint8_t> v(b, b + n);
  free(b);
  return v;
}

TEST(Dataset, EncodedJpegPngDecode) {
  std::string dir = sntest::temp_dir();
  const int h = 12, w = 16;
  auto a = smooth_image(h, w, 3, 0), b = random_bytes((size_t)h * w * 3, 5),
       g = smooth_image(h, w, 1, 2), rgba = random_bytes((size_t)h * w * 4, 9);
  std::vector<std::vector<uint8_t>> files{jpeg_of(a, h, w, 3), png_of(b, h, w, 3),
                                          png_of(g, h, w, 1), png_of(rgba, h, w, 4),
                                          jpeg_of(g, h, w, 1)};
  std::string p = make_encoded(dir, files, h, w, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  const sn_dataset_info *info = sn_dataset_get_info(ds);
  EXPECT_EQ(info->encoded, 1);
  EXPECT_EQ(info->n, 5);
  EXPECT_EQ(info->dtype, SN_U8);
  EXPECT_EQ(info->num_classes, 2);
  const size_t row = (size_t)h * w * 3;
  std::vector<uint8_t> out(5 * row);
  int64_t rows[5] = {4, 3, 2, 1, 0};
  int32_t lab[5];
  ASSERT_EQ(sn_dataset_read_rows(ds, rows, 5, out.data(), lab), SN_OK) << sn_last_error();
  EXPECT_EQ(lab[0], 0);
  EXPECT_EQ(lab[1], 1);
  // PNG: exact (RGB as is, grey replicated, alpha dropped).
  EXPECT_EQ(0, memcmp(out.data() + 3 * row, b.data(), row));
  for (size_t i = 0; i < (size_t)h * w; ++i) {
    for (int k = 0; k < 3; ++k) {
      ASSERT_EQ(out[2 * row + 3 * i + k], g[i]);
      ASSERT_EQ(out[1 * row + 3 * i + k], rgba[4 * i + k]);
    }
  }
  // JPEG: within compression tolerance.
  int maxd = 0;
  for (size_t i = 0; i < row; ++i)
    maxd = std::max(maxd, std::abs(out[4 * row + i] - a[i]));
  EXPECT_LE(maxd, 12);
  sn_dataset_close(ds);
}

TEST(Dataset, EncodedErrors) {
  std::string dir = sntest::temp_dir();
  const int h = 8, w = 8;
  auto a = smooth_image(h, w, 3, 1);
  auto j = jpeg_of(a, h, w, 3);
  std::vector<uint8_t> trunc(j.begin(), j.begin() + (long)j.size() / 2);
  std::vector<uint8_t> garbage = random_bytes(300, 1);
  garbage[0] = 0xFF;
  garbage[1] = 0xD8;
  garbage[2] = 0xFF;
  auto pn = png_of(a, h, w, 3);
  std::vector<uint8_t> ptrunc(pn.begin(), pn.begin() + (long)pn.size() - 30);
  std::vector<std::vector<uint8_t>> files{j, trunc, garbage, ptrunc, {1, 2, 3}, {}};
  std::string p = make_encoded(dir, files, h, w, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  std::vector<uint8_t> out((size_t)h * w * 3);
  const char *expect[6] = {nullptr,
                           "row 1: corrupt JPEG",
                           "row 2: corrupt JPEG",
                           "row 3: corrupt PNG",
                           "row 4: not an image (first bytes 01 02 03 00)",
                           "row 5: empty file (0 bytes)"};
  for (int64_t r = 0; r < 6; ++r) {
    sn_status s = sn_dataset_read_rows(ds, &r, 1, out.data(), nullptr);
    if (!expect[r]) {
      EXPECT_EQ(s, SN_OK) << sn_last_error();
    } else {
      EXPECT_EQ(s, SN_ERR_FORMAT) << r << " " << sn_last_error();
      EXPECT_TRUE(has(sn_last_error(), expect[r])) << sn_last_error();
    }
  }
  sn_dataset_close(ds);

  std::string msg;
  std::vector<int64_t> bad{0, (int64_t)j.size(), 10, (int64_t)(2 * j.size())};
  std::string p2 = make_encoded(dir, {j, j, j}, h, w, 3, "mono.h5", &bad);
  EXPECT_EQ(open_status(p2, &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "/offsets not monotone at row 1")) << msg;
  std::vector<int64_t> beyond{0, (int64_t)j.size(), (int64_t)(5 * j.size())};
  std::string p3 = make_encoded(dir, {j, j}, h, w, 3, "beyond.h5", &beyond);
  EXPECT_EQ(open_status(p3, &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "beyond /encoded")) << msg;
  {
    H5File f(dir + "/nooff.h5");
    f.write("encoded", H5T_STD_U8LE, H5T_NATIVE_UINT8, {j.size()}, j.data());
  }
  EXPECT_EQ(open_status(dir + "/nooff.h5", &msg), SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(msg, "/offsets not found")) << msg;
  {
    H5File f(dir + "/noattr.h5");
    int64_t o[2] = {0, (int64_t)j.size()};
    f.write("encoded", H5T_STD_U8LE, H5T_NATIVE_UINT8, {j.size()}, j.data());
    f.write("offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, {2}, o);
  }
  EXPECT_EQ(open_status(dir + "/noattr.h5", &msg), SN_ERR_FORMAT);
  EXPECT_TRUE(has(msg, "attribute height missing")) << msg;
}

// ------------------------------------------------------------ resize parity with Pillow

bool have_pil() { return std::system("/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1") == 0; }

std::vector<uint8_t> read_all(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}
void write_all(const std::string &p, const std::vector<uint8_t> &v) {
  std::ofstream o(p, std::ios::binary);
  o.write((const char *)v.data(), (std::streamsize)v.size());
}

// Pillow reference, batched into one python run. Each job: image file, channels, and either
// "fit S OH OW filter" (torchvision Resize(S) + CenterCrop) or "straight OH OW filter"
// (Image.resize); writes the raw RGB / L bytes to the job's output file.
struct PilJobs {
  std::string dir = sntest::temp_dir();
  std::vector<std::string> lines, outs;
  size_t add(const std::string &img, int channels, const std::string &mode) {
    std::string out = dir + "/job" + std::to_string(outs.size()) + ".raw";
    lines.push_back(img + " " + out + " " + std::to_string(channels) + " " + mode);
    outs.push_back(out);
    return outs.size() - 1;
  }
  bool run() {
    std::string script = dir + "/pil.py", jobs = dir + "/jobs.txt";
    {
      std::ofstream o(jobs);
      for (auto &l : lines)
        o << l << "\n";
    }
    std::ofstream o(script);
    o << "import sys\nfrom PIL import Image\n"
         "for line in open(sys.argv[1]):\n"
         " a = line.split()\n"
         " im = Image.open(a[0]).convert('RGB' if a[2] == '3' else 'L')\n"
         " f = {'bilinear': Image.BILINEAR, 'nearest': Image.NEAREST}[a[-1]]\n"
         " if a[3] == 'fit':\n"
         "  s, oh, ow = int(a[4]), int(a[5]), int(a[6])\n"
         "  w, h = im.size\n"
         "  if w <= h: nw, nh = s, int(s * h / w)\n"
         "  else: nh, nw = s, int(s * w / h)\n"
         "  if (nw, nh) != (w, h): im = im.resize((nw, nh), f)\n"
         "  top = int(round((nh - oh) / 2.0)); left = int(round((nw - ow) / 2.0))\n"
         "  im = im.crop((left, top, left + ow, top + oh))\n"
         " else:\n"
         "  oh, ow = int(a[4]), int(a[5])\n"
         "  if im.size != (ow, oh): im = im.resize((ow, oh), f)\n"
         " open(a[1], 'wb').write(im.tobytes())\n";
    o.close();
    return std::system(("/usr/bin/python3 " + script + " " + jobs).c_str()) == 0;
  }
  std::vector<uint8_t> result(size_t i) { return read_all(outs[i]); }
};

std::vector<uint8_t> ours(const std::vector<uint8_t> &file, int channels, int oh, int ow,
                          sn_resize_mode m, int shorter) {
  sn_image_scratch s;
  memset(&s, 0, sizeof s);
  char err[256];
  int h = 0, w = 0;
  EXPECT_EQ(sn_image_decode(file.data(), file.size(), channels, &s, &h, &w, err, sizeof err), SN_OK)
      << err;
  std::vector<uint8_t> out((size_t)oh * ow * channels);
  EXPECT_EQ(sn_image_fit(s.pix, h, w, channels, out.data(), oh, ow, m, shorter, &s), SN_OK);
  sn_image_scratch_free(&s);
  return out;
}

TEST(Image, MatchesPillowExactly) {
  if (!have_pil()) GTEST_SKIP() << "python3 with PIL not available";
  std::string dir = sntest::temp_dir();
  struct Case {
    int h, w, c;
    bool jpeg;
  } cases[] = {{37, 53, 3, false}, {64, 48, 3, true},   {300, 217, 3, true},
               {29, 29, 1, false}, {50, 120, 3, false}, {17, 11, 3, true},
               {40, 30, 1, true},  {33, 45, 4, true} /* CMYK JPEG (Adobe marker) */};
  struct Mine {
    std::vector<uint8_t> v;
    size_t job;
    std::string what;
  };
  std::vector<Mine> mine;
  PilJobs jobs;
  int k = 0;
  for (const Case &cs : cases) {
    auto pix = cs.jpeg ? smooth_image(cs.h, cs.w, cs.c, k)
                       : random_bytes((size_t)cs.h * cs.w * cs.c, (uint64_t)k);
    auto file = cs.jpeg ? jpeg_of(pix, cs.h, cs.w, cs.c, 85) : png_of(pix, cs.h, cs.w, cs.c);
    std::string fp = dir + "/img" + std::to_string(k++) + (cs.jpeg ? ".jpg" : ".png");
    write_all(fp, file);
    for (int ch : {3, 1}) {
      // Decoding alone (a straight resize to the own size is the identity).
      std::string d = "straight " + std::to_string(cs.h) + " " + std::to_string(cs.w) + " nearest";
      mine.push_back(
          {ours(file, ch, cs.h, cs.w, SN_RESIZE_NEAREST, 0), jobs.add(fp, ch, d), fp + " " + d});
      for (auto [s, oh, ow] : {std::tuple{24, 20, 20}, std::tuple{16, 16, 16},
                               std::tuple{256, 224, 224}, std::tuple{9, 7, 9}}) {
        for (auto m : {SN_RESIZE_BILINEAR, SN_RESIZE_NEAREST}) {
          const char *mn = m == SN_RESIZE_BILINEAR ? "bilinear" : "nearest";
          std::string a = "fit " + std::to_string(s) + " " + std::to_string(oh) + " " +
                          std::to_string(ow) + " " + mn;
          mine.push_back({ours(file, ch, oh, ow, m, s), jobs.add(fp, ch, a), fp + " " + a});
          std::string b = "straight " + std::to_string(oh) + " " + std::to_string(s) + " " + mn;
          mine.push_back({ours(file, ch, oh, s, m, 0), jobs.add(fp, ch, b), fp + " " + b});
        }
      }
    }
  }
  ASSERT_TRUE(jobs.run());
  for (auto &m : mine)
    EXPECT_EQ(m.v, jobs.result(m.job)) << m.what;
}

TEST(Dataset, SetDecodeResizesEncodedRows) {
  std::string dir = sntest::temp_dir();
  auto a = random_bytes(30 * 40 * 3, 3);
  auto f = png_of(a, 30, 40, 3);
  std::string p = make_encoded(dir, {f, f}, 30, 40, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_dataset_set_decode(ds, 20, 20, SN_RESIZE_BILINEAR, 16), SN_ERR_INVALID);
  ASSERT_EQ(sn_dataset_set_decode(ds, 16, 16, SN_RESIZE_BILINEAR, 24), SN_OK);
  EXPECT_EQ(sn_dataset_get_info(ds)->h, 16);
  std::vector<uint8_t> out(16 * 16 * 3);
  int64_t r = 1;
  ASSERT_EQ(sn_dataset_read_rows(ds, &r, 1, out.data(), nullptr), SN_OK) << sn_last_error();
  EXPECT_EQ(out, ours(f, 3, 16, 16, SN_RESIZE_BILINEAR, 24));
  sn_dataset_close(ds);
}

// The framework rule: torch preprocessing resizes the shorter side to (h*256+112)/224 and crops
// the centre (bilinear); any other is a straight nearest-neighbour resize; raw data stays.
TEST(Dataset, SetDecodeForFollowsThePreprocessing) {
  std::string dir = sntest::temp_dir();
  auto a = random_bytes(30 * 40 * 3, 4);
  auto f = png_of(a, 30, 40, 3);
  std::string p = make_encoded(dir, {f}, 30, 40, 3);
  struct Want {
    sn_preprocess pre;
    int h, w;
    sn_resize_mode mode;
    int shorter;
  };
  for (auto c : {Want{SN_PRE_TORCH, 16, 16, SN_RESIZE_BILINEAR, (16 * 256 + 112) / 224},
                 Want{SN_PRE_TORCH, 28, 24, SN_RESIZE_BILINEAR, 32},
                 Want{SN_PRE_CAFFE, 16, 20, SN_RESIZE_NEAREST, 0},
                 Want{SN_PRE_TF, 12, 12, SN_RESIZE_NEAREST, 0}}) {
    sn_dataset *ds = nullptr;
    ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_dataset_set_decode_for(ds, c.h, c.w, c.pre), SN_OK) << sn_last_error();
    EXPECT_EQ(sn_dataset_get_info(ds)->h, c.h);
    EXPECT_EQ(sn_dataset_get_info(ds)->w, c.w);
    std::vector<uint8_t> out((size_t)c.h * c.w * 3);
    int64_t r = 0;
    ASSERT_EQ(sn_dataset_read_rows(ds, &r, 1, out.data(), nullptr), SN_OK) << sn_last_error();
    EXPECT_EQ(out, ours(f, 3, c.h, c.w, c.mode, c.shorter)) << sn_preprocess_name(c.pre);
    EXPECT_EQ(sn_dataset_set_decode_for(ds, c.h, c.w, SN_PRE_DEFAULT), SN_ERR_INVALID);
    sn_dataset_close(ds);
  }
  Raw raw = make_raw(dir);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(raw.path.c_str(), sn_comm_serial(), &ds), SN_OK);
  EXPECT_EQ(sn_dataset_set_decode_for(ds, 8, 8, SN_PRE_TORCH), SN_OK); // raw: left as it is
  EXPECT_EQ(sn_dataset_get_info(ds)->h, 4);
  EXPECT_EQ(sn_dataset_set_decode_for(nullptr, 8, 8, SN_PRE_TORCH), SN_ERR_INVALID);
  sn_dataset_close(ds);
}

} // namespace

// ------------------------------------------------------------ streaming reader

namespace {

std::vector<int64_t> shuffled(int64_t n, uint64_t seed) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

TEST(Reader, EveryRowOnceInOrderWithBoundedBuffers) {
  std::string dir = sntest::temp_dir();
  size_t bytes_small = 0;
  for (int n : {103, 1000}) {
    Raw r = make_raw(dir, n);
    sn_dataset *ds = nullptr;
    ASSERT_EQ(sn_dataset_open(r.path.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
    const size_t row = 4 * 5 * 3;
    for (auto order : {std::vector<int64_t>(), shuffled(n, 3)}) {
      if (order.empty())
        for (int64_t i = 0; i < n; ++i)
          order.push_back(i);
      sn_reader_options o;
      sn_reader_options_init(&o);
      o.batch = 10;
      o.prefetch = 2;
      sn_reader *rd = nullptr;
      ASSERT_EQ(sn_reader_create(ds, order.data(), (int64_t)order.size(), &o, &rd), SN_OK)
          << sn_last_error();
      EXPECT_EQ(sn_reader_num_batches(rd), (n + 9) / 10);
      if (n == 103) bytes_small = sn_reader_buffer_bytes(rd);
      EXPECT_EQ(sn_reader_buffer_bytes(rd), bytes_small); // independent of n
      EXPECT_LT(sn_reader_buffer_bytes(rd), (size_t)3 * 10 * row * 6);
      std::vector<int64_t> seen;
      for (;;) {
        float *x;
        int32_t *lab;
        int64_t *rows;
        int cnt = -1;
        ASSERT_EQ(sn_reader_next(rd, &x, &lab, &rows, &cnt), SN_OK) << sn_last_error();
        if (cnt == 0) break;
        ASSERT_NE(lab, nullptr);
        for (int i = 0; i < cnt; ++i) {
          seen.push_back(rows[i]);
          EXPECT_EQ(lab[i], r.labels[rows[i]]);
          for (size_t j = 0; j < row; ++j)
            ASSERT_EQ(x[i * row + j], (float)r.img[rows[i] * row + j]);
        }
      }
      EXPECT_EQ(seen, order);
      int cnt = -1;
      EXPECT_EQ(sn_reader_next(rd, nullptr, nullptr, nullptr, &cnt), SN_OK);
      EXPECT_EQ(cnt, 0);
      EXPECT_GE(sn_reader_wait_seconds(rd), 0.0);
      sn_reader_destroy(rd);
    }
    sn_dataset_close(ds);
  }
}

TEST(Reader, EpochShardsCoverTheGlobalBatches) {
  std::string dir = sntest::temp_dir();
  Raw r = make_raw(dir, 50);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(r.path.c_str(), sn_comm_serial(), &ds), SN_OK);
  const int size = 3, B = 8;
  std::vector<int64_t> perm(50);
  sn_shard_permutation(50, 42, 1, perm.data());
  std::vector<std::vector<int64_t>> per_rank(size);
  for (int rank = 0; rank < size; ++rank) {
    sn_reader_options o;
    sn_reader_options_init(&o);
    o.preprocess = SN_PRE_UNIT;
    o.augment = SN_AUG_CROP_FLIP;
    o.pad = 1;
    sn_reader *rd = nullptr;
    ASSERT_EQ(sn_reader_create_epoch(ds, 42, 1, rank, size, B, 1, &o, &rd), SN_OK)
        << sn_last_error();
    EXPECT_EQ(sn_reader_num_batches(rd), 50 / B);
    float *x;
    int64_t *rows;
    int cnt;
    while (sn_reader_next(rd, &x, nullptr, &rows, &cnt) == SN_OK && cnt > 0) {
      EXPECT_TRUE(cnt == 2 || cnt == 3);
      for (int i = 0; i < cnt; ++i)
        per_rank[rank].push_back(rows[i]);
    }
    sn_reader_destroy(rd);
  }
  // Step s: ranks' parts in rank order are perm[s*B, (s+1)*B).
  std::vector<size_t> pos(size, 0);
  for (int s = 0; s < 50 / B; ++s) {
    std::vector<int64_t> global;
    for (int rank = 0; rank < size; ++rank) {
      int64_t b, e;
      sn_shard_block(B, rank, size, &b, &e);
      for (int64_t i = b; i < e; ++i)
        global.push_back(per_rank[rank][pos[rank]++]);
    }
    EXPECT_EQ(global, std::vector<int64_t>(perm.begin() + s * B, perm.begin() + (s + 1) * B));
  }
  sn_dataset_close(ds);
}

// Reads a whole reader: rows per batch, and the images of every batch.
std::vector<std::vector<int64_t>> drain(sn_reader *rd, std::vector<float> *pixels = nullptr) {
  std::vector<std::vector<int64_t>> batches;
  float *x;
  int64_t *rows;
  int cnt;
  while (sn_reader_next(rd, &x, nullptr, &rows, &cnt) == SN_OK && cnt > 0) {
    batches.emplace_back(rows, rows + cnt);
    if (pixels) pixels->insert(pixels->end(), x, x + (size_t)cnt * 4 * 5 * 3);
  }
  return batches;
}

// A resumed epoch (from step s) reads the same batches, augmented the same, as steps s.. of the
// whole epoch; shuffle off reads the rows in file order.
TEST(Reader, EpochFromAStepEqualsTheRestOfTheEpoch) {
  std::string dir = sntest::temp_dir();
  Raw r = make_raw(dir, 50);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(r.path.c_str(), sn_comm_serial(), &ds), SN_OK);
  sn_reader_options o;
  sn_reader_options_init(&o);
  o.preprocess = SN_PRE_UNIT;
  o.augment = SN_AUG_CROP_FLIP;
  o.pad = 1;
  const int B = 8;
  for (int drop_last : {0, 1}) {
    for (int rank = 0; rank < 3; ++rank) {
      sn_reader *rd = nullptr;
      ASSERT_EQ(sn_reader_create_epoch(ds, 42, 2, rank, 3, B, drop_last, &o, &rd), SN_OK);
      std::vector<float> px_all;
      auto all = drain(rd, &px_all);
      sn_reader_destroy(rd);
      const int64_t steps = sn_shard_epoch_steps(50, B, drop_last);
      ASSERT_EQ((int64_t)all.size(), steps);
      for (int64_t start : {int64_t{0}, int64_t{1}, int64_t{4}, steps - 1, steps, steps + 3}) {
        ASSERT_EQ(sn_reader_create_epoch_from(ds, 42, 2, start, 1, rank, 3, B, drop_last, &o, &rd),
                  SN_OK)
            << sn_last_error();
        std::vector<float> px;
        auto rest = drain(rd, &px);
        sn_reader_destroy(rd);
        const size_t skip = (size_t)std::min<int64_t>(start, steps);
        EXPECT_EQ(rest, std::vector<std::vector<int64_t>>(all.begin() + skip, all.end())) << start;
        size_t skipped = 0;
        for (size_t b = 0; b < skip; ++b)
          skipped += all[b].size() * 4 * 5 * 3;
        EXPECT_TRUE(std::equal(px.begin(), px.end(), px_all.begin() + skipped)) << start;
      }
    }
  }
  // shuffle off: global batch s is rows [s*B, (s+1)*B), wrapping at the end
  sn_reader *rd = nullptr;
  ASSERT_EQ(sn_reader_create_epoch_from(ds, 42, 2, 5, 0, 1, 2, B, 0, &o, &rd), SN_OK);
  auto batches = drain(rd);
  sn_reader_destroy(rd);
  ASSERT_EQ(batches.size(), 2u); // steps 5 and 6 of ceil(50 / 8) = 7
  EXPECT_EQ(batches[0], (std::vector<int64_t>{44, 45, 46, 47}));
  EXPECT_EQ(batches[1], (std::vector<int64_t>{2, 3, 4, 5})); // 52..55 wrap to 2..5
  EXPECT_EQ(sn_reader_create_epoch_from(ds, 42, 2, -1, 1, 0, 1, B, 0, &o, &rd), SN_ERR_INVALID);
  EXPECT_EQ(sn_reader_create_epoch_from(ds, 42, 2, 0, 1, 2, 2, B, 0, &o, &rd), SN_ERR_INVALID);
  sn_dataset_close(ds);
}

// The crop of sn_augment_crop_box(seed, epoch, row, picture size) for sn_image_decode_crop.
struct RowCrop {
  uint64_t seed;
  int64_t epoch, row;
  int oh, ow, jpeg_scale;
};
void row_crop(void *ctx, int h, int w, sn_image_crop *c) {
  const RowCrop *r = static_cast<const RowCrop *>(ctx);
  int box[4], flip = 0;
  sn_augment_crop_box(r->seed, r->epoch, r->row, h, w, 0.08, box, &flip);
  *c = sn_image_crop{box[0], box[1], box[2], box[3], r->oh, r->ow, flip, r->jpeg_scale};
}

// RandomResizedCrop on an encoded dataset is taken from the original picture at decode: every
// row the reader hands out is sn_image_decode_crop of its file with the crop of (seed, epoch,
// row), flip included, whatever batch or rank reads it; the fitted decode is back once the
// reader is gone; raw datasets refuse the decode crop.
TEST(Reader, ResizedCropOfEncodedRowsIsTakenFromTheOriginalPicture) {
  std::string dir = sntest::temp_dir();
  const int sizes[6][2] = {{80, 120}, {150, 90}, {64, 64}, {47, 201}, {120, 160}, {33, 40}};
  std::vector<std::vector<uint8_t>> files;
  for (int i = 0; i < 6; ++i) {
    auto pix = smooth_image(sizes[i][0], sizes[i][1], 3, i);
    for (size_t k = 0; k < pix.size(); ++k) // some texture, so that crops differ visibly
      pix[k] = static_cast<uint8_t>(std::min(255, pix[k] + static_cast<int>((k * 7919) % 23)));
    files.push_back(i % 3 == 2 ? png_of(pix, sizes[i][0], sizes[i][1], 3)
                               : jpeg_of(pix, sizes[i][0], sizes[i][1], 3, 90));
  }
  const std::string p = make_encoded(dir, files, 32, 32, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  const size_t img = 32 * 32 * 3;
  std::vector<uint8_t> fitted(6 * img), again(6 * img);
  const int64_t all[6] = {0, 1, 2, 3, 4, 5};
  ASSERT_EQ(sn_dataset_read_rows(ds, all, 6, fitted.data(), nullptr), SN_OK);
  sn_image_scratch s{};
  for (int jpeg_scale : {0, 1}) {
    for (int size : {1, 2}) { // one rank, or the two halves of every global batch
      for (int rank = 0; rank < size; ++rank) {
        sn_reader_options o;
        sn_reader_options_init(&o);
        o.augment = SN_AUG_RESIZED_CROP;
        o.jpeg_scale = jpeg_scale;
        sn_reader *rd = nullptr;
        ASSERT_EQ(sn_reader_create_epoch(ds, 9, 3, rank, size, 4, 0, &o, &rd), SN_OK)
            << sn_last_error();
        float *x;
        int64_t *rows;
        int cnt;
        int seen = 0, differs_from_fit = 0;
        while (sn_reader_next(rd, &x, nullptr, &rows, &cnt) == SN_OK && cnt > 0) {
          for (int i = 0; i < cnt; ++i, ++seen) {
            RowCrop rc{9, 3, rows[i], 32, 32, jpeg_scale};
            std::vector<uint8_t> want(img);
            char err[256] = "";
            const auto &f = files[static_cast<size_t>(rows[i])];
            ASSERT_EQ(sn_image_decode_crop(f.data(), f.size(), 3, row_crop, &rc, want.data(), &s,
                                           err, sizeof err),
                      SN_OK)
                << err;
            for (size_t k = 0; k < img; ++k)
              ASSERT_EQ(x[static_cast<size_t>(i) * img + k], static_cast<float>(want[k]))
                  << "row " << rows[i] << " value " << k << " jpeg_scale " << jpeg_scale;
            differs_from_fit +=
                memcmp(want.data(), fitted.data() + static_cast<size_t>(rows[i]) * img, img) != 0;
          }
        }
        EXPECT_EQ(seen, size == 1 ? 8 : 4) << "2 steps of global batch 4, padded by wrapping";
        EXPECT_GT(differs_from_fit, seen / 2);
        sn_reader_destroy(rd);
      }
    }
  }
  ASSERT_EQ(sn_dataset_read_rows(ds, all, 6, again.data(), nullptr), SN_OK);
  EXPECT_EQ(again, fitted) << "the reader left the dataset in crop mode";
  sn_image_scratch_free(&s);
  sn_dataset_close(ds);
  Raw r = make_raw(dir, 4);
  ASSERT_EQ(sn_dataset_open(r.path.c_str(), sn_comm_serial(), &ds), SN_OK);
  EXPECT_EQ(sn_dataset_set_decode_crop(ds, 1, 1, 0, 0.08, 0), SN_ERR_INVALID);
  EXPECT_TRUE(has(sn_last_error(), "needs the encoded form")) << sn_last_error();
  sn_dataset_close(ds);
}

TEST(Reader, DecodeErrorNamesTheRowAndStopsCleanly) {
  std::string dir = sntest::temp_dir();
  auto a = smooth_image(8, 8, 3, 0);
  auto good = png_of(a, 8, 8, 3);
  std::vector<std::vector<uint8_t>> files(40, good);
  files[23] = {0xFF, 0xD8, 0xFF, 0x00, 0x01};
  std::string p = make_encoded(dir, files, 8, 8, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK);
  std::vector<int64_t> rows(40);
  for (int i = 0; i < 40; ++i)
    rows[i] = i;
  sn_reader_options o;
  sn_reader_options_init(&o);
  o.batch = 8;
  o.preprocess = SN_PRE_TORCH;
  sn_reader *rd = nullptr;
  ASSERT_EQ(sn_reader_create(ds, rows.data(), 40, &o, &rd), SN_OK);
  float *x;
  int cnt;
  for (int b = 0; b < 2; ++b)
    ASSERT_EQ(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_OK);
  EXPECT_EQ(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "row 23: corrupt JPEG")) << sn_last_error();
  EXPECT_NE(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_OK);
  sn_reader_destroy(rd);
  // destroying in the middle of an epoch
  ASSERT_EQ(sn_reader_create(ds, rows.data(), 16, &o, &rd), SN_OK);
  ASSERT_EQ(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_OK);
  sn_reader_destroy(rd);
  o.preprocess = SN_PRE_DEFAULT;
  EXPECT_EQ(sn_reader_create(ds, rows.data(), 16, &o, &rd), SN_ERR_INVALID);
  o.preprocess = SN_PRE_NONE;
  int64_t bad = 40;
  EXPECT_EQ(sn_reader_create(ds, &bad, 1, &o, &rd), SN_ERR_INVALID);
  sn_dataset_close(ds);
}

// Batches are the same whatever the number of decode threads: every value depends on (seed,
// epoch, row) only, the batch's positions are split between the threads, and a decode error is
// the first failing position's whatever thread met it.
TEST(Reader, DecodeThreadsGiveTheSameBatches) {
  std::string dir = sntest::temp_dir();
  std::vector<std::vector<uint8_t>> files;
  for (int i = 0; i < 37; ++i) {
    const int h = 20 + (i * 13) % 50, w = 24 + (i * 29) % 61;
    auto pix = smooth_image(h, w, 3, i);
    for (size_t k = 0; k < pix.size(); ++k)
      pix[k] = static_cast<uint8_t>(std::min(255, pix[k] + static_cast<int>((k * 7919) % 23)));
    files.push_back(i % 4 == 3 ? png_of(pix, h, w, 3) : jpeg_of(pix, h, w, 3, 90));
  }
  const std::string p = make_encoded(dir, files, 16, 16, 3);
  Raw raw = make_raw(dir, 37);
  std::vector<int64_t> order = shuffled(37, 5);
  for (int i = 0; i < 12; ++i) // repeats, in and across batches
    order.push_back(order[static_cast<size_t>(i * 3)]);
  const size_t vals16 = 16 * 16 * 3, vals_raw = 4 * 5 * 3;
  struct Case {
    const char *path;
    sn_augment aug;
    int epoch_reader;
    size_t vals;
  } cases[] = {{p.c_str(), SN_AUG_RESIZED_CROP, 1, vals16},
               {p.c_str(), SN_AUG_CROP_FLIP, 0, vals16},
               {raw.path.c_str(), SN_AUG_CROP_FLIP, 0, vals_raw},
               {raw.path.c_str(), SN_AUG_RESIZED_CROP, 1, vals_raw}};
  for (const Case &cs : cases) {
    sn_dataset *ds = nullptr;
    ASSERT_EQ(sn_dataset_open(cs.path, sn_comm_serial(), &ds), SN_OK) << sn_last_error();
    std::vector<float> want_x;
    std::vector<int32_t> want_lab;
    std::vector<int64_t> want_rows;
    for (int threads : {1, 2, 3, 7, 16}) {
      sn_reader_options o;
      sn_reader_options_init(&o);
      EXPECT_EQ(o.threads, 1);
      o.batch = 10;
      o.preprocess = SN_PRE_TORCH;
      o.augment = cs.aug;
      o.pad = 2;
      o.threads = threads;
      sn_reader *rd = nullptr;
      if (cs.epoch_reader)
        ASSERT_EQ(sn_reader_create_epoch(ds, 11, 2, 1, 2, 20, 0, &o, &rd), SN_OK)
            << sn_last_error();
      else
        ASSERT_EQ(sn_reader_create(ds, order.data(), (int64_t)order.size(), &o, &rd), SN_OK)
            << sn_last_error();
      std::vector<float> xs;
      std::vector<int32_t> labs;
      std::vector<int64_t> rows_seen;
      for (;;) {
        float *x;
        int32_t *lab;
        int64_t *rows;
        int cnt = -1;
        ASSERT_EQ(sn_reader_next(rd, &x, &lab, &rows, &cnt), SN_OK) << sn_last_error();
        if (cnt == 0) break;
        xs.insert(xs.end(), x, x + static_cast<size_t>(cnt) * cs.vals);
        labs.insert(labs.end(), lab, lab + cnt);
        rows_seen.insert(rows_seen.end(), rows, rows + cnt);
      }
      sn_reader_destroy(rd);
      if (threads == 1) {
        want_x = xs;
        want_lab = labs;
        want_rows = rows_seen;
        ASSERT_FALSE(want_x.empty());
        continue;
      }
      EXPECT_EQ(rows_seen, want_rows) << "threads " << threads;
      EXPECT_EQ(labs, want_lab) << "threads " << threads;
      ASSERT_EQ(xs.size(), want_x.size());
      EXPECT_EQ(memcmp(xs.data(), want_x.data(), xs.size() * sizeof(float)), 0)
          << cs.path << " augment " << cs.aug << ", threads " << threads;
    }
    sn_dataset_close(ds);
  }
  // two corrupt rows in one batch (positions 3 and 7 of 10), another in the next batch
  std::vector<std::vector<uint8_t>> bad = files;
  bad[13] = {0xFF, 0xD8, 0xFF, 0x00, 0x01};
  bad[17] = {0x89, 0x50, 0x4E, 0x47};
  bad[25] = {0xFF, 0xD8};
  const std::string pb = make_encoded(dir, bad, 16, 16, 3, "bad.h5");
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(pb.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  std::vector<int64_t> rows(30);
  for (int i = 0; i < 30; ++i)
    rows[static_cast<size_t>(i)] = i;
  std::swap(rows[13], rows[17]); // batch 1 holds row 17 before row 13
  for (int threads : {1, 2, 4, 10}) {
    sn_reader_options o;
    sn_reader_options_init(&o);
    o.batch = 10;
    o.threads = threads;
    sn_reader *rd = nullptr;
    ASSERT_EQ(sn_reader_create(ds, rows.data(), 30, &o, &rd), SN_OK);
    float *x;
    int cnt;
    ASSERT_EQ(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_OK) << sn_last_error();
    EXPECT_EQ(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_ERR_FORMAT);
    EXPECT_TRUE(has(sn_last_error(), "row 17: "))
        << "threads " << threads << ": " << sn_last_error();
    EXPECT_NE(sn_reader_next(rd, &x, nullptr, nullptr, &cnt), SN_OK);
    sn_reader_destroy(rd);
  }
  sn_reader_options o;
  sn_reader_options_init(&o);
  sn_reader *rd = nullptr;
  for (int threads : {-1, 257}) {
    o.threads = threads;
    EXPECT_EQ(sn_reader_create(ds, rows.data(), 30, &o, &rd), SN_ERR_INVALID);
    EXPECT_TRUE(has(sn_last_error(), "threads")) << sn_last_error();
  }
  sn_dataset_close(ds);
}

// The reader's thread and a writer on the main thread share the (non-thread-safe) HDF5 library
// through the io lock.
TEST(Reader, RunsAlongsideTheWriter) {
  std::string dir = sntest::temp_dir();
  auto a = smooth_image(24, 24, 3, 1);
  std::vector<std::vector<uint8_t>> files;
  for (int i = 0; i < 300; ++i)
    files.push_back(i % 2 ? png_of(a, 24, 24, 3) : jpeg_of(a, 24, 24, 3));
  std::string p = make_encoded(dir, files, 24, 24, 3);
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(p.c_str(), sn_comm_serial(), &ds), SN_OK);
  std::vector<int64_t> rows = shuffled(300, 9);
  sn_reader_options o;
  sn_reader_options_init(&o);
  o.batch = 7;
  o.prefetch = 3;
  sn_reader *rd = nullptr;
  ASSERT_EQ(sn_reader_create(ds, rows.data(), 300, &o, &rd), SN_OK);
  sn_writer_config c;
  sn_writer_config_init(&c);
  c.n_total = 300;
  c.flags = SN_WRITE_FEATURES;
  c.feature_dim = 24 * 24 * 3;
  c.chunk_rows = 16;
  c.compression = 1;
  sn_writer *w = nullptr;
  std::string out = dir + "/out.h5";
  ASSERT_EQ(sn_writer_create(out.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  float *x;
  int64_t *rr;
  int cnt;
  int64_t total = 0;
  std::vector<float> expect(300 * 24 * 24 * 3);
  while (sn_reader_next(rd, &x, nullptr, &rr, &cnt) == SN_OK && cnt > 0) {
    for (int i = 0; i < cnt; ++i) {
      ASSERT_EQ(sn_writer_write_block(w, rr[i], 1, nullptr, nullptr, nullptr,
                                      x + (size_t)i * c.feature_dim, nullptr),
                SN_OK)
          << sn_last_error();
      memcpy(expect.data() + rr[i] * c.feature_dim, x + (size_t)i * c.feature_dim,
             c.feature_dim * sizeof(float));
    }
    total += cnt;
  }
  EXPECT_EQ(total, 300);
  ASSERT_EQ(sn_writer_finish(w), SN_OK) << sn_last_error();
  sn_writer_destroy(w);
  sn_reader_destroy(rd);
  sn_dataset_close(ds);
  sn_dataset *back = nullptr;
  sn_h5_lock();
  hid_t f = H5Fopen(out.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "features", H5P_DEFAULT);
  std::vector<float> got(expect.size());
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got.data());
  H5Dclose(d);
  H5Fclose(f);
  sn_h5_unlock();
  (void)back;
  EXPECT_EQ(got, expect);
}

} // namespace
