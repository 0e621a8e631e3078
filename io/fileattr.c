/* fileattr.c - reading a root string attribute of any HDF5 file (for jobs that must compare a
 * file's provenance, e.g. an output being resumed, without including hdf5.h). */
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
