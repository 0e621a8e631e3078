/* fuzz_h5build.h - writing small HDF5 files with the HDF5 API for the structure-aware
 * harnesses (fuzz_weights_h5.c, fuzz_dataset_h5.c): the fuzz input chooses names, shapes,
 * types, storage layouts, attributes and values, so that the loaders' validation logic is
 * explored with well-formed HDF5 (HDF5's own parser is the raw harnesses' subject).
 * Building is best effort: an HDF5 call that fails (a name already taken, ...) is skipped.
 */
#ifndef SN_FUZZ_H5BUILD_H
#define SN_FUZZ_H5BUILD_H

#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <math.h>

/* Element types a dataset or attribute may get. */
enum {
  FZT_F32,
  FZT_F64,
  FZT_I32,
  FZT_I64,
  FZT_U8,
  FZT_I8,
  FZT_U16,
  FZT_F16,
  FZT_STR,  /* fixed-length strings of 8 bytes */
  FZT_VSTR, /* variable-length strings */
  FZT_BE32, /* big-endian float32 */
  FZT_COUNT
};

static hid_t fzb_type(int t) {
  hid_t y = -1;
  switch (t) {
  case FZT_F32:
    y = H5Tcopy(H5T_IEEE_F32LE);
    break;
  case FZT_F64:
    y = H5Tcopy(H5T_IEEE_F64LE);
    break;
  case FZT_I32:
    y = H5Tcopy(H5T_STD_I32LE);
    break;
  case FZT_I64:
    y = H5Tcopy(H5T_STD_I64LE);
    break;
  case FZT_U8:
    y = H5Tcopy(H5T_STD_U8LE);
    break;
  case FZT_I8:
    y = H5Tcopy(H5T_STD_I8LE);
    break;
  case FZT_U16:
    y = H5Tcopy(H5T_STD_U16LE);
    break;
  case FZT_F16:
    y = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(y, 15, 10, 5, 0, 10);
    H5Tset_size(y, 2);
    H5Tset_ebias(y, 15);
    break;
  case FZT_STR:
    y = H5Tcopy(H5T_C_S1);
    H5Tset_size(y, 8);
    break;
  case FZT_VSTR:
    y = H5Tcopy(H5T_C_S1);
    H5Tset_size(y, H5T_VARIABLE);
    break;
  default:
    y = H5Tcopy(H5T_IEEE_F32BE);
    break;
  }
  return y;
}

/* A value exactly representable in float16, float32 and float64 (multiples of 1/64 in
 * [-4, 4)), from a tensor tag and an element index. */
static float fzb_value(uint32_t tag, size_t k) {
  uint32_t h = (uint32_t)(tag * 2654435761u) ^ (uint32_t)(k * 40503u + 0x9e37u);
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  h ^= h >> 15;
  return (float)((int)(h % 512u) - 256) / 64.0f;
}

/* Creates path (truncating). libver: 0 HDF5 1.8-compatible (h5py's default), 1 latest. */
static hid_t fzb_create(const char *path, int latest) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (latest) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) fz_fail("cannot create %s", path);
  return f;
}

/* Writes a dataset name (intermediate groups created) of type t and shape (rank, dims).
 * values: count floats (converted to t), or NULL for fzb_value(tag, k). Storage layout:
 * 0 contiguous, 1 chunked, 2 chunked + gzip, 3 compact (falls back to contiguous when large).
 * Datasets over 64 Ki elements are created chunked and left unwritten (fill value 0).
 * nan: 1 puts a NaN into element 0, 2 an infinity. */
static void fzb_dataset(hid_t loc, const char *name, int t, int rank, const hsize_t *dims,
                        const float *values, uint32_t tag, int layout, int nan) {
  if (!name || !*name) return;
  hsize_t count = 1;
  for (int i = 0; i < rank; ++i) {
    count *= dims[i];
    if (count > ((hsize_t)1 << 40)) break;
  }
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
  hid_t type = fzb_type(t);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const int big = count > ((hsize_t)1 << 16);
  if (rank > 0 && (layout == 1 || layout == 2 || big) && count > 0) {
    /* chunks of up to 32 per dimension: few enough to write (and read back) quickly */
    hsize_t chunk[8];
    for (int i = 0; i < rank; ++i)
      chunk[i] = dims[i] < 32 ? (dims[i] ? dims[i] : 1) : 32;
    H5Pset_chunk(dcpl, rank, chunk);
    if (layout == 2) H5Pset_deflate(dcpl, 1);
  } else if (layout == 3 && count * H5Tget_size(type) < 30000) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  }
  hid_t d = H5Dcreate2(loc, name, type, space, lcpl, dcpl, H5P_DEFAULT);
  if (d >= 0 && !big && count > 0) {
    if (t == FZT_STR || t == FZT_VSTR) {
      /* Strings: "s<k>" */
      char(*fixed)[8] = calloc((size_t)count, 8);
      char **vl = calloc((size_t)count, sizeof *vl);
      for (hsize_t k = 0; k < count; ++k) {
        snprintf(fixed[k], 8, "s%llu", (unsigned long long)k);
        vl[k] = fixed[k];
      }
      H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t == FZT_STR ? (void *)fixed : (void *)vl);
      free(fixed);
      free(vl);
    } else {
      double *v = malloc((size_t)count * sizeof *v);
      for (hsize_t k = 0; k < count; ++k)
        v[k] = values ? values[k] : fzb_value(tag, (size_t)k);
      if (nan == 1) v[0] = NAN;
      if (nan == 2) v[0] = INFINITY;
      if (t != FZT_F32 && t != FZT_F64 && t != FZT_F16 && t != FZT_BE32)
        for (hsize_t k = 0; k < count; ++k)
          v[k] = (double)(int64_t)(v[k] * 16); /* no NaN casts */
      H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      free(v);
    }
  }
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Tclose(type);
  H5Sclose(space);
}

/* Scalar string attribute (fixed-length null-padded or variable-length). */
static void fzb_attr_str(hid_t obj, const char *name, const char *value, int fixed) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t t = H5Tcopy(H5T_C_S1);
  size_t len = strlen(value);
  H5Tset_size(t, fixed ? (len ? len : 1) : H5T_VARIABLE);
  if (fixed) H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (fixed) {
      char *buf = calloc(len ? len : 1, 1);
      memcpy(buf, value, len);
      H5Awrite(a, t, buf);
      free(buf);
    } else {
      H5Awrite(a, t, &value);
    }
    H5Aclose(a);
  }
  H5Sclose(space);
  H5Tclose(t);
}

/* 1-D string-array attribute of n values (n may be 0). */
static void fzb_attr_strs(hid_t obj, const char *name, const char *const *values, int n,
                          int fixed) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  size_t width = 1;
  for (int i = 0; i < n; ++i)
    if (strlen(values[i]) > width) width = strlen(values[i]);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, fixed ? width : H5T_VARIABLE);
  if (fixed) H5Tset_strpad(t, H5T_STR_NULLPAD);
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0 && n > 0) {
    if (fixed) {
      char *buf = calloc((size_t)n, width);
      for (int i = 0; i < n; ++i)
        memcpy(buf + (size_t)i * width, values[i], strlen(values[i]));
      H5Awrite(a, t, buf);
      free(buf);
    } else {
      H5Awrite(a, t, values);
    }
  }
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(t);
}

/* Integer attribute of element type t (an integer FZT_*), n values (n == 0: scalar). */
static void fzb_attr_int(hid_t obj, const char *name, int t, int64_t v, int n) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  hid_t type = fzb_type(t);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    int64_t buf[16];
    for (int i = 0; i < 16; ++i)
      buf[i] = v;
    if (n <= 16 && t != FZT_STR && t != FZT_VSTR) H5Awrite(a, H5T_NATIVE_INT64, buf);
    H5Aclose(a);
  }
  H5Tclose(type);
  H5Sclose(space);
}

/* float64 attribute of shape (0,): what Keras writes as weight_names of weightless layers. */
static void fzb_attr_empty_f64(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hsize_t dims[1] = {0};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
}

/* Opens (creating if needed, with parents) the group at path under loc; -1 on failure.
 * (HDF5's error printing is off: the harnesses call sn_h5_init at start-up.) */
static hid_t fzb_group(hid_t loc, const char *path) {
  if (!*path || !strcmp(path, "/")) return H5Gopen2(loc, "/", H5P_DEFAULT);
  if (H5Lexists(loc, path, H5P_DEFAULT) > 0) return H5Gopen2(loc, path, H5P_DEFAULT);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(loc, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  return g;
}

/* A dictionary of names and values (no duplicates). */
static void fzb_dict_add(char ***dict, int *n, const char *s) {
  for (int i = 0; i < *n; ++i)
    if (!strcmp((*dict)[i], s)) return;
  *dict = realloc(*dict, (size_t)(*n + 1) * sizeof **dict);
  (*dict)[(*n)++] = strdup(s);
}

static const char *fzb_dict_get(fz_in *in, char **dict, int n) {
  return dict[fz_u16(in) % (unsigned)n];
}

/* Free-form operations until the input ends (at most 64): datasets, string / string-array /
 * integer / empty attributes, groups, soft links and deletions, named from dict. */
static void fzb_free_ops(hid_t f, fz_in *in, char **dict, int ndict) {
  static const hsize_t dim_table[16] = {
      1, 2, 3, 4, 8, 10, 16, 27, 0, 5, 7, 32, 64, 1u << 20, (hsize_t)1 << 32, 6};
  static const int64_t int_table[8] = {0, 1, -1, 3, 32, 10, INT64_C(1) << 31, INT64_MIN};
  int guard = 0;
  while (fz_left(in) && guard++ < 64) {
    const unsigned op = fz_u8(in) % 8;
    switch (op) {
    case 0: {
      const char *name = fzb_dict_get(in, dict, ndict);
      int t = (int)(fz_u8(in) % FZT_COUNT), rank = (int)(fz_u8(in) % 5);
      hsize_t dims[4];
      for (int k = 0; k < rank; ++k)
        dims[k] = dim_table[fz_u8(in) % 16];
      fzb_dataset(f, name, t, rank, dims, NULL, fz_u8(in), (int)(fz_u8(in) % 4), 0);
      break;
    }
    case 1:
    case 2:
    case 3:
    case 4: {
      const char *where = fzb_dict_get(in, dict, ndict), *name = fzb_dict_get(in, dict, ndict);
      hid_t o = H5Lexists(f, where, H5P_DEFAULT) > 0 ? H5Oopen(f, where, H5P_DEFAULT) : -1;
      if (o < 0) o = H5Oopen(f, "/", H5P_DEFAULT);
      if (o < 0) break;
      if (!*name) name = "unnamed";
      if (op == 1) {
        fzb_attr_str(o, name, fzb_dict_get(in, dict, ndict), (int)(fz_u8(in) & 1));
      } else if (op == 2) {
        const char *vals[6];
        int n = (int)(fz_u8(in) % 6);
        for (int k = 0; k < n; ++k)
          vals[k] = fzb_dict_get(in, dict, ndict);
        fzb_attr_strs(o, name, vals, n, (int)(fz_u8(in) & 1));
      } else if (op == 3) {
        static const int itypes[4] = {FZT_I64, FZT_I32, FZT_U8, FZT_F64};
        fzb_attr_int(o, name, itypes[fz_u8(in) % 4], int_table[fz_u8(in) % 8],
                     (int)(fz_u8(in) % 3));
      } else {
        fzb_attr_empty_f64(o, name);
      }
      H5Oclose(o);
      break;
    }
    case 5: {
      hid_t g = fzb_group(f, fzb_dict_get(in, dict, ndict));
      if (g >= 0) H5Gclose(g);
      break;
    }
    case 6: {
      const char *name = fzb_dict_get(in, dict, ndict), *target = fzb_dict_get(in, dict, ndict);
      if (*name && *target) H5Lcreate_soft(target, f, name, H5P_DEFAULT, H5P_DEFAULT);
      break;
    }
    default: {
      const char *name = fzb_dict_get(in, dict, ndict);
      if (*name && strcmp(name, "/") && H5Lexists(f, name, H5P_DEFAULT) > 0)
        H5Ldelete(f, name, H5P_DEFAULT);
      break;
    }
    }
  }
}

#endif /* SN_FUZZ_H5BUILD_H */
