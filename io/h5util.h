/* h5util.h - private HDF5 helpers shared by io/ (weights, datasets).
 *
 * Only io/ (and its tests) include this header: it pulls in hdf5.h. Every helper returns
 * sn_status and sets a one-line message naming the file (and dataset or attribute); `file` is
 * the path used in messages only. HDF5's own error-stack printing is switched off by
 * sn_h5_quiet(), which every opening helper calls.
 *
 * Thread safety: the helpers do not lock. HDF5 is built without thread safety, so a caller that
 * may run while a dataset reader's thread is alive holds sn_io_lock() (io_impl.h) around its
 * HDF5 work, as io/weights.c does.
 */
#ifndef SN_H5UTIL_H
#define SN_H5UTIL_H

#include <hdf5.h>

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest dataset rank the helpers accept (weights and images need at most 4). */
#define SN_H5_MAX_RANK 4
/* Largest element count accepted from any file dimension product (2^40). */
#define SN_H5_MAX_ELEMS ((int64_t)1 << 40)

/* Silences HDF5's automatic error-stack printing (process-wide; idempotent). */
void sn_h5_quiet(void);

/* Opens path read-only with the default (serial) file access property list.
 * Missing or unreadable -> SN_ERR_IO "file X: cannot open: <reason>";
 * not HDF5, truncated or corrupt -> SN_ERR_FORMAT "file X: not an HDF5 file ...".
 * The caller closes *out with H5Fclose. */
sn_status sn_h5_open_read(const char *path, hid_t *out);

/* 1 if every component of the relative or absolute `path` under loc exists (link), else 0.
 * Never fails: a broken intermediate component counts as absent. */
int sn_h5_exists(hid_t loc, const char *path);
/* 1 if path under loc is a dataset / group, else 0. */
int sn_h5_is_dataset(hid_t loc, const char *path);
int sn_h5_is_group(hid_t loc, const char *path);

/* Names of the links in group `group` under loc, sorted by strcmp. Missing group ->
 * SN_ERR_NOTFOUND. The caller frees with sn_h5_free_strs(*names, *n). */
sn_status sn_h5_list(hid_t loc, const char *group, const char *file, char ***names, int *n);

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

/* Attributes. `obj` is an open file, group or dataset; `where` names it in messages. */

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
void sn_h5_free_strs(char **strs, int n);

/* Reads an integer attribute (any integer type, scalar or one element). */
sn_status sn_h5_read_int_attr(hid_t obj, const char *name, const char *file, const char *where,
                              int64_t *out);

/* Writes a scalar attribute (replacing an existing one): variable-length UTF-8 string / int64. */
sn_status sn_h5_write_str_attr(hid_t obj, const char *name, const char *value, const char *file);
sn_status sn_h5_write_int_attr(hid_t obj, const char *name, int64_t value, const char *file);
/* Writes a 1-D string-array attribute; fixed = 1 writes null-padded fixed-length strings
 * (the width of the longest), 0 variable-length. Used by tests to mimic both h5py writers. */
sn_status sn_h5_write_str_array_attr(hid_t obj, const char *name, const char *const *values, int n,
                                     int fixed, const char *file);

/* Atomic save: sn_h5_create_atomic creates PATH.tmp.<pid> (truncating) and returns its handle
 * and name (tmp of tmp_size bytes); it first removes PATH.tmp.<pid> files of processes of this
 * host that no longer exist (left by a kill during a save); sn_h5_finish_atomic closes the file and, if ok, flushes it
 * to disk and renames it over path, else removes it. finish always closes and cleans up; it
 * returns the first failure (or SN_OK). */
sn_status sn_h5_create_atomic(const char *path, hid_t *file, char *tmp, size_t tmp_size);
sn_status sn_h5_finish_atomic(hid_t file, const char *tmp, const char *path, int ok);

#ifdef __cplusplus
}
#endif
#endif /* SN_H5UTIL_H */
