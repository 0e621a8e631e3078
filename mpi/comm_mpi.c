/* comm_mpi.c - sn_comm over MPI: the operations table of comm_impl.h filled with MPI calls.
 *
 * Every communicator is a private duplicate (MPI_Comm_dup) of the caller's, with MPI_ERRORS_RETURN
 * installed, so MPI failures come back as SN_ERR_COMM with a message naming the rank and the call
 * instead of killing the process inside MPI. Counts larger than one MPI call can take (int) are
 * split into several calls.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "comm_mpi.h"

/* A pending sn_comm_iallreduce_f32: one MPI request per chunk. Freed by sn_comm_wait. */
struct sn_request {
  int count;
  MPI_Request reqs[]; /* (count) */
};

static size_t max_chunk = (size_t)INT_MAX;

void sn_mpi_set_max_chunk(size_t elems) {
  max_chunk = (elems == 0 || elems > (size_t)INT_MAX) ? (size_t)INT_MAX : elems;
}
size_t sn_mpi_max_chunk(void) { return max_chunk; }

static const sn_comm_ops mpi_ops;

MPI_Comm sn_comm_mpi_handle(const sn_comm *c) {
  if (!c || c->ops != &mpi_ops || !c->impl) return MPI_COMM_NULL;
  return ((const sn_comm_mpi *)c->impl)->comm;
}

static MPI_Comm comm_of(const sn_comm *c) { return ((const sn_comm_mpi *)c->impl)->comm; }

sn_status sn_mpi_error(const sn_comm *c, int mpi_code, const char *op) {
  char text[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(mpi_code, text, &len) != MPI_SUCCESS) {
    snprintf(text, sizeof text, "MPI error code %d", mpi_code);
  } else {
    text[len] = '\0';
  }
  return sn_error_set(SN_ERR_COMM, "rank %d: %s: %s (communicator of %d ranks)", c ? c->rank : 0,
                      op, text, c ? c->size : 1);
}

static const char *dtype_name(sn_dtype t) {
  switch (t) {
  case SN_F32:
    return "float32";
  case SN_F64:
    return "float64";
  case SN_I32:
    return "int32";
  case SN_I64:
    return "int64";
  case SN_U8:
    return "uint8";
  }
  return "?";
}

static const char *op_name(sn_reduce_op op) {
  switch (op) {
  case SN_SUM:
    return "sum";
  case SN_MAX:
    return "max";
  case SN_MIN:
    return "min";
  }
  return "?";
}

static int mpi_dtype(sn_dtype t, MPI_Datatype *out) {
  switch (t) {
  case SN_F32:
    *out = MPI_FLOAT;
    return 1;
  case SN_F64:
    *out = MPI_DOUBLE;
    return 1;
  case SN_I32:
    *out = MPI_INT32_T;
    return 1;
  case SN_I64:
    *out = MPI_INT64_T;
    return 1;
  case SN_U8:
    *out = MPI_UINT8_T;
    return 1;
  }
  return 0;
}

static int mpi_op(sn_reduce_op op, MPI_Op *out) {
  switch (op) {
  case SN_SUM:
    *out = MPI_SUM;
    return 1;
  case SN_MAX:
    *out = MPI_MAX;
    return 1;
  case SN_MIN:
    *out = MPI_MIN;
    return 1;
  }
  return 0;
}

static sn_status mpi_allreduce(sn_comm *c, void *buf, size_t n, sn_dtype t, sn_reduce_op op) {
  MPI_Datatype dt;
  MPI_Op mop;
  if (!mpi_dtype(t, &dt))
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_allreduce: unknown dtype %d", c->rank,
                        (int)t);
  if (!mpi_op(op, &mop))
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_allreduce: unknown reduce op %d", c->rank,
                        (int)op);
  if (n > 0 && !buf)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_allreduce: NULL buffer for %zu values",
                        c->rank, n);
  const size_t esize = sn_dtype_size(t);
  for (size_t off = 0; off < n; off += max_chunk) {
    const size_t len = n - off < max_chunk ? n - off : max_chunk;
    int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * esize, (int)len, dt, mop, comm_of(c));
    if (rc != MPI_SUCCESS) {
      char what[128];
      snprintf(what, sizeof what, "MPI_Allreduce of %zu %s values (%s)", n, dtype_name(t),
               op_name(op));
      return sn_mpi_error(c, rc, what);
    }
  }
  return SN_OK;
}

static sn_status mpi_bcast(sn_comm *c, void *buf, size_t bytes, int root) {
  if (root < 0 || root >= c->size)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_bcast: root %d out of range [0, %d)",
                        c->rank, root, c->size);
  if (bytes > 0 && !buf)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_bcast: NULL buffer for %zu bytes",
                        c->rank, bytes);
  for (size_t off = 0; off < bytes; off += max_chunk) {
    const size_t len = bytes - off < max_chunk ? bytes - off : max_chunk;
    int rc = MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, comm_of(c));
    if (rc != MPI_SUCCESS) {
      char what[96];
      snprintf(what, sizeof what, "MPI_Bcast of %zu bytes from root %d", bytes, root);
      return sn_mpi_error(c, rc, what);
    }
  }
  return SN_OK;
}

/* send may be recv + rank * bytes (in place); other overlaps are not allowed. */
static sn_status mpi_allgather(sn_comm *c, const void *send, void *recv, size_t bytes) {
  if (bytes == 0) return SN_OK;
  if (!send || !recv)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_allgather: NULL buffer", c->rank);
  const int in_place = (const char *)send == (const char *)recv + (size_t)c->rank * bytes;
  char what[96];
  if (bytes <= max_chunk) {
    int rc = MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)bytes, MPI_BYTE, recv, (int)bytes,
                           MPI_BYTE, comm_of(c));
    if (rc != MPI_SUCCESS) {
      snprintf(what, sizeof what, "MPI_Allgather of %zu bytes per rank", bytes);
      return sn_mpi_error(c, rc, what);
    }
    return SN_OK;
  }
  /* Chunk k of every rank's block: a receive type of len bytes whose extent is the whole block,
   * so consecutive ranks land `bytes` apart. */
  for (size_t off = 0; off < bytes; off += max_chunk) {
    const size_t len = bytes - off < max_chunk ? bytes - off : max_chunk;
    MPI_Datatype piece = MPI_DATATYPE_NULL, strided = MPI_DATATYPE_NULL;
    int rc = MPI_Type_contiguous((int)len, MPI_BYTE, &piece);
    if (rc == MPI_SUCCESS) rc = MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &strided);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&strided);
    if (rc == MPI_SUCCESS) {
      const void *sbuf = in_place ? MPI_IN_PLACE : (const void *)((const char *)send + off);
      rc = MPI_Allgather(sbuf, in_place ? 0 : (int)len, MPI_BYTE, (char *)recv + off, 1, strided,
                         comm_of(c));
    }
    if (piece != MPI_DATATYPE_NULL) MPI_Type_free(&piece);
    if (strided != MPI_DATATYPE_NULL) MPI_Type_free(&strided);
    if (rc != MPI_SUCCESS) {
      snprintf(what, sizeof what, "MPI_Allgather of %zu bytes per rank (chunk at %zu)", bytes, off);
      return sn_mpi_error(c, rc, what);
    }
  }
  return SN_OK;
}

static sn_status mpi_barrier(sn_comm *c) {
  int rc = MPI_Barrier(comm_of(c));
  return rc == MPI_SUCCESS ? SN_OK : sn_mpi_error(c, rc, "MPI_Barrier");
}

/* Starts one MPI_Iallreduce per chunk; *req is NULL when n == 0. */
static sn_status mpi_iallreduce_f32(sn_comm *c, float *buf, size_t n, sn_request **req) {
  if (!req)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_iallreduce_f32: NULL request", c->rank);
  *req = NULL;
  if (n == 0) return SN_OK;
  if (!buf)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_iallreduce_f32: NULL buffer", c->rank);
  const size_t chunks = (n + max_chunk - 1) / max_chunk;
  if (chunks > (size_t)INT_MAX)
    return sn_error_set(SN_ERR_NOMEM, "rank %d: sn_comm_iallreduce_f32: %zu values", c->rank, n);
  sn_request *r = malloc(sizeof *r + chunks * sizeof(MPI_Request));
  if (!r)
    return sn_error_set(SN_ERR_NOMEM, "rank %d: sn_comm_iallreduce_f32: request of %zu chunks",
                        c->rank, chunks);
  r->count = 0;
  for (size_t off = 0; off < n; off += max_chunk) {
    const size_t len = n - off < max_chunk ? n - off : max_chunk;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)len, MPI_FLOAT, MPI_SUM, comm_of(c),
                            &r->reqs[r->count]);
    if (rc != MPI_SUCCESS) {
      /* Chunks already started must still complete before their buffer is reused. */
      MPI_Waitall(r->count, r->reqs, MPI_STATUSES_IGNORE);
      free(r);
      char what[96];
      snprintf(what, sizeof what, "MPI_Iallreduce of %zu float32 values (sum)", n);
      return sn_mpi_error(c, rc, what);
    }
    r->count++;
  }
  *req = r;
  return SN_OK;
}

/* Completes and frees req (NULL is a completed request). */
static sn_status mpi_wait(sn_comm *c, sn_request *req) {
  if (!req) return SN_OK;
  int rc = MPI_Waitall(req->count, req->reqs, MPI_STATUSES_IGNORE);
  free(req);
  return rc == MPI_SUCCESS ? SN_OK : sn_mpi_error(c, rc, "MPI_Wait (iallreduce)");
}

/* One MPI_Testall over the request's chunks: enters Open MPI's progress engine (which advances
 * every pending non-blocking collective, not only this one) and reports completion. Completed
 * MPI requests become MPI_REQUEST_NULL, so the later sn_comm_wait returns at once. */
static sn_status mpi_test(sn_comm *c, sn_request *req, int *done) {
  *done = 1;
  if (!req) return SN_OK;
  int flag = 0;
  int rc = MPI_Testall(req->count, req->reqs, &flag, MPI_STATUSES_IGNORE);
  if (rc != MPI_SUCCESS) return sn_mpi_error(c, rc, "MPI_Testall (iallreduce)");
  *done = flag != 0;
  return SN_OK;
}

static void mpi_destroy(sn_comm *c) {
  sn_comm_mpi *impl = c->impl;
  int finalized = 1;
  MPI_Finalized(&finalized);
  if (impl && !finalized && !impl->poisoned && impl->comm != MPI_COMM_NULL)
    MPI_Comm_free(&impl->comm);
  free(impl);
  free(c);
}

static const sn_comm_ops mpi_ops = {mpi_allreduce,      mpi_bcast, mpi_allgather, mpi_barrier,
                                    mpi_iallreduce_f32, mpi_wait,  mpi_test,      mpi_destroy};

/* Duplicates `from` and wraps the duplicate. Collective over `from`. */
static sn_status create_from(MPI_Comm from, const char *what, sn_comm **out) {
  int initialized = 0, finalized = 0;
  if (!out) return sn_error_set(SN_ERR_INVALID, "%s: NULL output pointer", what);
  *out = NULL;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    return sn_error_set(SN_ERR_COMM, "%s: MPI is %s", what,
                        finalized ? "already finalised" : "not initialised (call sn_mpi_init)");
  if (from == MPI_COMM_NULL)
    return sn_error_set(SN_ERR_INVALID, "%s: the communicator is MPI_COMM_NULL", what);

  MPI_Comm dup = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(from, &dup);
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    text[len] = '\0';
    return sn_error_set(SN_ERR_COMM, "%s: MPI_Comm_dup: %s", what, text);
  }
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);

  sn_comm *c = calloc(1, sizeof *c);
  sn_comm_mpi *impl = calloc(1, sizeof *impl);
  if (!c || !impl) {
    free(c);
    free(impl);
    MPI_Comm_free(&dup);
    return sn_error_set(SN_ERR_NOMEM, "%s: out of memory", what);
  }
  impl->comm = dup;
  c->ops = &mpi_ops;
  c->impl = impl;
  MPI_Comm_rank(dup, &c->rank);
  MPI_Comm_size(dup, &c->size);
  c->fortran_handle = (int)MPI_Comm_c2f(dup);

  /* Error messages carry the process's rank in the whole job. */
  int wrank = 0, wsize = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  sn_error_set_rank(wrank, wsize);
  *out = c;
  return SN_OK;
}

sn_status sn_comm_create_world(sn_comm **out) {
  return create_from(MPI_COMM_WORLD, "sn_comm_create_world", out);
}

sn_status sn_comm_create_mpi(int mpi_fortran_handle, sn_comm **out) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (out) *out = NULL;
    return sn_error_set(SN_ERR_COMM,
                        "sn_comm_create_mpi: MPI is not initialised (call sn_mpi_init)");
  }
  return create_from(MPI_Comm_f2c((MPI_Fint)mpi_fortran_handle), "sn_comm_create_mpi", out);
}
