// comm_test.cpp - the MPI communicator (mpi/comm_mpi.c), the step agreement with and without a
// deadline (src/comm.c, mpi/watchdog.c) and sharding seen from several ranks. Run by mpirun at
// 1, 2 and 4 ranks; every rank runs every test, so checks use EXPECT_* (an early return on one
// rank would leave the others waiting in a collective).
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm_mpi.h"
#include "mpi_job.h"
#include "shardnet.h"

namespace {

class Comm : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(sn_comm_create_world(&comm_), SN_OK) << sn_last_error();
    rank_ = sn_comm_rank(comm_);
    size_ = sn_comm_size(comm_);
  }
  void TearDown() override {
    sn_mpi_set_max_chunk(0);
    sn_error_clear();
    sn_comm_destroy(comm_);
  }
  sn_comm *comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

// Value of element i on rank r for the reduction tests: small integers, exact in every dtype.
int val(int r, size_t i) { return static_cast<int>((r * 7 + i * 3) % 23); }

template <typename T> void check_allreduce(sn_comm *comm, sn_dtype dt, T offset, size_t n) {
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  for (sn_reduce_op op : {SN_SUM, SN_MAX, SN_MIN}) {
    std::vector<T> buf(n);
    for (size_t i = 0; i < n; ++i)
      buf[i] = static_cast<T>(offset + static_cast<T>(val(rank, i)));
    ASSERT_EQ(sn_comm_allreduce(comm, buf.data(), n, dt, op), SN_OK) << sn_last_error();
    for (size_t i = 0; i < n; ++i) {
      T want = op == SN_SUM ? T(0) : static_cast<T>(offset + static_cast<T>(val(0, i)));
      for (int r = 0; r < size; ++r) {
        T v = static_cast<T>(offset + static_cast<T>(val(r, i)));
        if (op == SN_SUM) want = static_cast<T>(want + v);
        if (op == SN_MAX && v > want) want = v;
        if (op == SN_MIN && v < want) want = v;
      }
      ASSERT_EQ(buf[i], want) << "dtype " << dt << " op " << op << " i " << i;
    }
  }
}

} // namespace

TEST_F(Comm, WrapsADuplicateOfTheWorld) {
  int wrank, wsize;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  EXPECT_EQ(rank_, wrank);
  EXPECT_EQ(size_, wsize);
  MPI_Comm mc = MPI_Comm_f2c(sn_comm_fortran_handle(comm_));
  EXPECT_EQ(mc, sn_comm_mpi_handle(comm_));
  int cmp = MPI_UNEQUAL;
  MPI_Comm_compare(mc, MPI_COMM_WORLD, &cmp);
  EXPECT_EQ(cmp, MPI_CONGRUENT); // same group, private context
  EXPECT_EQ(sn_comm_mpi_handle(sn_comm_serial()), MPI_COMM_NULL);
  EXPECT_EQ(sn_comm_fortran_handle(sn_comm_serial()), -1);
}

TEST_F(Comm, CreateFromASplitCommunicator) {
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank_ % 2, rank_, &half);
  sn_comm *c = nullptr;
  ASSERT_EQ(sn_comm_create_mpi(static_cast<int>(MPI_Comm_c2f(half)), &c), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_comm_rank(c), rank_ / 2);
  EXPECT_EQ(sn_comm_size(c), (size_ + 1 - rank_ % 2) / 2);
  int32_t v = 1;
  EXPECT_EQ(sn_comm_allreduce(c, &v, 1, SN_I32, SN_SUM), SN_OK);
  EXPECT_EQ(v, sn_comm_size(c));
  sn_comm_destroy(c);
  MPI_Comm_free(&half);
}

TEST_F(Comm, CreateRejectsNullCommunicator) {
  sn_comm *c = reinterpret_cast<sn_comm *>(0x1);
  EXPECT_EQ(sn_comm_create_mpi(static_cast<int>(MPI_Comm_c2f(MPI_COMM_NULL)), &c), SN_ERR_INVALID);
  EXPECT_EQ(c, nullptr);
  EXPECT_TRUE(contains(sn_last_error(), "MPI_COMM_NULL")) << sn_last_error();
  sn_comm_destroy(nullptr);
}

TEST_F(Comm, AllreduceEveryDtypeAndOp) {
  for (size_t n : {size_t(1), size_t(5), size_t(1000)}) {
    check_allreduce<float>(comm_, SN_F32, -10.0f, n);
    check_allreduce<double>(comm_, SN_F64, 0.5, n);
    check_allreduce<int32_t>(comm_, SN_I32, -100, n);
    check_allreduce<int64_t>(comm_, SN_I64, int64_t(1) << 40, n); // needs 64 bits
    check_allreduce<uint8_t>(comm_, SN_U8, uint8_t(3), n);        // 4 ranks * 25 < 256
  }
}

TEST_F(Comm, AllreduceChunked) {
  // Counts above the per-call limit (INT_MAX in production) are split; a limit of 7 exercises it.
  sn_mpi_set_max_chunk(7);
  EXPECT_EQ(sn_mpi_max_chunk(), 7u);
  check_allreduce<float>(comm_, SN_F32, 0.0f, 100);
  check_allreduce<int64_t>(comm_, SN_I64, 0, 15);
  check_allreduce<uint8_t>(comm_, SN_U8, uint8_t(0), 7);
}

TEST_F(Comm, AllreduceZeroCountAndBadArguments) {
  EXPECT_EQ(sn_comm_allreduce(comm_, nullptr, 0, SN_F32, SN_SUM), SN_OK);
  float x = 1;
  EXPECT_EQ(sn_comm_allreduce(comm_, &x, 1, static_cast<sn_dtype>(42), SN_SUM), SN_ERR_INVALID);
  EXPECT_TRUE(contains(sn_last_error(), "rank " + std::to_string(rank_))) << sn_last_error();
  EXPECT_EQ(sn_comm_allreduce(comm_, &x, 1, SN_F32, static_cast<sn_reduce_op>(9)), SN_ERR_INVALID);
}

TEST_F(Comm, BcastFromEveryRoot) {
  for (int root = size_ - 1; root >= 0; --root) {
    std::vector<uint8_t> buf(1001);
    for (size_t i = 0; i < buf.size(); ++i)
      buf[i] = static_cast<uint8_t>(rank_ == root ? (i * 13 + static_cast<size_t>(root)) : 0xEE);
    ASSERT_EQ(sn_comm_bcast(comm_, buf.data(), buf.size(), root), SN_OK) << sn_last_error();
    for (size_t i = 0; i < buf.size(); ++i)
      ASSERT_EQ(buf[i], static_cast<uint8_t>(i * 13 + static_cast<size_t>(root)))
          << "root " << root;
  }
}

TEST_F(Comm, BcastChunkedFromLastRank) {
  sn_mpi_set_max_chunk(10);
  const int root = size_ - 1;
  std::vector<double> buf(37, rank_ == root ? 2.5 : -1.0);
  if (rank_ == root) buf[36] = 7.0;
  ASSERT_EQ(sn_comm_bcast(comm_, buf.data(), buf.size() * sizeof(double), root), SN_OK);
  EXPECT_EQ(buf[0], 2.5);
  EXPECT_EQ(buf[35], 2.5);
  EXPECT_EQ(buf[36], 7.0);
}

TEST_F(Comm, BcastRootOutOfRange) {
  int v = 0;
  EXPECT_EQ(sn_comm_bcast(comm_, &v, sizeof v, size_), SN_ERR_INVALID);
  EXPECT_TRUE(contains(sn_last_error(), "root")) << sn_last_error();
  EXPECT_EQ(sn_comm_bcast(comm_, &v, sizeof v, -1), SN_ERR_INVALID);
}

TEST_F(Comm, Allgather) {
  for (size_t chunk : {size_t(0), size_t(5)}) { // 0: one call; 5: chunked with a strided type
    sn_mpi_set_max_chunk(chunk);
    const int k = 3;
    int32_t mine[k];
    for (int j = 0; j < k; ++j)
      mine[j] = rank_ * 10 + j;
    std::vector<int32_t> all(static_cast<size_t>(size_ * k), -1);
    ASSERT_EQ(sn_comm_allgather(comm_, mine, all.data(), sizeof mine), SN_OK) << sn_last_error();
    for (int r = 0; r < size_; ++r)
      for (int j = 0; j < k; ++j)
        EXPECT_EQ(all[static_cast<size_t>(r * k + j)], r * 10 + j);

    // In place: the rank's own block already sits in the receive buffer.
    std::vector<int32_t> inplace(static_cast<size_t>(size_ * k), -1);
    for (int j = 0; j < k; ++j)
      inplace[static_cast<size_t>(rank_ * k + j)] = rank_ * 100 + j;
    ASSERT_EQ(
        sn_comm_allgather(comm_, inplace.data() + rank_ * k, inplace.data(), k * sizeof(int32_t)),
        SN_OK)
        << sn_last_error();
    for (int r = 0; r < size_; ++r)
      for (int j = 0; j < k; ++j)
        EXPECT_EQ(inplace[static_cast<size_t>(r * k + j)], r * 100 + j);
  }
}

TEST_F(Comm, Barrier) { EXPECT_EQ(sn_comm_barrier(comm_), SN_OK); }

TEST_F(Comm, IallreduceOverlapsWork) {
  for (size_t chunk : {size_t(0), size_t(64)}) {
    sn_mpi_set_max_chunk(chunk);
    const size_t n1 = 1000, n2 = 333;
    std::vector<float> a(n1), b(n2);
    for (size_t i = 0; i < n1; ++i)
      a[i] = static_cast<float>(val(rank_, i));
    for (size_t i = 0; i < n2; ++i)
      b[i] = static_cast<float>(rank_ + 1);
    sn_request *ra = nullptr, *rb = nullptr;
    ASSERT_EQ(sn_comm_iallreduce_f32(comm_, a.data(), n1, &ra), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_comm_iallreduce_f32(comm_, b.data(), n2, &rb), SN_OK) << sn_last_error();
    // Work while the reductions are in flight (what backward does between buckets).
    double acc = 0;
    for (int i = 0; i < 200000; ++i)
      acc += std::sqrt(static_cast<double>(i));
    EXPECT_GT(acc, 0);
    // Completed in reverse order of start: allowed, each request is independent.
    EXPECT_EQ(sn_comm_wait(comm_, rb), SN_OK);
    EXPECT_EQ(sn_comm_wait(comm_, ra), SN_OK);
    for (size_t i = 0; i < n1; ++i) {
      float want = 0;
      for (int r = 0; r < size_; ++r)
        want += static_cast<float>(val(r, i));
      ASSERT_EQ(a[i], want) << i;
    }
    for (size_t i = 0; i < n2; ++i)
      ASSERT_EQ(b[i], size_ * (size_ + 1) / 2.0f);
  }
  sn_request *none = reinterpret_cast<sn_request *>(0x1);
  EXPECT_EQ(sn_comm_iallreduce_f32(comm_, nullptr, 0, &none), SN_OK);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(sn_comm_wait(comm_, none), SN_OK);
}

// ---------------------------------------------------------------- the gradient all-reduce

// The ring's result, computed from every rank's input: segment j = [j n / p, (j+1) n / p) is
// summed ((x_j + x_{j+1}) + ...) + x_{j-1} (ranks mod p), in float, as mpi/ring.c documents.
std::vector<float> ring_reference(const std::vector<float> &all, size_t n, int p) {
  std::vector<float> out(n);
  for (int j = 0; j < p; ++j) {
    const size_t lo = n * j / p, hi = n * (j + 1) / p;
    for (size_t i = lo; i < hi; ++i) {
      float acc = all[static_cast<size_t>(j) * n + i];
      for (int k = 1; k < p; ++k)
        acc += all[static_cast<size_t>((j + k) % p) * n + i];
      out[i] = acc;
    }
  }
  return out;
}

TEST_F(Comm, RingAllreduceIsBitwiseItsDocumentedOrderOnEveryRank) {
  EXPECT_EQ(sn_comm_allreduce_algo(comm_), SN_ALLREDUCE_RING) << "the default (AUTO) is the ring";
  // Values whose sums round differently in different orders; sizes below, at and above p; and a
  // per-message limit of 7 values (several messages per segment).
  for (size_t chunk : {size_t(0), size_t(7)}) {
    for (size_t n : {size_t(1), size_t(3), size_t(5), size_t(1000), size_t(4099)}) {
      sn_mpi_set_max_chunk(chunk);
      std::vector<float> mine(n);
      for (size_t i = 0; i < n; ++i)
        mine[i] = std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(rank_)) *
                  std::pow(10.0f, static_cast<float>((i + rank_) % 7) - 3.0f);
      std::vector<float> all(n * size_);
      ASSERT_EQ(sn_comm_allgather(comm_, mine.data(), all.data(), n * sizeof(float)), SN_OK);
      sn_request *req = nullptr;
      ASSERT_EQ(sn_comm_iallreduce_f32(comm_, mine.data(), n, &req), SN_OK) << sn_last_error();
      ASSERT_EQ(sn_comm_wait(comm_, req), SN_OK) << sn_last_error();
      const std::vector<float> want = ring_reference(all, n, size_);
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(mine[i], want[i]) << "n " << n << " chunk " << chunk << " element " << i;
    }
  }
}

TEST_F(Comm, AllreduceAlgorithmChoice) {
  sn_allreduce_algo a = SN_ALLREDUCE_AUTO;
  EXPECT_EQ(sn_allreduce_parse("mpi", &a), SN_OK);
  EXPECT_EQ(a, SN_ALLREDUCE_MPI);
  EXPECT_EQ(sn_allreduce_parse("binomial", &a), SN_ERR_INVALID);
  EXPECT_TRUE(contains(sn_last_error(), "auto, ring, mpi")) << sn_last_error();
  EXPECT_STREQ(sn_allreduce_name(SN_ALLREDUCE_RING), "ring");
  EXPECT_EQ(sn_comm_set_allreduce(comm_, static_cast<sn_allreduce_algo>(7)), SN_ERR_INVALID);
  // Both algorithms give the exact sums of small integers, several requests in flight.
  for (sn_allreduce_algo algo : {SN_ALLREDUCE_MPI, SN_ALLREDUCE_RING}) {
    ASSERT_EQ(sn_comm_set_allreduce(comm_, algo), SN_OK) << sn_last_error();
    EXPECT_EQ(sn_comm_allreduce_algo(comm_), algo);
    std::vector<std::vector<float>> bufs;
    std::vector<sn_request *> reqs;
    for (size_t n : {size_t(10), size_t(100000), size_t(3)}) {
      bufs.emplace_back(n);
      for (size_t i = 0; i < n; ++i)
        bufs.back()[i] = static_cast<float>(val(rank_, i));
    }
    for (auto &b : bufs) {
      reqs.push_back(nullptr);
      ASSERT_EQ(sn_comm_iallreduce_f32(comm_, b.data(), b.size(), &reqs.back()), SN_OK);
    }
    for (sn_request *r : reqs)
      ASSERT_EQ(sn_comm_wait(comm_, r), SN_OK) << sn_last_error();
    for (auto &b : bufs)
      for (size_t i = 0; i < b.size(); ++i) {
        float want = 0;
        for (int r = 0; r < size_; ++r)
          want += static_cast<float>(val(r, i));
        ASSERT_EQ(b[i], want) << sn_allreduce_name(algo) << " element " << i;
      }
  }
  // The user's choice of Open MPI's algorithm, by the environment or by its MCA parameter,
  // makes AUTO defer to MPI_Iallreduce.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 1);
  EXPECT_EQ(sn_comm_set_allreduce(comm_, SN_ALLREDUCE_AUTO), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_comm_allreduce_algo(comm_), SN_ALLREDUCE_MPI);
  unsetenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm");
  int provided = 0, idx = -1;
  MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
  MPI_T_cvar_handle h;
  int count = 0, value = 2, zero = 0;
  if (MPI_T_cvar_get_index("coll_libnbc_iallreduce_algorithm", &idx) == MPI_SUCCESS &&
      MPI_T_cvar_handle_alloc(idx, nullptr, &h, &count) == MPI_SUCCESS) {
    if (MPI_T_cvar_write(h, &value) == MPI_SUCCESS) {
      EXPECT_EQ(sn_comm_set_allreduce(comm_, SN_ALLREDUCE_AUTO), SN_OK) << sn_last_error();
      EXPECT_EQ(sn_comm_allreduce_algo(comm_), SN_ALLREDUCE_MPI);
      MPI_T_cvar_write(h, &zero);
    }
    MPI_T_cvar_handle_free(&h);
  }
  MPI_T_finalize();
  EXPECT_EQ(sn_comm_set_allreduce(comm_, SN_ALLREDUCE_AUTO), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_comm_allreduce_algo(comm_), SN_ALLREDUCE_RING);
  // Ranks that disagree are told so, and keep the algorithm they had.
  if (size_ > 1) {
    EXPECT_EQ(sn_comm_set_allreduce(comm_, rank_ == 0 ? SN_ALLREDUCE_MPI : SN_ALLREDUCE_RING),
              SN_ERR_INVALID);
    EXPECT_TRUE(
        contains(sn_last_error(), "different gradient all-reduce algorithms (ring and mpi)"))
        << sn_last_error();
    EXPECT_EQ(sn_comm_allreduce_algo(comm_), SN_ALLREDUCE_RING);
  }
  EXPECT_EQ(sn_comm_set_allreduce(sn_comm_serial(), SN_ALLREDUCE_MPI), SN_OK);
  EXPECT_EQ(sn_comm_allreduce_algo(sn_comm_serial()), SN_ALLREDUCE_AUTO);
}

TEST_F(Comm, SplitGroupsOfConsecutiveRanks) {
  for (int k = 1; k <= size_; ++k) {
    sn_comm *g = nullptr;
    if (size_ % k != 0) {
      EXPECT_EQ(sn_comm_split_groups(comm_, k, &g), SN_ERR_INVALID);
      EXPECT_TRUE(contains(sn_last_error(), "groups of " + std::to_string(k) +
                                                " ranks do not divide the communicator's " +
                                                std::to_string(size_) + " ranks"))
          << sn_last_error();
      EXPECT_EQ(g, nullptr);
      continue;
    }
    ASSERT_EQ(sn_comm_split_groups(comm_, k, &g), SN_OK) << sn_last_error();
    EXPECT_EQ(sn_comm_size(g), k);
    EXPECT_EQ(sn_comm_rank(g), rank_ % k);
    EXPECT_EQ(sn_comm_allreduce_algo(g), sn_comm_allreduce_algo(comm_));
    // A sum over the group covers exactly ranks [k (r / k), k (r / k) + k).
    int64_t v = int64_t(1) << rank_;
    EXPECT_EQ(sn_comm_allreduce(g, &v, 1, SN_I64, SN_SUM), SN_OK);
    const int first = rank_ / k * k;
    EXPECT_EQ(v, ((int64_t(1) << k) - 1) << first) << "group of " << k;
    float f = static_cast<float>(rank_ + 1);
    sn_request *req = nullptr;
    ASSERT_EQ(sn_comm_iallreduce_f32(g, &f, 1, &req), SN_OK);
    ASSERT_EQ(sn_comm_wait(g, req), SN_OK);
    EXPECT_EQ(f, static_cast<float>(k * first + k * (k + 1) / 2));
    sn_comm_destroy(g);
  }
  sn_comm *g = nullptr;
  EXPECT_EQ(sn_comm_split_groups(comm_, 0, &g), SN_ERR_INVALID);
  EXPECT_EQ(sn_comm_split_groups(comm_, size_ + 1, &g), SN_ERR_INVALID);
  ASSERT_EQ(sn_comm_split_groups(sn_comm_serial(), 1, &g), SN_OK);
  EXPECT_EQ(g, sn_comm_serial());
  sn_comm_destroy(g); // ignored for the serial communicator
}

TEST_F(Comm, MpiErrorsNameRankAndOperation) {
  // Any MPI error code becomes SN_ERR_COMM with the rank, the call and MPI's own text.
  EXPECT_EQ(sn_mpi_error(comm_, MPI_ERR_TRUNCATE, "MPI_Allreduce of 3 float32 values (sum)"),
            SN_ERR_COMM);
  std::string m = sn_last_error();
  EXPECT_EQ(m.rfind("rank " + std::to_string(rank_) + ": MPI_Allreduce", 0), 0u) << m;
  EXPECT_TRUE(contains(m, "truncat")) << m;
}

TEST_F(Comm, ReturnsErrorsInsteadOfAborting) {
  // A real MPI failure on our duplicate (an invalid tag) comes back as a status: the error
  // handler is MPI_ERRORS_RETURN, not the default MPI_ERRORS_ARE_FATAL.
  MPI_Comm mc = sn_comm_mpi_handle(comm_);
  MPI_Errhandler eh;
  MPI_Comm_get_errhandler(mc, &eh);
  EXPECT_EQ(eh, MPI_ERRORS_RETURN);
  MPI_Errhandler_free(&eh);
  int x = 0;
  int rc = MPI_Send(&x, 1, MPI_INT, 0, -5, mc);
  EXPECT_NE(rc, MPI_SUCCESS);
  EXPECT_EQ(sn_mpi_error(comm_, rc, "MPI_Send"), SN_ERR_COMM);
  EXPECT_TRUE(contains(sn_last_error(), "MPI_Send")) << sn_last_error();
}

// ---------------------------------------------------------------- agreement

TEST_F(Comm, AgreeAllOk) {
  EXPECT_EQ(sn_comm_agree(comm_, SN_OK), SN_OK);
  EXPECT_EQ(sn_comm_agree_timeout(comm_, SN_OK, 30.0), SN_OK);
  EXPECT_EQ(sn_comm_agree_timeout(comm_, SN_OK, 0.0), SN_OK);
}

// The last rank fails: every rank gets an error whose message names it and carries its text.
TEST_F(Comm, AgreeNamesTheFailingRank) {
  const int bad = size_ - 1;
  for (int timed = 0; timed < 2; ++timed) {
    sn_status local = SN_OK;
    if (rank_ == bad)
      local = sn_error_set(SN_ERR_IO, "file /data/x.h5: dataset /images: read failed");
    sn_status s = timed ? sn_comm_agree_timeout(comm_, local, 30.0) : sn_comm_agree(comm_, local);
    EXPECT_EQ(s, SN_ERR_IO) << "timed " << timed;
    std::string m = sn_last_error();
    if (size_ > 1) {
      EXPECT_EQ(m.rfind("rank " + std::to_string(bad) + ": ", 0), 0u) << m;
    }
    EXPECT_TRUE(contains(m, "dataset /images: read failed")) << m;
    sn_error_clear();
  }
}

// The step check's flags: every rank gets the OR of every rank's bits, in the same round as the
// status (a stop request seen by one rank only reaches all of them).
TEST_F(Comm, CheckFlagsAreTheOrOverTheRanks) {
  for (int who = 0; who < size_; ++who) {
    unsigned flags = rank_ == who ? 1u : 0u;
    sn_mpi_check_flags(comm_, SN_OK, &flags, 30.0, "test");
    EXPECT_EQ(flags, 1u) << "set on rank " << who << " only";
  }
  unsigned flags = 1u << (rank_ % 3);
  if (rank_ == size_ - 1) flags |= 1u << 31;
  sn_mpi_check_flags(comm_, SN_OK, &flags, 30.0, "test");
  unsigned want = 1u << 31;
  for (int r = 0; r < size_; ++r)
    want |= 1u << (r % 3);
  EXPECT_EQ(flags, want);
  flags = 0;
  sn_mpi_check_flags(comm_, SN_OK, &flags, 0.0, "test");
  EXPECT_EQ(flags, 0u);
}

// Several ranks fail: the lowest one's message wins everywhere.
TEST_F(Comm, AgreeLowestFailingRankWins) {
  const int first = size_ > 1 ? 1 : 0;
  for (int timed = 0; timed < 2; ++timed) {
    sn_status local = SN_OK;
    if (rank_ >= first)
      local = sn_error_set(rank_ == first ? SN_ERR_NUMERIC : SN_ERR_IO, "failure number %d", rank_);
    sn_status s = timed ? sn_comm_agree_timeout(comm_, local, 30.0) : sn_comm_agree(comm_, local);
    EXPECT_NE(s, SN_OK);
    if (rank_ <= first) {
      EXPECT_EQ(s, SN_ERR_NUMERIC);
    }
    std::string m = sn_last_error();
    EXPECT_TRUE(contains(m, "failure number " + std::to_string(first))) << m;
    if (size_ > 1) {
      EXPECT_EQ(m.rfind("rank " + std::to_string(first) + ": ", 0), 0u) << m;
    }
    sn_error_clear();
  }
}

// A rank that arrives after the deadline is named by rank 0 on every rank that arrived; the late
// rank itself times out waiting for a verdict that never comes and names rank 0. The agreement
// runs on its own communicator, which is dropped afterwards (as a job would end).
TEST_F(Comm, AgreeTimeoutNamesTheStuckRank) {
  if (size_ == 1) {
    EXPECT_EQ(sn_comm_agree_timeout(comm_, SN_OK, 0.1), SN_OK);
    return;
  }
  sn_comm *c = nullptr;
  ASSERT_EQ(sn_comm_create_world(&c), SN_OK);
  const int late = size_ - 1;
  const double timeout = 0.3;
  if (rank_ == late) std::this_thread::sleep_for(std::chrono::milliseconds(900));
  auto t0 = std::chrono::steady_clock::now();
  sn_status s = sn_comm_agree_timeout(c, SN_OK, timeout);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s, SN_ERR_COMM);
  std::string m = sn_last_error();
  if (rank_ == late) {
    EXPECT_EQ(m.rfind("rank 0: did not answer", 0), 0u) << m;
    EXPECT_GE(waited, 2 * timeout + 1 - 0.05);
  } else {
    EXPECT_EQ(m.rfind("rank " + std::to_string(late) + ": did not reach the step agreement", 0), 0u)
        << m;
    EXPECT_LT(waited, 5.0);
  }
  sn_comm_destroy(c);
  sn_error_clear();
  EXPECT_EQ(sn_comm_barrier(comm_), SN_OK);
}

// Rank 0 is the late one and the last rank has failed locally: that rank reports its own error
// first (it is the likely cause: the others may be blocked in a collective it skipped), the
// other ranks name rank 0.
TEST_F(Comm, AgreeTimeoutKeepsTheLocalErrorWhenRankZeroIsLate) {
  if (size_ == 1) return;
  sn_comm *c = nullptr;
  ASSERT_EQ(sn_comm_create_world(&c), SN_OK);
  const int bad = size_ - 1;
  const double timeout = 0.2; // leaves give up after 2 * 0.2 + 1 s + stagger (<= 1 s here)
  sn_status local = SN_OK;
  if (rank_ == bad) local = sn_error_set(SN_ERR_NUMERIC, "resnet20: loss is NaN");
  if (rank_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2600));
  sn_status s = sn_comm_agree_timeout(c, local, timeout);
  std::string m = sn_last_error();
  if (rank_ == bad) {
    EXPECT_EQ(s, SN_ERR_NUMERIC);
    EXPECT_EQ(m.rfind("rank " + std::to_string(bad) +
                          ": resnet20: loss is NaN (then rank 0 did not "
                          "answer",
                      0),
              0u)
        << m;
  } else if (rank_ != 0) {
    EXPECT_EQ(s, SN_ERR_COMM);
    EXPECT_EQ(m.rfind("rank 0: did not answer", 0), 0u) << m;
  }
  sn_comm_destroy(c);
  sn_error_clear();
  EXPECT_EQ(sn_comm_barrier(comm_), SN_OK);
}

// ---------------------------------------------------------------- sharding across ranks

TEST_F(Comm, EveryRankComputesTheSamePermutation) {
  const int64_t n = 997;
  std::vector<int64_t> perm(n), first(n);
  sn_shard_permutation(n, 2024, 7, perm.data());
  first = perm;
  ASSERT_EQ(sn_comm_bcast(comm_, first.data(), n * sizeof(int64_t), 0), SN_OK);
  EXPECT_EQ(perm, first);
}

TEST_F(Comm, InferenceBlocksCoverEveryRowOnce) {
  for (int64_t n : {0, 1, 3, 10, 1001}) {
    int64_t b, e;
    sn_shard_block(n, rank_, size_, &b, &e);
    std::vector<int32_t> seen(static_cast<size_t>(n) + 1, 0);
    for (int64_t i = b; i < e; ++i)
      seen[static_cast<size_t>(i)]++;
    ASSERT_EQ(sn_comm_allreduce(comm_, seen.data(), seen.size(), SN_I32, SN_SUM), SN_OK);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << "n " << n << " row " << i;
  }
}

// Each rank computes only its own rows; gathered in rank order they are each global batch of the
// permutation, and every rank runs the same number of steps.
TEST_F(Comm, EpochRowsUnionIsTheGlobalBatch) {
  for (int64_t B : {int64_t(8), int64_t(5), int64_t(1)}) {
    for (int drop : {0, 1}) {
      const int64_t n = 53;
      const uint64_t seed = 77;
      const int per = sn_shard_local_max(B, size_);
      int64_t steps = -1;
      std::vector<int64_t> rows(static_cast<size_t>(sn_shard_epoch_steps(n, B, drop) * per));
      std::vector<int> counts(static_cast<size_t>(sn_shard_epoch_steps(n, B, drop)));
      ASSERT_EQ(sn_shard_epoch_rows(n, seed, 4, rank_, size_, B, drop, rows.data(), counts.data(),
                                    &steps),
                SN_OK);
      int64_t mn = steps, mx = steps;
      sn_comm_allreduce(comm_, &mn, 1, SN_I64, SN_MIN);
      sn_comm_allreduce(comm_, &mx, 1, SN_I64, SN_MAX);
      EXPECT_EQ(mn, mx);
      std::vector<int64_t> perm(n);
      sn_shard_permutation(n, seed, 4, perm.data());
      for (int64_t s = 0; s < steps; ++s) {
        // Fixed-size slots of `per` rows, -1 where a rank has fewer.
        std::vector<int64_t> slot(static_cast<size_t>(per), -1);
        for (int k = 0; k < counts[static_cast<size_t>(s)]; ++k)
          slot[static_cast<size_t>(k)] = rows[static_cast<size_t>(s * per + k)];
        std::vector<int64_t> all(static_cast<size_t>(per * size_));
        ASSERT_EQ(sn_comm_allgather(comm_, slot.data(), all.data(), per * sizeof(int64_t)), SN_OK);
        std::vector<int64_t> joined;
        for (int64_t v : all)
          if (v >= 0) joined.push_back(v);
        std::vector<int64_t> batch;
        for (int64_t k = 0; k < B; ++k)
          batch.push_back(perm[static_cast<size_t>((s * B + k) % n)]);
        EXPECT_EQ(joined, batch) << "B " << B << " drop " << drop << " step " << s;
      }
    }
  }
}
