/* ring.c - shardnet's non-blocking ring all-reduce (sum of float32, in place): the gradient
 * all-reduce of sn_comm_iallreduce_f32 unless the MPI library's own is chosen
 * (SN_ALLREDUCE_RING, docs/distributed.md section 3).
 *
 * Algorithm. The buffer of n values is cut into p segments, segment j = [j n / p, (j+1) n / p).
 * Reduce-scatter: in step k = 0 .. p-2 rank r sends segment (r - k) mod p to rank r + 1 and adds
 * segment (r - k - 1) mod p, received from rank r - 1, into its own; after p - 1 steps rank r
 * holds the complete sum of segment (r + 1) mod p. Allgather: in step k = 0 .. p-2 rank r sends
 * segment (r + 1 - k) mod p to rank r + 1 and receives segment (r - k) mod p from rank r - 1
 * straight into the buffer. Each rank sends and receives 2 (p-1)/p n values in 2 (p-1) messages:
 * bandwidth-optimal, where Open MPI's in-place default (a binomial tree) moves all n values
 * 2 log2(p) times along its critical path.
 *
 * Determinism. Element i of segment j is summed in one fixed order, ((x_j + x_{j+1}) + ...) +
 * x_{j-1} (ranks mod p), then copied to every rank: the result is bitwise the same on every rank,
 * and in every run with the same rank count and the same buffer (bucket) boundaries.
 *
 * Progress. The MPI library moves the messages of the posted step; the next step is posted only
 * inside sn_ring_progress, i.e. inside sn_comm_test and sn_comm_wait, which the training step
 * calls after every layer's backward (the comm_poll engine option). The messages travel on a
 * private duplicate of the communicator with one tag per request (every rank starts its requests
 * in the same order and numbers them alike), so requests in flight together, and any other
 * traffic, never match each other's messages. A segment longer than the MPI count limit
 * (sn_mpi_max_chunk) goes in several messages; a step whose segments are empty (n < p) sends
 * nothing.
 *
 * Memory: the receive buffer of the reduce-scatter (the largest segment, about n / p values) and
 * the MPI requests live in the request, which the communicator's pool reuses.
 */
#include <stdio.h>

#include "comm_mpi.h"

enum { RING_TAG_BASE = 0x1000, RING_TAGS = 0x4000 }; /* tags 4096 .. 20479 (MPI allows 32767) */

static int mod(int a, int p) { return ((a % p) + p) % p; }

/* First value of segment j (j = p: n). */
static size_t seg_lo(size_t n, int p, int j) {
  return (n / (size_t)p) * (size_t)j + (n % (size_t)p) * (size_t)j / (size_t)p;
}

/* Posts the receives then the sends of step r->step. */
static sn_status post(sn_comm *c, sn_request *r) {
  const sn_comm_mpi *m = c->impl;
  const int p = c->size, me = c->rank, right = (me + 1) % p, left = (me + p - 1) % p;
  const int rs = r->step < p - 1, k = rs ? r->step : r->step - (p - 1);
  const int send = rs ? mod(me - k, p) : mod(me + 1 - k, p);
  const int recv = rs ? mod(me - k - 1, p) : mod(me - k, p);
  const size_t rlo = seg_lo(r->n, p, recv), rlen = seg_lo(r->n, p, recv + 1) - rlo;
  const size_t slo = seg_lo(r->n, p, send), slen = seg_lo(r->n, p, send + 1) - slo;
  float *into = rs ? r->tmp : r->buf + rlo;
  const size_t chunk = sn_mpi_max_chunk();
  r->count = 0;
  int rc = MPI_SUCCESS;
  for (size_t off = 0; rc == MPI_SUCCESS && off < rlen; off += chunk) {
    const size_t len = rlen - off < chunk ? rlen - off : chunk;
    rc = MPI_Irecv(into + off, (int)len, MPI_FLOAT, left, r->tag, m->ring, &r->reqs[r->count]);
    if (rc == MPI_SUCCESS) r->count++;
  }
  for (size_t off = 0; rc == MPI_SUCCESS && off < slen; off += chunk) {
    const size_t len = slen - off < chunk ? slen - off : chunk;
    rc = MPI_Isend(r->buf + slo + off, (int)len, MPI_FLOAT, right, r->tag, m->ring,
                   &r->reqs[r->count]);
    if (rc == MPI_SUCCESS) r->count++;
  }
  r->posted = 1;
  if (rc == MPI_SUCCESS) return SN_OK;
  char what[128];
  snprintf(what, sizeof what, "ring all-reduce of %zu float32 values, step %d of %d", r->n,
           r->step + 1, 2 * (p - 1));
  return sn_mpi_error(c, rc, what);
}

/* After step r->step completed: a reduce-scatter step adds the received segment into its own. */
static void finish_step(const sn_comm *c, sn_request *r) {
  const int p = c->size;
  if (r->step < p - 1) {
    const int recv = mod(c->rank - r->step - 1, p);
    const size_t lo = seg_lo(r->n, p, recv), len = seg_lo(r->n, p, recv + 1) - lo;
    float *restrict dst = r->buf + lo;
    const float *restrict src = r->tmp;
    for (size_t i = 0; i < len; ++i)
      dst[i] += src[i];
  }
  r->step++;
  r->posted = 0;
  r->count = 0;
}

/* Cancels and completes whatever is outstanding after a failure. */
static void abandon(sn_request *r) {
  for (int i = 0; i < r->count; ++i)
    if (r->reqs[i] != MPI_REQUEST_NULL) MPI_Cancel(&r->reqs[i]);
  MPI_Waitall(r->count, r->reqs, MPI_STATUSES_IGNORE);
  r->count = 0;
  r->posted = -1; /* failed: never posted again */
}

sn_status sn_ring_progress(sn_comm *c, sn_request *r, int block, int *done) {
  const int steps = 2 * (c->size - 1);
  *done = 0;
  if (r->posted < 0)
    return sn_error_set(SN_ERR_COMM, "rank %d: ring all-reduce of %zu float32 values failed",
                        c->rank, r->n);
  while (r->step < steps) {
    if (!r->posted) {
      sn_status s = post(c, r);
      if (s != SN_OK) {
        abandon(r);
        return s;
      }
    }
    int flag = 1, rc;
    if (block)
      rc = MPI_Waitall(r->count, r->reqs, MPI_STATUSES_IGNORE);
    else
      rc = MPI_Testall(r->count, r->reqs, &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      char what[128];
      snprintf(what, sizeof what, "%s (ring all-reduce of %zu float32 values, step %d of %d)",
               block ? "MPI_Waitall" : "MPI_Testall", r->n, r->step + 1, steps);
      abandon(r);
      return sn_mpi_error(c, rc, what);
    }
    if (!flag) return SN_OK;
    finish_step(c, r);
  }
  *done = 1;
  return SN_OK;
}

sn_status sn_ring_start(sn_comm *c, float *buf, size_t n, sn_request **out) {
  const int p = c->size;
  const size_t seg = n / (size_t)p + 1, chunk = sn_mpi_max_chunk();
  const size_t pieces = (seg + chunk - 1) / chunk;
  sn_request *r = sn_mpi_request_get(c, 2 * pieces, seg);
  if (!r)
    return sn_error_set(SN_ERR_NOMEM,
                        "rank %d: ring all-reduce of %zu float32 values: %zu values of buffer",
                        c->rank, n, seg);
  const sn_comm_mpi *m = c->impl;
  r->ring = 1;
  r->buf = buf;
  r->n = n;
  r->tag = RING_TAG_BASE + (int)(m->seq % RING_TAGS);
  int done = 0;
  sn_status s = sn_ring_progress(c, r, 0, &done); /* posts step 1 */
  if (s != SN_OK) {
    sn_mpi_request_put(c, r);
    return s;
  }
  *out = r;
  return SN_OK;
}
