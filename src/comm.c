/* comm.c - the serial communicator and the dispatching sn_comm_* functions. */
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"

size_t sn_dtype_size(sn_dtype t) {
  switch (t) {
  case SN_F32:
    return 4;
  case SN_F64:
    return 8;
  case SN_I32:
    return 4;
  case SN_I64:
    return 8;
  case SN_U8:
    return 1;
  }
  return 0;
}

static sn_status serial_allreduce(sn_comm *c, void *buf, size_t n, sn_dtype t, sn_reduce_op op) {
  (void)c;
  (void)buf;
  (void)n;
  (void)t;
  (void)op;
  return SN_OK;
}
static sn_status serial_bcast(sn_comm *c, void *buf, size_t bytes, int root) {
  (void)c;
  (void)buf;
  (void)bytes;
  if (root != 0) return sn_error_set(SN_ERR_INVALID, "sn_comm_bcast: root %d out of range", root);
  return SN_OK;
}
static sn_status serial_allgather(sn_comm *c, const void *send, void *recv, size_t bytes) {
  (void)c;
  if (bytes) memmove(recv, send, bytes);
  return SN_OK;
}
static sn_status serial_barrier(sn_comm *c) {
  (void)c;
  return SN_OK;
}
static sn_status serial_iallreduce(sn_comm *c, float *buf, size_t n, sn_request **req) {
  (void)c;
  (void)buf;
  (void)n;
  *req = NULL;
  return SN_OK;
}
static sn_status serial_wait(sn_comm *c, sn_request *req) {
  (void)c;
  (void)req;
  return SN_OK;
}
static sn_status serial_test(sn_comm *c, sn_request *req, int *done) {
  (void)c;
  (void)req;
  *done = 1;
  return SN_OK;
}

static sn_comm serial_comm;
/* Groups of one: the serial communicator itself. */
static sn_status serial_split(sn_comm *c, int color, int key, sn_comm **out) {
  (void)c;
  (void)color;
  (void)key;
  *out = &serial_comm;
  return SN_OK;
}
static sn_status serial_set_allreduce(sn_comm *c, sn_allreduce_algo algo) {
  (void)c;
  (void)algo;
  return SN_OK;
}

static const sn_comm_ops serial_ops = {
    serial_allreduce, serial_bcast, serial_allgather, serial_barrier,       serial_iallreduce,
    serial_wait,      serial_test,  serial_split,     serial_set_allreduce, NULL};
static sn_comm serial_comm = {&serial_ops, 0, 1, -1, SN_ALLREDUCE_AUTO, NULL};

sn_comm *sn_comm_serial(void) { return &serial_comm; }

void sn_comm_destroy(sn_comm *c) {
  if (!c || c == &serial_comm) return;
  if (c->ops->destroy) c->ops->destroy(c);
}

int sn_comm_rank(const sn_comm *c) { return c ? c->rank : 0; }
int sn_comm_size(const sn_comm *c) { return c ? c->size : 1; }
int sn_comm_fortran_handle(const sn_comm *c) { return c ? c->fortran_handle : -1; }

sn_status sn_comm_allreduce(sn_comm *c, void *buf, size_t n, sn_dtype t, sn_reduce_op op) {
  if (!c) c = &serial_comm;
  return c->ops->allreduce(c, buf, n, t, op);
}
sn_status sn_comm_bcast(sn_comm *c, void *buf, size_t bytes, int root) {
  if (!c) c = &serial_comm;
  return c->ops->bcast(c, buf, bytes, root);
}
sn_status sn_comm_allgather(sn_comm *c, const void *send, void *recv, size_t bytes) {
  if (!c) c = &serial_comm;
  return c->ops->allgather(c, send, recv, bytes);
}
sn_status sn_comm_barrier(sn_comm *c) {
  if (!c) c = &serial_comm;
  return c->ops->barrier(c);
}
sn_status sn_comm_iallreduce_f32(sn_comm *c, float *buf, size_t n, sn_request **req) {
  if (!c) c = &serial_comm;
  return c->ops->iallreduce_f32(c, buf, n, req);
}
sn_status sn_comm_wait(sn_comm *c, sn_request *req) {
  if (!c) c = &serial_comm;
  return c->ops->wait(c, req);
}
sn_status sn_comm_test(sn_comm *c, sn_request *req, int *done) {
  int d = 1;
  if (!c) c = &serial_comm;
  sn_status s = c->ops->test(c, req, &d);
  if (done) *done = d;
  return s;
}

const char *sn_allreduce_name(sn_allreduce_algo a) {
  switch (a) {
  case SN_ALLREDUCE_AUTO:
    return "auto";
  case SN_ALLREDUCE_RING:
    return "ring";
  case SN_ALLREDUCE_MPI:
    return "mpi";
  }
  return "?";
}

sn_status sn_allreduce_parse(const char *name, sn_allreduce_algo *out) {
  for (int a = SN_ALLREDUCE_AUTO; a <= SN_ALLREDUCE_MPI; ++a)
    if (name && !strcmp(name, sn_allreduce_name((sn_allreduce_algo)a))) {
      *out = (sn_allreduce_algo)a;
      return SN_OK;
    }
  return sn_error_set(SN_ERR_INVALID, "unknown all-reduce algorithm '%s' (auto, ring, mpi)",
                      name ? name : "(null)");
}

sn_status sn_comm_set_allreduce(sn_comm *c, sn_allreduce_algo algo) {
  if (!c) c = &serial_comm;
  if (algo != SN_ALLREDUCE_AUTO && algo != SN_ALLREDUCE_RING && algo != SN_ALLREDUCE_MPI)
    return sn_error_set(SN_ERR_INVALID, "sn_comm_set_allreduce: unknown algorithm %d", (int)algo);
  return c->ops->set_allreduce(c, algo);
}

sn_allreduce_algo sn_comm_allreduce_algo(const sn_comm *c) {
  return c ? c->allreduce : SN_ALLREDUCE_AUTO;
}

sn_status sn_comm_split_groups(sn_comm *c, int group_size, sn_comm **out) {
  if (!c) c = &serial_comm;
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_comm_split_groups: out is NULL");
  *out = NULL;
  if (group_size < 1 || group_size > c->size || c->size % group_size != 0)
    return sn_error_set(SN_ERR_INVALID,
                        "groups of %d ranks do not divide the communicator's %d ranks (the group "
                        "size must be a divisor of the rank count)",
                        group_size, c->size);
  return c->ops->split(c, c->rank / group_size, c->rank % group_size, out);
}

/* Every rank contributes its status; the lowest failing rank's message is broadcast. */
sn_status sn_comm_agree(sn_comm *c, sn_status local) {
  if (!c) c = &serial_comm;
  if (c->size <= 1) return local;
  int32_t first_bad = local == SN_OK ? c->size : c->rank;
  sn_status s = sn_comm_allreduce(c, &first_bad, 1, SN_I32, SN_MIN);
  if (s != SN_OK) return s;
  if (first_bad == c->size) return SN_OK;
  char msg[512];
  memset(msg, 0, sizeof msg);
  if (c->rank == first_bad) strncpy(msg, sn_last_error(), sizeof msg - 1);
  int32_t code = (int32_t)local;
  s = sn_comm_bcast(c, &code, sizeof code, first_bad);
  if (s == SN_OK) s = sn_comm_bcast(c, msg, sizeof msg, first_bad);
  if (s != SN_OK) return s;
  if (c->rank == first_bad) return local;
  if (strncmp(msg, "rank ", 5) == 0) return sn_error_set((sn_status)code, "%s", msg);
  return sn_error_set((sn_status)code, "rank %d: %s", first_bad, msg);
}
