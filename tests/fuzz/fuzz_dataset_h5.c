/* fuzz_dataset_h5.c - structure-aware fuzzing of dataset files (io/dataset.c, io/image.c,
 * io/reader.c): the input is a program that writes the file with the HDF5 API.
 *
 * Program: byte 0 ctrl: bits 0-1 what to write (0 /images, 1 /encoded + /offsets, 2 both,
 *          3 neither), bit 2 HDF5 latest format, bit 3 fixed-length strings, bits 4-7 unused;
 *          byte 1: read options (fuzz_ds.h);
 *          /images: u8 type, u8 rank, 5 u8 dims choices, u8 storage;
 *          /encoded: u8 image count m (mod 6), per image u16 length + bytes (the seeds hold real
 *          JPEG and PNG files), u8 offsets variant, u8 /encoded variant, 3 u8 attribute
 *          choices (height, width, channels);
 *          u8 labels variant, u8 classes variant; then free operations (fuzz_h5build.h).
 */
#include "fuzz_ds.h"
#include "fuzz_h5build.h"
#include "h5util.h"

static char **dict;
static int ndict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  sn_h5_init();
  static const char *words[] = {"images",    "encoded", "offsets", "labels",   "classes",
                                "filenames", "height",  "width",   "channels", "/images",
                                "/encoded",  "0",       "",        "images/x", "group",
                                "index",     "done",    "complete"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; ++i)
    fzb_dict_add(&dict, &ndict, words[i]);
  return 0;
}

static const hsize_t n_table[8] = {0, 1, 2, 3, 5, 8, 17, 1u << 20};
static const hsize_t side_table[16] = {1, 2, 3, 4, 7, 8, 16, 31, 65535, 65536, 0, 5, 2, 1, 3, 4};
static const hsize_t c_table[8] = {1, 3, 4, 2, 0, 5, 1, 3};
static const int img_types[8] = {FZT_U8,  FZT_U8, FZT_U8,  FZT_F32,
                                 FZT_F32, FZT_I8, FZT_U16, FZT_F64};

static int64_t write_images(hid_t f, fz_in *in) {
  const int t = img_types[fz_u8(in) % 8];
  const unsigned r = fz_u8(in) % 8;
  const int rank = r < 6 ? 4 : r == 6 ? 3 : 5;
  hsize_t dims[5] = {n_table[fz_u8(in) % 8], side_table[fz_u8(in) % 16], side_table[fz_u8(in) % 16],
                     c_table[fz_u8(in) % 8], 2};
  const int storage = (int)(fz_u8(in) % 4);
  if (rank == 5) {
    /* fzb_dataset takes at most 4 dims in its chunk table: write a 5-D one directly */
    hid_t space = H5Screate_simple(5, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
  } else {
    fzb_dataset(f, "images", t, rank, dims, NULL, 5, storage, 0);
  }
  return (int64_t)dims[0];
}

static int64_t write_encoded(hid_t f, fz_in *in, int fixed) {
  const int m = (int)(fz_u8(in) % 6);
  uint8_t *bytes = NULL;
  size_t total = 0;
  int64_t off[8];
  off[0] = 0;
  for (int i = 0; i < m; ++i) {
    const uint8_t *p;
    const size_t len = fz_take(in, fz_u16(in), &p);
    bytes = realloc(bytes, total + len + 1);
    memcpy(bytes + total, p, len);
    total += len;
    off[i + 1] = (int64_t)total;
  }
  const unsigned ov = fz_u8(in) % 11, ev = fz_u8(in) % 6;
  /* /encoded */
  hsize_t edims[2] = {total, 1};
  const int etype = ev == 1 ? FZT_I8 : ev == 2 ? FZT_U16 : FZT_U8;
  hid_t space = ev == 3 ? H5Screate_simple(2, edims, NULL) : H5Screate_simple(1, edims, NULL);
  hid_t type = fzb_type(etype);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (ev == 4 && total > 0) {
    hsize_t chunk[1] = {total < 7 ? total : 7};
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 1);
  }
  hid_t d = ev == 5 ? -1 : H5Dcreate2(f, "encoded", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d >= 0 && total > 0) H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes);
  if (ev == 5) { /* a group named encoded */
    hid_t g = fzb_group(f, "encoded");
    if (g >= 0) H5Gclose(g);
  }
  H5Pclose(dcpl);
  H5Tclose(type);
  H5Sclose(space);
  /* its attributes */
  static const int64_t attr_vals[8] = {16, 32, 1, 3, 0, -1, 65536, 65535};
  const char *names[3] = {"height", "width", "channels"};
  for (int i = 0; i < 3; ++i) {
    const unsigned a = fz_u8(in);
    if (d < 0) continue;
    if (a % 16 == 15) continue; /* missing */
    if (a % 16 == 14)
      fzb_attr_str(d, names[i], "16", fixed);
    else if (a % 16 == 13)
      fzb_attr_int(d, names[i], FZT_I64, 16, 2);
    else if (a % 16 == 12)
      fzb_attr_int(d, names[i], FZT_F64, 16, 0);
    else
      fzb_attr_int(d, names[i], a & 16 ? FZT_I32 : FZT_U16, attr_vals[a % 8], 0);
  }
  if (d >= 0) H5Dclose(d);
  /* /offsets */
  int64_t n = m;
  hsize_t odims[2] = {(hsize_t)m + 1, 1};
  switch (ov) {
  case 1:
    if (m >= 2) {
      int64_t t = off[1];
      off[1] = off[2];
      off[2] = t;
    }
    break;
  case 2:
    off[m] = (int64_t)total + 1;
    break;
  case 3:
    off[0] = -1;
    break;
  case 4:
    odims[0] = (hsize_t)m;
    n = m - 1;
    break;
  case 5:
    off[m] = INT64_MAX;
    break;
  case 10:
    off[m] = INT64_MIN;
    break; /* finding F1 when m >= 1 */
  default:
    break;
  }
  if (ov == 9) {
    /* missing */
  } else if (ov == 6) {
    fzb_dataset(f, "offsets", FZT_F64, 1, odims, NULL, 3, 0, 0);
  } else if (ov == 7) {
    fzb_dataset(f, "offsets", FZT_I64, 2, odims, NULL, 3, 0, 0);
  } else if (odims[0] > 0) {
    hid_t os = H5Screate_simple(1, odims, NULL);
    hid_t od = H5Dcreate2(f, "offsets", ov == 8 ? H5T_STD_U32LE : H5T_STD_I64LE, os, H5P_DEFAULT,
                          H5P_DEFAULT, H5P_DEFAULT);
    if (od >= 0) {
      H5Dwrite(od, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
      H5Dclose(od);
    }
    H5Sclose(os);
  }
  free(bytes);
  return n;
}

static void write_labels(hid_t f, fz_in *in, int64_t n) {
  const unsigned v = fz_u8(in) % 9;
  if (v == 0 || n < 0 || n > 4096) return;
  hsize_t dims[2] = {(hsize_t)n, 2};
  if (v == 2) dims[0] += 1;
  int64_t *vals = calloc((size_t)dims[0] * 2 + 1, sizeof *vals);
  for (hsize_t i = 0; i < dims[0]; ++i)
    vals[i] = fz_u8(in) % 12;
  if (v == 4 && dims[0] > 0) vals[dims[0] - 1] = (fz_u8(in) & 1) ? -1 : INT64_C(1) << 31;
  const int t = v == 3 ? FZT_F32 : v == 5 ? FZT_I64 : v == 6 ? FZT_U8 : v == 8 ? FZT_VSTR : FZT_I32;
  hid_t space = H5Screate_simple(v == 7 ? 2 : 1, dims, NULL);
  hid_t type = fzb_type(t);
  hid_t d = H5Dcreate2(f, "labels", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0 && t != FZT_VSTR && dims[0] > 0)
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
  if (d >= 0) H5Dclose(d);
  H5Tclose(type);
  H5Sclose(space);
  free(vals);
}

static void write_classes(hid_t f, fz_in *in, int fixed) {
  const unsigned v = fz_u8(in) % 6;
  static const int counts[4] = {10, 1, 3, 0};
  const int k = counts[fz_u8(in) % 4];
  if (v == 0) return;
  const char *names[10] = {"zero", "one", "two", "three", "four", "", "six", "a/b", "eight", "9"};
  if (v == 3) {
    hsize_t dims[1] = {(hsize_t)k};
    fzb_dataset(f, "classes", FZT_I32, 1, dims, NULL, 1, 0, 0);
    return;
  }
  hsize_t dims[2] = {(hsize_t)k, 2};
  hid_t t = H5Tcopy(H5T_C_S1);
  size_t width = 6;
  H5Tset_size(t, v == 2 || fixed ? width : H5T_VARIABLE);
  if (v == 5) H5Tset_strpad(t, H5T_STR_SPACEPAD);
  hid_t space = H5Screate_simple(v == 4 ? 2 : 1, dims, NULL);
  hid_t d = H5Dcreate2(f, "classes", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0 && k > 0 && v != 4) {
    if (H5Tis_variable_str(t) > 0) {
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    } else {
      char buf[10][6];
      for (int i = 0; i < 10; ++i)
        strncpy(buf[i], names[i], 6); /* not terminated when full */
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    }
  }
  if (d >= 0) H5Dclose(d);
  H5Sclose(space);
  H5Tclose(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  fz_in in = {data, size, 0};
  const unsigned ctrl = fz_u8(&in), opts = fz_u8(&in);
  const int what = (int)(ctrl & 3), latest = (int)(ctrl >> 2 & 1), fixed = (int)(ctrl >> 3 & 1);
  const char *path = fz_path("dsh5.h5");
  hid_t f = fzb_create(path, latest);
  int64_t n = -1;
  if (what == 0 || what == 2) n = write_images(f, &in);
  if (what == 1 || what == 2) {
    int64_t ne = write_encoded(f, &in, fixed);
    if (what == 1) n = ne;
  }
  write_labels(f, &in, n);
  write_classes(f, &in, fixed);
  fzb_free_ops(f, &in, dict, ndict);
  if (H5Fclose(f) < 0) fz_fail("builder: H5Fclose failed");
  fz_check_no_open_h5("building the file");
  const char *emit = getenv("SN_FUZZ_EMIT");
  if (emit) {
    static int seq = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/%d.h5'", path, emit, seq++);
    if (system(cmd) != 0) fz_fail("cannot copy to %s", emit);
  }
  fz_dataset_exercise(path, opts);
  return 0;
}
