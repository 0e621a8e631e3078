// h5util_test.cpp - tests of io/h5util.c: checked opening, float reads, string attributes in both
// h5py encodings, atomic creation, and the message every function sets on failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "h5util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

void write_text(const std::string &path, const std::string &text) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// A fresh HDF5 file at dir/name; the caller closes it.
hid_t create_file(const std::string &path) {
  sn_h5_init();
  return H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

void write_f64(hid_t loc, const char *name, std::vector<hsize_t> dims, const double *data) {
  hid_t s = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
  hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(s);
}

} // namespace

TEST(H5Util, OpenErrors) {
  const std::string dir = sntest::temp_dir();
  hid_t f;
  const std::string missing = dir + "/missing.h5";
  EXPECT_EQ(sn_h5_open_read(missing.c_str(), &f), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + missing));
  EXPECT_EQ(sn_h5_open_read(dir.c_str(), &f), SN_ERR_IO);

  const std::string text = dir + "/text.h5";
  write_text(text, "this is not HDF5 at all\n");
  EXPECT_EQ(sn_h5_open_read(text.c_str(), &f), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "file " + text + ": not an HDF5 file")) << sn_last_error();

  const std::string empty = dir + "/empty.h5";
  write_text(empty, "");
  EXPECT_EQ(sn_h5_open_read(empty.c_str(), &f), SN_ERR_FORMAT);

  // A valid file cut in half: the signature is there, the rest is not.
  const std::string good = dir + "/good.h5";
  hid_t w = create_file(good);
  std::vector<float> v(4096, 1.5f);
  int64_t dims[1] = {4096};
  ASSERT_EQ(sn_h5_write_f32(w, "x", good.c_str(), 1, dims, v.data()), SN_OK);
  H5Fclose(w);
  ASSERT_EQ(sn_h5_open_read(good.c_str(), &f), SN_OK);
  H5Fclose(f);
  FILE *in = std::fopen(good.c_str(), "rb");
  std::vector<char> bytes(1 << 16);
  size_t n = std::fread(bytes.data(), 1, bytes.size(), in);
  std::fclose(in);
  const std::string cut = dir + "/cut.h5";
  write_text(cut, std::string(bytes.data(), n / 2));
  sn_status st = sn_h5_open_read(cut.c_str(), &f);
  if (st == SN_OK) { // HDF5 may open it; then reading must fail cleanly.
    float buf[4096];
    EXPECT_NE(sn_h5_read_f32(f, "x", cut.c_str(), 1, dims, buf), SN_OK);
    H5Fclose(f);
  } else {
    EXPECT_EQ(st, SN_ERR_FORMAT);
    EXPECT_TRUE(contains(sn_last_error(), "not an HDF5 file")) << sn_last_error();
  }
}

TEST(H5Util, ReadFloatChecksShapeAndType) {
  const std::string dir = sntest::temp_dir();
  const std::string p = dir + "/f.h5";
  hid_t w = create_file(p);
  std::vector<float> v = sntest::randn(24, 1);
  int64_t d3[3] = {2, 3, 4};
  ASSERT_EQ(sn_h5_write_f32(w, "a/b.c/w", p.c_str(), 3, d3, v.data()), SN_OK);
  double dv[6] = {1, 2, 3, 4.5, -5, 1e-3};
  write_f64(w, "dbl", {2, 3}, dv);
  int iv[2] = {1, 2};
  hsize_t id[1] = {2};
  hid_t s = H5Screate_simple(1, id, nullptr);
  hid_t di = H5Dcreate2(w, "ints", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(di, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, iv);
  H5Dclose(di);
  H5Sclose(s);
  hsize_t d5[5] = {1, 1, 1, 1, 2};
  s = H5Screate_simple(5, d5, nullptr);
  di = H5Dcreate2(w, "rank5", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dclose(di);
  H5Sclose(s);
  H5Fclose(w);

  hid_t f;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &f), SN_OK);
  EXPECT_TRUE(sn_h5_exists(f, "a/b.c/w"));
  EXPECT_TRUE(sn_h5_exists(f, "/a/b.c/w"));
  EXPECT_TRUE(sn_h5_is_dataset(f, "a/b.c/w"));
  EXPECT_TRUE(sn_h5_is_group(f, "a/b.c"));
  EXPECT_FALSE(sn_h5_is_group(f, "a/b.c/w"));
  EXPECT_FALSE(sn_h5_exists(f, "a/zz/w"));
  EXPECT_FALSE(sn_h5_exists(f, "dbl/below"));

  int nd;
  int64_t dims[SN_H5_MAX_RANK];
  ASSERT_EQ(sn_h5_dataset_shape(f, "a/b.c/w", p.c_str(), &nd, dims), SN_OK);
  EXPECT_EQ(nd, 3);
  EXPECT_EQ(dims[2], 4);
  std::vector<float> r(24);
  ASSERT_EQ(sn_h5_read_f32(f, "a/b.c/w", p.c_str(), 3, d3, r.data()), SN_OK);
  EXPECT_EQ(std::memcmp(r.data(), v.data(), 24 * sizeof(float)), 0);

  int64_t bad[3] = {2, 4, 3};
  EXPECT_EQ(sn_h5_read_f32(f, "a/b.c/w", p.c_str(), 3, bad, r.data()), SN_ERR_SHAPE);
  EXPECT_TRUE(contains(sn_last_error(), "(2,3,4)")) << sn_last_error();
  EXPECT_TRUE(contains(sn_last_error(), "(2,4,3)")) << sn_last_error();
  EXPECT_TRUE(contains(sn_last_error(), "a/b.c/w")) << sn_last_error();

  int64_t d23[2] = {2, 3};
  float fd[6];
  ASSERT_EQ(sn_h5_read_f32(f, "dbl", p.c_str(), 2, d23, fd), SN_OK);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(fd[i], (float)dv[i]);

  int64_t d2[1] = {2};
  EXPECT_EQ(sn_h5_read_f32(f, "ints", p.c_str(), 1, d2, fd), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "integer")) << sn_last_error();
  EXPECT_EQ(sn_h5_dataset_shape(f, "rank5", p.c_str(), &nd, dims), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "rank 5")) << sn_last_error();
  EXPECT_EQ(sn_h5_dataset_shape(f, "nope", p.c_str(), &nd, dims), SN_ERR_NOTFOUND);
  EXPECT_EQ(sn_h5_dataset_shape(f, "a", p.c_str(), &nd, dims), SN_ERR_NOTFOUND);
  H5Fclose(f);
}

namespace {
// String attributes written as h5py does, fixed = 1: null-padded fixed-length, 0: variable-length.
void check_strings(int fixed) {
  const std::string dir = sntest::temp_dir();
  const std::string p = dir + "/s.h5";
  hid_t w = create_file(p);
  const char *names[] = {"input_1", "conv1_pad", "conv1_conv", "a_much_longer_layer_name_here"};
  ASSERT_EQ(sn_h5_write_str_array_attr(w, "layer_names", names, 4, fixed, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_array_attr(w, "empty_strs", names, 0, fixed, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_array_attr(w, "split0", names, 2, fixed, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_array_attr(w, "split1", names + 2, 2, fixed, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_array_attr(w, "one", names + 3, 1, fixed, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_attr(w, "arch", "resnet18", p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_int_attr(w, "classes", 1000, p.c_str()), SN_OK);
  // Keras writes weight_names of weightless layers as an empty float64 array.
  hsize_t zero = 0;
  hid_t s = H5Screate_simple(1, &zero, nullptr);
  hid_t a = H5Acreate2(w, "weight_names", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  H5Aclose(a);
  H5Sclose(s);
  // A scalar fixed-length, space-padded string.
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 8);
  H5Tset_strpad(t, H5T_STR_SPACEPAD);
  s = H5Screate(H5S_SCALAR);
  a = H5Acreate2(w, "padded", t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, "keras   ");
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  H5Fclose(w);

  hid_t f;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &f), SN_OK);
  char **strs;
  int n;
  ASSERT_EQ(sn_h5_read_str_array_attr(f, "layer_names", p.c_str(), "/", &strs, &n), SN_OK);
  ASSERT_EQ(n, 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_STREQ(strs[i], names[i]);
  sn_h5_free_strs(strs, n);
  ASSERT_EQ(sn_h5_read_str_array_attr(f, "empty_strs", p.c_str(), "/", &strs, &n), SN_OK);
  EXPECT_EQ(n, 0);
  sn_h5_free_strs(strs, n);
  ASSERT_EQ(sn_h5_read_str_array_attr(f, "weight_names", p.c_str(), "/", &strs, &n), SN_OK);
  EXPECT_EQ(n, 0);
  sn_h5_free_strs(strs, n);
  ASSERT_EQ(sn_h5_read_str_array_attr(f, "split", p.c_str(), "/", &strs, &n), SN_OK);
  ASSERT_EQ(n, 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_STREQ(strs[i], names[i]);
  sn_h5_free_strs(strs, n);
  EXPECT_EQ(sn_h5_read_str_array_attr(f, "absent", p.c_str(), "/", &strs, &n), SN_ERR_NOTFOUND);
  EXPECT_TRUE(contains(sn_last_error(), "absent")) << sn_last_error();
  EXPECT_EQ(sn_h5_read_str_array_attr(f, "classes", p.c_str(), "/", &strs, &n), SN_ERR_FORMAT);

  char *str;
  ASSERT_EQ(sn_h5_read_str_attr(f, "arch", p.c_str(), "/", &str), SN_OK);
  EXPECT_STREQ(str, "resnet18");
  free(str);
  ASSERT_EQ(sn_h5_read_str_attr(f, "one", p.c_str(), "/", &str), SN_OK);
  EXPECT_STREQ(str, names[3]);
  free(str);
  ASSERT_EQ(sn_h5_read_str_attr(f, "padded", p.c_str(), "/", &str), SN_OK);
  EXPECT_STREQ(str, "keras");
  free(str);
  EXPECT_EQ(sn_h5_read_str_attr(f, "layer_names", p.c_str(), "/", &str), SN_ERR_FORMAT);
  EXPECT_EQ(sn_h5_read_str_attr(f, "nothing", p.c_str(), "/", &str), SN_ERR_NOTFOUND);
  int64_t v = 0;
  ASSERT_EQ(sn_h5_read_int_attr(f, "classes", p.c_str(), "/", &v), SN_OK);
  EXPECT_EQ(v, 1000);
  EXPECT_EQ(sn_h5_read_int_attr(f, "arch", p.c_str(), "/", &v), SN_ERR_FORMAT);
  H5Fclose(f);
}

} // namespace

TEST(H5Util, StringsVariableLength) { check_strings(0); }
TEST(H5Util, StringsFixedLength) { check_strings(1); }

// Temporaries of dead processes (a kill during a save) are removed by the next save of the same
// path; those of live processes and names that are not PATH.tmp.<pid> are left alone.
TEST(H5Util, AtomicCreateRemovesStaleTemporaries) {
  const std::string dir = sntest::temp_dir();
  const std::string p = dir + "/ck.h5";
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child); // reaped: that pid no longer exists
  const std::string dead = p + ".tmp." + std::to_string((long)child);
  const std::string live = p + ".tmp." + std::to_string((long)getppid());
  const std::string other = p + ".tmp.x1",
                    other_base = dir + "/ck.h5x.tmp." + std::to_string((long)child);
  for (const std::string &f : {dead, live, other, other_base})
    fclose(fopen(f.c_str(), "w"));
  char tmp[4096];
  hid_t f;
  ASSERT_EQ(sn_h5_create_atomic(p.c_str(), &f, tmp, sizeof tmp), SN_OK);
  ASSERT_EQ(sn_h5_finish_atomic(f, tmp, p.c_str(), 1), SN_OK);
  EXPECT_FALSE(sntest::file_exists(dead));
  EXPECT_TRUE(sntest::file_exists(live));
  EXPECT_TRUE(sntest::file_exists(other));
  EXPECT_TRUE(sntest::file_exists(other_base));
  EXPECT_TRUE(sntest::file_exists(p));
}

TEST(H5Util, AtomicCreate) {
  const std::string dir = sntest::temp_dir();
  const std::string p = dir + "/out.h5";
  char tmp[4096];
  hid_t f;
  ASSERT_EQ(sn_h5_create_atomic(p.c_str(), &f, tmp, sizeof tmp), SN_OK);
  EXPECT_EQ(std::string(tmp), p + ".tmp." + std::to_string((long)getpid()));
  EXPECT_TRUE(sntest::file_exists(tmp));
  EXPECT_FALSE(sntest::file_exists(p));
  ASSERT_EQ(sn_h5_write_str_attr(f, "v", "first", p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_finish_atomic(f, tmp, p.c_str(), 1), SN_OK);
  EXPECT_TRUE(sntest::file_exists(p));
  EXPECT_FALSE(sntest::file_exists(tmp));

  // A failed save leaves the old file untouched and removes the temporary.
  ASSERT_EQ(sn_h5_create_atomic(p.c_str(), &f, tmp, sizeof tmp), SN_OK);
  ASSERT_EQ(sn_h5_write_str_attr(f, "v", "second", p.c_str()), SN_OK);
  EXPECT_EQ(sn_h5_finish_atomic(f, tmp, p.c_str(), 0), SN_OK);
  EXPECT_FALSE(sntest::file_exists(tmp));
  hid_t r;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &r), SN_OK);
  char *s;
  ASSERT_EQ(sn_h5_read_str_attr(r, "v", p.c_str(), "/", &s), SN_OK);
  EXPECT_STREQ(s, "first");
  free(s);
  H5Fclose(r);

  const std::string bad = dir + "/no/such/dir/out.h5";
  EXPECT_EQ(sn_h5_create_atomic(bad.c_str(), &f, tmp, sizeof tmp), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), bad)) << sn_last_error();
}

TEST(H5Util, ListIsSortedForCompactAndDenseGroups) {
  const std::string dir = sntest::temp_dir(), p = dir + "/l.h5";
  hid_t w = create_file(p);
  // 40 links exceed the compact-storage threshold (8): the group switches to dense storage.
  hid_t fapl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_link_creation_order(fapl, H5P_CRT_ORDER_TRACKED);
  hid_t g = H5Gcreate2(w, "g", H5P_DEFAULT, fapl, H5P_DEFAULT);
  std::vector<std::string> want;
  for (int i = 39; i >= 0; --i) {
    std::string n = "layer" + std::to_string(i) + (i % 3 ? ".weight" : ".bias");
    float v = (float)i;
    int64_t d[1] = {1};
    ASSERT_EQ(sn_h5_write_f32(g, n.c_str(), p.c_str(), 1, d, &v), SN_OK);
    want.push_back(n);
  }
  H5Gclose(g);
  H5Pclose(fapl);
  H5Fclose(w);
  std::sort(want.begin(), want.end());
  hid_t f;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &f), SN_OK);
  char **names;
  int n;
  ASSERT_EQ(sn_h5_list(f, "g", p.c_str(), &names, &n), SN_OK);
  ASSERT_EQ(n, 40);
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(want[i], names[i]);
  sn_h5_free_strs(names, n);
  EXPECT_EQ(sn_h5_list(f, "nope", p.c_str(), &names, &n), SN_ERR_NOTFOUND);
  H5Fclose(f);
}

TEST(H5Util, RowBlocksAndStringDatasetsRoundTrip) {
  const std::string dir = sntest::temp_dir(), p = dir + "/rows.h5";
  hid_t w = create_file(p);
  const hsize_t dims[2] = {5, 3};
  hid_t d;
  ASSERT_EQ(sn_h5_create_dataset(w, "g/x", H5T_STD_I32LE, 2, dims, 2, 1, p.c_str(), &d), SN_OK);
  const int32_t a[6] = {0, 1, 2, 3, 4, 5}, b[9] = {6, 7, 8, 9, 10, 11, 12, 13, 14};
  hid_t dxpl = sn_h5_dxpl(sn_comm_serial(), p.c_str());
  ASSERT_GE(dxpl, 0);
  ASSERT_EQ(sn_h5_write_rows(d, H5T_NATIVE_INT32, 0, 2, a, dxpl, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_rows(d, H5T_NATIVE_INT32, 5, 0, nullptr, dxpl, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_rows(d, H5T_NATIVE_INT32, 2, 3, b, dxpl, p.c_str()), SN_OK);
  H5Pclose(dxpl);
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t chunk[2] = {0, 0};
  EXPECT_EQ(H5Pget_chunk(dcpl, 2, chunk), 2);
  EXPECT_EQ(chunk[0], 2u);
  EXPECT_EQ(chunk[1], 3u);
  H5Pclose(dcpl);
  int32_t back[15];
  ASSERT_GE(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
  for (int i = 0; i < 15; ++i)
    EXPECT_EQ(back[i], i);
  H5Dclose(d);
  const char *names[] = {"cat", "", "a longer name"};
  ASSERT_EQ(sn_h5_write_str_dataset(w, "names", names, 3, sn_comm_serial(), p.c_str()), SN_OK);
  H5Fclose(w);

  hid_t f;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &f), SN_OK);
  char **s = nullptr;
  int64_t n = 0;
  ASSERT_EQ(sn_h5_read_str_dataset(f, "names", p.c_str(), &s, &n), SN_OK);
  ASSERT_EQ(n, 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_STREQ(s[i], names[i]);
  sn_h5_free_strs(s, n);
  H5Fclose(f);
}

// Every function that can fail says so in one line naming the file and the dataset or attribute.
TEST(H5Util, FailuresNameTheFileAndTheObject) {
  const std::string dir = sntest::temp_dir(), p = dir + "/fail.h5";
  hid_t w = create_file(p);
  const hsize_t dims[1] = {4};
  hid_t d;
  ASSERT_EQ(sn_h5_create_dataset(w, "rows", H5T_STD_I64LE, 1, dims, 4, 0, p.c_str(), &d), SN_OK);
  const int64_t v[2] = {1, 2};
  // Rows past the end of the dataset.
  EXPECT_EQ(sn_h5_write_rows(d, H5T_NATIVE_INT64, 3, 2, v, H5P_DEFAULT, p.c_str()), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /rows: cannot write rows [3, 5)"))
      << sn_last_error();
  H5Dclose(d);
  // A dataset that exists already.
  hid_t d2 = 0;
  EXPECT_EQ(sn_h5_create_dataset(w, "rows", H5T_STD_I64LE, 1, dims, 4, 0, p.c_str(), &d2),
            SN_ERR_IO);
  EXPECT_LT(d2, 0);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /rows: cannot create"))
      << sn_last_error();
  EXPECT_EQ(sn_h5_create_dataset(w, "r5", H5T_STD_I64LE, 5, dims, 4, 0, p.c_str(), &d2),
            SN_ERR_INVALID);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /r5: rank 5")) << sn_last_error();
  const char *names[] = {"a", "b"};
  ASSERT_EQ(sn_h5_write_str_dataset(w, "names", names, 2, sn_comm_serial(), p.c_str()), SN_OK);
  EXPECT_EQ(sn_h5_write_str_dataset(w, "names", names, 2, sn_comm_serial(), p.c_str()), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /names: cannot create"))
      << sn_last_error();
  EXPECT_EQ(sn_h5_write_str_dataset(w, "none", names, -1, sn_comm_serial(), p.c_str()),
            SN_ERR_INVALID);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /none")) << sn_last_error();
  ASSERT_EQ(sn_h5_write_str_dataset(w, "empty", names, 0, sn_comm_serial(), p.c_str()), SN_OK)
      << sn_last_error();
  // A 2-D string dataset.
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 4);
  const hsize_t d22[2] = {2, 2};
  hid_t sp = H5Screate_simple(2, d22, nullptr);
  hid_t ds = H5Dcreate2(w, "grid", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  H5Dclose(ds);
  H5Sclose(sp);
  H5Tclose(t);
  ASSERT_EQ(sn_h5_write_int_attr(w, "count", 3, p.c_str()), SN_OK);
  ASSERT_EQ(sn_h5_write_str_attr(w, "label", "x", p.c_str()), SN_OK);
  H5Fclose(w);

  hid_t f;
  ASSERT_EQ(sn_h5_open_read(p.c_str(), &f), SN_OK);
  char **s = nullptr;
  int64_t n = 0;
  EXPECT_EQ(sn_h5_read_str_dataset(f, "nope", p.c_str(), &s, &n), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /nope is not a dataset"))
      << sn_last_error();
  EXPECT_EQ(sn_h5_read_str_dataset(f, "rows", p.c_str(), &s, &n), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /rows does not hold strings"))
      << sn_last_error();
  EXPECT_EQ(sn_h5_read_str_dataset(f, "grid", p.c_str(), &s, &n), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset /grid has rank 2"))
      << sn_last_error();
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(n, 0);
  // The int attribute reader: missing (it used to set no message) and of another type.
  int64_t x = 0;
  EXPECT_EQ(sn_h5_read_int_attr(f, "complete", p.c_str(), "/", &x), SN_ERR_NOTFOUND);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /: no attribute complete"))
      << sn_last_error();
  EXPECT_EQ(sn_h5_read_int_attr(f, "label", p.c_str(), "/", &x), SN_ERR_FORMAT);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /: attribute label: expected one integer"))
      << sn_last_error();
  // Attribute writers on a read-only file name the object the attribute was meant for.
  EXPECT_EQ(sn_h5_write_int_attr(f, "count", 4, p.c_str()), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /: attribute count: write failed"))
      << sn_last_error();
  hid_t r = H5Dopen2(f, "rows", H5P_DEFAULT);
  ASSERT_GE(r, 0);
  EXPECT_EQ(sn_h5_write_str_attr(r, "unit", "px", p.c_str()), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /rows: attribute unit: write failed"))
      << sn_last_error();
  const char *two[] = {"a", "b"};
  EXPECT_EQ(sn_h5_write_str_array_attr(r, "tags", two, 2, 1, p.c_str()), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": /rows: attribute tags: write failed"))
      << sn_last_error();
  // A float write into a read-only file.
  float one = 1.0f;
  int64_t d1[1] = {1};
  EXPECT_EQ(sn_h5_write_f32(f, "w", p.c_str(), 1, d1, &one), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), "file " + p + ": dataset w: write failed"))
      << sn_last_error();
  H5Dclose(r);
  H5Fclose(f);
}
