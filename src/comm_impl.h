/* comm_impl.h - private: the table of operations behind sn_comm.
 *
 * src/comm.c holds the serial implementation (rank 0 of 1) and the dispatching public functions;
 * mpi/comm_mpi.c fills the same table with MPI calls. The engine never includes mpi.h.
 */
#ifndef SN_COMM_IMPL_H
#define SN_COMM_IMPL_H

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_comm_ops {
  sn_status (*allreduce)(sn_comm *c, void *buf, size_t n, sn_dtype t, sn_reduce_op op);
  sn_status (*bcast)(sn_comm *c, void *buf, size_t bytes, int root);
  sn_status (*allgather)(sn_comm *c, const void *send, void *recv, size_t bytes);
  sn_status (*barrier)(sn_comm *c);
  sn_status (*iallreduce_f32)(sn_comm *c, float *buf, size_t n, sn_request **req);
  sn_status (*wait)(sn_comm *c, sn_request *req);
  /* Drives progress and sets *done = 1 if req has completed (req stays valid: sn_comm_wait
   * still frees it, immediately). NULL is a completed request. */
  sn_status (*test)(sn_comm *c, sn_request *req, int *done);
  /* Communicator of the ranks passing the same color, ordered by key (MPI_Comm_split). */
  sn_status (*split)(sn_comm *c, int color, int key, sn_comm **out);
  /* Resolves algo (SN_ALLREDUCE_AUTO included) and stores it in c->allreduce. Collective. */
  sn_status (*set_allreduce)(sn_comm *c, sn_allreduce_algo algo);
  void (*destroy)(sn_comm *c);
} sn_comm_ops;

struct sn_comm {
  const sn_comm_ops *ops;
  int rank, size;
  int fortran_handle;          /* MPI_Comm_c2f of the communicator, -1 when serial */
  sn_allreduce_algo allreduce; /* algorithm of iallreduce_f32 (AUTO only when serial) */
  void *impl;                  /* implementation data (owned by the implementation) */
};

/* Size in bytes of one element of t. */
size_t sn_dtype_size(sn_dtype t);

/* Records the process's rank and size for error-message prefixes ("rank R: "). */
void sn_error_set_rank(int rank, int size);

#ifdef __cplusplus
}
#endif
#endif /* SN_COMM_IMPL_H */
