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

/* Implementation data of an MPI sn_comm (sn_comm.impl). */
typedef struct sn_comm_mpi {
  MPI_Comm comm; /* our duplicate, MPI_ERRORS_RETURN installed; freed by destroy */
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

#ifdef __cplusplus
}
#endif
#endif /* SN_COMM_MPI_H */
