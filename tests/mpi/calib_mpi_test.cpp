// calib_mpi_test.cpp - int8 calibration and scales under mpirun (src/calib.c, io/scales.c): the
// thresholds summed over the ranks equal a serial calibration on all the images; the scales file
// loaded by rank 0 and broadcast gives every rank the same scales; a bad file fails on every rank
// with nothing set. Every rank runs every check (no early return before a collective).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

sn_net *small_net() {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.base_width = 4;
  cfg.classes = 10;
  cfg.height = cfg.width = 16;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 7, &net), SN_OK) << sn_last_error();
  return net;
}

std::vector<float> scales_of(sn_net *net) {
  std::vector<float> v;
  for (int i = 0; i < sn_net_num_act_scales(net); ++i) {
    sn_act_scale a;
    EXPECT_EQ(sn_net_act_scale(net, i, &a), SN_OK);
    v.insert(v.end(), {a.threshold, a.min, a.max});
  }
  return v;
}

std::string shared_dir(sn_comm *comm) {
  char buf[256] = {0};
  if (sn_comm_rank(comm) == 0) std::snprintf(buf, sizeof buf, "%s", sntest::temp_dir().c_str());
  EXPECT_EQ(sn_comm_bcast(comm, buf, sizeof buf, 0), SN_OK);
  return buf;
}

} // namespace

TEST(CalibMpi, RanksSumToTheSerialThresholds) {
  sn_comm *comm = nullptr;
  ASSERT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  const int n = 12, img = 16 * 16 * 3;
  std::vector<float> x = sntest::randn((size_t)n * img, 99, 1.0f);
  // serial, on every rank: all images
  sn_net *ref = small_net();
  sn_calibrator *c = nullptr;
  ASSERT_EQ(sn_calibrator_create(ref, 4, &c), SN_OK) << sn_last_error();
  for (int i = 0; i < n; i += 4)
    EXPECT_EQ(sn_calibrator_add(c, x.data() + (size_t)i * img, 4), SN_OK);
  EXPECT_EQ(sn_calibrator_finish(c, nullptr, SN_CALIB_MSE), SN_OK) << sn_last_error();
  sn_calibrator_destroy(c);
  // distributed: this rank's block of the sample, in batches of up to 4
  std::vector<int64_t> rows(n);
  const int64_t mine = sn_calib_rows(n, n, rank, size, rows.data());
  sn_net *net = small_net();
  ASSERT_EQ(sn_calibrator_create(net, 4, &c), SN_OK) << sn_last_error();
  for (int64_t i = 0; i < mine; i += 4) {
    const int b = (int)std::min<int64_t>(4, mine - i);
    std::vector<float> batch;
    for (int k = 0; k < b; ++k)
      batch.insert(batch.end(), x.begin() + rows[i + k] * img, x.begin() + (rows[i + k] + 1) * img);
    EXPECT_EQ(sn_calibrator_add(c, batch.data(), b), SN_OK);
  }
  EXPECT_EQ(sn_calibrator_finish(c, comm, SN_CALIB_MSE), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_calibrator_rows(c), n);
  sn_calibrator_destroy(c);
  EXPECT_EQ(scales_of(net), scales_of(ref)) << "rank " << rank << " of " << size;

  // the scales file: rank 0 writes, every rank loads by broadcast
  const std::string dir = shared_dir(comm), path = dir + "/s.h5";
  sn_scales_info info;
  std::memset(&info, 0, sizeof info);
  if (rank == 0) EXPECT_EQ(sn_scales_save(net, path.c_str(), &info), SN_OK) << sn_last_error();
  sn_comm_barrier(comm);
  sn_net *got = small_net();
  sn_scales_info out;
  EXPECT_EQ(sn_scales_load_bcast(got, path.c_str(), comm, &out), SN_OK) << sn_last_error();
  EXPECT_EQ(scales_of(got), scales_of(net)) << "rank " << rank;
  EXPECT_STREQ(out.arch, "resnet20");
  sn_net *none = small_net();
  EXPECT_EQ(sn_scales_load_bcast(none, (dir + "/missing.h5").c_str(), comm, nullptr), SN_ERR_IO);
  for (float v : scales_of(none))
    EXPECT_EQ(v, 0.f) << "rank " << rank;
  sn_net_destroy(ref);
  sn_net_destroy(net);
  sn_net_destroy(got);
  sn_net_destroy(none);
  sn_comm_destroy(comm);
}
