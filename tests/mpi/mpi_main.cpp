// mpi_main.cpp - GoogleTest main for the MPI suites: every rank runs every test; only rank 0
// prints; the exit code is non-zero on every rank if any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include "shardnet.h"

int main(int argc, char **argv) {
  if (sn_mpi_init(&argc, &argv) != SN_OK) {
    fprintf(stderr, "%s\n", sn_last_error());
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  sn_mpi_finalize();
  return any ? 1 : 0;
}
