/* io_impl.h - private: the dataset's internals, shared by io/dataset.c and the streaming reader
 * (io/reader.c); it also brings in what the data plane (dataset, reader, writer) uses from the
 * rest of io/: the HDF5 functions and the io lock (h5util.h, with its thread-safety rules), image
 * decoding (image.h) and the file-size limits (io_limits.h). Includes hdf5.h, so only io/ and its
 * tests include it.
 */
#ifndef SN_IO_IMPL_H
#define SN_IO_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "h5util.h"
#include "image.h"
#include "io_limits.h"
#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

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
  struct { /* training decode, sn_dataset_set_decode_crop */
    int on, jpeg_scale;
    uint64_t seed;
    int64_t epoch;
  } crop;
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
/* The labels part of place alone (labels NULL: nothing), for a caller that decodes the fetched
 * encoded rows itself: ds->refs[i] (i < count) is the i-th fetched row, its bytes at
 * ds->raw + ds->upos[refs[i].u], its batch position refs[i].dest. */
sn_status sn_dataset_place_labels(const sn_dataset *ds, int count, int32_t *labels);
/* Decodes the bytes (len) of encoded row `row` into out (info.h, info.w, info.c): the training
 * crop (sn_dataset_set_decode_crop) or the fit of sn_dataset_set_decode. Reads ds only and uses
 * the caller's scratch, so rows may be decoded on several threads, each with its own scratch.
 * Errors name the file and the row. */
sn_status sn_dataset_decode_row(const sn_dataset *ds, int64_t row, const uint8_t *src, size_t len,
                                uint8_t *out, sn_image_scratch *img);

#ifdef __cplusplus
}
#endif
#endif /* SN_IO_IMPL_H */
