// scales_test.cpp - scales files (io/scales.c): round trip with provenance, the refusals (missing
// file, not a scales file, another architecture, a layer the net lacks, a bad value), and that a
// refused file changes nothing.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

sn_net *make(const char *arch) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.base_width = 4;
  cfg.classes = 10;
  cfg.height = cfg.width = 32;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  return net;
}

// Sets a distinct threshold on every scale (signed input on the first).
void fill(sn_net *net) {
  for (int i = 0; i < sn_net_num_act_scales(net); ++i) {
    sn_act_scale a;
    ASSERT_EQ(sn_net_act_scale(net, i, &a), SN_OK);
    ASSERT_EQ(sn_net_set_act_scale(net, a.layer, 1.0f + 0.25f * i, i == 0 ? -2.f : 0.f, 3.f + i),
              SN_OK);
  }
}

sn_scales_info info() {
  sn_scales_info in;
  std::memset(&in, 0, sizeof in);
  std::snprintf(in.weights, sizeof in.weights, "w.h5");
  std::snprintf(in.weights_md5, sizeof in.weights_md5, "0123456789abcdef0123456789abcdef");
  std::snprintf(in.data, sizeof in.data, "calib.h5");
  std::snprintf(in.preprocess, sizeof in.preprocess, "torch");
  std::snprintf(in.method, sizeof in.method, "mse");
  in.rows = 512;
  in.ranks = 2;
  return in;
}

TEST(ScalesFile, RoundTripWithProvenance) {
  sn_net *a = make("resnet20"), *b = make("resnet20");
  ASSERT_NO_FATAL_FAILURE(fill(a));
  const std::string path = sntest::temp_dir() + "/scales.h5";
  const sn_scales_info in = info();
  ASSERT_EQ(sn_scales_save(a, path.c_str(), &in), SN_OK) << sn_last_error();
  sn_scales_info out;
  ASSERT_EQ(sn_scales_load(b, path.c_str(), &out), SN_OK) << sn_last_error();
  EXPECT_STREQ(out.arch, "resnet20");
  EXPECT_STREQ(out.weights, "w.h5");
  EXPECT_STREQ(out.weights_md5, in.weights_md5);
  EXPECT_STREQ(out.data, "calib.h5");
  EXPECT_STREQ(out.preprocess, "torch");
  EXPECT_STREQ(out.method, "mse");
  EXPECT_EQ(out.rows, 512);
  EXPECT_EQ(out.ranks, 2);
  EXPECT_STREQ(out.version, SN_VERSION);
  EXPECT_EQ(std::strlen(out.created), 20u); // 2026-01-01T00:00:00Z
  for (int i = 0; i < sn_net_num_act_scales(a); ++i) {
    sn_act_scale x, y;
    ASSERT_EQ(sn_net_act_scale(a, i, &x), SN_OK);
    ASSERT_EQ(sn_net_act_scale(b, i, &y), SN_OK);
    EXPECT_EQ(x.threshold, y.threshold);
    EXPECT_EQ(x.min, y.min);
    EXPECT_EQ(x.max, y.max);
    EXPECT_EQ(x.zero_point, y.zero_point);
  }
  sn_net_destroy(a);
  sn_net_destroy(b);
}

TEST(ScalesFile, RefusalsChangeNothing) {
  sn_net *a = make("resnet20"), *other = make("resnet18");
  const std::string dir = sntest::temp_dir();
  const sn_scales_info in = info();
  EXPECT_EQ(sn_scales_save(a, (dir + "/empty.h5").c_str(), &in), SN_ERR_INVALID); // no scales
  ASSERT_NO_FATAL_FAILURE(fill(a));
  const std::string path = dir + "/s.h5";
  ASSERT_EQ(sn_scales_save(a, path.c_str(), &in), SN_OK) << sn_last_error();

  EXPECT_EQ(sn_scales_load(other, path.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_NE(std::strstr(sn_last_error(), "calibrated for resnet20"), nullptr) << sn_last_error();
  EXPECT_EQ(sn_scales_load(other, (dir + "/missing.h5").c_str(), nullptr), SN_ERR_IO);

  // Not a scales file: an HDF5 file without the format attribute.
  const std::string plain = dir + "/plain.h5";
  hid_t f = H5Fcreate(plain.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  H5Fclose(f);
  EXPECT_EQ(sn_scales_load(other, plain.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_NE(std::strstr(sn_last_error(), plain.c_str()), nullptr) << sn_last_error();

  // A bad threshold in the file: refused, naming the layer; the net keeps no scale.
  f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t d = H5Dopen2(f, "threshold", H5P_DEFAULT);
  hid_t sp = H5Dget_space(d);
  const hssize_t n = H5Sget_simple_extent_npoints(sp);
  std::vector<float> t((size_t)n);
  ASSERT_GE(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()), 0);
  t[n - 1] = -1;
  ASSERT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()), 0);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  sn_net *b = make("resnet20");
  EXPECT_EQ(sn_scales_load(b, path.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_NE(std::strstr(sn_last_error(), "is not a scale"), nullptr) << sn_last_error();
  for (int i = 0; i < sn_net_num_act_scales(b); ++i) {
    sn_act_scale x;
    ASSERT_EQ(sn_net_act_scale(b, i, &x), SN_OK);
    EXPECT_EQ(x.threshold, 0.f) << "half-loaded: " << x.layer;
  }
  sn_net_destroy(a);
  sn_net_destroy(b);
  sn_net_destroy(other);
}

} // namespace
