/* io_impl.h - private: the data sources (io/source.c) and the logical dataset's internals, shared
 * by io/dataset.c, the streaming reader (io/reader.c), the converters (io/convert.c) and the
 * writer (io/writer.c, which names the rows of an output); it also brings in what the data plane
 * uses from the rest of io/: the HDF5 functions and the io lock (h5util.h, with its thread-safety
 * rules), image decoding (image.h) and the file-size limits (io_limits.h). Includes hdf5.h, so
 * only io/ and its tests include it.
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

/* ---------------------------------------------------------------- sources (io/source.c) */

typedef enum sn_source_kind {
  SN_SOURCE_HDF5 = 0,   /* one or more HDF5 dataset files, concatenated */
  SN_SOURCE_FOLDER = 1, /* a folder tree of image files */
  SN_SOURCE_LIST = 2    /* a text file listing image files, or image files named one by one */
} sn_source_kind;

/* What the paths given to sn_dataset_open_sources name, listed on one rank (sn_listing_make) and
 * shared with the others (sn_listing_share). */
typedef struct sn_listing {
  sn_source_kind kind;
  char *origin; /* FOLDER: the root as given; LIST: the list file ("" for files named one by
                   one); HDF5: the first path as given */
  char *base;   /* directory that relative entries are opened from ("" : as they are) */
  char **names; /* (n) FOLDER: paths relative to the root; LIST: as listed; HDF5: paths */
  int64_t n;
  int32_t *labels; /* (n) FOLDER with class sub-folders, LIST with a label column; else NULL */
  char **classes;  /* (n_classes) FOLDER with class sub-folders: the sorted folder names */
  int64_t n_classes;
  char *labels_from; /* "folders", "none", "list" (FOLDER, LIST), "" (HDF5) */
} sn_listing;

/* Lists the n paths on this rank (docs/hdf5-schema.md, "Data sources"). */
sn_status sn_listing_make(const char *const *paths, int n, const sn_source_options *o,
                          sn_listing *l);
/* Rank 0 lists (sn_listing_make) and broadcasts the listing: every rank gets the same one.
 * Collective. */
sn_status sn_listing_share(const char *const *paths, int n, const sn_source_options *o,
                           sn_comm *comm, sn_listing *l);
void sn_listing_free(sn_listing *l);
/* The path to open entry i of a FOLDER or LIST listing (base joined with the name when the name
 * is relative) into buf. Returns 0 if it does not fit. */
int sn_listing_path(const sn_listing *l, int64_t i, char *buf, size_t n);
/* 1 if name ends with an extension of the image files a folder lists (case-insensitive). */
int sn_is_image_name(const char *name);

/* ---------------------------------------------------------------- the logical dataset */

/* One HDF5 file of a dataset: its global rows are [first, first + n). */
typedef struct sn_part {
  char *path;
  hid_t file, images, encoded, filenames; /* -1 when absent */
  int64_t first, n;
  int64_t *offsets; /* (n + 1) encoded byte ranges, or NULL */
  int64_t encoded_bytes;
} sn_part;

/* Row reference: where the i-th requested row goes and which unique row it is. */
struct sn_row_ref {
  int64_t row;
  int dest;
  int u;
};

/* The rows of one read: the requests sorted by row (refs), their unique rows and, for HDF5
 * sources, the bytes fetched from the file (raw: in unique-row order at upos; or straight into
 * the caller's buffer when direct). One per batch in flight. */
typedef struct sn_fetch {
  struct sn_row_ref *refs; /* (count) sorted by row */
  int64_t *uniq;           /* (nu) unique rows, ascending */
  int64_t *upos;           /* (nu) byte position of each unique row in raw */
  int cap_rows, count, nu, direct;
  uint8_t *raw;
  size_t raw_cap;
} sn_fetch;

/* One decoding thread's buffers: the decoder's scratch and a file's bytes. */
typedef struct sn_decoder {
  sn_image_scratch img;
  uint8_t *file;
  size_t file_cap;
} sn_decoder;

void sn_fetch_free(sn_fetch *f);
void sn_decoder_free(sn_decoder *d);
/* Reads an image file into d->file (*n bytes). A file that cannot be read (missing, not a regular
 * file, over SN_IO_MAX_ROW_BYTES, a read error) is SN_ERR_IO with the reason in why; running out
 * of memory SN_ERR_NOMEM. Sets no error message. */
sn_status sn_read_image_file(const char *path, sn_decoder *d, size_t *n, char *why, size_t whylen);

/* A dataset is read by one thread at a time, except that sn_dataset_place_one may run on several
 * threads at once for one fetch (each with its own decoder). */
struct sn_dataset {
  char *path;     /* in messages: the path, or the first of several */
  sn_listing src; /* what the paths named */
  sn_part *parts; /* (nparts) HDF5 sources */
  int nparts;
  sn_dataset_info info;
  int stored_h, stored_w;  /* /images dims (raw) */
  int elem;                /* bytes per stored value: 1 or 4 */
  size_t stored_row_bytes; /* one stored raw row */
  size_t row_bytes;        /* one output row: info.h * info.w * info.c * elem */
  int32_t *labels;         /* (n) or NULL */
  char **classes;          /* (n_classes) or NULL */
  int64_t n_classes;
  int has_names;       /* every row has a name (image files, or /filenames in every part) */
  sn_resize_mode mode; /* decode options */
  int shorter;
  struct { /* training decode, sn_dataset_set_decode_crop */
    int on, jpeg_scale;
    double scale; /* the smallest area fraction */
    uint64_t seed;
    int64_t epoch;
  } crop;
  sn_fetch fetch; /* scratch of sn_dataset_read_rows */
  sn_decoder dec;
};

/* The two halves of a row read. fetch sorts the rows and, for HDF5 sources, takes the io lock
 * and pulls their bytes from the files into f->raw (or, for rows in ascending order of a raw
 * dataset, straight into images, setting f->direct). place_one decodes / copies the k-th row of
 * f->refs (k in sorted order) into images at its destination without touching HDF5 (image files
 * are read here), using d's buffers: several threads may place rows of one fetch at once. It
 * sets no error message: on failure `why` holds the bare reason ("corrupt JPEG: ..."). A bad
 * input (a file that cannot be read, an image that does not decode) is SN_ERR_IO or
 * SN_ERR_FORMAT; anything else (SN_ERR_NOMEM) is not the input's fault. */
sn_status sn_dataset_fetch(sn_dataset *ds, sn_fetch *f, const int64_t *rows, int count,
                           void *images);
sn_status sn_dataset_place_one(const sn_dataset *ds, const sn_fetch *f, int k, void *images,
                               sn_decoder *d, char *why, size_t whylen);
/* How messages name a row: "file photos/cat/1.jpg" (image files), "file d.h5: row 7 (cat/1.jpg)"
 * (HDF5, with the row's /filenames entry when the file has one), into buf. Takes the io lock. */
void sn_dataset_row_label(const sn_dataset *ds, int64_t row, char *buf, size_t n);
/* The names of count rows (ascending): image files as listed, else the /filenames entries;
 * strs[i] is malloc'd (the caller frees it). SN_ERR_NOTFOUND if the rows have no names. Takes the
 * io lock. */
sn_status sn_dataset_row_names(const sn_dataset *ds, const int64_t *rows, int64_t count,
                               char **strs);
/* Checks one row by decoding it alone (own buffers and io lock): SN_OK, or the bad-input status
 * with the bare reason in why. */
sn_status sn_dataset_check_row(const sn_dataset *ds, int64_t row, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif /* SN_IO_IMPL_H */
