// test_util.h - helpers shared by the GoogleTest suites.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shardnet.h"

namespace sntest {
// Deterministic normal(0, stddev) values.
std::vector<float> randn(size_t n, uint64_t seed, float stddev = 1.0f);
std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi);
// max |a - b|, and max |b|.
double max_abs_diff(const float *a, const float *b, size_t n);
double max_abs(const float *a, size_t n);
// Path of a committed fixture (tests/fixtures/NAME).
std::string fixture(const std::string &name);
// A fresh temporary directory, removed by the OS eventually; unique per call.
std::string temp_dir();
bool file_exists(const std::string &path);
// sn_net_plan with only the fusions in the mask fuse (sn_engine_options.fuse).
sn_status plan_fused(sn_net *net, int max_batch, int training, unsigned fuse);
} // namespace sntest
