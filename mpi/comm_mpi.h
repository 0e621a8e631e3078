/* comm_mpi.h - private to mpi/ (and its tests): the MPI side of sn_comm.
 *
 * The engine never sees this header; it reaches the communicator through comm_impl.h's table.
 */
#ifndef SN_COMM_MPI_H
#define SN_COMM_MPI_H

#include <mpi.h>

#include "comm_impl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pending sn_comm_iallreduce_f32: the MPI requests of one MPI_Iallreduce per piece of at most
 * sn_mpi_max_chunk values (SN_ALLREDUCE_MPI), or the state of a ring all-reduce (ring.c).
 * Requests are kept in a pool per communicator and reused, so that a training step allocates
 * nothing once the pool holds as many as it has buckets in flight. */
struct sn_request {
  int ring;          /* 1: ring all-reduce (the fields below), 0: MPI_Iallreduce pieces */
  MPI_Request *reqs; /* (cap) outstanding MPI requests, count of them in use */
  int count, cap;
  float *buf; /* (n) the values being summed, in place */
  size_t n;
  float *tmp; /* (tmp_cap) receive buffer of a reduce-scatter step: the largest segment */
  size_t tmp_cap;
  int tag;    /* of this request's messages on the ring communicator */
  int step;   /* next ring step to complete: 0 .. 2 (p-1) */
  int posted; /* 1: the messages of `step` are posted; -1: failed (cancelled) */
};

enum { SN_REQUEST_POOL = 32 };

/* Implementation data of an MPI sn_comm (sn_comm.impl). */
typedef struct sn_comm_mpi {
  MPI_Comm comm; /* our duplicate, MPI_ERRORS_RETURN installed; freed by destroy */
  MPI_Comm ring; /* a second duplicate for the ring all-reduce's messages only */
  unsigned seq;  /* all-reduces started so far: the ring's tags (same order on every rank) */
  sn_request *pool[SN_REQUEST_POOL]; /* finished requests kept for reuse */
  int npool;
  /* Set when a step agreement on this communicator timed out: messages of that agreement may
   * still be in flight (a late rank's status, a verdict to a rank that gave up). Freeing the
   * communicator would let Open MPI deliver them to the next communicator that reuses its
   * context id (it keeps fragments for not-yet-created communicators), corrupting that
   * communicator's message order. destroy therefore leaks a poisoned communicator. */
  int poisoned;
} sn_comm_mpi;

/* The MPI communicator behind c, or MPI_COMM_NULL if c is not an MPI sn_comm (serial, NULL). */
MPI_Comm sn_comm_mpi_handle(const sn_comm *c);

/* Turns an MPI error code into sn_status SN_ERR_COMM with the message
 * "rank R: <op>: <MPI error string>" (R = rank in c). Returns SN_ERR_COMM. */
sn_status sn_mpi_error(const sn_comm *c, int mpi_code, const char *op);

/* Largest element count handed to one MPI call (default INT_MAX). Larger buffers are split into
 * several calls. Tests lower it to exercise the chunked paths without 2 GiB buffers; 0 restores
 * the default. Not thread-safe; set it only while no communication is in flight. */
void sn_mpi_set_max_chunk(size_t elems);
size_t sn_mpi_max_chunk(void);

/* A request from c's pool (or a new one) with room for `reqs` MPI requests and `tmp` floats of
 * receive buffer; NULL when out of memory. Fields other than the buffers are zeroed. */
sn_request *sn_mpi_request_get(sn_comm *c, size_t reqs, size_t tmp);
/* Returns a finished request (no MPI request outstanding) to c's pool, or frees it. */
void sn_mpi_request_put(sn_comm *c, sn_request *r);

/* ring.c: starts the ring all-reduce (sum, in place) of buf (n values) on c's ring communicator
 * and posts its first step. */
sn_status sn_ring_start(sn_comm *c, float *buf, size_t n, sn_request **out);
/* Advances r as far as the messages that have arrived allow (block = 0: MPI_Testall) or to the
 * end (block = 1: MPI_Waitall); *done = 1 when the sum is complete. On an MPI failure the pending
 * messages are cancelled and SN_ERR_COMM is returned. Does not free r. */
sn_status sn_ring_progress(sn_comm *c, sn_request *r, int block, int *done);

#ifdef __cplusplus
}
#endif
#endif /* SN_COMM_MPI_H */
