/* reader.c - sharded streaming reader: one background thread fills a ring of preallocated batch
 * buffers (read under the io lock, then decode, preprocess and augment unlocked, the batch's rows
 * split over decode_threads threads) while the main thread trains or infers on the previous
 * batch. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io_impl.h"

typedef struct slot {
  float *x;        /* (batch, H, W, C) */
  void *raw;       /* (batch, H, W, C) uint8 or float32 as stored */
  int32_t *labels; /* (batch) */
  int64_t *rows;   /* (batch) */
  int count;
  sn_status st;
  char msg[1024];
} slot;

/* One of the threads that decode, preprocess and augment a batch: worker 0 is the reader's own
 * thread, the others are helpers woken for every batch. Each has its own scratch. */
typedef struct worker {
  struct sn_reader *r;
  int id;
  pthread_t thread;
  sn_image_scratch img;
  float *scratch; /* (H, W, C) augmentation scratch */
  sn_status st;
  char msg[1024];
} worker;

struct sn_reader {
  sn_dataset *ds;
  sn_reader_options o;
  int64_t *rows;   /* all rows of the epoch, batch after batch */
  int64_t *starts; /* (nb + 1): batch b is rows[starts[b], starts[b + 1]) */
  int64_t nb;
  int max_batch;
  slot *slots; /* (nslots) ring */
  int nslots;
  worker *workers; /* (nw) */
  int nw, helpers_started;
  int *inv; /* (max_batch) the fetch's row reference of each batch position */
  /* the batch being filled by the workers: generation, slot, helpers still busy */
  pthread_mutex_t pmu;
  pthread_cond_t pgo, pdone;
  int64_t pgen;
  slot *pslot;
  int ppending, pstop, pool_init;
  size_t bytes;
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t produced; /* batches filled */
  int64_t released; /* batches handed back by the consumer */
  int64_t next;     /* next batch to hand out */
  int holding;      /* the consumer holds batch next - 1 */
  int stop, failed;
  double wait;
  int decode_crop; /* resized-crop taken at decode (encoded dataset), undone by destroy */
};

void sn_reader_options_init(sn_reader_options *o) {
  memset(o, 0, sizeof *o);
  o->batch = 32;
  o->prefetch = 2;
  o->preprocess = SN_PRE_NONE;
  o->augment = SN_AUG_NONE;
  o->decode_threads = 1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Worker w's share of the slot's batch: positions [n w / nw, n (w + 1) / nw), decoded (encoded
 * dataset), preprocessed and augmented. Every value depends on (seed, epoch, row) only, so the
 * batch is the same whatever the thread count. */
static void work(sn_reader *r, worker *w, slot *s) {
  sn_dataset *ds = r->ds;
  const sn_dataset_info *info = &ds->info;
  const int n = s->count;
  const int j0 = (int)((int64_t)n * w->id / r->nw), j1 = (int)((int64_t)n * (w->id + 1) / r->nw);
  const size_t vals = (size_t)info->h * info->w * info->c;
  w->st = SN_OK;
  if (j1 <= j0) return;
  uint8_t *raw = s->raw;
  for (int j = j0; info->encoded && j < j1; ++j) {
    const struct sn_row_ref *ref = &ds->refs[r->inv[j]];
    const size_t len = (size_t)(ds->offsets[ref->row + 1] - ds->offsets[ref->row]);
    w->st = sn_dataset_decode_row(ds, ref->row, ds->raw + ds->upos[ref->u], len,
                                  raw + (size_t)j * ds->row_bytes, &w->img);
    if (w->st != SN_OK) {
      snprintf(w->msg, sizeof w->msg, "%s", sn_last_error());
      return;
    }
  }
  float *x = s->x + (size_t)j0 * vals;
  if (info->dtype == SN_U8) {
    sn_preprocess_u8(raw + (size_t)j0 * ds->row_bytes, (size_t)(j1 - j0), info->h, info->w, info->c,
                     r->o.preprocess, x);
  } else {
    memcpy(x, raw + (size_t)j0 * ds->row_bytes, (size_t)(j1 - j0) * vals * sizeof(float));
    sn_preprocess_f32(x, (size_t)(j1 - j0), info->h, info->w, info->c, r->o.preprocess);
  }
  if (r->o.augment != SN_AUG_NONE)
    sn_augment_batch(x, j1 - j0, info->h, info->w, info->c, r->o.augment, r->o.pad, r->o.seed,
                     r->o.epoch, s->rows + j0, w->scratch);
}

static void *helper(void *arg) {
  worker *w = arg;
  sn_reader *r = w->r;
  int64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&r->pmu);
    while (!r->pstop && r->pgen == seen)
      pthread_cond_wait(&r->pgo, &r->pmu);
    if (r->pstop) {
      pthread_mutex_unlock(&r->pmu);
      return NULL;
    }
    seen = r->pgen;
    slot *s = r->pslot;
    pthread_mutex_unlock(&r->pmu);
    work(r, w, s);
    pthread_mutex_lock(&r->pmu);
    if (--r->ppending == 0) pthread_cond_signal(&r->pdone);
    pthread_mutex_unlock(&r->pmu);
  }
}

/* Fills one slot with batch b (runs on the reader's thread, with the helpers). */
static sn_status fill(sn_reader *r, slot *s, int64_t b) {
  sn_dataset *ds = r->ds;
  const sn_dataset_info *info = &ds->info;
  const int64_t *rows = r->rows + r->starts[b];
  const int n = (int)(r->starts[b + 1] - r->starts[b]);
  int direct = 0;
  sn_status st = sn_dataset_fetch(ds, rows, n, s->raw, &direct);
  if (st != SN_OK) return st;
  /* labels (and raw rows fetched out of order) in place; encoded rows are decoded by work() */
  st = info->encoded ? sn_dataset_place_labels(ds, n, info->has_labels ? s->labels : NULL)
                     : sn_dataset_place(ds, n, direct, s->raw, info->has_labels ? s->labels : NULL);
  if (st != SN_OK) return st;
  for (int i = 0; i < n; ++i)
    r->inv[ds->refs[i].dest] = i;
  memcpy(s->rows, rows, (size_t)n * sizeof *rows);
  s->count = n;
  if (r->nw > 1) {
    pthread_mutex_lock(&r->pmu);
    r->pslot = s;
    r->ppending = r->nw - 1;
    r->pgen++;
    pthread_cond_broadcast(&r->pgo);
    pthread_mutex_unlock(&r->pmu);
  }
  work(r, &r->workers[0], s);
  if (r->nw > 1) {
    pthread_mutex_lock(&r->pmu);
    while (r->ppending > 0)
      pthread_cond_wait(&r->pdone, &r->pmu);
    pthread_mutex_unlock(&r->pmu);
  }
  /* the first failing position, whatever the thread count */
  for (int k = 0; k < r->nw; ++k)
    if (r->workers[k].st != SN_OK) {
      s->count = 0;
      return sn_error_set(r->workers[k].st, "%s", r->workers[k].msg);
    }
  return SN_OK;
}

static void *run(void *arg) {
  sn_reader *r = arg;
  for (int64_t b = 0; b < r->nb; ++b) {
    pthread_mutex_lock(&r->mu);
    while (!r->stop && b - r->released >= r->nslots)
      pthread_cond_wait(&r->cv, &r->mu);
    const int stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (stop) break;
    slot *s = &r->slots[b % r->nslots];
    s->st = fill(r, s, b);
    if (s->st != SN_OK) snprintf(s->msg, sizeof s->msg, "%s", sn_last_error());
    pthread_mutex_lock(&r->mu);
    r->produced = b + 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (s->st != SN_OK) break;
  }
  return NULL;
}

static sn_status start(sn_reader *r) {
  const sn_dataset_info *info = &r->ds->info;
  size_t row_vals;
  if (!sn_io_mul((size_t)info->h * info->w, (size_t)info->c, &row_vals))
    return sn_error_set(SN_ERR_NOMEM, "reader: row size overflows");
  size_t xbytes, rawbytes;
  if (!sn_io_mul(row_vals * sizeof(float), (size_t)r->max_batch, &xbytes) ||
      !sn_io_mul(row_vals * (size_t)r->ds->elem, (size_t)r->max_batch, &rawbytes))
    return sn_error_set(SN_ERR_NOMEM, "reader: batch of %d rows overflows", r->max_batch);
  r->slots = calloc((size_t)r->nslots, sizeof *r->slots);
  r->workers = calloc((size_t)r->nw, sizeof *r->workers);
  r->inv = malloc((size_t)r->max_batch * sizeof *r->inv);
  if (!r->slots || !r->workers || !r->inv)
    return sn_error_set(SN_ERR_NOMEM, "reader: %d batch buffers", r->nslots);
  for (int k = 0; k < r->nw; ++k) {
    r->workers[k].r = r;
    r->workers[k].id = k;
    if (!(r->workers[k].scratch = malloc(row_vals * sizeof(float))))
      return sn_error_set(SN_ERR_NOMEM, "reader: scratch of %d threads", r->nw);
  }
  for (int i = 0; i < r->nslots; ++i) {
    slot *s = &r->slots[i];
    s->x = malloc(xbytes ? xbytes : 1);
    s->raw = malloc(rawbytes ? rawbytes : 1);
    s->labels = malloc((size_t)r->max_batch * sizeof *s->labels);
    s->rows = malloc((size_t)r->max_batch * sizeof *s->rows);
    if (!s->x || !s->raw || !s->labels || !s->rows)
      return sn_error_set(SN_ERR_NOMEM, "reader: %d batch buffers of %zu bytes", r->nslots,
                          xbytes + rawbytes);
  }
  r->bytes = (size_t)r->nslots * (xbytes + rawbytes + (size_t)r->max_batch * 12) +
             (size_t)r->nw * row_vals * sizeof(float);
  if (pthread_mutex_init(&r->mu, NULL) != 0 || pthread_cond_init(&r->cv, NULL) != 0)
    return sn_error_set(SN_ERR_NOMEM, "reader: cannot create a mutex");
  if (pthread_mutex_init(&r->pmu, NULL) != 0 || pthread_cond_init(&r->pgo, NULL) != 0 ||
      pthread_cond_init(&r->pdone, NULL) != 0)
    return sn_error_set(SN_ERR_NOMEM, "reader: cannot create a mutex");
  r->pool_init = 1;
  for (; r->helpers_started < r->nw - 1; ++r->helpers_started)
    if (pthread_create(&r->workers[r->helpers_started + 1].thread, NULL, helper,
                       &r->workers[r->helpers_started + 1]) != 0)
      return sn_error_set(SN_ERR_NOMEM, "reader: cannot start decode thread %d of %d",
                          r->helpers_started + 2, r->nw);
  if (pthread_create(&r->thread, NULL, run, r) != 0)
    return sn_error_set(SN_ERR_NOMEM, "reader: cannot start the thread");
  r->thread_started = 1;
  return SN_OK;
}

static sn_status check(sn_dataset *ds, const sn_reader_options *o, sn_reader **out) {
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_reader_create: out is NULL");
  *out = NULL;
  if (!ds || !o || o->prefetch < 0 || o->prefetch > 64 || o->pad < 0 ||
      o->preprocess == SN_PRE_DEFAULT || o->decode_threads < 1 || o->decode_threads > 256)
    return sn_error_set(SN_ERR_INVALID,
                        "sn_reader_create: invalid options (prefetch %d, pad %d, preprocess %s, "
                        "decode threads %d)",
                        o ? o->prefetch : 0, o ? o->pad : 0,
                        o ? sn_preprocess_name(o->preprocess) : "?", o ? o->decode_threads : 0);
  return SN_OK;
}

/* Takes ownership of rows and starts. */
static sn_status make(sn_dataset *ds, const sn_reader_options *o, int64_t *rows, int64_t *starts,
                      int64_t nb, sn_reader **out) {
  sn_reader *r = calloc(1, sizeof *r);
  if (!r) {
    free(rows);
    free(starts);
    return sn_error_set(SN_ERR_NOMEM, "reader");
  }
  r->ds = ds;
  r->o = *o;
  r->rows = rows;
  r->starts = starts;
  r->nb = nb;
  r->nslots = (o->prefetch > 0 ? o->prefetch : 1) + 1;
  r->nw = o->decode_threads;
  if (o->augment == SN_AUG_RESIZED_CROP && ds->info.encoded) {
    /* from the original picture, flip included: nothing left for sn_augment_batch */
    sn_dataset_set_decode_crop(ds, 1, o->seed, o->epoch, o->jpeg_scale);
    r->decode_crop = 1;
    r->o.augment = SN_AUG_NONE;
  }
  for (int64_t b = 0; b < nb; ++b)
    if (starts[b + 1] - starts[b] > r->max_batch) r->max_batch = (int)(starts[b + 1] - starts[b]);
  if (r->max_batch < 1) r->max_batch = 1;
  sn_status st = start(r);
  if (st != SN_OK) {
    sn_reader_destroy(r);
    return st;
  }
  *out = r;
  return SN_OK;
}

sn_status sn_reader_create(sn_dataset *ds, const int64_t *rows, int64_t n_rows,
                           const sn_reader_options *o, sn_reader **out) {
  sn_status st = check(ds, o, out);
  if (st != SN_OK) return st;
  if (o->batch < 1 || n_rows < 0 || (n_rows > 0 && !rows))
    return sn_error_set(SN_ERR_INVALID, "sn_reader_create: batch %d, %lld rows", o->batch,
                        (long long)n_rows);
  for (int64_t i = 0; i < n_rows; ++i)
    if (rows[i] < 0 || rows[i] >= ds->info.n)
      return sn_error_set(SN_ERR_INVALID, "file %s: reader row %lld out of range [0, %lld)",
                          ds->path, (long long)rows[i], (long long)ds->info.n);
  const int64_t nb = (n_rows + o->batch - 1) / o->batch;
  int64_t *copy = malloc((n_rows ? (size_t)n_rows : 1) * sizeof *copy);
  int64_t *starts = malloc((size_t)(nb + 1) * sizeof *starts);
  if (!copy || !starts) {
    free(copy);
    free(starts);
    return sn_error_set(SN_ERR_NOMEM, "reader: %lld rows", (long long)n_rows);
  }
  if (n_rows) memcpy(copy, rows, (size_t)n_rows * sizeof *copy);
  for (int64_t b = 0; b <= nb; ++b)
    starts[b] = b * o->batch < n_rows ? b * o->batch : n_rows;
  return make(ds, o, copy, starts, nb, out);
}

sn_status sn_reader_create_epoch(sn_dataset *ds, uint64_t seed, int64_t epoch, int rank, int size,
                                 int64_t global_batch, int drop_last, const sn_reader_options *o,
                                 sn_reader **out) {
  return sn_reader_create_epoch_from(ds, seed, epoch, 0, 1, rank, size, global_batch, drop_last, o,
                                     out);
}

sn_status sn_reader_next(sn_reader *r, float **x, int32_t **labels, int64_t **rows, int *count) {
  *count = 0;
  if (x) *x = NULL;
  if (labels) *labels = NULL;
  if (rows) *rows = NULL;
  if (!r) return sn_error_set(SN_ERR_INVALID, "sn_reader_next: NULL reader");
  pthread_mutex_lock(&r->mu);
  if (r->holding) {
    r->released++;
    r->holding = 0;
    pthread_cond_broadcast(&r->cv);
  }
  if (r->failed || r->next >= r->nb) {
    pthread_mutex_unlock(&r->mu);
    if (r->failed) return sn_error_set(SN_ERR_INVALID, "reader: finished after an error");
    return SN_OK;
  }
  const double t0 = now();
  while (r->produced <= r->next)
    pthread_cond_wait(&r->cv, &r->mu);
  r->wait += now() - t0;
  slot *s = &r->slots[r->next % r->nslots];
  r->next++;
  r->holding = 1;
  if (s->st != SN_OK) r->failed = 1;
  pthread_mutex_unlock(&r->mu);
  if (s->st != SN_OK) return sn_error_set(s->st, "%s", s->msg);
  if (x) *x = s->x;
  if (labels) *labels = r->ds->info.has_labels ? s->labels : NULL;
  if (rows) *rows = s->rows;
  *count = s->count;
  return SN_OK;
}

int64_t sn_reader_num_batches(const sn_reader *r) { return r ? r->nb : 0; }
double sn_reader_wait_seconds(const sn_reader *r) { return r ? r->wait : 0.0; }
size_t sn_reader_buffer_bytes(const sn_reader *r) { return r ? r->bytes : 0; }

void sn_reader_destroy(sn_reader *r) {
  if (!r) return;
  if (r->thread_started) {
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
  }
  if (r->pool_init) { /* the reader's thread is gone: the helpers are idle */
    pthread_mutex_lock(&r->pmu);
    r->pstop = 1;
    pthread_cond_broadcast(&r->pgo);
    pthread_mutex_unlock(&r->pmu);
    for (int k = 1; k <= r->helpers_started; ++k)
      pthread_join(r->workers[k].thread, NULL);
    pthread_mutex_destroy(&r->pmu);
    pthread_cond_destroy(&r->pgo);
    pthread_cond_destroy(&r->pdone);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
  }
  for (int k = 0; r->workers && k < r->nw; ++k) {
    sn_image_scratch_free(&r->workers[k].img);
    free(r->workers[k].scratch);
  }
  free(r->workers);
  free(r->inv);
  for (int i = 0; r->slots && i < r->nslots; ++i) {
    free(r->slots[i].x);
    free(r->slots[i].raw);
    free(r->slots[i].labels);
    free(r->slots[i].rows);
  }
  if (r->decode_crop) sn_dataset_set_decode_crop(r->ds, 0, 0, 0, 0);
  free(r->slots);
  free(r->rows);
  free(r->starts);
  free(r);
}

sn_status sn_reader_create_epoch_from(sn_dataset *ds, uint64_t seed, int64_t epoch, int64_t start,
                                      int shuffle, int rank, int size, int64_t global_batch,
                                      int drop_last, const sn_reader_options *o, sn_reader **out) {
  sn_status st = check(ds, o, out);
  if (st != SN_OK) return st;
  const int64_t n = ds->info.n;
  const int per = sn_shard_local_max(global_batch, size);
  if (per < 1 || global_batch > INT32_MAX || rank < 0 || rank >= size || start < 0)
    return sn_error_set(SN_ERR_INVALID,
                        "sn_reader_create_epoch: global batch %lld, rank %d of %d, start step %lld",
                        (long long)global_batch, rank, size, (long long)start);
  const int64_t steps = sn_shard_epoch_steps(n, global_batch, drop_last);
  const int64_t nb = start < steps ? steps - start : 0;
  int64_t *perm = malloc((n ? (size_t)n : 1) * sizeof *perm);
  int64_t *rows = malloc((nb ? (size_t)nb * per : 1) * sizeof *rows);
  int64_t *starts = malloc((size_t)(nb + 1) * sizeof *starts);
  if (!perm || !rows || !starts) {
    free(perm);
    free(rows);
    free(starts);
    return sn_error_set(SN_ERR_NOMEM, "reader: epoch of %lld steps", (long long)steps);
  }
  if (shuffle) {
    sn_shard_permutation(n, seed, epoch, perm);
  } else {
    for (int64_t i = 0; i < n; ++i)
      perm[i] = i;
  }
  /* batch b is step start + b: this rank's part of that global batch */
  int64_t k = 0;
  for (int64_t b = 0; b < nb; ++b) {
    starts[b] = k;
    k += sn_shard_step_rows(perm, n, global_batch, drop_last, rank, size, start + b, rows + k);
  }
  starts[nb] = k;
  free(perm);
  sn_reader_options oo = *o;
  oo.seed = seed;
  oo.epoch = epoch;
  return make(ds, &oo, rows, starts, nb, out);
}
