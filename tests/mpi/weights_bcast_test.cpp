// weights_bcast_test.cpp - sn_weights_load_bcast (io/weights.c) under mpirun: rank 0 reads, every
// rank ends with rank 0's parameters, and a failure on rank 0 is reported on every rank with the
// net unchanged. Every rank runs every check (EXPECT_*, no early return before a collective).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

sn_net *small_net(const char *arch, uint64_t seed) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.base_width = 4;
  cfg.classes = 10;
  cfg.height = cfg.width = 32;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, seed, &net), SN_OK) << sn_last_error();
  return net;
}

std::vector<float> block_of(sn_net *net) {
  size_t n = 0;
  float *b = sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}

// A directory name chosen by rank 0 and shared with every rank.
std::string shared_dir(sn_comm *comm) {
  char buf[256] = {0};
  if (sn_comm_rank(comm) == 0) std::snprintf(buf, sizeof buf, "%s", sntest::temp_dir().c_str());
  EXPECT_EQ(sn_comm_bcast(comm, buf, sizeof buf, 0), SN_OK);
  return buf;
}

} // namespace

TEST(WeightsBcast, EveryRankGetsRankZerosParameters) {
  sn_comm *comm = nullptr;
  ASSERT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
  const int rank = sn_comm_rank(comm);
  for (const char *arch : {"resnet18", "keras_resnet50"}) {
    const std::string path = shared_dir(comm) + "/w.h5";
    sn_net *src = small_net(arch, 1);
    if (rank == 0) EXPECT_EQ(sn_weights_save(src, path.c_str()), SN_OK) << sn_last_error();
    sn_comm_barrier(comm);
    sn_net *net = small_net(arch, 100 + (uint64_t)rank); // differs on every rank
    ASSERT_EQ(sn_net_plan(net, 1, 0), SN_OK) << sn_last_error();
    char md5[33];
    EXPECT_EQ(sn_weights_load_bcast(net, path.c_str(), comm, md5), SN_OK) << sn_last_error();
    EXPECT_EQ(block_of(net), block_of(src)) << arch << " rank " << rank;
    // Every rank reports the file's MD5 (computed on rank 0).
    std::vector<char> all((size_t)sn_comm_size(comm) * 33);
    EXPECT_EQ(sn_comm_allgather(comm, md5, all.data(), 33), SN_OK);
    for (int r = 0; r < sn_comm_size(comm); ++r)
      EXPECT_STREQ(all.data() + 33 * r, all.data());
    EXPECT_EQ(std::strlen(md5), 32u);
    sn_net_destroy(net);
    sn_net_destroy(src);
  }
  sn_comm_destroy(comm);
}

TEST(WeightsBcast, FailureOnRankZeroReachesEveryRankAndChangesNothing) {
  sn_comm *comm = nullptr;
  ASSERT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
  const std::string path = shared_dir(comm) + "/does_not_exist.h5";
  sn_net *net = small_net("resnet18", 7);
  const std::vector<float> before = block_of(net);
  sn_status st = sn_weights_load_bcast(net, path.c_str(), comm, nullptr);
  EXPECT_NE(st, SN_OK);
  if (sn_comm_rank(comm) == 0) EXPECT_EQ(st, SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), path)) << sn_last_error();
  EXPECT_EQ(block_of(net), before);
  sn_net_destroy(net);
  sn_comm_destroy(comm);
}
