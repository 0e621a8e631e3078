// convert_test.cpp - tests of io/convert.c: Fashion-MNIST idx files (the real ones shipped by
// the dataset-fashion-mnist package), bad idx inputs, and image folders (raw and encoded).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>
#include <zlib.h>

#include "h5util.h"
#include "image.h"
#include "io_impl.h"
#include "md5.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

std::vector<uint8_t> read_all(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}
void write_all(const std::string &p, const std::vector<uint8_t> &v) {
  std::ofstream o(p, std::ios::binary);
  o.write((const char *)v.data(), (std::streamsize)v.size());
}

struct Progress {
  int64_t calls = 0, last = -1, total = -1;
  static void cb(void *ctx, int64_t done, int64_t total) {
    auto *p = static_cast<Progress *>(ctx);
    EXPECT_GE(done, p->last);
    p->calls++;
    p->last = done;
    p->total = total;
  }
};

TEST(ConvertIdx, FashionMnistRealFiles) {
  if (!sntest::file_exists(kFashion + "t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  std::string dir = sntest::temp_dir();
  struct Split {
    const char *name;
    int64_t n;
    std::vector<int32_t> first;
    int first_sum;
    const char *md5;
  } splits[] = {
      {"t10k", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 33456, "b7656a891b218fc13e45205c48a92cae"},
      {"train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 76247, "f209073e486d5113ebe2cc431d4df862"}};
  // First labels, first-image byte sums and MD5s of all image bytes: from python3 gzip parsing.
  for (const Split &s : splits) {
    std::string out = dir + "/" + s.name + ".h5";
    sn_convert_options o;
    sn_convert_options_init(&o);
    o.fashion = 1;
    Progress pr;
    o.progress = Progress::cb;
    o.progress_ctx = &pr;
    ASSERT_EQ(sn_convert_idx((kFashion + s.name + "-images-idx3-ubyte.gz").c_str(),
                             (kFashion + s.name + "-labels-idx1-ubyte.gz").c_str(), out.c_str(),
                             sn_comm_serial(), &o),
              SN_OK)
        << sn_last_error();
    EXPECT_FALSE(sntest::file_exists(out + ".partial"));
    EXPECT_EQ(pr.last, s.n);
    EXPECT_EQ(pr.total, s.n);
    sn_dataset *ds = nullptr;
    ASSERT_EQ(sn_dataset_open(out.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
    const sn_dataset_info *info = sn_dataset_get_info(ds);
    EXPECT_EQ(info->n, s.n);
    EXPECT_EQ(info->h, 28);
    EXPECT_EQ(info->w, 28);
    EXPECT_EQ(info->c, 1);
    EXPECT_EQ(info->dtype, SN_U8);
    EXPECT_EQ(info->num_classes, 10);
    EXPECT_STREQ(sn_dataset_class_name(ds, 0), "T-shirt/top");
    EXPECT_STREQ(sn_dataset_class_name(ds, 9), "Ankle boot");
    const int32_t *lab = sn_dataset_labels(ds);
    ASSERT_NE(lab, nullptr);
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(lab[i], s.first[i]) << i;
    std::vector<int64_t> counts(10, 0);
    for (int64_t i = 0; i < s.n; ++i)
      counts[lab[i]]++;
    for (int c = 0; c < 10; ++c)
      EXPECT_EQ(counts[c], s.n / 10);
    // All images, in blocks, hashed.
    sn_md5 m;
    sn_md5_init(&m);
    const int blk = 4096;
    std::vector<uint8_t> buf((size_t)blk * 784);
    std::vector<int64_t> rows(blk);
    for (int64_t b = 0; b < s.n; b += blk) {
      int cnt = (int)std::min<int64_t>(blk, s.n - b);
      for (int i = 0; i < cnt; ++i)
        rows[i] = b + i;
      ASSERT_EQ(sn_dataset_read_rows(ds, rows.data(), cnt, buf.data(), nullptr), SN_OK);
      if (b == 0) {
        int sum = 0;
        for (int i = 0; i < 784; ++i)
          sum += buf[i];
        EXPECT_EQ(sum, s.first_sum);
      }
      sn_md5_update(&m, buf.data(), (size_t)cnt * 784);
    }
    char hex[33];
    sn_md5_final(&m, hex);
    EXPECT_STREQ(hex, s.md5);
    sn_dataset_close(ds);
  }
}

// A small idx pair written by the test (plain or gzip), n images of r x c.
void write_idx(const std::string &path, uint32_t magic, std::vector<uint32_t> dims,
               const std::vector<uint8_t> &data, bool gz) {
  std::vector<uint8_t> b;
  auto be = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8)
      b.push_back((uint8_t)(v >> s));
  };
  be(magic);
  for (uint32_t d : dims)
    be(d);
  b.insert(b.end(), data.begin(), data.end());
  if (!gz) {
    write_all(path, b);
    return;
  }
  gzFile g = gzopen(path.c_str(), "wb");
  gzwrite(g, b.data(), (unsigned)b.size());
  gzclose(g);
}

sn_status convert(const std::string &im, const std::string &lb, const std::string &out) {
  return sn_convert_idx(im.c_str(), lb.c_str(), out.c_str(), sn_comm_serial(), nullptr);
}

TEST(ConvertIdx, BadInputs) {
  std::string dir = sntest::temp_dir();
  std::vector<uint8_t> img(5 * 4 * 3), lab{0, 1, 2, 3, 4};
  for (size_t i = 0; i < img.size(); ++i)
    img[i] = (uint8_t)i;
  write_idx(dir + "/im.idx", 0x803, {5, 4, 3}, img, false);
  write_idx(dir + "/lb.idx.gz", 0x801, {5}, lab, true);
  std::string out = dir + "/o.h5";
  // plain (not gzip) idx is accepted
  ASSERT_EQ(convert(dir + "/im.idx", dir + "/lb.idx.gz", out), SN_OK) << sn_last_error();
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(out.c_str(), sn_comm_serial(), &ds), SN_OK);
  EXPECT_EQ(sn_dataset_get_info(ds)->h, 4);
  EXPECT_EQ(sn_dataset_get_info(ds)->w, 3);
  EXPECT_STREQ(sn_dataset_class_name(ds, 3), "3");
  std::vector<uint8_t> got(12);
  int64_t r = 2;
  ASSERT_EQ(sn_dataset_read_rows(ds, &r, 1, got.data(), nullptr), SN_OK);
  EXPECT_EQ(0, memcmp(got.data(), img.data() + 24, 12));
  sn_dataset_close(ds);

  EXPECT_EQ(convert(dir + "/lb.idx.gz", dir + "/im.idx", out), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "bad idx magic 0x00000801 (expected 0x00000803"))
      << sn_last_error();

  write_idx(dir + "/lb4.idx", 0x801, {4}, {0, 1, 2, 3}, false);
  EXPECT_EQ(convert(dir + "/im.idx", dir + "/lb4.idx", out), SN_ERR_SHAPE);
  EXPECT_TRUE(has(sn_last_error(), "has 5 images but file")) << sn_last_error();

  write_idx(dir + "/lbbad.idx", 0x801, {5}, {0, 1, 2, 13, 4}, false);
  EXPECT_EQ(convert(dir + "/im.idx", dir + "/lbbad.idx", out), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "row 3 has label 13")) << sn_last_error();

  std::vector<uint8_t> short_img(img.begin(), img.begin() + 30);
  write_idx(dir + "/short.idx", 0x803, {5, 4, 3}, short_img, true);
  EXPECT_EQ(convert(dir + "/short.idx", dir + "/lb.idx.gz", out), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "truncated: 30 of 60 data bytes")) << sn_last_error();

  if (sntest::file_exists(kFashion + "t10k-images-idx3-ubyte.gz")) { // truncated gzip stream
    auto gz = read_all(kFashion + "t10k-images-idx3-ubyte.gz");
    gz.resize(gz.size() / 3);
    write_all(dir + "/cut.gz", gz);
    sn_status s = convert(dir + "/cut.gz", kFashion + "t10k-labels-idx1-ubyte.gz", out);
    EXPECT_EQ(s, SN_ERR_FORMAT);
    EXPECT_TRUE(has(sn_last_error(), "cut.gz")) << sn_last_error();
  }

  write_idx(dir + "/zero.idx", 0x803, {5, 0, 3}, {}, false);
  EXPECT_EQ(convert(dir + "/zero.idx", dir + "/lb.idx.gz", out), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "idx dimension 1 is 0")) << sn_last_error();

  EXPECT_EQ(convert(dir + "/nothere.gz", dir + "/lb.idx.gz", out), SN_ERR_IO);
  EXPECT_TRUE(has(sn_last_error(), "nothere.gz: cannot open")) << sn_last_error();
  EXPECT_FALSE(sntest::file_exists(out + ".partial"));
}

// ------------------------------------------------------------ folders

std::vector<uint8_t> pattern(int h, int w, int c, int seed) {
  std::vector<uint8_t> v((size_t)h * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        v[((size_t)y * w + x) * c + k] =
            (uint8_t)std::min(255, 20 + x * 150 / w + y * 60 / h + 10 * k + 5 * seed);
  return v;
}

struct Tree {
  std::string root;
  std::vector<std::string> files; // expected order, relative
  std::vector<int> labels;
};

// root/{a_cls, b_cls, c_cls/...}: JPEG and PNG files of various sizes, grey and RGB, nested
// folders, upper-case extensions and ignored non-image files.
Tree make_tree(const std::string &dir) {
  Tree t;
  t.root = dir + "/tree";
  auto mk = [](const std::string &p) { mkdir(p.c_str(), 0755); };
  mk(t.root);
  mk(t.root + "/b_cls");
  mk(t.root + "/a_cls");
  mk(t.root + "/c_cls");
  mk(t.root + "/c_cls/sub");
  struct F {
    std::string rel;
    int h, w, c;
    bool jpeg;
    int label;
  } fs[] = {{"a_cls/x2.png", 20, 30, 3, false, 0},   {"a_cls/x1.JPG", 40, 24, 3, true, 0},
            {"a_cls/x3.jpeg", 17, 17, 1, true, 0},   {"b_cls/g.png", 33, 21, 1, false, 1},
            {"c_cls/z.png", 18, 40, 3, false, 2},    {"c_cls/sub/a.jpg", 26, 26, 3, true, 2},
            {"c_cls/sub/b.png", 50, 19, 3, false, 2}};
  int seed = 0;
  for (const F &f : fs) {
    auto pix = pattern(f.h, f.w, f.c, seed++);
    uint8_t *b = nullptr;
    size_t n = 0;
    if (f.jpeg)
      sn_image_encode_jpeg(pix.data(), f.h, f.w, f.c, 90, &b, &n);
    else
      sn_image_encode_png(pix.data(), f.h, f.w, f.c, &b, &n);
    write_all(t.root + "/" + f.rel, std::vector<uint8_t>(b, b + n));
    free(b);
  }
  write_all(t.root + "/b_cls/notes.txt", {'h', 'i'});
  write_all(t.root + "/stray.png", {1, 2, 3}); // files at the root are not classes
  // ImageFolder order: classes sorted, then (directory, name) sorted.
  t.files = {"a_cls/x1.JPG", "a_cls/x2.png",    "a_cls/x3.jpeg",  "b_cls/g.png",
             "c_cls/z.png",  "c_cls/sub/a.jpg", "c_cls/sub/b.png"};
  t.labels = {0, 0, 0, 1, 2, 2, 2};
  return t;
}

std::vector<uint8_t> expected_row(const std::string &path, int h, int w, int c, sn_resize_mode m,
                                  int shorter) {
  auto f = read_all(path);
  sn_image_scratch s;
  memset(&s, 0, sizeof s);
  char err[256];
  int ih, iw;
  EXPECT_EQ(sn_image_decode(f.data(), f.size(), c, &s, &ih, &iw, err, sizeof err), SN_OK) << err;
  std::vector<uint8_t> out((size_t)h * w * c);
  EXPECT_EQ(sn_image_fit(s.pix, ih, iw, c, out.data(), h, w, m, shorter, &s), SN_OK);
  sn_image_scratch_free(&s);
  return out;
}

TEST(ConvertFolder, RawAndEncoded) {
  std::string dir = sntest::temp_dir();
  Tree t = make_tree(dir);
  const int H = 16, W = 16;
  sn_convert_options o;
  sn_convert_options_init(&o);
  o.height = H;
  o.width = W;
  o.resize_shorter = 18;
  o.chunk_rows = 3;
  o.labels_from = SN_LABELS_FOLDERS; /* ImageFolder: the root's own files are left out */
  std::string raw = dir + "/raw.h5", enc = dir + "/enc.h5";
  ASSERT_EQ(sn_convert_folder(t.root.c_str(), raw.c_str(), sn_comm_serial(), &o), SN_OK)
      << sn_last_error();
  o.encoded = 1;
  ASSERT_EQ(sn_convert_folder(t.root.c_str(), enc.c_str(), sn_comm_serial(), &o), SN_OK)
      << sn_last_error();

  sn_dataset *dr = nullptr, *de = nullptr;
  ASSERT_EQ(sn_dataset_open(raw.c_str(), sn_comm_serial(), &dr), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_dataset_open(enc.c_str(), sn_comm_serial(), &de), SN_OK) << sn_last_error();
  const int64_t n = (int64_t)t.files.size();
  for (sn_dataset *ds : {dr, de}) {
    const sn_dataset_info *info = sn_dataset_get_info(ds);
    EXPECT_EQ(info->n, n);
    EXPECT_EQ(info->h, H);
    EXPECT_EQ(info->w, W);
    EXPECT_EQ(info->c, 3);
    EXPECT_EQ(info->num_classes, 3);
    EXPECT_STREQ(sn_dataset_class_name(ds, 0), "a_cls");
    EXPECT_STREQ(sn_dataset_class_name(ds, 2), "c_cls");
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(sn_dataset_labels(ds)[i], t.labels[i]) << i;
  }
  EXPECT_EQ(sn_dataset_get_info(de)->encoded, 1);
  // file names in order
  {
    sn_h5_lock();
    hid_t f = H5Fopen(raw.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    char **names = nullptr;
    int64_t nn = 0;
    ASSERT_EQ(sn_h5_read_str_dataset(f, "filenames", raw.c_str(), &names, &nn), SN_OK);
    H5Fclose(f);
    sn_h5_unlock();
    ASSERT_EQ(nn, n);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(names[i], t.files[i]);
    sn_h5_free_strs(names, nn);
  }
  // the encoded bytes are the files' bytes
  {
    sn_h5_lock();
    hid_t f = H5Fopen(enc.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "encoded", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t total;
    H5Sget_simple_extent_dims(sp, &total, nullptr);
    std::vector<uint8_t> all(total);
    H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data());
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    sn_h5_unlock();
    std::vector<uint8_t> cat;
    for (auto &rel : t.files) {
      auto b = read_all(t.root + "/" + rel);
      cat.insert(cat.end(), b.begin(), b.end());
    }
    EXPECT_EQ(all, cat);
  }
  // raw rows are the decode pipeline's output; encoded rows decode to the same pixels
  ASSERT_EQ(sn_dataset_set_decode(de, H, W, SN_RESIZE_BILINEAR, 18), SN_OK);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < n; ++i)
    rows.push_back(i);
  std::vector<uint8_t> a((size_t)n * H * W * 3), b(a.size());
  ASSERT_EQ(sn_dataset_read_rows(dr, rows.data(), (int)n, a.data(), nullptr), SN_OK);
  ASSERT_EQ(sn_dataset_read_rows(de, rows.data(), (int)n, b.data(), nullptr), SN_OK)
      << sn_last_error();
  EXPECT_EQ(a, b);
  const size_t row = (size_t)H * W * 3;
  for (int64_t i = 0; i < n; ++i) {
    auto e = expected_row(t.root + "/" + t.files[i], H, W, 3, SN_RESIZE_BILINEAR, 18);
    EXPECT_EQ(0, memcmp(a.data() + i * row, e.data(), row)) << t.files[i];
  }
  // decoded JPEG rows stay close to the source pattern at full size (JPEG tolerance)
  ASSERT_EQ(sn_dataset_set_decode(de, 40, 24, SN_RESIZE_NEAREST, 0), SN_OK);
  std::vector<uint8_t> full(40 * 24 * 3);
  int64_t r0 = 0; // a_cls/x1.JPG, 40x24 RGB, seed 1
  ASSERT_EQ(sn_dataset_read_rows(de, &r0, 1, full.data(), nullptr), SN_OK);
  auto src = pattern(40, 24, 3, 1);
  int maxd = 0;
  for (size_t i = 0; i < full.size(); ++i)
    maxd = std::max(maxd, std::abs(full[i] - src[i]));
  EXPECT_LE(maxd, 10);
  sn_dataset_close(dr);
  sn_dataset_close(de);
}

TEST(ConvertFolder, Errors) {
  std::string dir = sntest::temp_dir();
  std::string out = dir + "/o.h5";
  sn_convert_options o;
  sn_convert_options_init(&o);
  o.height = o.width = 8;
  EXPECT_EQ(sn_convert_folder((dir + "/none").c_str(), out.c_str(), sn_comm_serial(), &o),
            SN_ERR_IO);
  mkdir((dir + "/empty").c_str(), 0755);
  EXPECT_EQ(sn_convert_folder((dir + "/empty").c_str(), out.c_str(), sn_comm_serial(), &o),
            SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(sn_last_error(), "empty: no image files")) << sn_last_error();
  o.labels_from = SN_LABELS_FOLDERS;
  EXPECT_EQ(sn_convert_folder((dir + "/empty").c_str(), out.c_str(), sn_comm_serial(), &o),
            SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(sn_last_error(), "no class sub-folders")) << sn_last_error();
  Tree t = make_tree(dir);
  mkdir((t.root + "/d_empty").c_str(), 0755);
  EXPECT_EQ(sn_convert_folder(t.root.c_str(), out.c_str(), sn_comm_serial(), &o), SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(sn_last_error(), "class 'd_empty' has no image files")) << sn_last_error();
  rmdir((t.root + "/d_empty").c_str());
  // a corrupt JPEG: raw conversion fails naming the file; nothing is left behind
  auto good = read_all(t.root + "/c_cls/sub/a.jpg");
  good.resize(good.size() - 40); /* the header intact, the scan cut short */
  write_all(t.root + "/c_cls/sub/a.jpg", good);
  EXPECT_EQ(sn_convert_folder(t.root.c_str(), out.c_str(), sn_comm_serial(), &o), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "c_cls/sub/a.jpg: corrupt JPEG")) << sn_last_error();
  EXPECT_FALSE(sntest::file_exists(out));
  EXPECT_FALSE(sntest::file_exists(out + ".partial"));
  // encoded conversion checks headers only and stores the bytes as they are (the reader reports
  // the row later)
  o.encoded = 1;
  ASSERT_EQ(sn_convert_folder(t.root.c_str(), out.c_str(), sn_comm_serial(), &o), SN_OK)
      << sn_last_error();
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(out.c_str(), sn_comm_serial(), &ds), SN_OK);
  std::vector<uint8_t> img(8 * 8 * 3);
  int64_t r = 5;
  EXPECT_EQ(sn_dataset_read_rows(ds, &r, 1, img.data(), nullptr), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "row 5 (c_cls/sub/a.jpg): corrupt JPEG")) << sn_last_error();
  sn_dataset_close(ds);
  // not an image despite the extension
  write_all(t.root + "/b_cls/fake.png", {'n', 'o', 'p', 'e'});
  EXPECT_EQ(sn_convert_folder(t.root.c_str(), out.c_str(), sn_comm_serial(), &o), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "fake.png: not an image (first bytes 6e 6f 70 65)"))
      << sn_last_error();
  o.height = 0;
  EXPECT_EQ(sn_convert_folder(t.root.c_str(), out.c_str(), sn_comm_serial(), &o), SN_ERR_INVALID);
}

} // namespace
