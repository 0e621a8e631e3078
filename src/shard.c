/* shard.c - which rows each rank reads: pure functions of (dataset size, seed, epoch, rank, size).
 *
 * Training follows Goyal et al. (one random shuffle per epoch, split across the workers): the
 * epoch permutation is the same on every rank, global batch s is the slice perm[s*B, (s+1)*B),
 * and rank r takes a contiguous part of that slice. Only augmentation seeds should include the
 * rank.
 */
#include <stdlib.h>

#include "shardnet.h"

/* splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit generator and a good mixer. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound > 0, without modulo bias (rejection of the short last cycle). */
static uint64_t uniform_below(uint64_t *state, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
  for (;;) {
    uint64_t r = splitmix64(state);
    if (r >= threshold) return r % bound;
  }
}

void sn_shard_permutation(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm) {
  if (n <= 0 || !perm) return;
  /* Decorrelate (seed, epoch) pairs: mix the epoch in through a separate splitmix step. */
  uint64_t e = (uint64_t)epoch ^ 0x5348415244ull; /* "SHARD" */
  uint64_t state = seed ^ splitmix64(&e);
  (void)splitmix64(&state);
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  /* Fisher-Yates. */
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = (int64_t)uniform_below(&state, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

void sn_shard_block(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
  if (n < 0 || size <= 0 || rank < 0 || rank >= size) {
    *begin = *end = 0;
    return;
  }
  const int64_t q = n / size, rem = n % size;
  *begin = (int64_t)rank * q + (rank < rem ? rank : rem);
  *end = *begin + q + (rank < rem ? 1 : 0);
}

int64_t sn_shard_epoch_steps(int64_t n, int64_t global_batch, int drop_last) {
  if (n <= 0 || global_batch <= 0) return 0;
  return drop_last ? n / global_batch : (n + global_batch - 1) / global_batch;
}

int sn_shard_local_max(int64_t global_batch, int size) {
  if (global_batch <= 0 || size <= 0) return 0;
  return (int)((global_batch + size - 1) / size);
}

int sn_shard_step_rows(const int64_t *perm, int64_t n, int64_t global_batch, int drop_last,
                       int rank, int size, int64_t step, int64_t *rows) {
  if (!perm || n <= 0 || global_batch <= 0 || size <= 0 || rank < 0 || rank >= size || step < 0 ||
      step >= sn_shard_epoch_steps(n, global_batch, drop_last))
    return 0;
  int64_t begin, end;
  sn_shard_block(global_batch, rank, size, &begin, &end);
  const int64_t base = step * global_batch;
  /* Positions past the end wrap to the start of the permutation (padding, drop_last == 0). */
  for (int64_t k = begin; k < end; ++k)
    rows[k - begin] = perm[(base + k) % n];
  return (int)(end - begin);
}

sn_status sn_shard_epoch_rows(int64_t n, uint64_t seed, int64_t epoch, int rank, int size,
                              int64_t global_batch, int drop_last, int64_t *rows, int *counts,
                              int64_t *steps) {
  if (steps) *steps = 0;
  if (n < 0 || global_batch <= 0 || global_batch > INT32_MAX || size <= 0 || rank < 0 ||
      rank >= size)
    return sn_error_set(
        SN_ERR_INVALID,
        "sn_shard_epoch_rows: invalid arguments (n %lld, global batch %lld, rank %d, "
        "size %d)",
        (long long)n, (long long)global_batch, rank, size);
  const int64_t nsteps = sn_shard_epoch_steps(n, global_batch, drop_last);
  if (steps) *steps = nsteps;
  if (nsteps == 0) return SN_OK;
  if (!rows || !counts)
    return sn_error_set(SN_ERR_INVALID, "sn_shard_epoch_rows: NULL rows or counts");
  int64_t *perm = malloc((size_t)n * sizeof *perm);
  if (!perm)
    return sn_error_set(SN_ERR_NOMEM, "sn_shard_epoch_rows: permutation of %lld rows",
                        (long long)n);
  sn_shard_permutation(n, seed, epoch, perm);
  const int per = sn_shard_local_max(global_batch, size);
  for (int64_t s = 0; s < nsteps; ++s)
    counts[s] = sn_shard_step_rows(perm, n, global_batch, drop_last, rank, size, s,
                                   rows + s * (int64_t)per);
  free(perm);
  return SN_OK;
}
