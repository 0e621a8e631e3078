/* io_bench.c - read + decode + preprocess throughput of the streaming reader (sn_reader) on an
 * HDF5 dataset, one JSON line per run. The main thread only takes batches (sn_reader_next) and
 * checks them, so the figure is what the reader's one background thread delivers: HDF5 reads
 * under the io lock, JPEG/PNG decode + resize for the encoded form, then preprocessing to
 * float32. Set OMP_NUM_THREADS=1 to keep the preprocessing's OpenMP loop on that thread too.
 * Compiled by jobs/bench/io_bench.sh against libshardnet_static.a.
 *
 * images_per_cpu_s = rows / process CPU time (all threads): on a loaded machine the wall-time
 * figure depends on the share of a core the reader gets, this one much less.
 * Also reported: the reader's buffer bytes (sn_reader_buffer_bytes: batch x (prefetch + 1)
 * rows, input and float32) against the dataset's size, the process's peak RSS, its CPU time
 * (all threads) and the fraction of the file that was in the page cache when the run started
 * (mincore). --evict drops the file's clean pages from the page cache first
 * (posix_fadvise DONTNEED: no privileges needed, only this file is affected) for a cold read.
 *
 * Usage: io_bench --data F [--order seq|shuffle] [--batch 32] [--prefetch 2] [--limit N]
 *                 [--preprocess torch] [--size 224x224] [--resize-shorter 256]
 *                 [--resize bilinear|nearest] [--seed 1] [--evict]
 *                 [--augment none|flip|crop-flip|resized-crop] [--jpeg-scale 0|1]
 *   --order shuffle: the rows in the order of sn_shard_permutation(n, seed, epoch 0), as a
 *   training epoch reads them; --limit: only the first N rows of the order.
 *   --size/--resize-shorter/--resize: decode target of an encoded dataset (default: the torch
 *   rule of `shardnet infer`, 224x224 from shorter side 256, bilinear).
 *   --augment: the reader's augmentation (epoch 0, --seed); resized-crop on an encoded dataset
 *   is taken from the original pictures at decode, to --size; --jpeg-scale 1 lets libjpeg
 *   decode those crops at a reduced scale. */
#define _DEFAULT_SOURCE /* mincore, posix_fadvise, clock_gettime */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shardnet.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "io_bench: error: %s\n", what);
  exit(1);
}

/* Fraction of the file's pages resident in the page cache (-1 if it cannot be told). With
 * evict: first asks the kernel to drop them (clean pages only; dirty ones are kept). */
static double cached_fraction(const char *path, int evict, long long *file_bytes) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return -1;
  }
  *file_bytes = (long long)st.st_size;
  if (evict) {
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  }
  const long page = sysconf(_SC_PAGESIZE);
  const size_t pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  unsigned char *vec = malloc(pages);
  double frac = -1;
  if (map != MAP_FAILED && vec && mincore(map, (size_t)st.st_size, vec) == 0) {
    size_t in = 0;
    for (size_t i = 0; i < pages; ++i)
      in += vec[i] & 1;
    frac = (double)in / (double)pages;
  }
  free(vec);
  if (map != MAP_FAILED) munmap(map, (size_t)st.st_size);
  close(fd);
  return frac;
}

int main(int argc, char **argv) {
  const char *data = NULL, *order = "seq", *pre_name = "torch", *resize = "bilinear";
  const char *aug_name = "none";
  int batch = 32, prefetch = 2, out_h = 224, out_w = 224, shorter = 256, evict = 0, jpeg_scale = 0;
  long long limit = -1;
  unsigned long long seed = 1;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--evict")) {
      evict = 1;
      continue;
    }
    if (!v) die("every option but --evict takes a value");
    ++i;
    if (!strcmp(a, "--data"))
      data = v;
    else if (!strcmp(a, "--order"))
      order = v;
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--prefetch"))
      prefetch = atoi(v);
    else if (!strcmp(a, "--limit"))
      limit = atoll(v);
    else if (!strcmp(a, "--preprocess"))
      pre_name = v;
    else if (!strcmp(a, "--size")) {
      if (sscanf(v, "%dx%d", &out_h, &out_w) != 2) die("--size takes HxW");
    } else if (!strcmp(a, "--resize-shorter"))
      shorter = atoi(v);
    else if (!strcmp(a, "--resize"))
      resize = v;
    else if (!strcmp(a, "--seed"))
      seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--augment"))
      aug_name = v;
    else if (!strcmp(a, "--jpeg-scale"))
      jpeg_scale = atoi(v);
    else {
      fprintf(stderr, "io_bench: error: unknown option %s\n", a);
      return 2;
    }
  }
  if (!data) die("--data is required");
  const int shuffle = !strcmp(order, "shuffle");
  if (!shuffle && strcmp(order, "seq")) die("--order takes seq or shuffle");
  sn_preprocess pre;
  if (sn_preprocess_parse(pre_name, &pre) != SN_OK) die(sn_last_error());
  sn_augment aug;
  if (sn_augment_parse(aug_name, &aug) != SN_OK) die(sn_last_error());

  long long file_bytes = 0;
  const double cached = cached_fraction(data, evict, &file_bytes);

  sn_dataset *ds = NULL;
  if (sn_dataset_open(data, sn_comm_serial(), &ds) != SN_OK) die(sn_last_error());
  const sn_dataset_info *info = sn_dataset_get_info(ds);
  /* Bytes the dataset's images take as stored: raw pixels, or the whole file (encoded). */
  const long long stored_row =
      (long long)info->h * info->w * info->c * (info->dtype == SN_F32 ? 4 : 1);
  const long long dataset_bytes = info->encoded ? file_bytes : stored_row * info->n;
  if (info->encoded) {
    sn_resize_mode mode = !strcmp(resize, "nearest") ? SN_RESIZE_NEAREST : SN_RESIZE_BILINEAR;
    if (sn_dataset_set_decode(ds, out_h, out_w, mode, shorter) != SN_OK) die(sn_last_error());
  }
  const int h = info->h, w = info->w, c = info->c;
  const int64_t n = info->n;
  const int64_t nrows = limit > 0 && limit < n ? limit : n;

  int64_t *rows = malloc((size_t)n * sizeof *rows); /* (n) the read order */
  if (!rows) die("out of memory");
  if (shuffle)
    sn_shard_permutation(n, seed, 0, rows);
  else
    for (int64_t i = 0; i < n; ++i)
      rows[i] = i;

  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = batch;
  ro.prefetch = prefetch;
  ro.preprocess = pre;
  ro.augment = aug;
  ro.pad = h / 8;
  ro.seed = seed;
  ro.jpeg_scale = jpeg_scale;
  sn_reader *rd = NULL;
  const double c0 = cpu_now(), t0 = now();
  if (sn_reader_create(ds, rows, nrows, &ro, &rd) != SN_OK) die(sn_last_error());
  int64_t got = 0, nb = 0;
  double checksum = 0, first = 0;
  for (;;) {
    float *x;
    int32_t *lab;
    int64_t *br;
    int cnt = 0;
    if (sn_reader_next(rd, &x, &lab, &br, &cnt) != SN_OK) die(sn_last_error());
    if (cnt == 0) break;
    if (nb == 0) first = now() - t0;
    for (int j = 0; j < cnt; ++j)
      if (br[j] != rows[got + j]) die("the reader returned rows out of order");
    checksum += x[0] + x[(size_t)cnt * h * w * c - 1];
    got += cnt;
    ++nb;
  }
  const double secs = now() - t0, cpu = cpu_now() - c0;
  if (got != nrows) die("the reader returned fewer rows than asked");
  const size_t buf = sn_reader_buffer_bytes(rd);
  const double wait = sn_reader_wait_seconds(rd);
  sn_reader_destroy(rd);
  sn_dataset_close(ds);
  free(rows);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const char *env_omp = getenv("OMP_NUM_THREADS");
  printf("{\"file\": \"%s\", \"form\": \"%s\", \"file_bytes\": %lld, \"dataset_bytes\": %lld, "
         "\"n\": %lld, \"h\": %d, \"w\": %d, \"c\": %d, \"order\": \"%s\", \"rows\": %lld, "
         "\"batch\": %d, \"prefetch\": %d, \"preprocess\": \"%s\", \"seconds\": %.3f, "
         "\"images_per_s\": %.1f, \"out_mb_per_s\": %.1f, \"first_batch_s\": %.4f, "
         "\"wait_s\": %.3f, \"cpu_s\": %.3f, \"images_per_cpu_s\": %.1f, \"reader_buffer_bytes\": "
         "%zu, "
         "\"buffer_over_dataset\": %.6f, \"peak_rss_mb\": %.1f, \"cached_at_start\": %.3f, "
         "\"evict\": %d, \"omp_threads\": \"%s\", \"augment\": \"%s\", \"jpeg_scale\": %d, "
         "\"checksum\": %.4f}\n",
         data, info->encoded ? "encoded" : "raw", file_bytes, dataset_bytes, (long long)n, h, w, c,
         order, (long long)got, batch, prefetch, sn_preprocess_name(pre), secs, (double)got / secs,
         (double)got * h * w * c / secs / 1e6, first, wait, cpu, cpu > 0 ? (double)got / cpu : 0.0,
         buf, dataset_bytes > 0 ? (double)buf / (double)dataset_bytes : 0.0, ru.ru_maxrss / 1024.0,
         cached, evict, env_omp ? env_omp : "unset", sn_augment_name(aug), jpeg_scale, checksum);
  return 0;
}
