/* watchdog.c - ending a job when a rank fails: step-boundary agreement with a deadline.
 *
 * How a failing rank takes the job down (measured with Open MPI 4.1 in tests/mpi/failure_drill.sh,
 * see docs/distributed-failures.md):
 *  - A local error (bad file, NaN, ...): jobs call sn_mpi_check at step boundaries, before the
 *    next collective phase. Every rank learns the lowest failing rank and its message, rank 0
 *    prints one line, every rank exits 1.
 *  - A rank that exits or dies (kill -9): mpirun notices the process is gone and kills the others
 *    (its default orte_abort_on_non_zero_status), whatever collective they were blocked in.
 *  - A rank that hangs (deadlock, stuck file system): only a deadline helps. sn_comm_agree_timeout
 *    collects every rank's status on rank 0 with point-to-point messages polled against a clock,
 *    so rank 0 can name the ranks that did not arrive; nothing runs between steps (no heartbeat
 *    thread).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm_mpi.h"
#include "mpi_job.h"

enum { TAG_STATUS = 0x5301, TAG_VERDICT = 0x5302, MSG_BYTES = 496 };

/* One rank's status (rank -> 0) and rank 0's verdict (0 -> everyone). */
typedef struct agree_msg {
  int32_t rank;      /* status: the sender; verdict: the lowest failing rank, or size if none */
  int32_t code;      /* sn_status */
  int32_t timed_out; /* verdict: some rank did not arrive before the deadline */
  uint32_t flags;    /* status: the sender's flags; verdict: their OR over the ranks that came */
  char msg[MSG_BYTES];
} agree_msg;

/* Waits between polls: spin briefly (the usual case, everybody arrives together), then back off
 * from 50 us to 5 ms so a long wait does not steal a shared core. */
static void backoff(int *round) {
  if (++*round < 200) return;
  long us = 50L << (*round - 200 < 7 ? *round - 200 : 7);
  if (us > 5000) us = 5000;
  struct timespec ts = {0, us * 1000L};
  nanosleep(&ts, NULL);
}

static void copy_msg(char *dst, const char *src) { snprintf(dst, MSG_BYTES, "%s", src); }

/* Rank 0: gather every status before the deadline, decide, send the verdict to those that came. */
static sn_status root_collect(const sn_comm *c, MPI_Comm mc, const agree_msg *mine, double deadline,
                              double timeout_s, agree_msg *verdict) {
  const int size = c->size;
  agree_msg *all = calloc((size_t)size, sizeof *all);
  MPI_Request *reqs = malloc((size_t)size * sizeof *reqs);
  if (!all || !reqs) {
    free(all);
    free(reqs);
    return sn_error_set(SN_ERR_NOMEM, "rank 0: watchdog: %d status slots", size);
  }
  all[0] = *mine;
  reqs[0] = MPI_REQUEST_NULL;
  int pending = 0, rc = MPI_SUCCESS;
  for (int r = 1; r < size; ++r) {
    reqs[r] = MPI_REQUEST_NULL;
    if (rc == MPI_SUCCESS)
      rc = MPI_Irecv(&all[r], (int)sizeof all[r], MPI_BYTE, r, TAG_STATUS, mc, &reqs[r]);
    if (rc == MPI_SUCCESS) ++pending;
  }
  for (int round = 0; rc == MPI_SUCCESS && pending > 0;) {
    for (int r = 1; r < size && rc == MPI_SUCCESS; ++r) {
      if (reqs[r] == MPI_REQUEST_NULL) continue;
      int done = 0;
      rc = MPI_Test(&reqs[r], &done, MPI_STATUS_IGNORE); /* sets reqs[r] to NULL when done */
      if (rc == MPI_SUCCESS && done) --pending;
    }
    if (pending == 0 || MPI_Wtime() > deadline) break;
    backoff(&round);
  }
  sn_status s = SN_OK;
  if (rc != MPI_SUCCESS) s = sn_mpi_error(c, rc, "watchdog: receiving the ranks' status");

  /* Ranks still missing: cancel their receives (so `all` can be freed) and name them. */
  char missing[256] = "";
  int n_missing = 0, first_missing = size;
  for (int r = 1; r < size; ++r) {
    if (reqs[r] == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&reqs[r]);
    MPI_Wait(&reqs[r], MPI_STATUS_IGNORE);
    all[r].code = SN_ERR_COMM;
    all[r].rank = -1;
    if (first_missing == size) first_missing = r;
    size_t len = strlen(missing);
    if (len < sizeof missing - 16)
      snprintf(missing + len, sizeof missing - len, "%s%d", n_missing ? ", " : "", r);
    ++n_missing;
  }

  memset(verdict, 0, sizeof *verdict);
  verdict->rank = size;
  verdict->code = SN_OK;
  verdict->timed_out = n_missing > 0;
  for (int r = 0; r < size; ++r)
    if (all[r].rank >= 0) verdict->flags |= all[r].flags;
  /* A real error of a rank that did arrive explains more than a missing rank does. */
  for (int r = 0; r < size; ++r) {
    if (all[r].code == SN_OK || all[r].rank < 0) continue;
    verdict->rank = r;
    verdict->code = all[r].code;
    copy_msg(verdict->msg, all[r].msg);
    if (n_missing > 0) {
      size_t len = strlen(verdict->msg);
      snprintf(verdict->msg + len, sizeof verdict->msg - len,
               " (also: rank%s %s did not reach the step agreement within %g s)",
               n_missing > 1 ? "s" : "", missing, timeout_s);
    }
    break;
  }
  if (verdict->rank == size && n_missing > 0) {
    verdict->rank = first_missing;
    verdict->code = SN_ERR_COMM;
    snprintf(
        verdict->msg, sizeof verdict->msg,
        "rank %d: did not reach the step agreement within %g s (stuck or dead; missing: rank%s "
        "%s; seen by rank 0)",
        first_missing, timeout_s, n_missing > 1 ? "s" : "", missing);
  }

  /* The verdict goes to every rank that arrived (small messages: sent eagerly). */
  int sent = 0;
  for (int r = 1; r < size && s == SN_OK; ++r) {
    if (all[r].rank < 0) continue;
    rc = MPI_Isend(verdict, (int)sizeof *verdict, MPI_BYTE, r, TAG_VERDICT, mc, &reqs[sent]);
    if (rc != MPI_SUCCESS) {
      s = sn_mpi_error(c, rc, "watchdog: sending the verdict");
      break;
    }
    ++sent;
  }
  if (sent > 0) {
    rc = MPI_Waitall(sent, reqs, MPI_STATUSES_IGNORE);
    if (s == SN_OK && rc != MPI_SUCCESS) s = sn_mpi_error(c, rc, "watchdog: sending the verdict");
  }
  free(all);
  free(reqs);
  return s;
}

/* Any other rank: send the status to rank 0, wait for the verdict until the deadline. */
static sn_status leaf_exchange(const sn_comm *c, MPI_Comm mc, const agree_msg *mine,
                               double deadline, double waited_s, agree_msg *verdict, int *gave_up) {
  *gave_up = 0;
  MPI_Request sreq = MPI_REQUEST_NULL, rreq = MPI_REQUEST_NULL;
  int rc = MPI_Isend(mine, (int)sizeof *mine, MPI_BYTE, 0, TAG_STATUS, mc, &sreq);
  if (rc == MPI_SUCCESS)
    rc = MPI_Irecv(verdict, (int)sizeof *verdict, MPI_BYTE, 0, TAG_VERDICT, mc, &rreq);
  int done = 0;
  for (int round = 0; rc == MPI_SUCCESS;) {
    rc = MPI_Test(&rreq, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done || MPI_Wtime() > deadline) break;
    backoff(&round);
  }
  if (rc != MPI_SUCCESS) {
    if (rreq != MPI_REQUEST_NULL) {
      MPI_Cancel(&rreq);
      MPI_Wait(&rreq, MPI_STATUS_IGNORE);
    }
    if (sreq != MPI_REQUEST_NULL) MPI_Request_free(&sreq);
    return sn_mpi_error(c, rc, "watchdog: exchanging the status with rank 0");
  }
  if (!done) {
    MPI_Cancel(&rreq);
    MPI_Wait(&rreq, MPI_STATUS_IGNORE);
    if (sreq != MPI_REQUEST_NULL) MPI_Request_free(&sreq);
    memset(verdict, 0, sizeof *verdict);
    verdict->rank = 0;
    verdict->code = SN_ERR_COMM;
    verdict->timed_out = 1;
    *gave_up = 1;
    snprintf(
        verdict->msg, sizeof verdict->msg,
        "rank 0: did not answer the step agreement within %g s (stuck or dead; seen by rank %d)",
        waited_s, c->rank);
    return SN_OK;
  }
  rc = MPI_Wait(&sreq, MPI_STATUS_IGNORE); /* rank 0 has it: it answered */
  return rc == MPI_SUCCESS ? SN_OK : sn_mpi_error(c, rc, "watchdog: sending the status to rank 0");
}

/* How an agreement ended. */
typedef enum outcome {
  AGREED = 0,    /* every rank has the same verdict and can go on or shut down MPI cleanly */
  TIMED_OUT = 1, /* rank 0 found ranks missing and told the others: the job must abort */
  LOST = 2       /* this rank could not complete the protocol itself (timeout or MPI error) */
} outcome;

/* Flags over a communicator without an MPI handle: the OR of each bit through a maximum. */
static sn_status agree_flags_generic(sn_comm *c, unsigned *flags) {
  int32_t bits[32];
  for (int i = 0; i < 32; ++i)
    bits[i] = (int32_t)((*flags >> i) & 1u);
  sn_status s = sn_comm_allreduce(c, bits, 32, SN_I32, SN_MAX);
  *flags = 0;
  for (int i = 0; i < 32; ++i)
    if (bits[i]) *flags |= 1u << i;
  return s;
}

/* flags (may be NULL): this rank's on entry, their OR over the ranks on an agreed return. */
static sn_status agree(sn_comm *c, sn_status local, unsigned *flags, double timeout_s,
                       outcome *how) {
  *how = AGREED;
  if (!c) c = sn_comm_serial();
  if (c->size <= 1) return local;
  MPI_Comm mc = sn_comm_mpi_handle(c);
  if (mc == MPI_COMM_NULL) {
    sn_status s = flags ? agree_flags_generic(c, flags) : SN_OK;
    return s != SN_OK ? s : sn_comm_agree(c, local);
  }

  agree_msg mine, verdict;
  memset(&mine, 0, sizeof mine);
  mine.rank = c->rank;
  mine.code = local;
  mine.flags = flags ? *flags : 0;
  if (local != SN_OK) copy_msg(mine.msg, sn_last_error());

  /* Rank 0 waits timeout_s for the others; the others wait for rank 0 to wait that long too,
   * staggered by rank so that when rank 0 is the stuck one, rank 1 usually reports it and
   * aborts the job before the others print the same. */
  const double now = MPI_Wtime();
  const double stagger = 0.5 * (c->rank - 1 < 4 ? c->rank - 1 : 4);
  const double limit =
      timeout_s <= 0 ? 1e300 : (c->rank == 0 ? timeout_s : 2 * timeout_s + 1 + stagger);
  int gave_up = 0;
  sn_status s = c->rank == 0 ? root_collect(c, mc, &mine, now + limit, timeout_s, &verdict)
                             : leaf_exchange(c, mc, &mine, now + limit, limit, &verdict, &gave_up);
  if (s != SN_OK) {
    *how = LOST;
    return s;
  }
  if (verdict.timed_out) *how = gave_up ? LOST : TIMED_OUT;
  if (flags && !gave_up) *flags = verdict.flags;
  if (gave_up && local != SN_OK) {
    /* Our own failure is the likely cause: the others are probably blocked in a collective
     * this rank skipped. Report it first. */
    return sn_error_set(local,
                        "%s (then rank 0 did not answer the step agreement within %g s: the "
                        "other ranks may be blocked in a collective this rank skipped)",
                        mine.msg, limit);
  }
  if (verdict.code == SN_OK) return SN_OK;
  if (verdict.rank == c->rank && local != SN_OK) return local; /* keep our own message */
  verdict.msg[MSG_BYTES - 1] = '\0';
  if (strncmp(verdict.msg, "rank ", 5) == 0)
    return sn_error_set((sn_status)verdict.code, "%s", verdict.msg);
  return sn_error_set((sn_status)verdict.code, "rank %d: %s", verdict.rank, verdict.msg);
}

/* An agreement that did not complete everywhere leaves messages in flight on the communicator;
 * it must never be freed (see sn_comm_mpi.poisoned). */
static sn_status agree_marking(sn_comm *c, sn_status local, unsigned *flags, double timeout_s,
                               outcome *how) {
  sn_status s = agree(c, local, flags, timeout_s, how);
  if (*how != AGREED && c && sn_comm_mpi_handle(c) != MPI_COMM_NULL)
    ((sn_comm_mpi *)c->impl)->poisoned = 1;
  return s;
}

sn_status sn_comm_agree_timeout(sn_comm *comm, sn_status local, double timeout_s) {
  outcome how;
  return agree_marking(comm, local, NULL, timeout_s, &how);
}

void (*sn_mpi_before_exit)(void) = NULL;
int (*sn_mpi_exit_status)(sn_status status) = NULL;

void sn_mpi_check(sn_comm *comm, sn_status local, double timeout_s, const char *prog) {
  sn_mpi_check_flags(comm, local, NULL, timeout_s, prog);
}

void sn_mpi_check_flags(sn_comm *comm, sn_status local, unsigned *flags, double timeout_s,
                        const char *prog) {
  outcome how = AGREED;
  sn_status s = agree_marking(comm, local, flags, timeout_s, &how);
  if (s == SN_OK) return;
  if (sn_mpi_before_exit) sn_mpi_before_exit(); /* stop reader threads before HDF5 is closed */
  int code = sn_mpi_exit_status ? sn_mpi_exit_status(s) : 1;
  if (code < 1 || code > 255) code = 1;
  const int rank = sn_comm_rank(comm);
  int world = 1, initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const int mpi_up = initialized && !finalized;
  if (mpi_up) MPI_Comm_size(MPI_COMM_WORLD, &world);
  /* One line: from rank 0 when it gave the verdict, else from the rank that lost contact. */
  if (rank == 0 || how == LOST) {
    fprintf(stderr, "%s: error: %s\n", prog ? prog : "shardnet", sn_last_error());
    fflush(stderr);
  }
  /* MPI_Finalize needs every rank of the job: only a clean verdict over the whole world allows it.
   */
  if (mpi_up && (how != AGREED || sn_comm_size(comm) != world)) {
    /* Give rank 0 the time to print and abort first: its MPI_Abort ends this process. */
    if (how == TIMED_OUT && rank != 0) {
      struct timespec ts = {2, 0};
      nanosleep(&ts, NULL);
    }
    sn_mpi_abort(code);
  }
  sn_mpi_finalize();
  /* _exit, not exit: a prefetching reader thread may be inside HDF5, and HDF5's atexit teardown
   * racing with it crashes. Outputs are protected by their own protocols (complete = 1 last,
   * atomic renames), not by exit handlers. */
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}
