/* h5util.c - the HDF5 layer of io/: the io lock and HDF5's set-up, file access and transfer
 * lists, checked opening and atomic creation, shape-checked float reads, row-block writes,
 * string datasets and attributes in both h5py encodings. */
#define _POSIX_C_SOURCE 200809L /* strdup, strndup, strnlen, O_DIRECTORY, fsync */
#include "h5util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "io_limits.h"

/* Upper bounds for string attributes, checked before allocating: the number of strings (Keras
 * files hold a few hundred) and the bytes of one fixed-length read. */
#define SN_H5_MAX_STRS (1 << 20)
#define SN_H5_MAX_STR_BYTES ((size_t)1 << 28)

/* ---------------------------------------------------------------- set-up, lock, messages */

static pthread_mutex_t h5_mutex;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;

/* The one place HDF5's automatic error-stack printing is switched off: io/ reports failures as
 * values with their own messages. (HDF5 is built without thread safety, so the setting is
 * process-wide.) */
static void h5_init_once(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&h5_mutex, &a);
  pthread_mutexattr_destroy(&a);
  H5open();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void sn_h5_init(void) { pthread_once(&h5_once, h5_init_once); }

void sn_h5_lock(void) {
  sn_h5_init();
  pthread_mutex_lock(&h5_mutex);
}

void sn_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

typedef struct h5_detail {
  char *buf;
  size_t n;
} h5_detail;

static herr_t detail_cb(unsigned i, const H5E_error2_t *e, void *data) {
  h5_detail *d = data;
  if (i == 0 && e->desc) snprintf(d->buf, d->n, "%s", e->desc);
  return 0;
}

const char *sn_h5_detail(char *buf, size_t n) {
  if (n == 0) return buf;
  buf[0] = '\0';
  h5_detail d = {buf, n};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, detail_cb, &d);
  return buf;
}

/* ": <HDF5's innermost message>", or "" when the error stack is empty, into buf (the end of a
 * message). Call it right after the failing HDF5 call, before any other. */
static const char *why(char *buf, size_t n) {
  char d[200];
  sn_h5_detail(d, sizeof d);
  snprintf(buf, n, "%s%s", d[0] ? ": " : "", d);
  return buf;
}

/* The path of an open object for messages ("/" for a file), or "?" when it has none. */
static const char *obj_name(hid_t obj, char *buf, size_t n) {
  if (H5Iget_name(obj, buf, n) <= 0) snprintf(buf, n, "?");
  return buf;
}

/* "/" unless name is absolute: messages spell datasets "/name" whichever form the caller used. */
static const char *root_prefix(const char *name) { return name[0] == '/' ? "" : "/"; }

/* ---------------------------------------------------------------- files */

static int is_mpi(const sn_comm *comm) { return comm && sn_comm_fortran_handle(comm) >= 0; }

hid_t sn_h5_fapl(sn_comm *comm, const char *file) {
  sn_h5_init();
  char det[256] = "";
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) {
    why(det, sizeof det);
    sn_error_set(SN_ERR_IO, "file %s: cannot create a file access list%s", file, det);
    return fapl;
  }
  if (is_mpi(comm)) {
    /* mpi.h comes with Debian's parallel hdf5.h; io/ does not include it itself. */
    MPI_Comm c = MPI_Comm_f2c((MPI_Fint)sn_comm_fortran_handle(comm));
    if (H5Pset_fapl_mpio(fapl, c, MPI_INFO_NULL) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0) {
      why(det, sizeof det);
      H5Pclose(fapl);
      sn_error_set(SN_ERR_IO, "file %s: cannot set up MPI-IO access%s", file, det);
      return -1;
    }
  }
  /* Large objects (chunks of images or features) start on 1 MiB boundaries (Lustre stripes). */
  H5Pset_alignment(fapl, (hsize_t)1 << 20, (hsize_t)1 << 20);
  return fapl;
}

hid_t sn_h5_dxpl(sn_comm *comm, const char *file) {
  sn_h5_init();
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (dxpl < 0) {
    char det[256];
    sn_error_set(SN_ERR_IO, "file %s: cannot create a transfer list%s", file, why(det, sizeof det));
    return dxpl;
  }
  if (is_mpi(comm)) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  return dxpl;
}

sn_status sn_h5_open_read(const char *path, hid_t *out) {
  *out = H5I_INVALID_HID;
  sn_h5_init();
  struct stat st;
  if (stat(path, &st) != 0)
    return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return sn_error_set(SN_ERR_IO, "file %s: cannot open: is a directory", path);
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  fclose(f);
#if H5_VERSION_GE(1, 12, 0)
  htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
  htri_t is = H5Fis_hdf5(path);
#endif
  if (is <= 0) return sn_error_set(SN_ERR_FORMAT, "file %s: not an HDF5 file", path);
  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (fid < 0) {
    /* HDF5's message tells a damaged file from one it cannot lock (docs/troubleshooting.md). */
    char det[256];
    return sn_error_set(SN_ERR_FORMAT, "file %s: not an HDF5 file (truncated or corrupt)%s", path,
                        why(det, sizeof det));
  }
  *out = fid;
  return SN_OK;
}

/* Removes PATH.tmp.<pid> files left by processes of this host that no longer exist (a job
 * killed while writing): they are never valid files, and a job writing the same path every
 * epoch would otherwise collect one per kill. A live pid's file is left alone. */
static void remove_stale_tmp(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  const char *base = slash ? slash + 1 : path;
  int w = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + (slash == path)), path)
                : snprintf(dir, sizeof dir, ".");
  if (w < 0 || (size_t)w >= sizeof dir) return;
  const size_t blen = strlen(base);
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    const char *n = e->d_name;
    if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0) continue;
    const char *digits = n + blen + 5;
    char *end = NULL;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    char full[8192];
    if (snprintf(full, sizeof full, "%s/%s", dir, n) < (int)sizeof full) unlink(full);
  }
  closedir(d);
}

sn_status sn_h5_create_atomic(const char *path, hid_t *file, char *tmp, size_t tmp_size) {
  *file = H5I_INVALID_HID;
  sn_h5_init();
  remove_stale_tmp(path);
  int w = snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
  if (w < 0 || (size_t)w >= tmp_size)
    return sn_error_set(SN_ERR_INVALID, "file %s: path too long", path);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) {
    int err = errno;
    char det[256];
    why(det, sizeof det);
    unlink(tmp);
    if (err)
      return sn_error_set(SN_ERR_IO, "file %s: cannot create %s: %s", path, tmp, strerror(err));
    return sn_error_set(SN_ERR_IO, "file %s: cannot create %s%s", path, tmp, det);
  }
  *file = f;
  return SN_OK;
}

/* fsync of a path opened read-only; failures are ignored for directories. */
static int sn_fsync_path(const char *p, int flags) {
  int fd = open(p, flags);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

sn_status sn_h5_finish_atomic(hid_t file, const char *tmp, const char *path, int ok) {
  sn_status st = SN_OK;
  if (file >= 0 && H5Fclose(file) < 0 && ok)
    st = sn_error_set(SN_ERR_IO, "file %s: closing %s failed", path, tmp);
  if (ok && !st && sn_fsync_path(tmp, O_RDONLY) != 0)
    st = sn_error_set(SN_ERR_IO, "file %s: fsync of %s failed: %s", path, tmp, strerror(errno));
  if (ok && !st && rename(tmp, path) != 0)
    st = sn_error_set(SN_ERR_IO, "file %s: rename from %s failed: %s", path, tmp, strerror(errno));
  if (!ok || st) {
    unlink(tmp);
    return st;
  }
  /* Make the rename durable: fsync the containing directory (best effort). */
  const char *slash = strrchr(path, '/');
  if (slash) {
    size_t dl = (size_t)(slash - path);
    char *dir = malloc(dl + 2);
    if (dir) {
      if (dl == 0) dl = 1; /* "/file" */
      memcpy(dir, path, dl);
      dir[dl] = '\0';
      sn_fsync_path(dir, O_RDONLY | O_DIRECTORY);
      free(dir);
    }
  } else {
    sn_fsync_path(".", O_RDONLY | O_DIRECTORY);
  }
  return SN_OK;
}

/* ---------------------------------------------------------------- links and groups */

int sn_h5_exists(hid_t loc, const char *path) {
  size_t len = strlen(path);
  if (len == 0) return 0;
  char *buf = malloc(len + 1);
  if (!buf) return 0;
  memcpy(buf, path, len + 1);
  int ok = 1;
  /* Check each prefix ending before a '/', then the whole path (skip a leading '/'). */
  for (size_t i = 1; i <= len && ok; ++i) {
    if (i == len || buf[i] == '/') {
      char saved = buf[i];
      buf[i] = '\0';
      if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) ok = 0;
      buf[i] = saved;
    }
  }
  free(buf);
  return ok;
}

static int sn_h5_is_type(hid_t loc, const char *path, H5I_type_t want) {
  if (!sn_h5_exists(loc, path)) return 0;
  hid_t o = H5Oopen(loc, path, H5P_DEFAULT);
  if (o < 0) return 0;
  int r = H5Iget_type(o) == want;
  H5Oclose(o);
  return r;
}

int sn_h5_is_dataset(hid_t loc, const char *path) { return sn_h5_is_type(loc, path, H5I_DATASET); }
int sn_h5_is_group(hid_t loc, const char *path) { return sn_h5_is_type(loc, path, H5I_GROUP); }

typedef struct sn_h5_names {
  char **v;
  int n, cap;
  int failed;
} sn_h5_names;

static herr_t sn_h5_list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g;
  (void)info;
  sn_h5_names *l = data;
  if (l->n >= SN_H5_MAX_STRS) return -1;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n] = strdup(name);
  if (!l->v[l->n]) return -1;
  l->n++;
  return 0;
}

static int sn_h5_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

sn_status sn_h5_list(hid_t loc, const char *group, const char *file, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  int root = !strcmp(group, "/") || !strcmp(group, ".");
  if (!root && !sn_h5_is_group(loc, group))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: group %s: not found", file, group);
  hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
  if (g < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: group %s: cannot open", file, group);
  sn_h5_names l = {0};
  hsize_t idx = 0;
  herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, sn_h5_list_cb, &l);
  H5Gclose(g);
  if (e < 0) {
    sn_h5_free_strs(l.v, l.n);
    return sn_error_set(SN_ERR_FORMAT, "file %s: group %s: cannot list members", file, group);
  }
  if (!l.v) l.v = calloc(1, sizeof *l.v);
  if (!l.v) return sn_error_set(SN_ERR_NOMEM, "file %s: group %s: out of memory", file, group);
  /* Byte order whatever the group's storage (callers binary-search the result). */
  qsort(l.v, (size_t)l.n, sizeof *l.v, sn_h5_cmp_str);
  *names = l.v;
  *n = l.n;
  return SN_OK;
}

/* ---------------------------------------------------------------- datasets */

char *sn_h5_shape_str(int ndim, const int64_t *dims, char *buf, size_t size) {
  size_t pos = 0;
  if (size == 0) return buf;
  buf[0] = '\0';
  pos += (size_t)snprintf(buf + pos, size - pos, "(");
  for (int i = 0; i < ndim && pos < size; ++i)
    pos += (size_t)snprintf(buf + pos, size - pos, i ? ",%lld" : "%lld", (long long)dims[i]);
  if (pos < size) snprintf(buf + pos, size - pos, ")");
  return buf;
}

/* Shape of an open dataspace, validated. */
static sn_status sn_h5_space_shape(hid_t space, const char *file, const char *path, int *ndim,
                                   int64_t dims[SN_H5_MAX_RANK]) {
  if (H5Sget_simple_extent_type(space) == H5S_NULL)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: has no data (null dataspace)", file,
                        path);
  int r = H5Sget_simple_extent_ndims(space);
  if (r < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: unreadable dataspace", file, path);
  if (r > SN_H5_MAX_RANK)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: rank %d exceeds %d", file, path, r,
                        SN_H5_MAX_RANK);
  hsize_t hd[SN_H5_MAX_RANK] = {0};
  if (r > 0 && H5Sget_simple_extent_dims(space, hd, NULL) < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: unreadable dataspace", file, path);
  int64_t prod = 1;
  for (int i = 0; i < r; ++i) {
    if (hd[i] == 0 || hd[i] > (hsize_t)SN_H5_MAX_ELEMS)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: dimension %d is %llu", file, path, i,
                          (unsigned long long)hd[i]);
    if (prod > SN_H5_MAX_ELEMS / (int64_t)hd[i])
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: too many elements", file, path);
    prod *= (int64_t)hd[i];
    dims[i] = (int64_t)hd[i];
  }
  for (int i = r; i < SN_H5_MAX_RANK; ++i)
    dims[i] = 0;
  *ndim = r;
  return SN_OK;
}

sn_status sn_h5_dataset_shape(hid_t loc, const char *path, const char *file, int *ndim,
                              int64_t dims[SN_H5_MAX_RANK]) {
  if (!sn_h5_is_dataset(loc, path))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset %s: not found", file, path);
  hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
  if (d < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: cannot open", file, path);
  hid_t s = H5Dget_space(d);
  sn_status st = s < 0
                     ? sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: no dataspace", file, path)
                     : sn_h5_space_shape(s, file, path, ndim, dims);
  if (s >= 0) H5Sclose(s);
  H5Dclose(d);
  return st;
}

sn_status sn_h5_read_f32(hid_t loc, const char *path, const char *file, int ndim,
                         const int64_t *dims, float *buf) {
  int fnd;
  int64_t fd[SN_H5_MAX_RANK];
  sn_status st = sn_h5_dataset_shape(loc, path, file, &fnd, fd);
  if (st) return st;
  int same = fnd == ndim;
  for (int i = 0; same && i < ndim; ++i)
    same = fd[i] == dims[i];
  if (!same) {
    char a[96], b[96];
    return sn_error_set(SN_ERR_SHAPE, "file %s: dataset %s: shape %s does not match expected %s",
                        file, path, sn_h5_shape_str(fnd, fd, a, sizeof a),
                        sn_h5_shape_str(ndim, dims, b, sizeof b));
  }
  hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
  if (d < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: cannot open", file, path);
  hid_t t = H5Dget_type(d);
  H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  size_t tsize = t >= 0 ? H5Tget_size(t) : 0;
  if (t >= 0) H5Tclose(t);
  if (cls != H5T_FLOAT || (tsize != 4 && tsize != 8)) {
    H5Dclose(d);
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset %s: expected float32 or float64 data, found %s of %zu "
                        "bytes",
                        file, path,
                        cls == H5T_INTEGER  ? "integer"
                        : cls == H5T_STRING ? "string"
                        : cls == H5T_FLOAT  ? "float"
                                            : "other type",
                        tsize);
  }
  herr_t e = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  char det[256] = "";
  if (e < 0) why(det, sizeof det);
  H5Dclose(d);
  if (e < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: read failed (corrupt or truncated)%s",
                        file, path, det);
  return SN_OK;
}

sn_status sn_h5_write_f32(hid_t loc, const char *path, const char *file, int ndim,
                          const int64_t *dims, const float *data) {
  if (ndim < 0 || ndim > SN_H5_MAX_RANK)
    return sn_error_set(SN_ERR_INVALID, "file %s: dataset %s: rank %d", file, path, ndim);
  hsize_t hd[SN_H5_MAX_RANK];
  for (int i = 0; i < ndim; ++i)
    hd[i] = (hsize_t)dims[i];
  hid_t space = ndim ? H5Screate_simple(ndim, hd, NULL) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = (space >= 0 && lcpl >= 0)
                ? H5Dcreate2(loc, path, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                : H5I_INVALID_HID;
  herr_t e = d >= 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  char det[256] = "";
  if (e < 0) why(det, sizeof det);
  if (d >= 0) H5Dclose(d);
  if (lcpl >= 0) H5Pclose(lcpl);
  if (space >= 0) H5Sclose(space);
  if (e < 0) return sn_error_set(SN_ERR_IO, "file %s: dataset %s: write failed%s", file, path, det);
  return SN_OK;
}

sn_status sn_h5_create_dataset(hid_t loc, const char *name, hid_t type, int rank,
                               const hsize_t *dims, hsize_t chunk0, int gzip, const char *file,
                               hid_t *out) {
  return sn_h5_create_dataset_max(loc, name, type, rank, dims, dims[0], chunk0, gzip, file, out);
}

sn_status sn_h5_create_dataset_max(hid_t loc, const char *name, hid_t type, int rank,
                                   const hsize_t *dims, hsize_t max0, hsize_t chunk0, int gzip,
                                   const char *file, hid_t *out) {
  *out = H5I_INVALID_HID;
  if (rank < 1 || rank > SN_H5_MAX_RANK || max0 < dims[0])
    return sn_error_set(SN_ERR_INVALID, "file %s: dataset %s%s: rank %d (1 to %d)", file,
                        root_prefix(name), name, rank, SN_H5_MAX_RANK);
  hsize_t chunk[SN_H5_MAX_RANK], maxdims[SN_H5_MAX_RANK];
  for (int i = 0; i < rank; ++i)
    chunk[i] = maxdims[i] = dims[i];
  maxdims[0] = max0;
  chunk[0] = chunk0 < 1 ? 1 : chunk0 > max0 ? max0 : chunk0;
  if (chunk[0] < 1) chunk[0] = 1;
  hid_t space = H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Pset_chunk(dcpl, rank, chunk);
  /* Variable-length data needs its fill value (empty strings); fixed-size data is not filled. */
  if (H5Tdetect_class(type, H5T_VLEN) <= 0 && H5Tis_variable_str(type) <= 0)
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  /* Chunks are allocated at creation, as parallel HDF5 does: a file made by one process
   * (incremental allocation) and resumed by several would otherwise hold unallocated chunks that
   * parallel HDF5 1.10 cannot write (MPI_File_set_view: invalid datatype; with gzip, a hang). */
  if (gzip > 0) H5Pset_deflate(dcpl, (unsigned)(gzip > 9 ? 9 : gzip));
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  hid_t d = H5Dcreate2(loc, name, type, space, lcpl, dcpl, H5P_DEFAULT);
  char det[256] = "";
  if (d < 0) why(det, sizeof det);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  if (d < 0)
    return sn_error_set(SN_ERR_IO, "file %s: dataset %s%s: cannot create%s", file,
                        root_prefix(name), name, det);
  *out = d;
  return SN_OK;
}

sn_status sn_h5_write_rows(hid_t d, hid_t mtype, int64_t begin, int64_t count, const void *buf,
                           hid_t dxpl, const char *file) {
  static const uint8_t dummy[16];
  herr_t e = -1;
  hid_t fs = H5Dget_space(d), ms = H5I_INVALID_HID;
  const int rank = fs < 0 ? -1 : H5Sget_simple_extent_ndims(fs);
  if (rank >= 1 && rank <= 8) {
    hsize_t dims[8], start[8] = {0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    if (count > 0) {
      start[0] = (hsize_t)begin;
      dims[0] = (hsize_t)count;
      e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL);
      ms = H5Screate_simple(rank, dims, NULL);
    } else {
      e = H5Sselect_none(fs);
      dims[0] = 1;
      ms = H5Screate_simple(rank, dims, NULL);
      if (ms >= 0) H5Sselect_none(ms);
      buf = dummy;
    }
    e = e >= 0 && ms >= 0 ? H5Dwrite(d, mtype, ms, fs, dxpl, buf) : -1;
  }
  char det[256] = "";
  if (e < 0) why(det, sizeof det);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (e < 0) {
    char name[256];
    return sn_error_set(SN_ERR_IO, "file %s: dataset %s: cannot write rows [%lld, %lld)%s", file,
                        obj_name(d, name, sizeof name), (long long)begin,
                        (long long)(begin + count), det);
  }
  return SN_OK;
}

/* Reads the n (> 0) strings of an open attribute (is_attr) or dataset of file type t and
 * dataspace space into strs (n entries, zeroed): variable-length, or fixed-length with the null
 * or space padding removed (at most max_bytes of them). `what` names the object in messages. */
static sn_status read_strs(hid_t obj, int is_attr, hid_t t, hid_t space, size_t n, size_t max_bytes,
                           const char *file, const char *what, char **strs) {
  sn_status st = SN_OK;
  char det[256] = "";
  hid_t mt = H5I_INVALID_HID;
  if (H5Tis_variable_str(t) > 0) {
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    char **raw = calloc(n, sizeof *raw);
    if (!raw) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
    } else if ((is_attr ? H5Aread(obj, mt, raw)
                        : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw)) < 0) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: cannot read%s", file, what,
                        why(det, sizeof det));
      free(raw);
    } else {
      for (size_t i = 0; i < n && !st; ++i)
        if (!(strs[i] = strdup(raw[i] ? raw[i] : "")))
          st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
#if H5_VERSION_GE(1, 12, 0)
      H5Treclaim(mt, space, H5P_DEFAULT, raw);
#else
      H5Dvlen_reclaim(mt, space, H5P_DEFAULT, raw);
#endif
      free(raw);
    }
  } else {
    const size_t width = H5Tget_size(t);
    size_t bytes = 0;
    if (width == 0 || width > ((size_t)1 << 20) || !sn_io_mul(n, width, &bytes) ||
        bytes > max_bytes) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: bad string width %zu", file, what, width);
    } else {
      mt = H5Tcopy(t);
      const int spacepad = H5Tget_strpad(t) == H5T_STR_SPACEPAD;
      char *raw = malloc(bytes);
      if (!raw) {
        st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
      } else if ((is_attr ? H5Aread(obj, mt, raw)
                          : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw)) < 0) {
        st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: cannot read%s", file, what,
                          why(det, sizeof det));
      } else {
        for (size_t i = 0; i < n && !st; ++i) {
          const char *p = raw + i * width;
          size_t len = strnlen(p, width);
          while (spacepad && len > 0 && p[len - 1] == ' ')
            --len;
          if (!(strs[i] = strndup(p, len)))
            st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
        }
      }
      free(raw);
    }
  }
  if (mt >= 0) H5Tclose(mt);
  return st;
}

sn_status sn_h5_write_str_dataset(hid_t loc, const char *name, const char *const *s, int64_t n,
                                  sn_comm *comm, const char *file) {
  size_t width = 1;
  for (int64_t i = 0; i < n; ++i) {
    size_t l = strlen(s[i]);
    if (l + 1 > width) width = l + 1;
  }
  size_t bytes;
  if (n < 0 || !sn_io_mul((size_t)n, width, &bytes))
    return sn_error_set(SN_ERR_INVALID, "file %s: dataset %s%s: %lld strings", file,
                        root_prefix(name), name, (long long)n);
  char *buf = calloc(bytes ? bytes : 1, 1);
  if (!buf)
    return sn_error_set(SN_ERR_NOMEM, "file %s: dataset %s%s: %zu bytes of strings", file,
                        root_prefix(name), name, bytes);
  for (int64_t i = 0; i < n; ++i)
    memcpy(buf + (size_t)i * width, s[i], strlen(s[i]));
  const char *fail = NULL;
  char det[256] = "";
  hsize_t dims[1] = {(hsize_t)n};
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, width);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(loc, name, t, space, lcpl, dcpl, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (d < 0) {
    fail = "cannot create";
    why(det, sizeof det);
  }
  hid_t dxpl = sn_h5_dxpl(comm, file);
  if (d >= 0 && n > 0) {
    if (sn_comm_rank(comm) != 0) H5Sselect_none(space);
    if (H5Dwrite(d, t, space, space, dxpl, buf) < 0) {
      fail = "cannot write";
      why(det, sizeof det);
    }
  }
  if (d >= 0) H5Dclose(d);
  if (dxpl >= 0) H5Pclose(dxpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(t);
  free(buf);
  if (fail)
    return sn_error_set(SN_ERR_IO, "file %s: dataset %s%s: %s%s", file, root_prefix(name), name,
                        fail, det);
  return SN_OK;
}

sn_status sn_h5_read_str_dataset(hid_t loc, const char *name, const char *file, char ***out,
                                 int64_t *n_out) {
  *out = NULL;
  *n_out = 0;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s%s is not a dataset", file, root_prefix(name),
                        name);
  char what[512];
  snprintf(what, sizeof what, "dataset %s%s", root_prefix(name), name);
  hid_t ft = H5Dget_type(d), space = H5Dget_space(d);
  hsize_t dims[1] = {0};
  char **res = NULL;
  int64_t n = 0;
  sn_status st = SN_OK;
  if (H5Tget_class(ft) != H5T_STRING) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s does not hold strings", file, what);
    goto done;
  }
  if (H5Sget_simple_extent_ndims(space) != 1) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s has rank %d, expected 1", file, what,
                      H5Sget_simple_extent_ndims(space));
    goto done;
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  if (dims[0] > SN_IO_MAX_CLASSES * (hsize_t)64) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s has %llu strings (too many)", file, what,
                      (unsigned long long)dims[0]);
    goto done;
  }
  n = (int64_t)dims[0];
  res = calloc(n ? (size_t)n : 1, sizeof *res);
  if (!res) {
    st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: %lld strings", file, what, (long long)n);
    goto done;
  }
  if (n > 0) st = read_strs(d, 0, ft, space, (size_t)n, SIZE_MAX, file, what, res);
done:
  H5Tclose(ft);
  H5Sclose(space);
  H5Dclose(d);
  if (st != SN_OK) {
    sn_h5_free_strs(res, n);
    return st;
  }
  *out = res;
  *n_out = n;
  return SN_OK;
}

sn_status sn_h5_read_str_rows(hid_t d, int64_t begin, int64_t count, const char *file,
                              const char *what, char **strs) {
  if (count <= 0) return SN_OK;
  hid_t ft = H5Dget_type(d), fs = H5Dget_space(d);
  hsize_t start[1] = {(hsize_t)begin}, cnt[1] = {(hsize_t)count};
  hid_t ms = H5Screate_simple(1, cnt, NULL);
  sn_status st = SN_OK;
  char det[256] = "";
  if (H5Tget_class(ft) != H5T_STRING ||
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: cannot select rows [%lld, %lld)%s", file, what,
                      (long long)begin, (long long)(begin + count), why(det, sizeof det));
  } else if (H5Tis_variable_str(ft) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft));
    char **raw = calloc((size_t)count, sizeof *raw);
    if (!raw) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
    } else if (H5Dread(d, mt, ms, fs, H5P_DEFAULT, raw) < 0) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: cannot read%s", file, what,
                        why(det, sizeof det));
    } else {
      for (int64_t i = 0; i < count && !st; ++i)
        if (!(strs[i] = strdup(raw[i] ? raw[i] : "")))
          st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
#if H5_VERSION_GE(1, 12, 0)
      H5Treclaim(mt, ms, H5P_DEFAULT, raw);
#else
      H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, raw);
#endif
    }
    free(raw);
    H5Tclose(mt);
  } else {
    const size_t width = H5Tget_size(ft);
    const int spacepad = H5Tget_strpad(ft) == H5T_STR_SPACEPAD;
    size_t bytes = 0;
    char *raw = NULL;
    if (width == 0 || width > ((size_t)1 << 20) || !sn_io_mul((size_t)count, width, &bytes)) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: bad string width %zu", file, what, width);
    } else if (!(raw = malloc(bytes))) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
    } else if (H5Dread(d, ft, ms, fs, H5P_DEFAULT, raw) < 0) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: cannot read%s", file, what,
                        why(det, sizeof det));
    } else {
      for (int64_t i = 0; i < count && !st; ++i) {
        const char *p = raw + (size_t)i * width;
        size_t len = strnlen(p, width);
        while (spacepad && len > 0 && p[len - 1] == ' ')
          --len;
        if (!(strs[i] = strndup(p, len)))
          st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
      }
    }
    free(raw);
  }
  H5Sclose(ms);
  H5Sclose(fs);
  H5Tclose(ft);
  return st;
}

hid_t sn_h5_vlstr_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

sn_status sn_h5_write_vlstr_dataset(hid_t loc, const char *name, const char *const *s, int64_t n,
                                    const char *file) {
  hid_t t = sn_h5_vlstr_type(), d = H5I_INVALID_HID;
  hsize_t dims[1] = {(hsize_t)n};
  sn_status st = sn_h5_create_dataset_max(loc, name, t, 1, dims, H5S_UNLIMITED, 4096, 0, file, &d);
  if (st == SN_OK && n > 0) st = sn_h5_write_rows(d, t, 0, n, s, H5P_DEFAULT, file);
  if (d >= 0) H5Dclose(d);
  H5Tclose(t);
  return st;
}

/* ---------------------------------------------------------------- attributes */

int sn_h5_has_attr(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* Reads all elements of an open string attribute into newly allocated strings. */
static sn_status read_attr_strs(hid_t a, const char *name, const char *file, const char *where,
                                char ***out, int *n) {
  *out = NULL;
  *n = 0;
  char what[512];
  snprintf(what, sizeof what, "%s: attribute %s", where, name);
  hid_t t = H5Aget_type(a), s = H5Aget_space(a);
  sn_status st = SN_OK;
  char **strs = NULL;
  int count = 0;
  if (t < 0 || s < 0) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: unreadable", file, what);
    goto done;
  }
  hssize_t np = H5Sget_simple_extent_type(s) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(s);
  if (np < 0 || np > SN_H5_MAX_STRS) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: bad element count %lld", file, what,
                      (long long)np);
    goto done;
  }
  if (H5Tget_class(t) != H5T_STRING) {
    if (np == 0) goto done; /* Keras: empty float64 array for weightless layers */
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: not a string attribute", file, what);
    goto done;
  }
  count = (int)np;
  strs = calloc(count ? (size_t)count : 1, sizeof *strs);
  if (!strs) {
    st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: out of memory", file, what);
    goto done;
  }
  if (count > 0) st = read_strs(a, 1, t, s, (size_t)count, SN_H5_MAX_STR_BYTES, file, what, strs);
done:
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  if (st) {
    sn_h5_free_strs(strs, count);
    return st;
  }
  if (!strs) count = 0;
  *out = strs;
  *n = count;
  return SN_OK;
}

static sn_status read_attr_strs_named(hid_t obj, const char *name, const char *file,
                                      const char *where, char ***out, int *n) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: cannot open", file, where, name);
  sn_status st = read_attr_strs(a, name, file, where, out, n);
  H5Aclose(a);
  return st;
}

sn_status sn_h5_read_str_attr(hid_t obj, const char *name, const char *file, const char *where,
                              char **out) {
  *out = NULL;
  if (!sn_h5_has_attr(obj, name))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: %s: no attribute %s", file, where, name);
  char **strs;
  int n;
  sn_status st = read_attr_strs_named(obj, name, file, where, &strs, &n);
  if (st) return st;
  if (n != 1) {
    sn_h5_free_strs(strs, n);
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: expected one string, found %d",
                        file, where, name, n);
  }
  *out = strs[0];
  free(strs);
  return SN_OK;
}

sn_status sn_h5_read_str_array_attr(hid_t obj, const char *name, const char *file,
                                    const char *where, char ***out, int *n) {
  *out = NULL;
  *n = 0;
  if (sn_h5_has_attr(obj, name)) return read_attr_strs_named(obj, name, file, where, out, n);
  /* Split form: name0, name1, ... concatenated. */
  size_t nl = strlen(name);
  char *part = malloc(nl + 16);
  if (!part)
    return sn_error_set(SN_ERR_NOMEM, "file %s: %s: attribute %s: out of memory", file, where,
                        name);
  char **all = NULL;
  int total = 0;
  sn_status st = SN_OK;
  int k = 0;
  for (;; ++k) {
    snprintf(part, nl + 16, "%s%d", name, k);
    if (!sn_h5_has_attr(obj, part)) break;
    char **strs;
    int m;
    st = read_attr_strs_named(obj, part, file, where, &strs, &m);
    if (st) break;
    char **grown = realloc(all, ((size_t)total + (size_t)m + 1) * sizeof *all);
    if (!grown || total > SN_H5_MAX_STRS - m) {
      sn_h5_free_strs(strs, m);
      if (grown) all = grown;
      st = sn_error_set(SN_ERR_NOMEM, "file %s: %s: attribute %s: too many strings", file, where,
                        name);
      break;
    }
    all = grown;
    memcpy(all + total, strs, (size_t)m * sizeof *strs);
    total += m;
    free(strs);
  }
  free(part);
  if (!st && k == 0)
    st = sn_error_set(SN_ERR_NOTFOUND, "file %s: %s: no attribute %s", file, where, name);
  if (st) {
    sn_h5_free_strs(all, total);
    return st;
  }
  if (!all) all = calloc(1, sizeof *all);
  if (!all)
    return sn_error_set(SN_ERR_NOMEM, "file %s: %s: attribute %s: out of memory", file, where,
                        name);
  *out = all;
  *n = total;
  return SN_OK;
}

sn_status sn_h5_read_int_attr(hid_t obj, const char *name, const char *file, const char *where,
                              int64_t *out) {
  if (!sn_h5_has_attr(obj, name))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: %s: no attribute %s", file, where, name);
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: cannot open", file, where, name);
  hid_t t = H5Aget_type(a), s = H5Aget_space(a);
  sn_status st = SN_OK;
  if (t < 0 || s < 0 || H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1)
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: expected one integer", file, where,
                      name);
  else if (H5Aread(a, H5T_NATIVE_INT64, out) < 0)
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: read failed", file, where, name);
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  H5Aclose(a);
  return st;
}

/* Creates attribute name (deleting an existing one) and writes buf with memory type mt. */
static sn_status put_attr(hid_t obj, const char *name, hid_t ft, hid_t mt, hid_t space,
                          const void *buf, const char *file) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, ft, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, mt, buf) : -1;
  char det[256] = "";
  if (e < 0) why(det, sizeof det);
  if (a >= 0) H5Aclose(a);
  if (e < 0) {
    char on[256];
    return sn_error_set(SN_ERR_IO, "file %s: %s: attribute %s: write failed%s", file,
                        obj_name(obj, on, sizeof on), name, det);
  }
  return SN_OK;
}

sn_status sn_h5_write_str_attr(hid_t obj, const char *name, const char *value, const char *file) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate(H5S_SCALAR);
  sn_status st = put_attr(obj, name, t, t, s, &value, file);
  H5Sclose(s);
  H5Tclose(t);
  return st;
}

sn_status sn_h5_write_int_attr(hid_t obj, const char *name, int64_t value, const char *file) {
  hid_t s = H5Screate(H5S_SCALAR);
  sn_status st = put_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, s, &value, file);
  H5Sclose(s);
  return st;
}

sn_status sn_h5_write_f64_attr(hid_t obj, const char *name, const double *v, int n,
                               const char *file) {
  hsize_t dim = (hsize_t)(n > 0 ? n : 0);
  hid_t s = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
  sn_status st = put_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s, v, file);
  H5Sclose(s);
  return st;
}

sn_status sn_h5_read_f64_attr(hid_t obj, const char *name, const char *file, const char *where,
                              double *v, int n) {
  if (!sn_h5_has_attr(obj, name))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: %s: no attribute %s", file, where, name);
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: cannot open", file, where, name);
  hid_t t = H5Aget_type(a), s = H5Aget_space(a);
  sn_status st = SN_OK;
  if (t < 0 || s < 0 || H5Tget_class(t) != H5T_FLOAT || H5Sget_simple_extent_npoints(s) != n)
    st =
        sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: expected %d floating-point value%s",
                     file, where, name, n, n == 1 ? "" : "s");
  else if (H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0)
    st = sn_error_set(SN_ERR_FORMAT, "file %s: %s: attribute %s: read failed", file, where, name);
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  H5Aclose(a);
  return st;
}

sn_status sn_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values, int n,
                                     int fixed, const char *file) {
  hsize_t dim = (hsize_t)(n > 0 ? n : 0);
  hid_t s = H5Screate_simple(1, &dim, NULL);
  hid_t t = H5Tcopy(H5T_C_S1);
  sn_status st;
  if (fixed) {
    size_t width = 1;
    for (int i = 0; i < n; ++i)
      if (strlen(values[i]) > width) width = strlen(values[i]);
    H5Tset_size(t, width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    char *buf = calloc(n > 0 ? (size_t)n : 1, width);
    if (!buf) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: attribute %s: out of memory", file, name);
    } else {
      for (int i = 0; i < n; ++i)
        memcpy(buf + (size_t)i * width, values[i], strlen(values[i]));
      st = put_attr(obj, name, t, t, s, buf, file);
      free(buf);
    }
  } else {
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    st = put_attr(obj, name, t, t, s, values, file);
  }
  H5Tclose(t);
  H5Sclose(s);
  return st;
}

void sn_h5_free_strs(char **strs, int64_t n) {
  if (!strs) return;
  for (int64_t i = 0; i < n; ++i)
    free(strs[i]);
  free(strs);
}
