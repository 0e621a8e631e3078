/* h5util.h - private: the HDF5 layer of io/ (datasets, converters, outputs, weights,
 * checkpoints), one family with the prefix sn_h5_.
 *
 * Only io/ (and its tests) include this header: it pulls in hdf5.h. Every function that can fail
 * returns sn_status and sets a one-line message through sn_error_set naming the file and the
 * dataset, group or attribute (sn_error_set adds the rank); the two property-list constructors
 * return the list, or -1 with the message set. `file` is the path used in messages only. HDF5's
 * own error-stack printing is switched off in one place, sn_h5_init(), which the lock and the
 * opening functions call; where it helps, HDF5's innermost message ends ours.
 *
 * Thread safety. Debian's parallel HDF5 is built without --enable-threadsafe: two threads must
 * never be inside the library at once. Every HDF5 call of io/ is made holding the io lock
 * (sn_h5_lock, recursive); these functions do not lock themselves. The dataset reader's background
 * thread takes it only while it pulls bytes out of the file (decoding and preprocessing run
 * unlocked); the writer, the converters and the weights loader take it on the main thread. Code
 * that calls HDF5 while a reader is alive must take the lock too.
 */
#ifndef SN_H5UTIL_H
#define SN_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest dataset rank these functions accept (weights and images need at most 4). */
#define SN_H5_MAX_RANK 4
/* Largest element count accepted from any file dimension product (2^40). */
#define SN_H5_MAX_ELEMS ((int64_t)1 << 40)

/* ---------------------------------------------------------------- set-up, lock, messages */

/* Once per process (thread-safe, idempotent): creates the io lock, initialises HDF5 and switches
 * its automatic error-stack printing off. */
void sn_h5_init(void);
/* The io lock (recursive; calls sn_h5_init first). */
void sn_h5_lock(void);
void sn_h5_unlock(void);
/* The most specific message of the current HDF5 error stack ("" if none), into buf. Any HDF5
 * call clears the stack: read it right after the failing call. */
const char *sn_h5_detail(char *buf, size_t n);

/* ---------------------------------------------------------------- files */

/* File access list for a file shared by comm's ranks: MPI-IO over its communicator when it has
 * one (Fortran handle >= 0), else the default driver; large objects aligned to 1 MiB. Returns
 * the list (the caller closes it) or -1 with a message naming file. */
hid_t sn_h5_fapl(sn_comm *comm, const char *file);
/* Transfer list: collective MPI-IO when comm has a communicator, else default. Returns the list
 * (the caller closes it) or -1 with a message naming file. */
hid_t sn_h5_dxpl(sn_comm *comm, const char *file);

/* Opens path read-only with the default (serial) file access property list.
 * Missing or unreadable -> SN_ERR_IO "file X: cannot open: <reason>";
 * not HDF5, truncated or corrupt -> SN_ERR_FORMAT "file X: not an HDF5 file ...".
 * The caller closes *out with H5Fclose. */
sn_status sn_h5_open_read(const char *path, hid_t *out);

/* Atomic save: sn_h5_create_atomic creates PATH.tmp.<pid> (truncating) and returns its handle
 * and name (tmp of tmp_size bytes); it first removes PATH.tmp.<pid> files of processes of this
 * host that no longer exist (left by a kill during a save); sn_h5_finish_atomic closes the file
 * and, if ok, flushes it to disk and renames it over path, else removes it. finish always closes
 * and cleans up; it returns the first failure (or SN_OK). */
sn_status sn_h5_create_atomic(const char *path, hid_t *file, char *tmp, size_t tmp_size);
sn_status sn_h5_finish_atomic(hid_t file, const char *tmp, const char *path, int ok);

/* ---------------------------------------------------------------- links and groups */

/* 1 if every component of the relative or absolute `path` under loc exists (link), else 0.
 * Never fails: a broken intermediate component counts as absent. */
int sn_h5_exists(hid_t loc, const char *path);
/* 1 if path under loc is a dataset / group, else 0. */
int sn_h5_is_dataset(hid_t loc, const char *path);
int sn_h5_is_group(hid_t loc, const char *path);

/* Names of the links in group `group` under loc, sorted by strcmp. Missing group ->
 * SN_ERR_NOTFOUND. The caller frees with sn_h5_free_strs(*names, *n). */
sn_status sn_h5_list(hid_t loc, const char *group, const char *file, char ***names, int *n);

/* ---------------------------------------------------------------- datasets */

/* Shape of the dataset at path under loc: rank (0 for a scalar) and dims. Rejects rank >
 * SN_H5_MAX_RANK, zero-sized or negative dims and element products over SN_H5_MAX_ELEMS
 * (SN_ERR_FORMAT); a missing dataset is SN_ERR_NOTFOUND. */
sn_status sn_h5_dataset_shape(hid_t loc, const char *path, const char *file, int *ndim,
                              int64_t dims[SN_H5_MAX_RANK]);

/* Formats a shape as "(a,b,c)" into buf (always terminated). Returns buf. */
char *sn_h5_shape_str(int ndim, const int64_t *dims, char *buf, size_t size);

/* Reads a floating-point dataset (float32 or float64, converted) at path under loc into buf,
 * after checking that its shape is exactly (dims[0], ..., dims[ndim-1]). buf holds the product
 * of dims floats. Integer, string or compound data -> SN_ERR_FORMAT; shape mismatch ->
 * SN_ERR_SHAPE naming both shapes. */
sn_status sn_h5_read_f32(hid_t loc, const char *path, const char *file, int ndim,
                         const int64_t *dims, float *buf);

/* Writes a float32 dataset at path under loc (intermediate groups created). */
sn_status sn_h5_write_f32(hid_t loc, const char *path, const char *file, int ndim,
                          const int64_t *dims, const float *data);

/* Creates the dataset `name` under loc of `rank` (1..SN_H5_MAX_RANK) dims, chunked by chunk0
 * rows (whole rows: the other dims complete; chunk0 is clipped to dims[0]), fill time never,
 * gzip level `gzip` (0: none); intermediate groups are created. *out is the open dataset (the
 * caller closes it), or -1 on failure. Collective when the file is MPI. */
sn_status sn_h5_create_dataset(hid_t loc, const char *name, hid_t type, int rank,
                               const hsize_t *dims, hsize_t chunk0, int gzip, const char *file,
                               hid_t *out);
/* sn_h5_create_dataset with room to grow or shrink along the rows: the maximum row count is max0
 * (H5S_UNLIMITED: no limit), and H5Dset_extent may change the rows up to it. */
sn_status sn_h5_create_dataset_max(hid_t loc, const char *name, hid_t type, int rank,
                                   const hsize_t *dims, hsize_t max0, hsize_t chunk0, int gzip,
                                   const char *file, hid_t *out);
/* Writes rows [begin, begin + count) of a dataset from buf (count rows of the dataset's row
 * shape, memory type mtype). count may be 0 (an empty selection, so that a collective transfer
 * still sees this rank). Collective with an MPI-IO collective dxpl. */
sn_status sn_h5_write_rows(hid_t d, hid_t mtype, int64_t begin, int64_t count, const void *buf,
                           hid_t dxpl, const char *file);

/* Fixed-length UTF-8 string dataset (n,) of the strings s at name under loc (NULL-terminated,
 * null-padded, width of the longest; n may be 0; intermediate groups are created). Collective
 * over comm: every rank passes the same strings, rank 0 writes them. */
sn_status sn_h5_write_str_dataset(hid_t loc, const char *name, const char *const *s, int64_t n,
                                  sn_comm *comm, const char *file);
/* Reads a 1-D string dataset (fixed or variable length). The caller frees with
 * sn_h5_free_strs(*out, *n). Not collective. */
sn_status sn_h5_read_str_dataset(hid_t loc, const char *name, const char *file, char ***out,
                                 int64_t *n);

/* Reads rows [begin, begin + count) of an open 1-D string dataset (fixed or variable length)
 * into strs (count entries, each malloc'd; the caller frees them). `what` names the dataset in
 * messages. Not collective. */
sn_status sn_h5_read_str_rows(hid_t d, int64_t begin, int64_t count, const char *file,
                              const char *what, char **strs);
/* A variable-length UTF-8 string type (the caller closes it). */
hid_t sn_h5_vlstr_type(void);
/* Variable-length UTF-8 string dataset (n,) of the strings s at name under loc (chunked, room to
 * grow; n may be 0). Serial files only: parallel HDF5 1.10 cannot write variable-length data
 * through MPI-IO. */
sn_status sn_h5_write_vlstr_dataset(hid_t loc, const char *name, const char *const *s, int64_t n,
                                    const char *file);

/* ---------------------------------------------------------------- attributes */

/* `obj` is an open file, group or dataset; `where` names it in messages of the readers (the
 * writers name it themselves). */

/* 1 if obj has attribute name, else 0. */
int sn_h5_has_attr(hid_t obj, const char *name);

/* Reads a scalar (or one-element) string attribute, fixed-length or variable-length.
 * Missing -> SN_ERR_NOTFOUND. The caller frees *out. */
sn_status sn_h5_read_str_attr(hid_t obj, const char *name, const char *file, const char *where,
                              char **out);

/* Reads a string-array attribute (scalar or 1-D; fixed-length null-padded or variable-length).
 * An attribute of any numeric type with zero elements (Keras writes float64 shape (0) for
 * weightless layers) gives *n = 0. If `name` is absent but split parts name0, name1, ... exist
 * (Keras splits attributes over 64 KiB), they are concatenated. Missing -> SN_ERR_NOTFOUND.
 * The caller frees with sn_h5_free_strs(*out, *n). */
sn_status sn_h5_read_str_array_attr(hid_t obj, const char *name, const char *file,
                                    const char *where, char ***out, int *n);

/* Reads an integer attribute (any integer type, scalar or one element). Missing ->
 * SN_ERR_NOTFOUND; another type or shape -> SN_ERR_FORMAT. */
sn_status sn_h5_read_int_attr(hid_t obj, const char *name, const char *file, const char *where,
                              int64_t *out);

/* Writes a scalar attribute (replacing an existing one): variable-length UTF-8 string / int64.
 * Collective when the file is MPI. */
sn_status sn_h5_write_str_attr(hid_t obj, const char *name, const char *value, const char *file);
sn_status sn_h5_write_int_attr(hid_t obj, const char *name, int64_t value, const char *file);
/* Float64 attribute of n values (scalar when n is 1), replacing an existing one. Collective when
 * the file is MPI. */
sn_status sn_h5_write_f64_attr(hid_t obj, const char *name, const double *v, int n,
                               const char *file);
/* Reads a floating-point attribute of exactly n values (converted to double). Missing ->
 * SN_ERR_NOTFOUND; another type or count -> SN_ERR_FORMAT. */
sn_status sn_h5_read_f64_attr(hid_t obj, const char *name, const char *file, const char *where,
                              double *v, int n);
/* Writes a 1-D string-array attribute; fixed = 1 writes null-padded fixed-length strings
 * (the width of the longest), 0 variable-length. Used by tests to mimic both h5py writers. */
sn_status sn_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values, int n,
                                     int fixed, const char *file);

/* Frees n strings and their array, as returned by the string readers (NULL is fine). */
void sn_h5_free_strs(char **strs, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* SN_H5UTIL_H */
