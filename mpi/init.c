/* init.c - MPI start-up and shut-down for shardnet programs. */
#include <stdlib.h>

#include <mpi.h>

#include "comm_impl.h"
#include "mpi_job.h"

sn_status sn_mpi_init(int *argc, char ***argv) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) return sn_error_set(SN_ERR_COMM, "sn_mpi_init: MPI was already finalised");
  if (!initialized) {
    /* Only the thread that called this talks to MPI; OpenMP threads only compute. */
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
      return sn_error_set(SN_ERR_COMM, "sn_mpi_init: MPI_Init_thread failed (code %d)", rc);
    if (provided < MPI_THREAD_FUNNELED)
      return sn_error_set(
          SN_ERR_COMM,
          "sn_mpi_init: MPI provides thread level %d, shardnet needs MPI_THREAD_FUNNELED",
          provided);
  }
  /* Failures on the world communicator come back as codes too; sn_comm objects use their own
   * duplicates, which get MPI_ERRORS_RETURN when they are created. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  sn_error_set_rank(rank, size);
  return SN_OK;
}

void sn_mpi_finalize(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

void sn_mpi_abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}
