// sanity_test.cpp - tests of io/sanity.c: each sanity warning of a training setup appears alone
// when its condition holds, names the file or the sizes, and none appears for a sound setup.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "h5util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

// A raw dataset of n 8x8x1 images with the given labels and, if names is not empty, /classes.
std::string make_data(const std::vector<int32_t> &labels, const std::vector<const char *> &names) {
  std::string path = sntest::temp_dir() + "/data.h5";
  const hsize_t n = labels.size();
  std::vector<uint8_t> img(n * 64, 7);
  sn_h5_lock();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t di[4] = {n, 8, 8, 1};
  hid_t s = H5Screate_simple(4, di, nullptr);
  hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img.data());
  H5Dclose(d);
  H5Sclose(s);
  s = H5Screate_simple(1, &n, nullptr);
  d = H5Dcreate2(f, "labels", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
  H5Dclose(d);
  H5Sclose(s);
  if (!names.empty()) {
    hsize_t k = names.size();
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    s = H5Screate_simple(1, &k, nullptr);
    d = H5Dcreate2(f, "classes", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data());
    H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
  }
  H5Fclose(f);
  sn_h5_unlock();
  return path;
}

sn_train_recipe recipe(const char *arch, int classes, int side, int64_t batch) {
  sn_train_recipe r;
  sn_train_recipe_init(&r);
  snprintf(r.arch, sizeof r.arch, "%s", arch);
  r.classes = classes;
  r.height = r.width = side;
  r.channels = 1;
  r.global_batch = batch;
  return r;
}

std::vector<std::string> warnings(const sn_train_recipe &r, const std::string &path) {
  sn_dataset *ds = nullptr;
  EXPECT_EQ(sn_dataset_open(path.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  sn_warnings w;
  EXPECT_EQ(sn_train_warnings(&r, ds, &w), SN_OK) << sn_last_error();
  sn_dataset_close(ds);
  return std::vector<std::string>(w.text, w.text + w.n);
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST(Sanity, SoundSetupHasNone) {
  std::string p = make_data({0, 1, 2, 0, 1, 2, 0, 1}, {});
  EXPECT_TRUE(warnings(recipe("lenet", 3, 28, 4), p).empty());
  EXPECT_TRUE(warnings(recipe("resnet20", 3, 32, 8), p).empty());
  EXPECT_TRUE(warnings(recipe("resnet18", 3, 112, 8), p).empty()); // half the design size
}

TEST(Sanity, OneClass) {
  std::string p = make_data({2, 2, 2, 2}, {"cat", "dog", "bird"});
  auto w = warnings(recipe("lenet", 3, 28, 4), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "every training label is class 2 (bird)")) << w[0];
  EXPECT_TRUE(has(w[0], p)) << w[0];
  w = warnings(recipe("lenet", 1, 28, 2), make_data({0, 0}, {}));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "every training label is class 0:")) << w[0];
}

TEST(Sanity, ClassesWithoutExamples) {
  std::string p = make_data({0, 1, 3, 0, 1, 3, 0, 1}, {});
  auto w = warnings(recipe("lenet", 12, 28, 8), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "9 of the model's 12 classes have no training example (classes 2, 4, 5, "
                        "6, 7, 8, ...)"))
      << w[0];
  w = warnings(recipe("lenet", 4, 28, 8), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "1 of the model's 4 classes have no training example (class 2)")) << w[0];
}

TEST(Sanity, BatchLargerThanTheDataset) {
  std::string p = make_data({0, 1, 2, 0, 1, 2}, {});
  auto w = warnings(recipe("lenet", 3, 28, 7), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "global batch 7 is larger than the 6 rows of " + p)) << w[0];
  EXPECT_TRUE(warnings(recipe("lenet", 3, 28, 6), p).empty());
}

TEST(Sanity, InputFarFromTheDesignSize) {
  std::string p = make_data({0, 1, 2, 0}, {});
  auto w = warnings(recipe("resnet20", 3, 224, 4), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "input 224x224 is far from resnet20's design size 32x32")) << w[0];
  w = warnings(recipe("resnet50", 3, 64, 4), p);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(has(w[0], "input 64x64 is far from resnet50's design size 224x224")) << w[0];
  EXPECT_TRUE(warnings(recipe("resnet20", 3, 64, 4), p).empty()); // exactly 2x
  EXPECT_EQ(warnings(recipe("resnet20", 3, 65, 4), p).size(), 1u);
}

TEST(Sanity, AllAtOnce) {
  std::string p = make_data({0, 0, 0, 0}, {});
  auto w = warnings(recipe("resnet20", 1, 224, 128), p);
  EXPECT_EQ(w.size(), 3u);
}

} // namespace
