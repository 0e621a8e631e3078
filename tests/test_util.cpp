#include "test_util.h"

#include <cmath>
#include <cstdlib>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace sntest {
std::vector<float> randn(size_t n, uint64_t seed, float stddev) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (auto &x : v)
    x = d(rng);
  return v;
}
std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v)
    x = d(rng);
  return v;
}
double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::fmax(m, std::fabs((double)a[i] - (double)b[i]));
  return m;
}
double max_abs(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::fmax(m, std::fabs((double)a[i]));
  return m;
}
std::string fixture(const std::string &name) {
  const char *d = std::getenv("SN_FIXTURES");
  return std::string(d ? d : SN_SOURCE_DIR "/tests/fixtures") + "/" + name;
}
std::string temp_dir() {
  char tmpl[] = "/tmp/sntest.XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? std::string(d) : std::string("/tmp");
}
bool file_exists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}
sn_status plan_fused(sn_net *net, int max_batch, int training, unsigned fuse) {
  sn_engine_options o = *sn_net_options(net);
  o.fuse = fuse;
  sn_status s = sn_net_set_options(net, &o);
  return s == SN_OK ? sn_net_plan(net, max_batch, training) : s;
}
} // namespace sntest
