// weights_test.cpp - tests of io/weights.c: torchvision state_dict HDF5 (PyTorch layouts), Keras
// legacy HDF5 (both string encodings, Keras 2 and 3 weight names), the native layout, and every
// error path. Files are written here with the HDF5 C API from a net's own parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "h5util.h"
#include "md5.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}
#define EXPECT_MSG(...)                                                                            \
  do {                                                                                             \
    for (const std::string &s_ : std::initializer_list<std::string>{__VA_ARGS__})                  \
      EXPECT_TRUE(contains(sn_last_error(), s_))                                                   \
          << "missing '" << s_ << "' in: " << sn_last_error();                                     \
  } while (0)

struct NetDel {
  void operator()(sn_net *n) const { sn_net_destroy(n); }
};
using NetPtr = std::unique_ptr<sn_net, NetDel>;

// A small net (base width 4, 32x32 input) with random parameters drawn from seed.
NetPtr make_net(const char *arch, uint64_t seed, int include_top = 1, int base_width = 4,
                int classes = 10) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.base_width = base_width;
  cfg.classes = classes;
  cfg.height = cfg.width = 32;
  cfg.include_top = include_top;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, seed, &net), SN_OK) << sn_last_error();
  size_t n = 0;
  float *block = sn_net_param_block(net, &n);
  std::vector<float> r = sntest::randn(n, seed * 7919 + 1, 0.5f);
  for (size_t i = 0; i < n; ++i)
    block[i] = r[i];
  // Moving variances must stay positive for a meaningful forward pass.
  for (int i = 0; i < sn_net_num_params(net); ++i) {
    sn_param_info p;
    sn_net_param(net, i, &p);
    if (p.role == SN_ROLE_MOVING_VAR)
      for (int64_t k = 0; k < p.count; ++k)
        p.data[k] = 0.5f + std::fabs(p.data[k]);
  }
  return NetPtr(net);
}

std::vector<float> block_of(sn_net *net) {
  size_t n = 0;
  float *b = sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}

bool same_block(sn_net *a, sn_net *b) {
  std::vector<float> x = block_of(a), y = block_of(b);
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

std::vector<sn_param_info> params_of(sn_net *net) {
  std::vector<sn_param_info> v(sn_net_num_params(net));
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(sn_net_param(net, (int)i, &v[i]), SN_OK);
  return v;
}

// Writes a float dataset (as float32 or float64) with intermediate groups.
void put(hid_t loc, const std::string &name, const std::vector<hsize_t> &dims,
         const std::vector<float> &data, bool f64 = false) {
  hid_t s = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(loc, name.c_str(), f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, s, lcpl,
                       H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0) << name;
  if (f64) {
    std::vector<double> dd(data.begin(), data.end());
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, dd.data());
  } else {
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
  }
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(s);
}

hid_t create(const std::string &path) {
  sn_h5_init();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(f, 0) << path;
  return f;
}

// ------------------------------------------------------------------ torchvision layout

// Engine layout -> PyTorch layout (conv HWIO -> OIHW, dense (in,out) -> (out,in)).
std::vector<float> to_torch(const sn_param_info &p, std::vector<hsize_t> *dims) {
  std::vector<float> out(p.count);
  if (p.ndim == 4) {
    const int kh = p.shape[0], kw = p.shape[1], ci = p.shape[2], co = p.shape[3];
    *dims = {(hsize_t)co, (hsize_t)ci, (hsize_t)kh, (hsize_t)kw};
    for (int o = 0; o < co; ++o)
      for (int i = 0; i < ci; ++i)
        for (int y = 0; y < kh; ++y)
          for (int x = 0; x < kw; ++x)
            out[((o * ci + i) * kh + y) * kw + x] = p.data[((y * kw + x) * ci + i) * co + o];
  } else if (p.ndim == 2) {
    const int in = p.shape[0], o_ = p.shape[1];
    *dims = {(hsize_t)o_, (hsize_t)in};
    for (int o = 0; o < o_; ++o)
      for (int i = 0; i < in; ++i)
        out[o * in + i] = p.data[i * o_ + o];
  } else {
    *dims = {(hsize_t)p.count};
    std::memcpy(out.data(), p.data, p.count * sizeof(float));
  }
  return out;
}

std::string torch_key(const sn_param_info &p) {
  return std::string(p.layer) + "." + sn_param_role_name(p.role, SN_STYLE_TORCH, p.layer_kind);
}

struct TorchOpts {
  bool f64 = false;
  bool num_batches_tracked = true;
  std::string skip;  // key left out
  std::string wrong; // key written with its first two dims swapped... or a bad shape
  std::string extra; // an unexpected key
  const char *arch = nullptr;
};

void write_torch(sn_net *net, const std::string &path, const TorchOpts &o = TorchOpts()) {
  hid_t f = create(path);
  for (const sn_param_info &p : params_of(net)) {
    std::string key = torch_key(p);
    if (key == o.skip) continue;
    std::vector<hsize_t> dims;
    std::vector<float> v = to_torch(p, &dims);
    if (key == o.wrong) {
      dims.back() += 1;
      v.resize(v.size() / (dims.back() - 1) * dims.back(), 0.0f);
    }
    put(f, key, dims, v, o.f64);
    if (o.num_batches_tracked && p.role == SN_ROLE_MOVING_VAR) {
      std::string nbt = std::string(p.layer) + ".num_batches_tracked";
      hid_t s = H5Screate(H5S_SCALAR);
      hid_t d = H5Dcreate2(f, nbt.c_str(), H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      int64_t v64 = 12345;
      H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v64);
      H5Dclose(d);
      H5Sclose(s);
    }
  }
  if (!o.extra.empty()) put(f, o.extra, {3}, {1, 2, 3});
  if (o.arch) {
    sn_h5_write_str_attr(f, "arch", o.arch, path.c_str());
    sn_h5_write_str_attr(f, "source", "torchvision", path.c_str());
  }
  H5Fclose(f);
}

// Logits of a forward pass on a fixed input (checks that loading refreshed folded weights).
std::vector<float> logits(sn_net *net) {
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  std::vector<float> x = sntest::uniform((size_t)2 * h * w * c, 99, -1.0f, 1.0f);
  std::vector<float> y((size_t)2 * oh * ow * oc);
  EXPECT_EQ(sn_net_forward(net, x.data(), 2, y.data()), SN_OK) << sn_last_error();
  return y;
}

} // namespace

TEST(WeightsTorch, LoadsStateDictWithTransposes) {
  for (bool f64 : {false, true}) {
    const std::string dir = sntest::temp_dir(), path = dir + "/resnet18.h5";
    NetPtr src = make_net("resnet18", 1), dst = make_net("resnet18", 2);
    TorchOpts o;
    o.f64 = f64;
    o.arch = "resnet18";
    write_torch(src.get(), path, o);
    // Plan dst for inference before loading: the load must refresh folded weights.
    ASSERT_EQ(sn_net_plan(dst.get(), 2, 0), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_net_plan(src.get(), 2, 0), SN_OK) << sn_last_error();
    char md5[33];
    ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, md5), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get())); // float32 -> float64 -> float32 is exact
    char want[33];
    ASSERT_EQ(sn_md5_file(path.c_str(), want), SN_OK);
    EXPECT_STREQ(md5, want);
    EXPECT_EQ(sn_weights_known_file(md5), nullptr);
    std::vector<float> a = logits(src.get()), b = logits(dst.get());
    EXPECT_EQ(sntest::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
  }
}

TEST(WeightsTorch, BottleneckNoTopAndExplicitFormat) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r50.h5";
  NetPtr src = make_net("resnet50", 3, 0), dst = make_net("resnet50", 4, 0);
  TorchOpts o;
  o.num_batches_tracked = false;
  write_torch(src.get(), path, o);
  ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_TORCH, nullptr), SN_OK)
      << sn_last_error();
  EXPECT_TRUE(same_block(src.get(), dst.get()));
  // The same file read as Keras or native is rejected, and the net is untouched.
  NetPtr other = make_net("resnet50", 5, 0);
  std::vector<float> before = block_of(other.get());
  EXPECT_EQ(sn_weights_load(other.get(), path.c_str(), SN_WEIGHTS_KERAS, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("layer_names");
  EXPECT_EQ(sn_weights_load(other.get(), path.c_str(), SN_WEIGHTS_NATIVE, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("shardnet");
  EXPECT_EQ(block_of(other.get()), before);
}

TEST(WeightsTorch, CifarResNet) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r20.h5";
  NetPtr src = make_net("resnet20", 3), dst = make_net("resnet20", 4);
  write_torch(src.get(), path);
  ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK)
      << sn_last_error();
  EXPECT_TRUE(same_block(src.get(), dst.get()));
}

TEST(WeightsTorch, ErrorsNameKeyLayerAndShapes) {
  const std::string dir = sntest::temp_dir();
  NetPtr src = make_net("resnet18", 1), dst = make_net("resnet18", 2);
  const std::vector<float> before = block_of(dst.get());
  const std::string p1 = dir + "/missing.h5", p2 = dir + "/extra.h5", p3 = dir + "/shape.h5",
                    p4 = dir + "/arch.h5";
  TorchOpts o;
  o.skip = "layer2.0.downsample.1.running_var";
  write_torch(src.get(), p1, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p1.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG(p1.c_str(), "key layer2.0.downsample.1.running_var", "layer2.0.downsample.1",
             "moving_variance");

  o = TorchOpts();
  o.extra = "layer9.0.conv1.weight";
  write_torch(src.get(), p2, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p2.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(p2.c_str(), "key layer9.0.conv1.weight", "unexpected");

  o = TorchOpts();
  o.wrong = "layer1.0.conv1.weight";
  write_torch(src.get(), p3, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p3.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  // base width 4: layer1 convs are (4,4,3,3) in PyTorch layout; the file has (4,4,3,4).
  EXPECT_MSG(p3.c_str(), "key layer1.0.conv1.weight", "shape (4,4,3,4)",
             "layer layer1.0.conv1 kernel (4,4,3,3) in PyTorch layout");

  o = TorchOpts();
  o.wrong = "fc.weight";
  write_torch(src.get(), p3, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p3.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  EXPECT_MSG("key fc.weight", "shape (10,33)", "layer fc kernel (10,32) in PyTorch layout");

  o = TorchOpts();
  o.arch = "resnet34";
  write_torch(src.get(), p4, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p4.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("resnet34", "resnet18");

  // A resnet34 state_dict into a resnet18 net: the first extra block is unexpected.
  NetPtr r34 = make_net("resnet34", 6);
  write_torch(r34.get(), p4);
  EXPECT_EQ(sn_weights_load(dst.get(), p4.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("unexpected", "layer1.2.");

  EXPECT_EQ(block_of(dst.get()), before);
}

// ------------------------------------------------------------------ Keras legacy layout

namespace {

struct KerasOpts {
  bool fixed = false;                   // fixed-length (true) or variable-length strings
  bool keras3 = false;                  // weight names "layer/kernel" (Keras 3) vs "layer/kernel:0"
  bool model_weights = false;           // under /model_weights (full-model save)
  bool positional = false;              // weight names that do not reveal the role
  bool reversed = false;                // weight_names listed in reverse order (roles by name)
  bool weightless_f64 = true;           // weightless layers' weight_names as float64 (0)
  std::string drop_layer;               // a weighted layer left out
  std::string extra_layer;              // an unexpected weighted layer
  std::string wrong_layer;              // a layer whose first weight has a wrong shape
  std::vector<std::string> extra_names; // extra weightless layer names
  bool keras_order = false;             // layers in Keras' order (sn_net_keras_layers), as Keras
                                        // writes them (default: network order)
  std::map<std::string, std::string> rename; // the file's name for a net layer
};

void write_str_array(hid_t obj, const char *name, const std::vector<std::string> &v, bool fixed,
                     const std::string &path) {
  std::vector<const char *> p;
  for (const std::string &s : v)
    p.push_back(s.c_str());
  ASSERT_EQ(sn_h5_write_str_array_attr(obj, name, p.data(), (int)p.size(), fixed, path.c_str()),
            SN_OK);
}

void write_empty_f64_attr(hid_t obj, const char *name) {
  hsize_t zero = 0;
  hid_t s = H5Screate_simple(1, &zero, nullptr);
  hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Aclose(a);
  H5Sclose(s);
}

void write_keras(sn_net *net, const std::string &path, const KerasOpts &o = KerasOpts()) {
  hid_t f = create(path);
  hid_t base =
      o.model_weights ? H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : f;
  // Layers in network order, with weightless ones in between as Keras lists them, or in Keras'
  // order.
  std::vector<std::string> layers = {"input_1"};
  std::map<std::string, std::vector<sn_param_info>> by_layer;
  for (const sn_param_info &p : params_of(net)) {
    if (!by_layer.count(p.layer) && !o.keras_order) {
      layers.push_back(p.layer);
      layers.push_back(std::string(p.layer) + "_relu_like");
    }
    by_layer[p.layer].push_back(p);
  }
  if (o.keras_order) {
    const char **names = nullptr;
    int n = 0;
    ASSERT_EQ(sn_net_keras_layers(net, &names, &n), SN_OK);
    layers.assign(names, names + n);
    free(names);
  }
  for (const std::string &e : o.extra_names)
    layers.push_back(e);
  if (!o.extra_layer.empty()) layers.push_back(o.extra_layer);
  std::vector<std::string> listed, files; // net names, the file's names
  for (const std::string &l : layers)
    if (l != o.drop_layer) {
      listed.push_back(l);
      files.push_back(o.rename.count(l) ? o.rename.at(l) : l);
    }
  write_str_array(base, "layer_names", files, o.fixed, path);
  sn_h5_write_str_attr(base, "backend", "tensorflow", path.c_str());
  sn_h5_write_str_attr(base, "keras_version", o.keras3 ? "3.3.3" : "2.15.0", path.c_str());
  for (size_t j = 0; j < listed.size(); ++j) {
    const std::string &l = listed[j], &fl = files[j];
    hid_t g = H5Gcreate2(base, fl.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<std::string> names;
    if (l == o.extra_layer) {
      names = {l + "/kernel:0"};
      put(g, names[0], {2, 3}, {1, 2, 3, 4, 5, 6});
    } else if (by_layer.count(l)) {
      std::vector<sn_param_info> ps = by_layer[l];
      if (o.reversed) std::reverse(ps.begin(), ps.end());
      int k = 0;
      for (const sn_param_info &p : ps) {
        std::string role = sn_param_role_name(p.role, SN_STYLE_KERAS, p.layer_kind);
        std::string wn = o.positional ? fl + "/param_" + std::to_string(k++)
                                      : fl + "/" + role + (o.keras3 ? "" : ":0");
        names.push_back(wn);
        std::vector<hsize_t> dims(p.shape, p.shape + p.ndim);
        std::vector<float> v(p.data, p.data + p.count);
        if (l == o.wrong_layer && names.size() == 1) {
          dims[0] += 1;
          v.resize(v.size() / (dims[0] - 1) * dims[0]);
        }
        put(g, wn, dims, v);
      }
    }
    if (names.empty() && o.weightless_f64)
      write_empty_f64_attr(g, "weight_names");
    else
      write_str_array(g, "weight_names", names, o.fixed, path);
    H5Gclose(g);
  }
  if (o.model_weights) H5Gclose(base);
  H5Fclose(f);
}

// The net's layers with weights in Keras' order.
std::vector<std::string> weighted_keras_layers(sn_net *net) {
  const char **names = nullptr;
  int n = 0;
  EXPECT_EQ(sn_net_keras_layers(net, &names, &n), SN_OK);
  std::vector<std::string> v;
  for (int k = 0; k < n; ++k)
    for (const sn_param_info &p : params_of(net))
      if (p.layer == std::string(names[k])) {
        v.push_back(names[k]);
        break;
      }
  free(names);
  return v;
}

} // namespace

TEST(WeightsKeras, LoadsBothStringEncodingsAndNameForms) {
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    const std::string dir = sntest::temp_dir(), path = dir + "/k.h5";
    NetPtr src = make_net("keras_resnet50", 1), dst = make_net("keras_resnet50", 2);
    KerasOpts o;
    o.fixed = variant & 1;
    o.keras3 = variant & 2;
    o.weightless_f64 = !(variant & 1);
    o.model_weights = variant == 3;
    write_keras(src.get(), path, o);
    ASSERT_EQ(sn_net_plan(src.get(), 2, 0), SN_OK);
    ASSERT_EQ(sn_net_plan(dst.get(), 2, 0), SN_OK);
    char md5[33];
    ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, md5), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get()));
    EXPECT_EQ(std::strlen(md5), 32u);
    std::vector<float> a = logits(src.get()), b = logits(dst.get());
    EXPECT_EQ(sntest::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
  }
}

TEST(WeightsKeras, RolesByNameOrByPosition) {
  const std::string dir = sntest::temp_dir();
  for (const char *arch : {"keras_resnet50v2", "lenet_bn"}) {
    SCOPED_TRACE(arch);
    NetPtr src = make_net(arch, 1, 1, 4), dst = make_net(arch, 2, 1, 4);
    KerasOpts o;
    o.reversed = true; // bias before kernel, moving_variance first: the names decide
    write_keras(src.get(), dir + "/rev.h5", o);
    ASSERT_EQ(sn_weights_load(dst.get(), (dir + "/rev.h5").c_str(), SN_WEIGHTS_KERAS, nullptr),
              SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get()));
    NetPtr dst2 = make_net(arch, 3, 1, 4);
    o = KerasOpts();
    o.positional = true; // "param_0", "param_1": Keras order decides
    write_keras(src.get(), dir + "/pos.h5", o);
    ASSERT_EQ(sn_weights_load(dst2.get(), (dir + "/pos.h5").c_str(), SN_WEIGHTS_AUTO, nullptr),
              SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst2.get()));
  }
}

TEST(WeightsKeras, NoTopAndWeightlessExtras) {
  const std::string dir = sntest::temp_dir(), path = dir + "/notop.h5";
  NetPtr src = make_net("keras_resnet50", 1, 0), dst = make_net("keras_resnet50", 2, 0);
  KerasOpts o;
  o.extra_names = {"avg_pool", "some_unknown_weightless_layer"};
  write_keras(src.get(), path, o);
  ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK)
      << sn_last_error();
  EXPECT_TRUE(same_block(src.get(), dst.get()));
  // A no-top file lacks "predictions": loading it into a net with a top fails by name.
  NetPtr top = make_net("keras_resnet50", 3, 1);
  std::vector<float> before = block_of(top.get());
  EXPECT_EQ(sn_weights_load(top.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG("layer predictions", "missing");
  EXPECT_EQ(block_of(top.get()), before);
  // And a file with a top into a no-top net: predictions is unexpected.
  write_keras(top.get(), dir + "/top.h5");
  EXPECT_EQ(sn_weights_load(dst.get(), (dir + "/top.h5").c_str(), SN_WEIGHTS_AUTO, nullptr),
            SN_ERR_FORMAT);
  EXPECT_MSG("unexpected layer predictions", "without a classifier");
}

TEST(WeightsKeras, ErrorsNameLayerAndShapes) {
  const std::string dir = sntest::temp_dir();
  NetPtr src = make_net("keras_resnet50", 1), dst = make_net("keras_resnet50", 2);
  const std::vector<float> before = block_of(dst.get());
  const std::string p = dir + "/bad.h5";
  KerasOpts o;
  o.drop_layer = "conv3_block2_2_bn";
  write_keras(src.get(), p, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG(p.c_str(), "layer conv3_block2_2_bn", "missing");

  o = KerasOpts();
  o.extra_layer = "dense_extra";
  write_keras(src.get(), p, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("unexpected layer dense_extra");

  o = KerasOpts();
  o.wrong_layer = "conv2_block1_1_conv";
  o.fixed = true;
  write_keras(src.get(), p, o);
  EXPECT_EQ(sn_weights_load(dst.get(), p.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  // base width 4: conv2_block1_1_conv kernel is (1,1,4,4).
  EXPECT_MSG("conv2_block1_1_conv/conv2_block1_1_conv/kernel:0", "shape (2,1,4,4)",
             "layer conv2_block1_1_conv kernel (1,1,4,4)");

  // Wrong architecture: a v2 file into a v1 net.
  NetPtr v2 = make_net("keras_resnet50v2", 1);
  write_keras(v2.get(), p);
  EXPECT_NE(sn_weights_load(dst.get(), p.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK);
  EXPECT_MSG(p.c_str(), "layer");
  EXPECT_EQ(block_of(dst.get()), before);
}

TEST(WeightsKeras, RejectsOldKerasResNet50) {
  const std::string dir = sntest::temp_dir(), p = dir + "/old.h5";
  hid_t f = create(p);
  write_str_array(f, "layer_names",
                  {"input_1", "zero_padding2d_1", "conv1", "bn_conv1", "res2a_branch2a", "fc1000"},
                  true, p);
  for (const char *l :
       {"input_1", "zero_padding2d_1", "conv1", "bn_conv1", "res2a_branch2a", "fc1000"}) {
    hid_t g = H5Gcreate2(f, l, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_empty_f64_attr(g, "weight_names");
    H5Gclose(g);
  }
  H5Fclose(f);
  NetPtr net = make_net("keras_resnet50", 1);
  std::vector<float> before = block_of(net.get());
  EXPECT_EQ(sn_weights_load(net.get(), p.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(p.c_str(), "bn_conv1", "Keras <= 2.2.4", "fits arch keras_resnet50_v02");
  EXPECT_EQ(block_of(net.get()), before);
}

TEST(WeightsKeras, KnownReleaseHashes) {
  EXPECT_STREQ(sn_weights_known_file("2cb95161c43110f7111970584f804107"),
               "resnet50_weights_tf_dim_ordering_tf_kernels.h5");
  EXPECT_STREQ(sn_weights_known_file("ed17cf2e0169df9d443503ef94b23b33"),
               "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5");
  // The Keras <= 2.2.4 ResNet50 file has the same name (it fits keras_resnet50_v02).
  EXPECT_STREQ(sn_weights_known_file("a7b3fe01876f51b976af0dea6bc144eb"),
               "resnet50_weights_tf_dim_ordering_tf_kernels.h5");
  EXPECT_EQ(sn_weights_known_file("0123456789abcdef0123456789abcdef"), nullptr);
  EXPECT_EQ(sn_weights_known_file(""), nullptr);
  EXPECT_EQ(sn_weights_known_file(nullptr), nullptr);
}

// Keras' load_weights pairs the file's layers with weights with the model's in Keras' layer
// order, whatever their names: shardnet too, and it says so when names differ.
TEST(WeightsKeras, PairsByPositionWhenNamesDiffer) {
  const std::string dir = sntest::temp_dir(), path = dir + "/k.h5";
  NetPtr src = make_net("keras_resnet50", 1);
  const std::vector<std::string> weighted = weighted_keras_layers(src.get());
  ASSERT_EQ(weighted.size(), 107u); // 53 convolutions, 53 batch norms, the classifier
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    KerasOpts o;
    o.keras_order = variant != 3; // 3: the net's names in another order
    if (variant == 1) o.rename["predictions"] = "probs";
    for (size_t k = 0; variant == 2 && k < weighted.size(); ++k)
      o.rename[weighted[k]] = "layer_" + std::to_string(k);
    write_keras(src.get(), path, o);
    NetPtr dst = make_net("keras_resnet50", 2);
    sn_weights_info info;
    ASSERT_EQ(sn_weights_load_info(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, 0, &info), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get()));
    EXPECT_EQ(info.format, SN_WEIGHTS_KERAS);
    EXPECT_EQ(std::strlen(info.md5), 32u);
    const std::string note = info.note;
    if (variant == 0) { // names agree: nothing to say
      EXPECT_EQ(info.renamed, 0);
      EXPECT_EQ(note, "");
    } else if (variant == 1) {
      EXPECT_EQ(info.renamed, 1);
      EXPECT_TRUE(contains(note, "1 of 107 layers with weights")) << note;
      EXPECT_TRUE(contains(note, "(probs for predictions)")) << note;
      EXPECT_TRUE(contains(note, "paired by position")) << note;
    } else if (variant == 2) {
      EXPECT_EQ(info.renamed, 107);
      EXPECT_TRUE(contains(note, "(first: layer_0 for conv1_conv)")) << note;
    } else {
      EXPECT_EQ(info.renamed, 0);
      EXPECT_TRUE(contains(note, "matched by name")) << note;
    }
    EXPECT_EQ(note.find('\n'), std::string::npos);
  }
}

// A tensor of the wrong shape in the middle of a file paired by position: refused, naming the
// file's layer and the net's layer it was paired with, and both shapes; the net is unchanged.
TEST(WeightsKeras, ShapeMismatchInTheMiddleNamesBothLayers) {
  const std::string dir = sntest::temp_dir(), path = dir + "/k.h5";
  NetPtr src = make_net("keras_resnet50", 1), dst = make_net("keras_resnet50", 2);
  const std::vector<float> before = block_of(dst.get());
  const std::vector<std::string> weighted = weighted_keras_layers(src.get());
  KerasOpts o;
  o.keras_order = true;
  for (size_t k = 0; k < weighted.size(); ++k)
    o.rename[weighted[k]] = "layer_" + std::to_string(k);
  o.wrong_layer = "conv3_block2_2_conv";
  const size_t k = std::find(weighted.begin(), weighted.end(), o.wrong_layer) - weighted.begin();
  write_keras(src.get(), path, o);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  const std::string fl = "layer_" + std::to_string(k);
  // base width 4: conv3_block2_2_conv kernel is (3,3,8,8).
  EXPECT_MSG(path, fl + "/" + fl + "/kernel:0", "shape (4,3,8,8)",
             "layer conv3_block2_2_conv kernel (3,3,8,8)");
  EXPECT_EQ(block_of(dst.get()), before);
  // One layer fewer: the counts differ and the message says which layer.
  o.wrong_layer.clear();
  o.drop_layer = "conv4_block1_0_bn";
  write_keras(src.get(), path, o);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(path, "the file has 106 layers with weights, the net 107");
  o.rename.clear();
  write_keras(src.get(), path, o);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG(path, "layer conv4_block1_0_bn (bn) is missing");
  EXPECT_EQ(block_of(dst.get()), before);
}

// The Keras <= 2.2.4 ResNet50 (keras_resnet50_v02): its files fit it and nothing else; a file of
// the current Keras ResNet50 paired with it by position fails on the first shape that differs,
// naming both layers.
TEST(WeightsKeras, OldResNet50FilesFitOnlyTheirArchitecture) {
  const std::string dir = sntest::temp_dir(), p02 = dir + "/v02.h5", p1 = dir + "/v1.h5";
  NetPtr v02 = make_net("keras_resnet50_v02", 1), v1 = make_net("keras_resnet50", 1);
  ASSERT_EQ(sn_weights_save_as(v02.get(), p02.c_str(), SN_WEIGHTS_KERAS), SN_OK) << sn_last_error();
  NetPtr dst02 = make_net("keras_resnet50_v02", 2), dst1 = make_net("keras_resnet50", 2);
  sn_weights_info info;
  ASSERT_EQ(sn_weights_load_info(dst02.get(), p02.c_str(), SN_WEIGHTS_AUTO, 0, &info), SN_OK)
      << sn_last_error();
  EXPECT_TRUE(same_block(v02.get(), dst02.get()));
  EXPECT_EQ(info.renamed, 0);
  EXPECT_EQ(sn_weights_load(dst1.get(), p02.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(p02, "bn_conv1", "fits arch keras_resnet50_v02", "the net is keras_resnet50");
  KerasOpts o;
  o.keras_order = true;
  write_keras(v1.get(), p1, o);
  const std::vector<float> before = block_of(dst02.get());
  EXPECT_EQ(sn_weights_load(dst02.get(), p1.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  EXPECT_MSG(p1, "conv3_block1_0_conv", "layer res3a_branch2c");
  EXPECT_EQ(block_of(dst02.get()), before);
}

// ------------------------------------------------------------------ native layout

TEST(WeightsNative, RoundTripBitExact) {
  for (const char *arch : {"resnet18", "keras_resnet50", "keras_resnet50v2", "lenet"}) {
    SCOPED_TRACE(arch);
    const std::string dir = sntest::temp_dir(), path = dir + "/w.h5";
    NetPtr src = make_net(arch, 11), dst = make_net(arch, 12);
    ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK) << sn_last_error();
    EXPECT_FALSE(sntest::file_exists(path + ".tmp." + std::to_string((long)getpid())));
    char md5[33];
    ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, md5), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get()));
    NetPtr dst2 = make_net(arch, 13);
    ASSERT_EQ(sn_weights_load_bcast(dst2.get(), path.c_str(), sn_comm_serial(), nullptr), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst2.get()));

    hid_t f;
    ASSERT_EQ(sn_h5_open_read(path.c_str(), &f), SN_OK);
    char *s = nullptr;
    ASSERT_EQ(sn_h5_read_str_attr(f, "format", path.c_str(), "/", &s), SN_OK);
    EXPECT_STREQ(s, "shardnet");
    free(s);
    ASSERT_EQ(sn_h5_read_str_attr(f, "arch", path.c_str(), "/", &s), SN_OK);
    EXPECT_STREQ(s, arch);
    free(s);
    int64_t v;
    ASSERT_EQ(sn_h5_read_int_attr(f, "classes", path.c_str(), "/", &v), SN_OK);
    EXPECT_EQ(v, 10);
    ASSERT_EQ(sn_h5_read_int_attr(f, "height", path.c_str(), "/", &v), SN_OK);
    EXPECT_EQ(v, 32);
    ASSERT_EQ(sn_h5_read_int_attr(f, "include_top", path.c_str(), "/", &v), SN_OK);
    EXPECT_EQ(v, 1);
    ASSERT_EQ(sn_h5_read_int_attr(f, "base_width", path.c_str(), "/", &v), SN_OK);
    EXPECT_EQ(v, 4);
    sn_param_info p0;
    sn_net_param(src.get(), 0, &p0);
    std::string key = std::string("params/") + p0.layer + "/kernel";
    EXPECT_TRUE(sn_h5_is_dataset(f, key.c_str())) << key;
    H5Fclose(f);
  }
}

TEST(WeightsNative, SaveIsAtomicAndReportsUnwritablePaths) {
  const std::string dir = sntest::temp_dir();
  NetPtr net = make_net("resnet18", 1);
  const std::string bad = dir + "/no/such/dir/w.h5";
  EXPECT_EQ(sn_weights_save(net.get(), bad.c_str()), SN_ERR_IO);
  EXPECT_MSG(bad.c_str());
  // Overwriting keeps a readable file at every moment: the old one until the rename.
  const std::string path = dir + "/w.h5";
  ASSERT_EQ(sn_weights_save(net.get(), path.c_str()), SN_OK);
  NetPtr other = make_net("resnet18", 2);
  ASSERT_EQ(sn_weights_save(other.get(), path.c_str()), SN_OK);
  NetPtr back = make_net("resnet18", 3);
  ASSERT_EQ(sn_weights_load(back.get(), path.c_str(), SN_WEIGHTS_NATIVE, nullptr), SN_OK);
  EXPECT_TRUE(same_block(other.get(), back.get()));
}

TEST(WeightsNative, ErrorsNameDatasetLayerAndShapes) {
  const std::string dir = sntest::temp_dir(), path = dir + "/w.h5";
  NetPtr src = make_net("resnet18", 1);
  ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK);
  NetPtr dst = make_net("resnet18", 2);
  const std::vector<float> before = block_of(dst.get());

  // Another architecture.
  NetPtr r34 = make_net("resnet34", 2);
  EXPECT_EQ(sn_weights_load(r34.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(path.c_str(), "arch resnet18", "resnet34");

  // Another width: shapes differ.
  NetPtr wide = make_net("resnet18", 2, 1, 8);
  EXPECT_EQ(sn_weights_load(wide.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  EXPECT_MSG("params/conv1/kernel", "shape (7,7,3,4)", "layer conv1 kernel (7,7,3,8)");

  // A missing and an extra dataset.
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Ldelete(f, "params/layer3.1.bn2/moving_mean", H5P_DEFAULT), 0);
  H5Fclose(f);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG("params/layer3.1.bn2/moving_mean", "layer layer3.1.bn2 moving_mean");

  ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK);
  f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  put(f, "params/layer3.1.bn2/extra", {2}, {1, 2});
  H5Fclose(f);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("params/layer3.1.bn2/extra", "unexpected");

  EXPECT_EQ(block_of(dst.get()), before);
}

TEST(WeightsNative, FileErrors) {
  const std::string dir = sntest::temp_dir();
  NetPtr net = make_net("resnet18", 1);
  const std::vector<float> before = block_of(net.get());

  const std::string missing = dir + "/missing.h5";
  EXPECT_EQ(sn_weights_load(net.get(), missing.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_IO);
  EXPECT_MSG("file " + missing);

  const std::string text = dir + "/text.h5";
  FILE *t = std::fopen(text.c_str(), "wb");
  std::fputs("not HDF5\n", t);
  std::fclose(t);
  EXPECT_EQ(sn_weights_load(net.get(), text.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("file " + text + ": not an HDF5 file");

  // A saved file cut short.
  const std::string good = dir + "/good.h5", cut = dir + "/cut.h5";
  ASSERT_EQ(sn_weights_save(net.get(), good.c_str()), SN_OK);
  FILE *in = std::fopen(good.c_str(), "rb");
  std::vector<char> bytes(1 << 22);
  size_t n = std::fread(bytes.data(), 1, bytes.size(), in);
  std::fclose(in);
  FILE *out = std::fopen(cut.c_str(), "wb");
  std::fwrite(bytes.data(), 1, n * 2 / 3, out);
  std::fclose(out);
  NetPtr other = make_net("resnet18", 2);
  const std::vector<float> other_before = block_of(other.get());
  EXPECT_EQ(sn_weights_load(other.get(), cut.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(cut.c_str());
  EXPECT_EQ(block_of(other.get()), other_before);

  // An HDF5 file with nothing recognisable.
  const std::string empty = dir + "/empty.h5";
  H5Fclose(create(empty));
  EXPECT_EQ(sn_weights_load(net.get(), empty.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("unrecognised");

  EXPECT_EQ(sn_weights_load(net.get(), missing.c_str(), (sn_weights_format)9, nullptr),
            SN_ERR_INVALID);
  // The broadcasting loader reports the same errors (serial communicator).
  EXPECT_EQ(sn_weights_load_bcast(net.get(), text.c_str(), sn_comm_serial(), nullptr),
            SN_ERR_FORMAT);
  EXPECT_MSG("not an HDF5 file");
  EXPECT_EQ(block_of(net.get()), before);
}

// ------------------------------------------------------------------ Keras 3 .weights.h5

namespace {

// Keras 3 layout: /layers/<snake class>[_k]/vars/<i>; name_where: 0 none, 1 on vars, 2 on layer.
void write_keras3(sn_net *net, const std::string &path, int name_where,
                  const std::string &drop = "") {
  hid_t f = create(path);
  H5Gclose(H5Gcreate2(f, "vars", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Gclose(H5Gcreate2(f, "layers/input_layer/vars", lcpl, H5P_DEFAULT, H5P_DEFAULT));
  H5Gclose(H5Gcreate2(f, "layers/zero_padding2d/vars", lcpl, H5P_DEFAULT, H5P_DEFAULT));
  std::map<std::string, int> used;
  std::vector<std::string> order;
  std::map<std::string, std::vector<sn_param_info>> by_layer;
  for (const sn_param_info &p : params_of(net)) {
    if (!by_layer.count(p.layer)) order.push_back(p.layer);
    by_layer[p.layer].push_back(p);
  }
  for (const std::string &l : order) {
    if (l == drop) continue;
    const std::string kind = by_layer[l][0].layer_kind;
    std::string cls = kind == "conv" ? "conv2d" : kind == "bn" ? "batch_normalization" : "dense";
    int k = used[cls]++;
    std::string g = "layers/" + cls + (k ? "_" + std::to_string(k) : "");
    int i = 0;
    for (const sn_param_info &p : by_layer[l]) {
      std::vector<hsize_t> dims(p.shape, p.shape + p.ndim);
      put(f, g + "/vars/" + std::to_string(i++), dims,
          std::vector<float>(p.data, p.data + p.count));
    }
    if (name_where) {
      hid_t o = H5Gopen2(f, (name_where == 1 ? g + "/vars" : g).c_str(), H5P_DEFAULT);
      sn_h5_write_str_attr(o, "name", l.c_str(), path.c_str());
      H5Gclose(o);
    }
  }
  H5Pclose(lcpl);
  H5Fclose(f);
}

} // namespace

TEST(WeightsKeras, Keras3WeightsH5ByNameAttribute) {
  const std::string dir = sntest::temp_dir(), path = dir + "/m.weights.h5";
  for (int where : {1, 2}) {
    NetPtr src = make_net("keras_resnet50", 1), dst = make_net("keras_resnet50", 2);
    write_keras3(src.get(), path, where);
    ASSERT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK)
        << sn_last_error();
    EXPECT_TRUE(same_block(src.get(), dst.get()));
  }
  NetPtr src = make_net("keras_resnet50", 1), dst = make_net("keras_resnet50", 2);
  const std::vector<float> before = block_of(dst.get());
  write_keras3(src.get(), path, 0);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_KERAS, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG("layers/", "no layer name attribute");
  write_keras3(src.get(), path, 1, "conv4_block1_0_bn");
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG("layer conv4_block1_0_bn", "missing");
  NetPtr v2 = make_net("keras_resnet50v2", 1);
  write_keras3(v2.get(), path, 1);
  EXPECT_NE(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK);
  EXPECT_MSG("layer");
  EXPECT_EQ(block_of(dst.get()), before);
}

// ------------------------------------------------------------------ SN_LOAD_NEW_HEAD (fine-tuning)

namespace {

// After a new-head load of src (another class count) into dst: every tensor outside `head`
// equals src's, the head's tensors still hold dst's values from before the load.
void expect_new_head(sn_net *src, sn_net *dst, const std::vector<float> &dst_before,
                     const char *head) {
  std::vector<sn_param_info> s = params_of(src), d = params_of(dst);
  ASSERT_EQ(s.size(), d.size());
  size_t head_tensors = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    SCOPED_TRACE(std::string(d[i].layer) + " " + std::to_string((int)d[i].role));
    ASSERT_STREQ(s[i].layer, d[i].layer);
    if (!std::strcmp(d[i].layer, head)) {
      ++head_tensors;
      EXPECT_EQ(0, std::memcmp(d[i].data, dst_before.data() + (d[i].data - d[0].data),
                               d[i].count * sizeof(float)));
    } else {
      ASSERT_EQ(s[i].count, d[i].count);
      EXPECT_EQ(0, std::memcmp(d[i].data, s[i].data, d[i].count * sizeof(float)));
    }
  }
  EXPECT_EQ(head_tensors, 2u); // kernel and bias
}

} // namespace

TEST(WeightsNewHead, TorchLayoutOtherClassCount) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r18_7.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7), dst = make_net("resnet18", 2, 1, 2, 3);
  TorchOpts o;
  o.arch = "resnet18";
  write_torch(src.get(), path, o);
  const std::vector<float> before = block_of(dst.get());
  // Strict: the classifier's shape is an error naming fc; nothing changes.
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
  EXPECT_MSG(path.c_str(), "key fc.weight", "shape (7,16)", "layer fc kernel (3,16)");
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_STRICT, nullptr),
            SN_ERR_SHAPE);
  EXPECT_MSG("fc.weight");
  EXPECT_EQ(block_of(dst.get()), before);
  // New head: the body is loaded, fc keeps the net's own initialisation.
  ASSERT_EQ(sn_net_plan(dst.get(), 2, 0), SN_OK) << sn_last_error();
  char md5[33];
  ASSERT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, md5),
            SN_OK)
      << sn_last_error();
  EXPECT_EQ(std::strlen(md5), 32u);
  expect_new_head(src.get(), dst.get(), before, "fc");
  // The same through the broadcasting loader (serial communicator).
  NetPtr dst2 = make_net("resnet18", 3, 1, 2, 3);
  const std::vector<float> before2 = block_of(dst2.get());
  ASSERT_EQ(sn_weights_load_bcast_ex(dst2.get(), path.c_str(), sn_comm_serial(), SN_LOAD_NEW_HEAD,
                                     nullptr),
            SN_OK)
      << sn_last_error();
  expect_new_head(src.get(), dst2.get(), before2, "fc");
  EXPECT_EQ(sn_weights_load_bcast(dst2.get(), path.c_str(), sn_comm_serial(), nullptr),
            SN_ERR_SHAPE);
  EXPECT_MSG("fc.weight");
}

TEST(WeightsNewHead, TorchLayoutSameClassCountLoadsTheHead) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r18.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7), dst = make_net("resnet18", 2, 1, 2, 7);
  write_torch(src.get(), path);
  ASSERT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_OK)
      << sn_last_error();
  EXPECT_TRUE(same_block(src.get(), dst.get()));
  // A partial classifier (bias absent) is not half-loaded: the net keeps both tensors.
  TorchOpts o;
  o.skip = "fc.bias";
  write_torch(src.get(), path, o);
  NetPtr dst2 = make_net("resnet18", 3, 1, 2, 7);
  const std::vector<float> before = block_of(dst2.get());
  EXPECT_EQ(sn_weights_load(dst2.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NOTFOUND);
  EXPECT_MSG("key fc.bias", "missing");
  ASSERT_EQ(
      sn_weights_load_ex(dst2.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
      SN_OK)
      << sn_last_error();
  expect_new_head(src.get(), dst2.get(), before, "fc");
}

TEST(WeightsNewHead, BodyStaysStrict) {
  const std::string dir = sntest::temp_dir(), path = dir + "/bad.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7), dst = make_net("resnet18", 2, 1, 2, 3);
  const std::vector<float> before = block_of(dst.get());
  TorchOpts o;
  o.skip = "layer2.0.bn1.running_mean";
  write_torch(src.get(), path, o);
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_ERR_NOTFOUND);
  EXPECT_MSG("key layer2.0.bn1.running_mean");
  o = TorchOpts();
  o.extra = "fc2.weight";
  write_torch(src.get(), path, o);
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_ERR_FORMAT);
  EXPECT_MSG("key fc2.weight", "unexpected");
  o = TorchOpts();
  o.wrong = "layer1.0.conv1.weight";
  write_torch(src.get(), path, o);
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_ERR_SHAPE);
  EXPECT_MSG("key layer1.0.conv1.weight");
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, 6u, nullptr),
            SN_ERR_INVALID);
  EXPECT_EQ(block_of(dst.get()), before);
  // A net without a classifier: the flag changes nothing (the file's fc is unexpected).
  NetPtr notop = make_net("resnet18", 4, 0, 2);
  write_torch(src.get(), path);
  EXPECT_EQ(
      sn_weights_load_ex(notop.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
      SN_ERR_FORMAT);
  EXPECT_MSG("key fc.", "unexpected", "without a classifier");
}

TEST(WeightsNewHead, KerasLayoutOtherClassCount) {
  const std::string dir = sntest::temp_dir(), path = dir + "/k7.h5";
  NetPtr src = make_net("keras_resnet50", 1, 1, 2, 7);
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    if (variant == 0) write_keras(src.get(), path);
    if (variant == 1) {
      KerasOpts o;
      o.drop_layer = "predictions"; // a no-top file: the classifier is absent
      write_keras(src.get(), path, o);
    }
    if (variant == 2) write_keras3(src.get(), path, 1);
    NetPtr dst = make_net("keras_resnet50", 2, 1, 2, 3);
    const std::vector<float> before = block_of(dst.get());
    EXPECT_NE(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_OK);
    EXPECT_MSG(path.c_str(), "predictions");
    EXPECT_EQ(block_of(dst.get()), before);
    ASSERT_EQ(
        sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
        SN_OK)
        << sn_last_error();
    expect_new_head(src.get(), dst.get(), before, "predictions");
  }
  // Strict elsewhere: a missing body layer is still an error.
  KerasOpts o;
  o.drop_layer = "conv3_block2_2_bn";
  write_keras(src.get(), path, o);
  NetPtr dst = make_net("keras_resnet50", 2, 1, 2, 3);
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_ERR_NOTFOUND);
  EXPECT_MSG("layer conv3_block2_2_bn", "missing");
}

TEST(WeightsNewHead, NativeLayoutOtherClassCount) {
  for (const char *arch : {"resnet18", "lenet"}) {
    SCOPED_TRACE(arch);
    const std::string dir = sntest::temp_dir(), path = dir + "/w7.h5";
    const char *head = !std::strcmp(arch, "lenet") ? "dense_2" : "fc";
    NetPtr src = make_net(arch, 1, 1, 2, 7), dst = make_net(arch, 2, 1, 2, 3);
    ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK) << sn_last_error();
    const std::vector<float> before = block_of(dst.get());
    EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
    EXPECT_MSG(std::string("params/") + head + "/kernel", std::string("layer ") + head);
    EXPECT_EQ(block_of(dst.get()), before);
    ASSERT_EQ(
        sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_NATIVE, SN_LOAD_NEW_HEAD, nullptr),
        SN_OK)
        << sn_last_error();
    // LeNet's dense and dense_1 are body layers (loaded); only the last dense layer is the head.
    expect_new_head(src.get(), dst.get(), before, head);
  }
}

// ------------------------------------------------------------------ SN_LOAD_IGNORE_HEAD (features)

namespace {

// After loading a full file of src into the no-top dst: every tensor of dst equals src's
// tensor of the same layer and role (dst has a subset of src's tensors).
void expect_body_equal(sn_net *src, sn_net *dst) {
  std::vector<sn_param_info> d = params_of(dst);
  ASSERT_FALSE(d.empty());
  for (const sn_param_info &p : d) {
    SCOPED_TRACE(std::string(p.layer) + " " + std::to_string((int)p.role));
    EXPECT_STRNE(p.layer_kind, "dense");
    int i = sn_net_find_param(src, p.layer, p.role);
    ASSERT_GE(i, 0);
    sn_param_info s;
    ASSERT_EQ(sn_net_param(src, i, &s), SN_OK);
    ASSERT_EQ(s.count, p.count);
    EXPECT_EQ(0, std::memcmp(s.data, p.data, p.count * sizeof(float)));
  }
}

// A no-top net (avg pooling) of arch.
NetPtr make_notop(const char *arch, uint64_t seed) {
  NetPtr n = make_net(arch, seed, 0, 2);
  EXPECT_EQ(sn_net_config(n.get())->include_top, 0);
  EXPECT_EQ(sn_net_config(n.get())->pooling, SN_POOL_AVG);
  return n;
}

// Loads path into a fresh no-top net: strict fails naming `head` (net unchanged), with the flag
// (alone and combined with SN_LOAD_NEW_HEAD, also through the broadcasting loader) the body
// equals src's.
void check_ignore_head(sn_net *src, const char *arch, const std::string &path, const char *head) {
  NetPtr dst = make_notop(arch, 2);
  const std::vector<float> before = block_of(dst.get());
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(path.c_str(), head, "unexpected", "without a classifier", "SN_LOAD_IGNORE_HEAD");
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
            SN_ERR_FORMAT);
  EXPECT_MSG(head);
  EXPECT_EQ(block_of(dst.get()), before);
  ASSERT_EQ(sn_net_plan(dst.get(), 2, 0), SN_OK) << sn_last_error();
  char md5[33];
  ASSERT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, md5),
            SN_OK)
      << sn_last_error();
  EXPECT_EQ(std::strlen(md5), 32u);
  expect_body_equal(src, dst.get());
  std::vector<float> feats = logits(dst.get());
  for (float v : feats)
    EXPECT_TRUE(std::isfinite(v));
  NetPtr dst2 = make_notop(arch, 3);
  ASSERT_EQ(sn_weights_load_bcast_ex(dst2.get(), path.c_str(), sn_comm_serial(),
                                     SN_LOAD_NEW_HEAD | SN_LOAD_IGNORE_HEAD, nullptr),
            SN_OK)
      << sn_last_error();
  expect_body_equal(src, dst2.get());
  ASSERT_EQ(sn_net_plan(dst2.get(), 2, 0), SN_OK) << sn_last_error();
  EXPECT_EQ(logits(dst2.get()), feats);
}

} // namespace

TEST(WeightsIgnoreHead, TorchLayout) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r18_full.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7);
  TorchOpts o;
  o.arch = "resnet18";
  write_torch(src.get(), path, o);
  check_ignore_head(src.get(), "resnet18", path, "key fc.");
  // CIFAR style: its classifier is fc too.
  NetPtr cifar = make_net("resnet20", 1, 1, 2, 7);
  write_torch(cifar.get(), path);
  check_ignore_head(cifar.get(), "resnet20", path, "key fc.");
}

TEST(WeightsIgnoreHead, KerasLayout) {
  const std::string dir = sntest::temp_dir(), path = dir + "/k_full.h5";
  NetPtr src = make_net("keras_resnet50", 1, 1, 2, 7);
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    if (variant == 0) write_keras(src.get(), path);
    if (variant == 1) write_keras3(src.get(), path, 1); // dense group, vars named "predictions"
    check_ignore_head(src.get(), "keras_resnet50", path, "layer predictions");
  }
}

TEST(WeightsIgnoreHead, NativeLayout) {
  for (const char *arch : {"resnet18", "keras_resnet50", "lenet_bn"}) {
    SCOPED_TRACE(arch);
    const std::string dir = sntest::temp_dir(), path = dir + "/w_full.h5";
    const char *head = !std::strcmp(arch, "resnet18") ? "params/fc" : "params/predictions";
    if (!std::strcmp(arch, "lenet_bn")) head = "params/dense";
    NetPtr src = make_net(arch, 1, 1, 2, 7);
    ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK) << sn_last_error();
    NetPtr dst = make_notop(arch, 2);
    EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
    EXPECT_MSG(path.c_str(), head, "unexpected");
    ASSERT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_NATIVE, SN_LOAD_IGNORE_HEAD,
                                 nullptr),
              SN_OK)
        << sn_last_error();
    expect_body_equal(src.get(), dst.get());
  }
}

TEST(WeightsIgnoreHead, BodyStaysStrictAndTopNetsUnaffected) {
  const std::string dir = sntest::temp_dir(), path = dir + "/bad.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7);
  NetPtr dst = make_notop("resnet18", 2);
  const std::vector<float> before = block_of(dst.get());
  TorchOpts o;
  o.skip = "layer3.1.bn2.running_var";
  write_torch(src.get(), path, o);
  EXPECT_EQ(
      sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_ERR_NOTFOUND);
  EXPECT_MSG("key layer3.1.bn2.running_var");
  o = TorchOpts();
  o.extra = "fc2.weight"; // not the classifier: still unexpected
  write_torch(src.get(), path, o);
  EXPECT_EQ(
      sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_ERR_FORMAT);
  EXPECT_MSG("key fc2.weight", "unexpected");
  o = TorchOpts();
  o.wrong = "conv1.weight";
  write_torch(src.get(), path, o);
  EXPECT_EQ(
      sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_ERR_SHAPE);
  EXPECT_MSG("key conv1.weight");
  // Keras: "predictions" is skipped, but a Keras-style net never skips torch's "fc".
  KerasOpts ko;
  ko.extra_layer = "fc";
  NetPtr ksrc = make_net("keras_resnet50", 1, 1, 2, 7);
  write_keras(ksrc.get(), path, ko);
  NetPtr kdst = make_notop("keras_resnet50", 2);
  EXPECT_EQ(
      sn_weights_load_ex(kdst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_ERR_FORMAT);
  EXPECT_MSG("unexpected layer fc");
  EXPECT_EQ(sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, 4u, nullptr),
            SN_ERR_INVALID);
  EXPECT_EQ(block_of(dst.get()), before);
  // A net with a classifier: the flag changes nothing (strict; with NEW_HEAD the new-head rule).
  write_torch(src.get(), path);
  NetPtr top3 = make_net("resnet18", 5, 1, 2, 3);
  EXPECT_EQ(
      sn_weights_load_ex(top3.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_ERR_SHAPE);
  EXPECT_MSG("key fc.weight");
  const std::vector<float> before3 = block_of(top3.get());
  ASSERT_EQ(sn_weights_load_ex(top3.get(), path.c_str(), SN_WEIGHTS_AUTO,
                               SN_LOAD_NEW_HEAD | SN_LOAD_IGNORE_HEAD, nullptr),
            SN_OK)
      << sn_last_error();
  expect_new_head(src.get(), top3.get(), before3, "fc");
}

// ------------------------------------------------------------------ non-finite values

namespace {

// Sets element k of src's tensor (layer, role) to v.
void poison(sn_net *net, const char *layer, sn_param_role role, int64_t k, float v) {
  const int i = sn_net_find_param(net, layer, role);
  ASSERT_GE(i, 0) << layer;
  sn_param_info p;
  ASSERT_EQ(sn_net_param(net, i, &p), SN_OK);
  ASSERT_LT(k, p.count);
  p.data[k] = v;
}

} // namespace

// A NaN or an infinity in any tensor of a weights file is refused in every layout, through the
// serial and the broadcasting loader, with SN_ERR_NUMERIC and a message naming the file, the
// tensor as the file names it, its layer and role and the counts; the net is unchanged.
TEST(WeightsNonFinite, RefusedInEveryLayoutNamingTheTensor) {
  struct Case {
    const char *arch, *layer;
    sn_param_role role;
    int layout; // 0 torch, 1 Keras legacy, 2 Keras 3, 3 native
    const char *name;
  } cases[] = {
      {"resnet18", "layer2.0.conv2", SN_ROLE_KERNEL, 0, "key layer2.0.conv2.weight"},
      {"resnet18", "layer3.1.bn1", SN_ROLE_MOVING_VAR, 0, "key layer3.1.bn1.running_var"},
      {"keras_resnet50", "conv3_block2_2_conv", SN_ROLE_BIAS, 1,
       "layer conv3_block2_2_conv weight bias"},
      {"keras_resnet50v2", "post_bn", SN_ROLE_GAMMA, 2, "layer post_bn weight gamma"},
      {"lenet", "dense_2", SN_ROLE_KERNEL, 3, "dataset params/dense_2/kernel"},
      {"resnet20", "layer1.0.bn2", SN_ROLE_MOVING_MEAN, 3,
       "dataset params/layer1.0.bn2/moving_mean"},
  };
  const std::string dir = sntest::temp_dir();
  int n = 0;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.arch) + " " + c.layer);
    const std::string path = dir + "/bad" + std::to_string(n++) + ".h5";
    NetPtr src = make_net(c.arch, 21), dst = make_net(c.arch, 22);
    poison(src.get(), c.layer, c.role, 1, NAN);
    poison(src.get(), c.layer, c.role, 2, -INFINITY);
    poison(src.get(), c.layer, c.role, 3, NAN);
    TorchOpts to;
    switch (c.layout) {
    case 0:
      write_torch(src.get(), path, to);
      break;
    case 1:
      write_keras(src.get(), path);
      break;
    case 2:
      write_keras3(src.get(), path, 1);
      break;
    default:
      ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK) << sn_last_error();
    }
    const std::vector<float> before = block_of(dst.get());
    EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_NUMERIC);
    EXPECT_MSG(path, c.name, std::string("(layer ") + c.layer, "2 NaN and 1 infinite of",
               "weights must be finite");
    EXPECT_EQ(sn_weights_load_bcast(dst.get(), path.c_str(), sn_comm_serial(), nullptr),
              SN_ERR_NUMERIC);
    EXPECT_MSG(c.name);
    EXPECT_EQ(block_of(dst.get()), before);
  }
}

// Only what is loaded is checked: a NaN in a classifier the load skips (SN_LOAD_NEW_HEAD with
// another class count, SN_LOAD_IGNORE_HEAD into a net without one) does not stop it; the same
// classifier loaded is refused.
TEST(WeightsNonFinite, SkippedClassifierIsNotChecked) {
  const std::string dir = sntest::temp_dir(), path = dir + "/r18.h5";
  NetPtr src = make_net("resnet18", 1, 1, 2, 7);
  poison(src.get(), "fc", SN_ROLE_BIAS, 0, NAN);
  write_torch(src.get(), path);
  NetPtr other = make_net("resnet18", 2, 1, 2, 3), notop = make_net("resnet18", 3, 0, 2);
  EXPECT_EQ(
      sn_weights_load_ex(other.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
      SN_OK)
      << sn_last_error();
  EXPECT_EQ(
      sn_weights_load_ex(notop.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_OK)
      << sn_last_error();
  NetPtr same = make_net("resnet18", 4, 1, 2, 7);
  EXPECT_EQ(
      sn_weights_load_ex(same.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
      SN_ERR_NUMERIC);
  EXPECT_MSG("key fc.bias", "1 NaN and 0 infinite of 7 values");
}

// ------------------------------------------------------------------ the class count

// A classifier of another class count is a shape error that says so, in every layout.
TEST(WeightsClasses, MismatchNamesBothClassCounts) {
  const std::string dir = sntest::temp_dir(), path = dir + "/w.h5";
  for (int layout = 0; layout < 4; ++layout) {
    SCOPED_TRACE(layout);
    const char *arch = layout == 0 ? "resnet18" : layout == 3 ? "lenet" : "keras_resnet50";
    NetPtr src = make_net(arch, 1, 1, 4, 7), dst = make_net(arch, 2, 1, 4, 3);
    if (layout == 0)
      write_torch(src.get(), path);
    else if (layout == 1)
      write_keras(src.get(), path);
    else if (layout == 2)
      write_keras3(src.get(), path, 1);
    else
      ASSERT_EQ(sn_weights_save(src.get(), path.c_str()), SN_OK);
    EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_SHAPE);
    EXPECT_MSG("the file's classifier has 7 classes and the net 3", "classes = 7");
  }
}

// sn_weights_inspect: the layout, the architecture the file names and the class count, in every
// layout, with and without a classifier; errors for files that are not weights.
TEST(WeightsClasses, InspectReadsWhatTheFileRecords) {
  const std::string dir = sntest::temp_dir(), path = dir + "/w.h5";
  sn_weights_record wi;
  struct Case {
    const char *arch;
    int layout, top, classes;
    sn_weights_format format;
    const char *arch_recorded;
  } cases[] = {
      {"resnet18", 0, 1, 12, SN_WEIGHTS_TORCH, "resnet18"}, // with the arch attribute
      {"resnet20", 0, 1, 5, SN_WEIGHTS_TORCH, ""},          // a bare state dict
      {"resnet50", 0, 0, 0, SN_WEIGHTS_TORCH, ""},          // no fc: no classifier
      {"keras_resnet50", 1, 1, 9, SN_WEIGHTS_KERAS, ""},
      {"keras_resnet50v2", 1, 0, 0, SN_WEIGHTS_KERAS, ""},
      {"keras_resnet50", 2, 1, 11, SN_WEIGHTS_KERAS, ""},
      {"keras_resnet50", 2, 0, 0, SN_WEIGHTS_KERAS, ""},
      {"lenet", 3, 1, 4, SN_WEIGHTS_NATIVE, "lenet"},
      {"resnet18", 3, 0, 0, SN_WEIGHTS_NATIVE, "resnet18"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.arch) + " layout " + std::to_string(c.layout) + " top " +
                 std::to_string(c.top));
    NetPtr net = make_net(c.arch, 1, c.top, 4, c.top ? c.classes : 10);
    TorchOpts o;
    o.arch = *c.arch_recorded ? c.arch_recorded : nullptr;
    if (c.layout == 0)
      write_torch(net.get(), path, o);
    else if (c.layout == 1)
      write_keras(net.get(), path);
    else if (c.layout == 2)
      write_keras3(net.get(), path, 1);
    else
      ASSERT_EQ(sn_weights_save(net.get(), path.c_str()), SN_OK);
    ASSERT_EQ(sn_weights_inspect(path.c_str(), &wi), SN_OK) << sn_last_error();
    EXPECT_EQ(wi.format, c.format);
    EXPECT_STREQ(wi.arch, c.arch_recorded);
    EXPECT_EQ(wi.classes, c.classes);
  }
  EXPECT_EQ(sn_weights_inspect((dir + "/missing.h5").c_str(), &wi), SN_ERR_IO);
  EXPECT_MSG("missing.h5");
  FILE *f = std::fopen(path.c_str(), "w");
  std::fputs("not hdf5", f);
  std::fclose(f);
  EXPECT_EQ(sn_weights_inspect(path.c_str(), &wi), SN_ERR_FORMAT);
  hid_t h = create(path);
  put(h, "images", {2, 2}, {1, 2, 3, 4});
  H5Fclose(h);
  EXPECT_EQ(sn_weights_inspect(path.c_str(), &wi), SN_ERR_FORMAT);
  EXPECT_MSG("unrecognised weights layout");
  EXPECT_EQ(wi.classes, 0);
}

// The file's classifier under another name (the keras_applications 1.0.8 ResNets' "probs"):
// skipped by position for a net without one, kept out by SN_LOAD_NEW_HEAD for another class
// count.
TEST(WeightsIgnoreHead, KerasClassifierOfAnotherName) {
  const std::string dir = sntest::temp_dir(), path = dir + "/probs.h5";
  NetPtr src = make_net("keras_resnet50", 1, 1, 2, 7);
  KerasOpts o;
  o.keras_order = true;
  o.rename["predictions"] = "probs";
  write_keras(src.get(), path, o);
  NetPtr dst = make_notop("keras_resnet50", 2);
  EXPECT_EQ(sn_weights_load(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, nullptr), SN_ERR_FORMAT);
  EXPECT_MSG(path, "unexpected layer probs", "without a classifier");
  ASSERT_EQ(
      sn_weights_load_ex(dst.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_IGNORE_HEAD, nullptr),
      SN_OK)
      << sn_last_error();
  expect_body_equal(src.get(), dst.get());
  NetPtr top3 = make_net("keras_resnet50", 3, 1, 2, 3);
  const std::vector<float> before = block_of(top3.get());
  ASSERT_EQ(
      sn_weights_load_ex(top3.get(), path.c_str(), SN_WEIGHTS_AUTO, SN_LOAD_NEW_HEAD, nullptr),
      SN_OK)
      << sn_last_error();
  expect_new_head(src.get(), top3.get(), before, "predictions");
}
