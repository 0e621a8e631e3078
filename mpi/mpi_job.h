/* mpi_job.h - private to the distributed layer and its entry programs (jobs/): ending an MPI job
 * from a step boundary. These calls print and exit, which library code never does, so they are
 * not part of libshardnet's API. */
#ifndef SN_MPI_JOB_H
#define SN_MPI_JOB_H

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Ends every rank of the job: prints nothing, calls MPI_Abort. */
void sn_mpi_abort(int code);

/* Step-boundary guard (it prints and exits). Collective. Call it after each phase
 * that can fail locally (reading a batch, a non-finite loss, writing a file) and before the next
 * collective phase, with that phase's status. If every rank is fine it returns. Otherwise it does
 * not return: rank 0 writes one line "<prog>: error: <message naming the lowest failing rank>"
 * to stderr and every rank exits with the verdict's status mapped by sn_mpi_exit_status (MPI
 * finalised cleanly). After a timeout (timeout_s > 0, see sn_comm_agree_timeout) or a
 * communication failure the rank that saw it prints and the job ends through MPI_Abort with
 * that rank's mapped status. */
void sn_mpi_check(sn_comm *comm, sn_status local, double timeout_s, const char *prog);
/* sn_mpi_check that also agrees on a word of flags in the same messages (no extra round):
 * *flags holds this rank's bits on entry and, when the call returns, their OR over all ranks,
 * the same on every rank (a stop request seen by one rank reaches all of them). Collective. */
void sn_mpi_check_flags(sn_comm *comm, sn_status local, unsigned *flags, double timeout_s,
                        const char *prog);
/* Called by sn_mpi_check before it finalizes or aborts MPI on a failed verdict (NULL: nothing):
 * the program stops threads that use HDF5 (parallel HDF5 closes itself in MPI_Finalize). */
extern void (*sn_mpi_before_exit)(void);
/* Process exit status for a failed verdict's sn_status (NULL, or a result outside 1..255: 1). */
extern int (*sn_mpi_exit_status)(sn_status status);

#ifdef __cplusplus
}
#endif
#endif /* SN_MPI_JOB_H */
