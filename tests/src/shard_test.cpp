// shard_test.cpp - sharding is a pure function of (n, seed, epoch, rank, size): permutations,
// inference blocks and the per-step slices of each global batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "shardnet.h"

namespace {

std::vector<int64_t> perm_of(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n), -1);
  sn_shard_permutation(n, seed, epoch, p.data());
  return p;
}

bool is_permutation_of_iota(std::vector<int64_t> p) {
  std::sort(p.begin(), p.end());
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

} // namespace

TEST(ShardPermutation, IsAPermutation) {
  for (int64_t n : {1, 2, 3, 7, 64, 1000, 4097}) {
    for (uint64_t seed : {0ull, 1ull, 42ull, 0xFFFFFFFFFFFFFFFFull}) {
      auto p = perm_of(n, seed, 3);
      EXPECT_TRUE(is_permutation_of_iota(p)) << "n " << n << " seed " << seed;
    }
  }
}

TEST(ShardPermutation, ZeroRowsWritesNothing) {
  int64_t sentinel = -7;
  sn_shard_permutation(0, 1, 0, &sentinel);
  EXPECT_EQ(sentinel, -7);
}

TEST(ShardPermutation, SameSeedAndEpochSameOrder) {
  EXPECT_EQ(perm_of(1000, 42, 5), perm_of(1000, 42, 5));
}

TEST(ShardPermutation, DifferentEpochOrSeedDifferentOrder) {
  auto a = perm_of(1000, 42, 0);
  EXPECT_NE(a, perm_of(1000, 42, 1));
  EXPECT_NE(a, perm_of(1000, 43, 0));
  // (seed, epoch) pairs must not alias, e.g. (s, e+1) vs (s+1, e).
  EXPECT_NE(perm_of(1000, 42, 1), perm_of(1000, 43, 0));
  // Every epoch of a run differs from every other.
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 20; ++e)
    epochs.push_back(perm_of(100, 7, e));
  for (size_t i = 0; i < epochs.size(); ++i)
    for (size_t j = i + 1; j < epochs.size(); ++j)
      EXPECT_NE(epochs[i], epochs[j]) << i << " " << j;
}

TEST(ShardPermutation, ShufflesRoughlyUniformly) {
  // Position of row 0 over many epochs: each of 8 positions about 1/8 of the time.
  const int n = 8, trials = 8000;
  std::vector<int> where(n, 0);
  for (int e = 0; e < trials; ++e) {
    auto p = perm_of(n, 99, e);
    where[std::find(p.begin(), p.end(), 0) - p.begin()]++;
  }
  for (int k = 0; k < n; ++k)
    EXPECT_NEAR(where[k], trials / n, 150) << "position " << k;
}

TEST(ShardBlock, CoversEveryRowOnce) {
  for (int64_t n : {0, 1, 2, 5, 7, 8, 9, 100, 1001}) {
    for (int size : {1, 2, 3, 4, 7, 8, 16}) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      int64_t prev_end = 0;
      for (int r = 0; r < size; ++r) {
        int64_t b, e;
        sn_shard_block(n, r, size, &b, &e);
        EXPECT_EQ(b, prev_end) << "n " << n << " size " << size << " rank " << r;
        EXPECT_LE(b, e);
        // Balanced: n/size or n/size + 1, the first n % size ranks take the extra row.
        EXPECT_EQ(e - b, n / size + (r < n % size ? 1 : 0));
        for (int64_t i = b; i < e; ++i)
          seen[static_cast<size_t>(i)]++;
        prev_end = e;
      }
      EXPECT_EQ(prev_end, n);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(seen[static_cast<size_t>(i)], 1);
    }
  }
}

TEST(ShardBlock, BadArgumentsGiveEmptyBlock) {
  int64_t b = 5, e = 9;
  sn_shard_block(10, 3, 3, &b, &e);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(e, 0);
  sn_shard_block(10, 0, 0, &b, &e);
  EXPECT_EQ(e - b, 0);
}

TEST(ShardEpoch, StepCounts) {
  EXPECT_EQ(sn_shard_epoch_steps(100, 8, 1), 12);
  EXPECT_EQ(sn_shard_epoch_steps(100, 8, 0), 13);
  EXPECT_EQ(sn_shard_epoch_steps(96, 8, 0), 12);
  EXPECT_EQ(sn_shard_epoch_steps(96, 8, 1), 12);
  EXPECT_EQ(sn_shard_epoch_steps(5, 8, 1), 0);
  EXPECT_EQ(sn_shard_epoch_steps(5, 8, 0), 1);
  EXPECT_EQ(sn_shard_epoch_steps(0, 8, 0), 0);
  EXPECT_EQ(sn_shard_local_max(8, 3), 3);
  EXPECT_EQ(sn_shard_local_max(8, 4), 2);
  EXPECT_EQ(sn_shard_local_max(2, 4), 1);
}

TEST(ShardEpoch, UnevenSplitEightOverThree) {
  // B = 8 over W = 3: 3, 3, 2, and the three slices concatenated are the global batch.
  const int64_t n = 40, B = 8;
  const int W = 3;
  auto perm = perm_of(n, 11, 2);
  const int per = sn_shard_local_max(B, W);
  ASSERT_EQ(per, 3);
  const int expected[3] = {3, 3, 2};
  for (int64_t s = 0; s < sn_shard_epoch_steps(n, B, 1); ++s) {
    std::vector<int64_t> joined;
    for (int r = 0; r < W; ++r) {
      std::vector<int64_t> rows(per, -1);
      int c = sn_shard_step_rows(perm.data(), n, B, 1, r, W, s, rows.data());
      EXPECT_EQ(c, expected[r]) << "step " << s << " rank " << r;
      joined.insert(joined.end(), rows.begin(), rows.begin() + c);
    }
    std::vector<int64_t> batch(perm.begin() + s * B, perm.begin() + (s + 1) * B);
    EXPECT_EQ(joined, batch) << "step " << s;
  }
}

// For many (n, B, W, drop_last): every rank runs the same number of steps, each step's slices over
// the ranks (in rank order) are exactly the global batch of the permutation, and over the epoch
// every row is seen once (drop: the tail is skipped; pad: the last batch wraps to the start).
TEST(ShardEpoch, UnionOverRanksIsTheGlobalBatch) {
  const uint64_t seed = 1234;
  const int64_t epoch = 3;
  for (int64_t n : {1, 7, 8, 9, 23, 64, 100}) {
    for (int64_t B : {1, 2, 5, 8, 16}) {
      for (int W : {1, 2, 3, 4, 5}) {
        for (int drop : {0, 1}) {
          auto perm = perm_of(n, seed, epoch);
          const int per = sn_shard_local_max(B, W);
          const int64_t want_steps = drop ? n / B : (n + B - 1) / B;
          std::vector<std::vector<int64_t>> rows(W);
          std::vector<std::vector<int>> counts(W);
          for (int r = 0; r < W; ++r) {
            int64_t steps = -1;
            rows[r].assign(static_cast<size_t>(std::max<int64_t>(want_steps, 1) * per), -1);
            counts[r].assign(static_cast<size_t>(std::max<int64_t>(want_steps, 1)), -1);
            ASSERT_EQ(sn_shard_epoch_rows(n, seed, epoch, r, W, B, drop, rows[r].data(),
                                          counts[r].data(), &steps),
                      SN_OK)
                << sn_last_error();
            ASSERT_EQ(steps, want_steps) << "n " << n << " B " << B << " W " << W;
          }
          std::vector<int> seen(static_cast<size_t>(n), 0);
          for (int64_t s = 0; s < want_steps; ++s) {
            std::vector<int64_t> joined;
            for (int r = 0; r < W; ++r) {
              int c = counts[r][static_cast<size_t>(s)];
              EXPECT_EQ(c, B / W + (r < B % W ? 1 : 0));
              joined.insert(joined.end(), rows[r].begin() + s * per, rows[r].begin() + s * per + c);
            }
            std::vector<int64_t> batch;
            for (int64_t k = 0; k < B; ++k)
              batch.push_back(perm[static_cast<size_t>((s * B + k) % n)]);
            EXPECT_EQ(joined, batch) << "n " << n << " B " << B << " W " << W << " step " << s;
            for (int64_t row : joined)
              seen[static_cast<size_t>(row)]++;
          }
          // Coverage: with padding every row at least once (and repeats only from the wrap),
          // with drop every row at most once and exactly steps * B rows.
          int64_t total = 0;
          for (int64_t i = 0; i < n; ++i) {
            total += seen[static_cast<size_t>(i)];
            if (drop)
              EXPECT_LE(seen[static_cast<size_t>(i)], 1);
            else
              EXPECT_GE(seen[static_cast<size_t>(i)], 1);
          }
          EXPECT_EQ(total, want_steps * B);
        }
      }
    }
  }
}

TEST(ShardEpoch, SameOnEveryCallAndDependsOnEpoch) {
  const int64_t n = 50, B = 6;
  const int per = sn_shard_local_max(B, 2);
  const int64_t steps = sn_shard_epoch_steps(n, B, 0);
  std::vector<int64_t> a(steps * per), b(steps * per), c(steps * per);
  std::vector<int> ca(steps), cb(steps), cc(steps);
  ASSERT_EQ(sn_shard_epoch_rows(n, 5, 1, 1, 2, B, 0, a.data(), ca.data(), nullptr), SN_OK);
  ASSERT_EQ(sn_shard_epoch_rows(n, 5, 1, 1, 2, B, 0, b.data(), cb.data(), nullptr), SN_OK);
  ASSERT_EQ(sn_shard_epoch_rows(n, 5, 2, 1, 2, B, 0, c.data(), cc.data(), nullptr), SN_OK);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(ShardEpoch, InvalidArguments) {
  int64_t rows[4];
  int counts[4];
  int64_t steps = 99;
  EXPECT_EQ(sn_shard_epoch_rows(10, 0, 0, 2, 2, 4, 0, rows, counts, &steps), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("sn_shard_epoch_rows"), std::string::npos);
  EXPECT_EQ(steps, 0);
  EXPECT_EQ(sn_shard_epoch_rows(10, 0, 0, 0, 2, 0, 0, rows, counts, &steps), SN_ERR_INVALID);
  EXPECT_EQ(sn_shard_epoch_rows(-1, 0, 0, 0, 2, 4, 0, rows, counts, &steps), SN_ERR_INVALID);
  // Fewer rows than one global batch with drop_last: no steps, nothing written.
  EXPECT_EQ(sn_shard_epoch_rows(3, 0, 0, 0, 2, 4, 1, nullptr, nullptr, &steps), SN_OK);
  EXPECT_EQ(steps, 0);
  // Out-of-range step: no rows.
  auto perm = perm_of(10, 0, 0);
  EXPECT_EQ(sn_shard_step_rows(perm.data(), 10, 4, 1, 0, 2, 2, rows), 0);
  EXPECT_EQ(sn_shard_step_rows(perm.data(), 10, 4, 0, 0, 2, 2, rows), 2);
}

TEST(ShardEpoch, GlobalBatchLargerThanDatasetPads) {
  // n = 3, B = 8, pad: one step, the batch wraps around the permutation.
  auto perm = perm_of(3, 9, 0);
  int64_t rows[8];
  int count = sn_shard_step_rows(perm.data(), 3, 8, 0, 0, 1, 0, rows);
  ASSERT_EQ(count, 8);
  for (int k = 0; k < 8; ++k)
    EXPECT_EQ(rows[k], perm[k % 3]);
}
