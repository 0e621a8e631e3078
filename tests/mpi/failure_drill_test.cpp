// failure_drill_test.cpp - how a failing rank ends the job. These end the process, so they are
// DISABLED_ in the normal suite and driven by tests/mpi/failure_drill.sh, which runs one drill
// per mpirun and measures how long the job takes to end, its exit code and what it printed:
//   SN_DRILL=<mode> mpirun -np 2 sn_test_mpi --gtest_also_run_disabled_tests
//       --gtest_filter='FailureDrill.DISABLED_Run'
// The failing rank is the last one (rank 0 when SN_DRILL_RANK0=1).
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "mpi_job.h"
#include "shardnet.h"

TEST(FailureDrill, DISABLED_Run) {
  const char *mode_env = std::getenv("SN_DRILL");
  ASSERT_NE(mode_env, nullptr) << "set SN_DRILL";
  const std::string mode = mode_env;
  const double timeout =
      std::getenv("SN_DRILL_TIMEOUT") ? std::atof(std::getenv("SN_DRILL_TIMEOUT")) : 2.0;
  sn_comm *comm = nullptr;
  ASSERT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  const int bad = std::getenv("SN_DRILL_RANK0") ? 0 : size - 1;

  // A few healthy steps first, as in a job.
  for (int step = 0; step < 3; ++step) {
    float g[64] = {1.0f};
    ASSERT_EQ(sn_comm_allreduce(comm, g, 64, SN_F32, SN_SUM), SN_OK);
    sn_mpi_check(comm, SN_OK, timeout, "drill");
  }

  if (mode == "agree") {
    // A local error at a step boundary: the guard reports it from rank 0, everyone exits 1.
    sn_status local = SN_OK;
    if (rank == bad)
      local = sn_error_set(SN_ERR_IO,
                           "file /data/train.h5: dataset /images: rows 512..575: read failed");
    sn_mpi_check(comm, local, timeout, "drill");
  } else if (mode == "hang") {
    // The bad rank never reaches the boundary; the others wait at most `timeout`.
    if (rank == bad) std::this_thread::sleep_for(std::chrono::seconds(600));
    sn_mpi_check(comm, SN_OK, timeout, "drill");
  } else if (mode == "exit" || mode == "kill" || mode == "segv") {
    // The bad rank vanishes while the others block in a collective (no guard involved).
    if (rank == bad) {
      if (mode == "exit") std::exit(3);
      std::raise(mode == "kill" ? SIGKILL : SIGSEGV);
    }
    for (;;) {
      float g[64] = {1.0f};
      sn_status s = sn_comm_allreduce(comm, g, 64, SN_F32, SN_SUM);
      sn_mpi_check(comm, s, timeout, "drill");
    }
  } else {
    FAIL() << "unknown SN_DRILL " << mode;
  }
  sn_comm_destroy(comm);
  // Reaching this point means the drill did not end the job.
  ADD_FAILURE() << "drill " << mode << " did not end the job on rank " << rank;
}
