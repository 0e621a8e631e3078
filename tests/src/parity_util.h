// parity_util.h - reading the parity fixtures (tests/fixtures/*.h5, see tests/fixtures/README.md)
// and comparing parameter tensors of two nets. Header-only; used by parity_test.cpp and
// train_parity_test.cpp. Tests may include hdf5.h (the library's src/ may not).
#pragma once
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "shardnet.h"

namespace sntest {

// A read-only HDF5 file: whole datasets (converted to float32 / int32) and numeric attributes.
class H5Reader {
public:
  explicit H5Reader(const std::string &path) : path_(path) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  }
  ~H5Reader() {
    if (id_ >= 0) H5Fclose(id_);
  }
  H5Reader(const H5Reader &) = delete;
  H5Reader &operator=(const H5Reader &) = delete;

  bool ok() const { return id_ >= 0; }
  const std::string &path() const { return path_; }

  // Reads dataset `name`; dims receives its shape. False if missing or unreadable.
  bool read_f32(const char *name, std::vector<float> &out,
                std::vector<int64_t> *dims = nullptr) const {
    return read(name, H5T_NATIVE_FLOAT, out, dims);
  }
  bool read_i32(const char *name, std::vector<int32_t> &out,
                std::vector<int64_t> *dims = nullptr) const {
    return read(name, H5T_NATIVE_INT32, out, dims);
  }
  // A numeric scalar attribute of the root group, converted to double; `fallback` if absent.
  double attr(const char *name, double fallback = NAN) const {
    if (id_ < 0 || H5Aexists(id_, name) <= 0) return fallback;
    hid_t a = H5Aopen(id_, name, H5P_DEFAULT);
    double v = fallback;
    if (a >= 0) {
      if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = fallback;
      H5Aclose(a);
    }
    return v;
  }

  // A string attribute of the root group (fixed or variable length); `fallback` if absent.
  std::string str_attr(const char *name, const std::string &fallback = "") const {
    if (id_ < 0 || H5Aexists(id_, name) <= 0) return fallback;
    hid_t a = H5Aopen(id_, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    std::string v = fallback;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
      if (H5Tis_variable_str(t) > 0) {
        char *p = nullptr;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &p) >= 0 && p) v = p;
        H5free_memory(p);
        H5Tclose(mt);
      } else {
        std::vector<char> buf(H5Tget_size(t) + 1, 0);
        if (H5Aread(a, t, buf.data()) >= 0) v = buf.data();
      }
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return v;
  }

private:
  template <typename T>
  bool read(const char *name, hid_t memtype, std::vector<T> &out,
            std::vector<int64_t> *dims) const {
    if (id_ < 0 || H5Lexists(id_, name, H5P_DEFAULT) <= 0) return false;
    hid_t d = H5Dopen2(id_, name, H5P_DEFAULT);
    if (d < 0) return false;
    hid_t s = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(s);
    std::vector<hsize_t> hd(nd > 0 ? nd : 1, 1);
    if (nd > 0) H5Sget_simple_extent_dims(s, hd.data(), nullptr);
    size_t n = 1;
    if (dims) dims->clear();
    for (int i = 0; i < nd; ++i) {
      n *= hd[i];
      if (dims) dims->push_back((int64_t)hd[i]);
    }
    out.resize(n);
    bool good = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0;
    H5Sclose(s);
    H5Dclose(d);
    return good;
  }
  std::string path_;
  hid_t id_ = -1;
};

// max |a - b| over n values and max |b|, in double.
inline double diff_max(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::fmax(m, std::fabs((double)a[i] - (double)b[i]));
  return m;
}
inline double abs_max(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::fmax(m, std::fabs((double)a[i]));
  return m;
}

// "layer/role" for messages.
inline std::string param_name(const sn_net *net, int i) {
  sn_param_info p;
  if (sn_net_param(net, i, &p) != SN_OK) return "?";
  return std::string(p.layer) + "/" + sn_param_role_name(p.role, sn_net_style(net), p.layer_kind);
}

// Builds a net for a fixture: arch (the fixture's `arch` attribute, else `arch`), classes, input
// shape and base width from the fixture's root attributes. Returns nullptr (and the engine's
// message in *err) on failure.
inline sn_net *fixture_net(const H5Reader &f, const std::string &name, int include_top,
                           sn_pooling pooling, std::string *err) {
  const std::string arch = f.str_attr("arch", name);
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch.c_str());
  cfg.classes = (int)f.attr("classes");
  cfg.height = (int)f.attr("height");
  cfg.width = (int)f.attr("width");
  cfg.channels = (int)f.attr("channels");
  cfg.base_width = (int)f.attr("base_width");
  cfg.include_top = include_top;
  cfg.pooling = pooling;
  sn_net *net = nullptr;
  if (sn_net_create(&cfg, 1234, &net) != SN_OK) {
    if (err) *err = sn_last_error();
    return nullptr;
  }
  return net;
}

} // namespace sntest
