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

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- common (dataset.c) */

/* Limits applied to every size read from a file before anything is allocated. */
#define SN_IO_MAX_SIDE 65535                   /* image height or width */
#define SN_IO_MAX_PIXELS ((int64_t)1 << 28)    /* one decoded image, before resizing */
#define SN_IO_MAX_ROW_BYTES ((int64_t)1 << 30) /* one stored or encoded image */
#define SN_IO_MAX_ROWS ((int64_t)1 << 40)      /* rows of a dataset */
#define SN_IO_MAX_CLASSES (1 << 24)

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

/* *out = a * b; returns 0 on overflow (then *out is undefined). */
int sn_io_mul(size_t a, size_t b, size_t *out);

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

/* ---------------------------------------------------------------- images (image.c) */

/* Growable buffers reused across images (one per thread of use). */
typedef struct sn_image_scratch {
  uint8_t *pix; /* decoded image (h, w, c) */
  size_t pix_cap;
  uint8_t *tmp; /* colour conversion / resize intermediate */
  size_t tmp_cap;
  uint8_t *tmp2; /* second intermediate (resize then crop) */
  size_t tmp2_cap;
  void *coef; /* resampling coefficients and bounds */
  size_t coef_cap;
  int32_t *acc; /* one row of vertical-pass sums */
  size_t acc_cap;
} sn_image_scratch;

void sn_image_scratch_free(sn_image_scratch *s);

/* Decodes a JPEG or PNG (recognised by its signature) into s->pix as (h, w, channels) 8-bit,
 * channels 1 or 3 (grey replicated to RGB; RGB to grey with PIL's "L" weights; CMYK/YCCK JPEGs
 * converted as Pillow does, Adobe-inverted; alpha dropped, palettes expanded, 16-bit samples
 * reduced to their high byte). Returns SN_OK or SN_ERR_FORMAT
 * (corrupt, truncated, unsupported) / SN_ERR_NOMEM with a message in err; never exits. */
sn_status sn_image_decode(const uint8_t *data, size_t n, int channels, sn_image_scratch *s, int *h,
                          int *w, char *err, size_t errlen);

/* Pillow-exact resizes of (ih, iw, c) uint8 into (oh, ow, c): bilinear is Pillow's antialiased
 * two-pass convolution (what torchvision's Resize does to PIL images), nearest is Pillow's
 * Image.resize(NEAREST) (Keras load_img's default). */
sn_status sn_image_resize(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                          sn_resize_mode mode, sn_image_scratch *s);

/* The decode target pipeline: shorter > 0: resize the shorter side to `shorter` (longer =
 * floor(shorter * long / short)) then centre crop (oh, ow) at round-half-even offsets
 * (torchvision Resize + CenterCrop); shorter == 0: straight resize to (oh, ow). */
sn_status sn_image_fit(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                       sn_resize_mode mode, int shorter, sn_image_scratch *s);

/* Encoders (tests and tools); JPEG takes c = 1, 3 or 4 (CMYK, Adobe marker), PNG 1..4. *out is
 * malloc'd; the caller frees it. */
sn_status sn_image_encode_jpeg(const uint8_t *pix, int h, int w, int c, int quality, uint8_t **out,
                               size_t *n);
sn_status sn_image_encode_png(const uint8_t *pix, int h, int w, int c, uint8_t **out, size_t *n);

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
