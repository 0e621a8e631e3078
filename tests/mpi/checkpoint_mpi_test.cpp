// checkpoint_mpi_test.cpp - the collective parts of io/checkpoint.c under mpirun: with batch-norm
// statistics that differ per rank (local BN) every rank gets its own moving statistics back from
// a checkpoint written by as many ranks, and rank 0's otherwise; a failed load gives every rank
// the same error and changes no net. Every rank runs every test (EXPECT_*, no early return
// between collectives).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

struct World {
  sn_comm *comm = nullptr;
  int rank = 0, size = 1;
  World() {
    EXPECT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
    rank = sn_comm_rank(comm);
    size = sn_comm_size(comm);
  }
  ~World() { sn_comm_destroy(comm); }
};

sn_net *make_net(sn_comm *comm) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.base_width = 2;
  cfg.height = cfg.width = 8;
  cfg.channels = 1;
  cfg.classes = 3;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 9, &net), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_plan(net, 4, 1), SN_OK) << sn_last_error();
  sn_net_set_comm(net, comm, 0); // local batch norm: moving statistics differ per rank
  return net;
}

std::vector<float> block_of(sn_net *net) {
  size_t n;
  float *b = sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}

// A path every rank agrees on (rank 0's temporary directory).
std::string shared_path(sn_comm *comm, const char *name) {
  char buf[512] = "";
  if (sn_comm_rank(comm) == 0) snprintf(buf, sizeof buf, "%s/%s", sntest::temp_dir().c_str(), name);
  EXPECT_EQ(sn_comm_bcast(comm, buf, sizeof buf, 0), SN_OK);
  return buf;
}

TEST(CheckpointMpi, EveryRankGetsItsOwnMovingStatistics) {
  World w;
  sn_net *a = make_net(w.comm);
  sn_train_config tc;
  sn_train_config_init(&tc);
  std::vector<float> x = sntest::randn(4 * 64, 100 + (uint64_t)w.rank); // each rank its own data
  int32_t labels[4] = {0, 1, 2, 1};
  for (int i = 0; i < 2; ++i) {
    float loss;
    int correct;
    EXPECT_EQ(sn_net_train_step(a, x.data(), labels, 4, 4 * w.size, &tc, &loss, &correct), SN_OK);
    EXPECT_EQ(sn_net_sgd_update(a, &tc, 0.1f), SN_OK);
  }
  std::vector<float> mine = block_of(a), rank0 = mine;
  EXPECT_EQ(sn_comm_bcast(w.comm, rank0.data(), rank0.size() * sizeof(float), 0), SN_OK);
  if (w.size > 1 && w.rank == 1) EXPECT_NE(mine, rank0); // the statistics do differ

  sn_checkpoint_meta m;
  memset(&m, 0, sizeof m);
  m.step = 2;
  m.ranks = w.size;
  sn_train_recipe_init(&m.recipe);
  snprintf(m.recipe.arch, sizeof m.recipe.arch, "resnet20");
  m.has_recipe = 1;
  for (int group : {1, 0}) {
    m.recipe.bn_group = group;
    std::string path = shared_path(w.comm, group ? "local.h5" : "sync.h5");
    sn_status s = sn_checkpoint_save(a, path.c_str(), &m, w.comm);
    EXPECT_EQ(sn_comm_agree(w.comm, s), SN_OK) << sn_last_error();
    sn_net *b = make_net(w.comm);
    sn_checkpoint_meta back;
    EXPECT_EQ(sn_checkpoint_load(b, path.c_str(), w.comm, &back), SN_OK) << sn_last_error();
    // per-rank statistics only when the ranks do not share them
    EXPECT_EQ(block_of(b), group ? mine : rank0) << "bn_group " << group;
    EXPECT_EQ(back.ranks, w.size);
    sn_net_destroy(b);
    // another rank count (here: one rank alone) takes rank 0's statistics
    sn_net *c = make_net(sn_comm_serial());
    EXPECT_EQ(sn_checkpoint_load(c, path.c_str(), sn_comm_serial(), &back), SN_OK);
    EXPECT_EQ(block_of(c), rank0);
    sn_net_destroy(c);
    EXPECT_EQ(sn_comm_barrier(w.comm), SN_OK); // the next save replaces nothing being read
  }
  sn_net_destroy(a);
}

TEST(CheckpointMpi, FailedLoadIsTheSameErrorEverywhere) {
  World w;
  sn_net *a = make_net(w.comm);
  std::vector<float> before = block_of(a);
  std::string path = shared_path(w.comm, "missing.h5");
  sn_checkpoint_meta back;
  EXPECT_EQ(sn_checkpoint_load(a, path.c_str(), w.comm, &back), SN_ERR_IO);
  std::string msg = sn_last_error();
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  if (w.size > 1) EXPECT_EQ(msg.rfind("rank 0: ", 0), 0u) << msg;
  EXPECT_EQ(block_of(a), before);
  EXPECT_EQ(sn_checkpoint_read_meta(path.c_str(), w.comm, &back), SN_ERR_IO);
  sn_net_destroy(a);
}

} // namespace
