// source_test.cpp - tests of io/source.c (sn_dataset_open_sources): folders with and without
// class sub-folders, lists with a label column, several HDF5 files (repeated, glob, list of
// paths) as one dataset with global rows, and the reader over image files: the same batches for
// any number of decoding threads, bad files skipped with their reasons or failing by name.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "h5util.h"
#include "image.h"
#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

void write_file(const std::string &p, const std::vector<uint8_t> &v) {
  std::ofstream o(p, std::ios::binary);
  o.write((const char *)v.data(), (std::streamsize)v.size());
}

// A small PNG (or JPEG) whose pixels depend on seed.
std::vector<uint8_t> image_file(int seed, bool jpeg = false, int h = 12, int w = 10) {
  std::vector<uint8_t> pix((size_t)h * w * 3);
  for (size_t i = 0; i < pix.size(); ++i)
    pix[i] = (uint8_t)((i * 7 + (size_t)seed * 31) & 0xFF);
  uint8_t *b = nullptr;
  size_t n = 0;
  EXPECT_EQ(jpeg ? sn_image_encode_jpeg(pix.data(), h, w, 3, 90, &b, &n)
                 : sn_image_encode_png(pix.data(), h, w, 3, &b, &n),
            SN_OK);
  std::vector<uint8_t> v(b, b + n);
  free(b);
  return v;
}

sn_status open_paths(const std::vector<std::string> &paths, sn_labels_from lf, sn_dataset **ds) {
  std::vector<const char *> p;
  for (auto &s : paths)
    p.push_back(s.c_str());
  sn_source_options o;
  sn_source_options_init(&o);
  o.labels_from = lf;
  return sn_dataset_open_sources(p.data(), (int)p.size(), &o, nullptr, ds);
}

// A raw dataset file of n rows (4, 5, 3), pixel values from `first` on, labels row % 3.
void raw_file(const std::string &path, int n, int first, int h = 4) {
  std::vector<uint8_t> img((size_t)n * h * 5 * 3);
  for (size_t i = 0; i < img.size(); ++i)
    img[i] = (uint8_t)((first * h * 15 + (int)i) & 0xFF);
  std::vector<int32_t> lab(n);
  for (int i = 0; i < n; ++i)
    lab[i] = (first + i) % 3;
  sn_h5_init();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t d4[4] = {(hsize_t)n, (hsize_t)h, 5, 3}, d1[1] = {(hsize_t)n};
  hid_t s = H5Screate_simple(4, d4, nullptr);
  hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img.data());
  H5Dclose(d);
  H5Sclose(s);
  s = H5Screate_simple(1, d1, nullptr);
  d = H5Dcreate2(f, "labels", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab.data());
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
}

TEST(Source, FoldersFlatAndWithClasses) {
  std::string dir = sntest::temp_dir();
  mkdir((dir + "/flat").c_str(), 0755);
  for (int i = 0; i < 3; ++i)
    write_file(dir + "/flat/p" + std::to_string(i) + (i == 1 ? ".JPG" : ".png"),
               image_file(i, i == 1));
  write_file(dir + "/flat/notes.txt", {'h', 'i'}); // not an image: not listed
  sn_dataset *ds = nullptr;
  ASSERT_EQ(open_paths({dir + "/flat"}, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_dataset_get_info(ds)->n, 3);
  EXPECT_EQ(sn_dataset_get_info(ds)->has_labels, 0);
  EXPECT_EQ(sn_dataset_get_info(ds)->encoded, 1);
  sn_dataset_close(ds);

  for (const char *c : {"/tree", "/tree/b", "/tree/a", "/tree/a/deeper"})
    mkdir((dir + c).c_str(), 0755);
  write_file(dir + "/tree/a/0.png", image_file(10));
  write_file(dir + "/tree/a/deeper/1.png", image_file(11));
  write_file(dir + "/tree/b/0.jpeg", image_file(12, true));
  ASSERT_EQ(open_paths({dir + "/tree"}, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
  const sn_dataset_info *in = sn_dataset_get_info(ds);
  ASSERT_EQ(in->n, 3);
  ASSERT_EQ(in->has_labels, 1);
  EXPECT_EQ(in->num_classes, 2);
  const int32_t *lab = sn_dataset_labels(ds);
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{0, 0, 1}));
  EXPECT_STREQ(sn_dataset_class_name(ds, 1), "b");
  char buf[256];
  sn_dataset_describe(ds, buf, sizeof buf);
  EXPECT_TRUE(has(buf, "labels from folders")) << buf;
  sn_dataset_close(ds);

  ASSERT_EQ(open_paths({dir + "/tree"}, SN_LABELS_NONE, &ds), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_dataset_get_info(ds)->n, 3);
  EXPECT_EQ(sn_dataset_get_info(ds)->has_labels, 0);
  sn_dataset_close(ds);

  // an empty class folder with labels from folders names the class
  mkdir((dir + "/tree/c").c_str(), 0755);
  EXPECT_NE(open_paths({dir + "/tree"}, SN_LABELS_FOLDERS, &ds), SN_OK);
  EXPECT_TRUE(has(sn_last_error(), "class 'c' has no image files")) << sn_last_error();
  mkdir((dir + "/empty").c_str(), 0755);
  EXPECT_EQ(open_paths({dir + "/empty"}, SN_LABELS_AUTO, &ds), SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(sn_last_error(), "no image files")) << sn_last_error();
}

TEST(Source, ListsWithLabels) {
  std::string dir = sntest::temp_dir();
  for (int i = 0; i < 3; ++i)
    write_file(dir + "/i" + std::to_string(i) + ".png", image_file(i));
  {
    std::ofstream l(dir + "/tab.txt");
    l << "# a comment\ni2.png\t1\n\ni0.png\t0\ni1.png\t2\n";
  }
  sn_dataset *ds = nullptr;
  ASSERT_EQ(open_paths({dir + "/tab.txt"}, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_dataset_get_info(ds)->n, 3);
  const int32_t *lab = sn_dataset_labels(ds);
  ASSERT_NE(lab, nullptr);
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{1, 0, 2}));
  sn_dataset_close(ds);
  {
    std::ofstream l(dir + "/plain.txt");
    l << "i0.png\ni1.png\n";
  }
  ASSERT_EQ(open_paths({dir + "/plain.txt"}, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_dataset_get_info(ds)->has_labels, 0);
  sn_dataset_close(ds);
  {
    std::ofstream l(dir + "/mixed.txt");
    l << "i0.png\t0\ni1.png\n";
  }
  EXPECT_EQ(open_paths({dir + "/mixed.txt"}, SN_LABELS_AUTO, &ds), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "line 2 has no tab")) << sn_last_error();
}

TEST(Source, SeveralHdf5FilesAreOneDataset) {
  std::string dir = sntest::temp_dir();
  raw_file(dir + "/s0.h5", 4, 0);
  raw_file(dir + "/s1.h5", 1, 4);
  raw_file(dir + "/s2.h5", 6, 5);
  raw_file(dir + "/all.h5", 11, 0);
  {
    std::ofstream l(dir + "/shards.txt");
    l << "s0.h5\ns1.h5\ns2.h5\n";
  }
  sn_dataset *all = nullptr;
  ASSERT_EQ(open_paths({dir + "/all.h5"}, SN_LABELS_AUTO, &all), SN_OK) << sn_last_error();
  const std::vector<int64_t> rows = {10, 3, 4, 5, 0, 9};
  std::vector<uint8_t> want(rows.size() * 60), got(want.size());
  ASSERT_EQ(sn_dataset_read_rows(all, rows.data(), (int)rows.size(), want.data(), nullptr), SN_OK);
  const std::vector<std::vector<std::string>> forms = {
      {dir + "/s0.h5", dir + "/s1.h5", dir + "/s2.h5"}, {dir + "/s?.h5"}, {dir + "/shards.txt"}};
  for (const auto &paths : forms) {
    sn_dataset *ds = nullptr;
    ASSERT_EQ(open_paths(paths, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_dataset_get_info(ds)->n, 11);
    std::fill(got.begin(), got.end(), 0);
    ASSERT_EQ(sn_dataset_read_rows(ds, rows.data(), (int)rows.size(), got.data(), nullptr), SN_OK)
        << sn_last_error();
    EXPECT_EQ(got, want) << paths[0];
    const int32_t *a = sn_dataset_labels(all), *b = sn_dataset_labels(ds);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(std::vector<int32_t>(a, a + 11), std::vector<int32_t>(b, b + 11));
    sn_dataset_close(ds);
  }
  sn_dataset_close(all);
  // files that do not agree, and a mix of kinds
  raw_file(dir + "/tall.h5", 2, 0, 6);
  sn_dataset *ds = nullptr;
  EXPECT_EQ(open_paths({dir + "/s0.h5", dir + "/tall.h5"}, SN_LABELS_AUTO, &ds), SN_ERR_SHAPE);
  EXPECT_TRUE(has(sn_last_error(), "tall.h5")) << sn_last_error();
  write_file(dir + "/x.png", image_file(1));
  EXPECT_EQ(open_paths({dir + "/s0.h5", dir + "/x.png"}, SN_LABELS_AUTO, &ds), SN_ERR_INVALID);
  EXPECT_EQ(open_paths({dir + "/nothere_*.h5"}, SN_LABELS_AUTO, &ds), SN_ERR_IO);
}

struct Pass {
  std::vector<float> x;
  std::vector<int64_t> rows, skipped;
  std::vector<std::string> why;
};

// Every batch of a reader over all rows of ds.
sn_status read_all(sn_dataset *ds, int threads, sn_bad_images bad, Pass *p) {
  const int64_t n = sn_dataset_get_info(ds)->n;
  std::vector<int64_t> rows(n);
  for (int64_t i = 0; i < n; ++i)
    rows[i] = i;
  sn_reader_options o;
  sn_reader_options_init(&o);
  o.batch = 3;
  o.preprocess = SN_PRE_UNIT;
  o.threads = threads;
  o.bad_images = bad;
  sn_reader *r = nullptr;
  sn_status s = sn_reader_create(ds, rows.data(), n, &o, &r);
  if (s != SN_OK) return s;
  const size_t row = 8 * 8 * 3;
  for (;;) {
    sn_batch b;
    s = sn_reader_next_batch(r, &b);
    if (s != SN_OK || b.inputs == 0) break;
    p->x.insert(p->x.end(), b.x, b.x + (size_t)b.count * row);
    p->rows.insert(p->rows.end(), b.rows, b.rows + b.count);
    for (int k = 0; k < b.skipped; ++k) {
      p->skipped.push_back(b.skipped_rows[k]);
      p->why.push_back(b.skipped_reasons[k]);
    }
  }
  EXPECT_EQ(sn_reader_bad_input(r), s != SN_OK);
  sn_reader_destroy(r);
  return s;
}

TEST(Source, ReaderThreadsAndBadFiles) {
  std::string dir = sntest::temp_dir();
  for (int i = 0; i < 11; ++i)
    write_file(dir + "/" + std::to_string(10 + i) + ".jpg", image_file(i, i % 2, 20 + i, 17));
  write_file(dir + "/13.jpg", {});                        // empty
  write_file(dir + "/16.jpg", {'n', 'o', 't', ' ', 'a'}); // not an image
  std::vector<uint8_t> cut = image_file(5, true, 40, 40);
  cut.resize(cut.size() / 2);
  write_file(dir + "/19.jpg", cut); // truncated
  Pass ref;
  for (int threads : {1, 3}) {
    sn_dataset *ds = nullptr;
    ASSERT_EQ(open_paths({dir}, SN_LABELS_AUTO, &ds), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_dataset_set_decode(ds, 8, 8, SN_RESIZE_BILINEAR, 0), SN_OK) << sn_last_error();
    Pass p;
    ASSERT_EQ(read_all(ds, threads, SN_BAD_SKIP, &p), SN_OK) << sn_last_error();
    EXPECT_EQ(p.skipped, (std::vector<int64_t>{3, 6, 9}));
    ASSERT_EQ(p.why.size(), 3u);
    EXPECT_TRUE(has(p.why[0], "empty")) << p.why[0];
    EXPECT_TRUE(has(p.why[1], "not an image")) << p.why[1];
    EXPECT_TRUE(has(p.why[2], "JPEG")) << p.why[2];
    EXPECT_EQ(p.rows, (std::vector<int64_t>{0, 1, 2, 4, 5, 7, 8, 10}));
    if (threads == 1)
      ref = p;
    else
      EXPECT_TRUE(p.x == ref.x) << "batches differ with " << threads << " threads";
    Pass f;
    EXPECT_EQ(read_all(ds, threads, SN_BAD_FAIL, &f), SN_ERR_FORMAT);
    EXPECT_TRUE(has(sn_last_error(), "13.jpg")) << sn_last_error();
    sn_dataset_close(ds);
  }
}

} // namespace
