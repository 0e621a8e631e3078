/* io_impl.h - private: shared pieces of the data plane (io/dataset.c, image.c, convert.c,
 * reader.c, writer.c). Includes hdf5.h, so only io/ and its tests include it.
 *
 * Thread safety. Debian's parallel HDF5 is built without --enable-threadsafe: two threads must
 * never be inside the library at once. Every HDF5 call of these files is made holding the io lock
 * (sn_io_lock, recursive). The reader's background thread takes it only while it pulls bytes out
 * of the file (decoding and preprocessing run unlocked); the writer takes it on the main thread.
 * Code outside these files that calls HDF5 while a reader is alive must take the lock too.
 */
#ifndef SN_IO_IMPL_H
#define SN_IO_IMPL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "io_limits.h"
#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- common (dataset.c) */

void sn_io_lock(void);
void sn_io_unlock(void);

/* Once per process: initialises HDF5 and switches its error-stack printing off. */
void sn_io_h5_init(void);
/* The most specific message of the current HDF5 error stack ("" if none), into buf. */
const char *sn_io_h5_detail(char *buf, size_t n);

/* File access list for files shared by comm's ranks: MPI-IO over its communicator when it has
 * one (Fortran handle >= 0), else the default driver. The caller closes it. */
hid_t sn_io_fapl(sn_comm *comm);
/* Transfer list: collective MPI-IO when comm has a communicator, else default. Caller closes. */
hid_t sn_io_dxpl(sn_comm *comm);
/* 1 if comm is an MPI communicator (files are opened with MPI-IO). */
int sn_io_is_mpi(const sn_comm *comm);

/* Fixed-length string dataset (n,) of the given strings at name (NULL-terminated, null-padded,
 * width of the longest). Collective over comm (rank 0 writes the data). */
sn_status sn_io_write_strings(hid_t file, const char *name, const char *const *s, int64_t n,
                              sn_comm *comm, const char *path);
/* Reads a 1-D string dataset (fixed or variable length). The caller frees with
 * sn_io_free_strings. Not collective. */
sn_status sn_io_read_strings(hid_t file, const char *name, const char *path, char ***out,
                             int64_t *n);
void sn_io_free_strings(char **s, int64_t n);
/* Creates a dataset of `rank` dims chunked by chunk0 rows (whole rows: the other dims
 * complete; chunk0 is clipped to dims[0]), fill time never, gzip level `gzip` (0: none);
 * intermediate groups are created. Collective when the file is MPI. Returns -1 on failure. */
hid_t sn_io_create_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                           hsize_t chunk0, int gzip);
/* Writes rows [begin, begin + count) of a dataset from buf (count rows of the dataset's row
 * shape, memory type mtype). count may be 0 (an empty selection, so that a collective transfer
 * still sees this rank). Collective with an MPI-IO collective dxpl. */
herr_t sn_io_write_rows(hid_t d, hid_t mtype, int64_t begin, int64_t count, const void *buf,
                        hid_t dxpl);
/* Writes a scalar int64 attribute on obj (replacing it). Collective when the file is MPI. */
sn_status sn_io_write_int_attr(hid_t obj, const char *name, int64_t v, const char *path);
/* Reads a scalar integer attribute; missing -> SN_ERR_NOTFOUND (no message set). */
sn_status sn_io_read_int_attr(hid_t obj, const char *name, int64_t *v);

/* ---------------------------------------------------------------- datasets (dataset.c) */

/* A dataset is used by one thread at a time (the reader's thread while a reader is alive). */
struct sn_dataset {
  char *path;
  hid_t file, images, encoded; /* images: /images or -1; encoded: /encoded or -1 */
  sn_dataset_info info;
  int stored_h, stored_w;  /* /images dims (raw) */
  int elem;                /* bytes per stored value: 1 or 4 */
  size_t stored_row_bytes; /* one stored raw row */
  size_t row_bytes;        /* one output row: info.h * info.w * info.c * elem */
  int32_t *labels;         /* (n) or NULL */
  int64_t *offsets;        /* (n + 1) or NULL: encoded byte ranges */
  int64_t encoded_bytes;
  char **classes; /* (n_classes) or NULL */
  int64_t n_classes;
  sn_resize_mode mode; /* decode options */
  int shorter;
  /* scratch of read_rows */
  struct sn_row_ref *refs; /* (cap_rows) */
  int64_t *uniq;           /* (cap_rows) unique sorted rows */
  int64_t *upos;           /* (cap_rows) byte position of each unique row in raw */
  int cap_rows;
  uint8_t *raw; /* fetched bytes in sorted unique-row order */
  size_t raw_cap;
  sn_image_scratch img;
};

/* Row reference: where the i-th requested row goes and which unique row it is. */
struct sn_row_ref {
  int64_t row;
  int dest;
  int u;
};

/* The two halves of sn_dataset_read_rows: fetch takes the io lock and pulls the bytes of the
 * rows from the file into ds->raw (or, for rows in ascending order of a raw dataset, straight
 * into images, returning *direct = 1); place decodes / scatters them into images without
 * touching HDF5. */
sn_status sn_dataset_fetch(sn_dataset *ds, const int64_t *rows, int count, void *images,
                           int *direct);
sn_status sn_dataset_place(sn_dataset *ds, int count, int direct, void *images, int32_t *labels);

#ifdef __cplusplus
}
#endif
#endif /* SN_IO_IMPL_H */
