// weights_keras_test.cpp - tests of io/weights_keras.c: sn_weights_save_as(..., SN_WEIGHTS_KERAS)
// writes what Keras 2's save_weights writes. The fixtures <name>.h5 of the course's LeNets and of
// two functional ResNets were written by gen_fixtures.py the way Keras writes them (from the Keras
// code's model.layers); a net that loaded one writes it back with the same layer list, the same
// weight names and the same values, and the file loads back bit for bit.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "h5util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

struct Layer {
  std::string name;
  std::vector<std::string> weights;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> values;
};

// The Keras structure of a legacy file: layer_names, each layer's weight_names, shapes, values.
std::vector<Layer> read_keras(const std::string &path, std::string *version) {
  std::vector<Layer> v;
  sn_h5_lock();
  hid_t f;
  EXPECT_EQ(sn_h5_open_read(path.c_str(), &f), SN_OK) << sn_last_error();
  char **names = nullptr;
  int n = 0;
  EXPECT_EQ(sn_h5_read_str_array_attr(f, "layer_names", path.c_str(), "/", &names, &n), SN_OK);
  char *ver = nullptr;
  if (sn_h5_read_str_attr(f, "keras_version", path.c_str(), "/", &ver) == SN_OK) *version = ver;
  free(ver);
  for (int j = 0; j < n; ++j) {
    Layer l;
    l.name = names[j];
    hid_t g = H5Gopen2(f, names[j], H5P_DEFAULT);
    char **wn = nullptr;
    int nw = 0;
    EXPECT_EQ(sn_h5_read_str_array_attr(g, "weight_names", path.c_str(), names[j], &wn, &nw),
              SN_OK);
    for (int k = 0; k < nw; ++k) {
      int nd = 0;
      int64_t d[SN_H5_MAX_RANK];
      EXPECT_EQ(sn_h5_dataset_shape(g, wn[k], path.c_str(), &nd, d), SN_OK) << wn[k];
      std::vector<int64_t> shape(d, d + nd);
      int64_t count = 1;
      for (int64_t x : shape)
        count *= x;
      std::vector<float> vals((size_t)count);
      EXPECT_EQ(sn_h5_read_f32(g, wn[k], path.c_str(), nd, d, vals.data()), SN_OK);
      l.weights.push_back(wn[k]);
      l.shapes.push_back(shape);
      l.values.push_back(vals);
    }
    sn_h5_free_strs(wn, nw);
    H5Gclose(g);
    v.push_back(l);
  }
  sn_h5_free_strs(names, n);
  H5Fclose(f);
  sn_h5_unlock();
  return v;
}

sn_net *make(const char *arch, int width, int side, int channels, uint64_t seed) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.base_width = width;
  cfg.classes = 10;
  cfg.height = cfg.width = side;
  cfg.channels = channels;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, seed, &net), SN_OK) << sn_last_error();
  return net;
}

std::vector<float> block(sn_net *net) {
  size_t n = 0;
  float *b = sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}

} // namespace

TEST(WeightsKerasSave, WritesWhatKerasWrites) {
  struct Case {
    const char *fixture, *arch;
    int width, side, channels;
  };
  const Case cases[] = {{"lenet", "lenet", 6, 28, 1},
                        {"lenet_bn", "lenet_bn", 6, 28, 1},
                        {"lenet_bn_conventional", "lenet_bn_conventional", 6, 28, 1},
                        {"keras_resnet50v2", "keras_resnet50v2", 4, 64, 3},
                        {"keras_resnet50_v02", "keras_resnet50_v02", 4, 64, 3}};
  const std::string dir = sntest::temp_dir();
  for (const Case &c : cases) {
    SCOPED_TRACE(c.fixture);
    const std::string ref = sntest::fixture(std::string(c.fixture) + ".h5");
    const std::string out = dir + "/" + c.fixture + ".keras.h5";
    sn_net *net = make(c.arch, c.width, c.side, c.channels, 1);
    ASSERT_EQ(sn_weights_load(net, ref.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK)
        << sn_last_error();
    ASSERT_EQ(sn_weights_save_as(net, out.c_str(), SN_WEIGHTS_KERAS), SN_OK) << sn_last_error();
    std::string vref, vout;
    const std::vector<Layer> a = read_keras(ref, &vref), b = read_keras(out, &vout);
    EXPECT_EQ(vout, vref);
    ASSERT_EQ(a.size(), b.size());
    for (size_t j = 0; j < a.size(); ++j) {
      ASSERT_EQ(b[j].name, a[j].name) << "layer " << j;
      ASSERT_EQ(b[j].weights, a[j].weights) << a[j].name;
      EXPECT_EQ(b[j].shapes, a[j].shapes) << a[j].name;
      EXPECT_EQ(b[j].values, a[j].values) << a[j].name;
    }
    // And back: bit for bit, every name agreeing (nothing to report).
    sn_net *back = make(c.arch, c.width, c.side, c.channels, 2);
    sn_weights_info info;
    ASSERT_EQ(sn_weights_load_info(back, out.c_str(), SN_WEIGHTS_AUTO, 0, &info), SN_OK)
        << sn_last_error();
    EXPECT_EQ(block(back), block(net));
    EXPECT_STREQ(info.note, "");
    sn_net_destroy(back);
    sn_net_destroy(net);
  }
}

TEST(WeightsKerasSave, Errors) {
  const std::string dir = sntest::temp_dir();
  sn_net *net = make("lenet", 6, 28, 1, 1);
  EXPECT_EQ(sn_weights_save_as(net, (dir + "/t.h5").c_str(), SN_WEIGHTS_TORCH), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("t.h5"), std::string::npos) << sn_last_error();
  EXPECT_EQ(sn_weights_save_as(nullptr, (dir + "/t.h5").c_str(), SN_WEIGHTS_KERAS), SN_ERR_INVALID);
  const std::string bad = dir + "/no_such_dir/w.h5";
  EXPECT_NE(sn_weights_save_as(net, bad.c_str(), SN_WEIGHTS_KERAS), SN_OK);
  EXPECT_NE(std::string(sn_last_error()).find("no_such_dir"), std::string::npos) << sn_last_error();
  EXPECT_FALSE(sntest::file_exists(bad));
  EXPECT_FALSE(sntest::file_exists(dir + "/t.h5"));
  // The native layout through the same call.
  const std::string nat = dir + "/n.h5";
  ASSERT_EQ(sn_weights_save_as(net, nat.c_str(), SN_WEIGHTS_NATIVE), SN_OK) << sn_last_error();
  sn_net *back = make("lenet", 6, 28, 1, 2);
  sn_weights_info info;
  ASSERT_EQ(sn_weights_load_info(back, nat.c_str(), SN_WEIGHTS_AUTO, 0, &info), SN_OK);
  EXPECT_EQ(info.format, SN_WEIGHTS_NATIVE);
  EXPECT_EQ(block(back), block(net));
  sn_net_destroy(back);
  sn_net_destroy(net);
}
