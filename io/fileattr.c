/* fileattr.c - reading a root string attribute, or a dataset's row count, of any HDF5 file (for
 * jobs that must compare a file's provenance, e.g. an output being resumed, or report what a
 * file holds, without including hdf5.h). */
#include <stdlib.h>
#include <string.h>

#include "h5util.h"

sn_status sn_file_attr_str(const char *path, const char *name, char *buf, size_t n) {
  if (n) buf[0] = 0;
  sn_h5_lock();
  hid_t f;
  sn_status s = sn_h5_open_read(path, &f);
  if (s == SN_OK) {
    char *v = NULL;
    s = sn_h5_read_str_attr(f, name, path, "/", &v);
    if (s == SN_OK && n) {
      strncpy(buf, v, n - 1);
      buf[n - 1] = 0;
    }
    free(v);
    H5Fclose(f);
  }
  sn_h5_unlock();
  return s;
}

sn_status sn_file_rows(const char *path, const char *dataset, int64_t *rows) {
  *rows = 0;
  sn_h5_lock();
  hid_t f;
  sn_status s = sn_h5_open_read(path, &f);
  if (s == SN_OK) {
    hid_t d = sn_h5_is_dataset(f, dataset) ? H5Dopen2(f, dataset, H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[8] = {0};
    const int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd >= 0 && nd <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (d < 0)
      s = sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset /%s not found", path, dataset);
    else if (nd < 0 || nd > 8)
      s = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s has no simple shape", path, dataset);
    else
      *rows = nd > 0 ? (int64_t)dims[0] : 1;
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
  }
  sn_h5_unlock();
  return s;
}
