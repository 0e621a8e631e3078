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

sn_request *sn_mpi_request_get(sn_comm *c, size_t reqs, size_t tmp) {
  sn_comm_mpi *m = c->impl;
  sn_request *r = m->npool > 0 ? m->pool[--m->npool] : calloc(1, sizeof *r);
  if (!r) return NULL;
  if ((size_t)r->cap < reqs) {
    MPI_Request *q = reqs <= (size_t)INT_MAX ? realloc(r->reqs, reqs * sizeof *q) : NULL;
    if (!q) goto fail;
    r->reqs = q;
    r->cap = (int)reqs;
  }
  if (r->tmp_cap < tmp) {
    float *t = realloc(r->tmp, tmp * sizeof *t);
    if (!t) goto fail;
    r->tmp = t;
    r->tmp_cap = tmp;
  }
  r->ring = r->count = r->tag = r->step = r->posted = 0;
  r->buf = NULL;
  r->n = 0;
  return r;
fail:
  sn_mpi_request_put(c, r);
  return NULL;
}

void sn_mpi_request_put(sn_comm *c, sn_request *r) {
  if (!r) return;
  sn_comm_mpi *m = c->impl;
  if (m->npool < SN_REQUEST_POOL) {
    m->pool[m->npool++] = r;
    return;
  }
  free(r->reqs);
  free(r->tmp);
  free(r);
}

/* SN_ALLREDUCE_MPI: one MPI_Iallreduce per piece of at most max_chunk values. */
static sn_status mpi_iallreduce_pieces(sn_comm *c, float *buf, size_t n, sn_request **req) {
  const size_t chunks = (n + max_chunk - 1) / max_chunk;
  sn_request *r = chunks <= (size_t)INT_MAX ? sn_mpi_request_get(c, chunks, 0) : NULL;
  if (!r)
    return sn_error_set(SN_ERR_NOMEM, "rank %d: sn_comm_iallreduce_f32: request of %zu chunks",
                        c->rank, chunks);
  for (size_t off = 0; off < n; off += max_chunk) {
    const size_t len = n - off < max_chunk ? n - off : max_chunk;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)len, MPI_FLOAT, MPI_SUM, comm_of(c),
                            &r->reqs[r->count]);
    if (rc != MPI_SUCCESS) {
      /* Chunks already started must still complete before their buffer is reused. */
      MPI_Waitall(r->count, r->reqs, MPI_STATUSES_IGNORE);
      sn_mpi_request_put(c, r);
      char what[96];
      snprintf(what, sizeof what, "MPI_Iallreduce of %zu float32 values (sum)", n);
      return sn_mpi_error(c, rc, what);
    }
    r->count++;
  }
  *req = r;
  return SN_OK;
}

/* *req is NULL when n == 0 or with one rank. */
static sn_status mpi_iallreduce_f32(sn_comm *c, float *buf, size_t n, sn_request **req) {
  if (!req)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_iallreduce_f32: NULL request", c->rank);
  *req = NULL;
  if (n == 0) return SN_OK;
  if (!buf)
    return sn_error_set(SN_ERR_INVALID, "rank %d: sn_comm_iallreduce_f32: NULL buffer", c->rank);
  sn_comm_mpi *m = c->impl;
  m->seq++; /* every rank counts every call, whatever the algorithm */
  if (c->size == 1) return SN_OK;
  if (c->allreduce == SN_ALLREDUCE_RING) return sn_ring_start(c, buf, n, req);
  return mpi_iallreduce_pieces(c, buf, n, req);
}

/* Completes and frees req (NULL is a completed request). */
static sn_status mpi_wait(sn_comm *c, sn_request *req) {
  if (!req) return SN_OK;
  sn_status s = SN_OK;
  if (req->ring) {
    int done = 0;
    s = sn_ring_progress(c, req, 1, &done);
  } else {
    int rc = MPI_Waitall(req->count, req->reqs, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) s = sn_mpi_error(c, rc, "MPI_Wait (iallreduce)");
  }
  sn_mpi_request_put(c, req);
  return s;
}

/* Enters the MPI library's progress engine once (which advances every pending non-blocking
 * operation, not only this one) and reports completion: one MPI_Testall over the request's
 * pieces, or the ring's next steps as far as their messages have arrived. Completed MPI
 * requests become MPI_REQUEST_NULL, so the later sn_comm_wait returns at once. */
static sn_status mpi_test(sn_comm *c, sn_request *req, int *done) {
  *done = 1;
  if (!req) return SN_OK;
  if (req->ring) return sn_ring_progress(c, req, 0, done);
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
  if (impl && !finalized && !impl->poisoned) {
    if (impl->comm != MPI_COMM_NULL) MPI_Comm_free(&impl->comm);
    if (impl->ring != MPI_COMM_NULL) MPI_Comm_free(&impl->ring);
  }
  for (int i = 0; impl && i < impl->npool; ++i) {
    free(impl->pool[i]->reqs);
    free(impl->pool[i]->tmp);
    free(impl->pool[i]);
  }
  free(impl);
  free(c);
}

/* 1 if the user chose Open MPI's algorithm for non-blocking all-reduces: the MCA parameter
 * coll_libnbc_iallreduce_algorithm is in the environment (mpirun --mca and -x put it there) or
 * has a value other than its default 0 (read through the MPI tool interface, which also sees
 * parameter files). Other MPI libraries have no such parameter: 0. */
static int user_chose_mpi_algorithm(void) {
  static const char name[] = "coll_libnbc_iallreduce_algorithm";
  if (getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm")) return 1;
  int provided = 0, chosen = 0, idx = -1, count = 0, value = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return 0;
  MPI_T_cvar_handle h;
  if (MPI_T_cvar_get_index(name, &idx) == MPI_SUCCESS) {
    char vname[128], desc[256];
    int nlen = (int)sizeof vname, dlen = (int)sizeof desc, verbosity, bind, scope;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    MPI_T_enum en;
    if (MPI_T_cvar_get_info(idx, vname, &nlen, &verbosity, &dt, &en, desc, &dlen, &bind, &scope) ==
            MPI_SUCCESS &&
        dt == MPI_INT && MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS) {
      if (count == 1 && MPI_T_cvar_read(h, &value) == MPI_SUCCESS) chosen = value != 0;
      MPI_T_cvar_handle_free(&h);
    }
  }
  MPI_T_finalize();
  return chosen;
}

/* Resolves AUTO on this rank; then every rank checks that all chose the same. */
static sn_status mpi_set_allreduce(sn_comm *c, sn_allreduce_algo algo) {
  if (algo == SN_ALLREDUCE_AUTO)
    algo = user_chose_mpi_algorithm() ? SN_ALLREDUCE_MPI : SN_ALLREDUCE_RING;
  int32_t range[2] = {(int32_t)algo, -(int32_t)algo}; /* min, -max */
  int rc = MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT32_T, MPI_MIN, comm_of(c));
  if (rc != MPI_SUCCESS) return sn_mpi_error(c, rc, "MPI_Allreduce (all-reduce algorithm)");
  if (range[0] != -range[1])
    return sn_error_set(SN_ERR_INVALID,
                        "rank %d: the ranks chose different gradient all-reduce algorithms (%s "
                        "and %s): set coll_libnbc_iallreduce_algorithm on every rank or none",
                        c->rank, sn_allreduce_name((sn_allreduce_algo)range[0]),
                        sn_allreduce_name((sn_allreduce_algo)-range[1]));
  c->allreduce = algo;
  return SN_OK;
}

static sn_status wrap(MPI_Comm owned, const char *what, sn_allreduce_algo algo, sn_comm **out);

static sn_status mpi_split(sn_comm *c, int color, int key, sn_comm **out) {
  MPI_Comm part = MPI_COMM_NULL;
  int rc = MPI_Comm_split(comm_of(c), color, key, &part);
  if (rc != MPI_SUCCESS) return sn_mpi_error(c, rc, "MPI_Comm_split");
  return wrap(part, "sn_comm_split_groups", c->allreduce, out);
}

static const sn_comm_ops mpi_ops = {mpi_allreduce,      mpi_bcast,  mpi_allgather, mpi_barrier,
                                    mpi_iallreduce_f32, mpi_wait,   mpi_test,      mpi_split,
                                    mpi_set_allreduce,  mpi_destroy};

static sn_status mpi_failed(const char *what, const char *call, int rc) {
  char text[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  text[len] = '\0';
  return sn_error_set(SN_ERR_COMM, "%s: %s: %s", what, call, text);
}

/* Wraps `owned` (a communicator of ours: freed on failure and by destroy), with a second
 * duplicate for the ring's messages and the all-reduce algorithm algo (AUTO is resolved).
 * Collective over owned. */
static sn_status wrap(MPI_Comm owned, const char *what, sn_allreduce_algo algo, sn_comm **out) {
  MPI_Comm_set_errhandler(owned, MPI_ERRORS_RETURN);
  MPI_Comm ring = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(owned, &ring);
  if (rc != MPI_SUCCESS) {
    MPI_Comm_free(&owned);
    return mpi_failed(what, "MPI_Comm_dup", rc);
  }
  MPI_Comm_set_errhandler(ring, MPI_ERRORS_RETURN);
  sn_comm *c = calloc(1, sizeof *c);
  sn_comm_mpi *impl = calloc(1, sizeof *impl);
  if (!c || !impl) {
    free(c);
    free(impl);
    MPI_Comm_free(&owned);
    MPI_Comm_free(&ring);
    return sn_error_set(SN_ERR_NOMEM, "%s: out of memory", what);
  }
  impl->comm = owned;
  impl->ring = ring;
  c->ops = &mpi_ops;
  c->impl = impl;
  MPI_Comm_rank(owned, &c->rank);
  MPI_Comm_size(owned, &c->size);
  c->fortran_handle = (int)MPI_Comm_c2f(owned);

  /* Error messages carry the process's rank in the whole job. */
  int wrank = 0, wsize = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  sn_error_set_rank(wrank, wsize);
  sn_status s = mpi_set_allreduce(c, algo);
  if (s != SN_OK) {
    mpi_destroy(c);
    return s;
  }
  *out = c;
  return SN_OK;
}

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
  if (rc != MPI_SUCCESS) return mpi_failed(what, "MPI_Comm_dup", rc);
  return wrap(dup, what, SN_ALLREDUCE_AUTO, out);
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
