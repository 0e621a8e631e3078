/* reader.c - sharded streaming reader: a pool of decoding threads fills a ring of preallocated
 * batch buffers while the main thread trains or infers on the previous batch.
 *
 * Work. Batches are opened in order, one at a time: the thread that opens batch b fetches its
 * bytes (under the io lock, for HDF5 sources), then every thread claims rows of b one by one
 * (decode or copy, fit, preprocess, augment: no lock) until all are claimed, when the next idle
 * thread opens b + 1. The thread that finishes the last row of a batch finalizes it (labels, and
 * with bad_images = skip the removal of the rows that failed). Every row lands at its own place
 * in its batch and the consumer takes batches in order, so the result does not depend on the
 * thread count or on which thread did what.
 *
 * Lock discipline. r->mu guards the ring state (opened, claimed, finished, produced, released)
 * and nothing else; no thread holds it while fetching or decoding. Slot buffers are written only
 * by the thread that claimed a row (its row's place) or finalizes the batch, and read by the
 * consumer only after the batch is produced. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io_impl.h"

typedef struct slot {
  float *x;           /* (batch, H, W, C) preprocessed */
  void *raw;          /* (batch, H, W, C) uint8 or float32: decoded or as stored */
  int32_t *labels;    /* (batch) */
  int64_t *rows;      /* (batch) dataset rows in batch order */
  sn_status *rst;     /* (batch) status of each row (by place in the batch) */
  char **why;         /* (batch) reason of a failed row (malloc'd) or NULL */
  int64_t *skip_rows; /* (batch) rows skipped, then their reasons */
  const char **skip_why;
  sn_fetch f;
  int64_t b; /* the batch it holds */
  int n;     /* rows of the batch */
  int claimed, finished, done;
  int count, skipped; /* after finalizing: rows kept, rows skipped */
  sn_status st;       /* the batch failed (fetch, or a row in fail mode) */
  int bad_input;      /* ... on a bad input */
  char msg[1600];
} slot;

struct sn_reader {
  sn_dataset *ds;
  sn_reader_options o;
  int64_t *rows;   /* all rows of the epoch, batch after batch */
  int64_t *starts; /* (nb + 1): batch b is rows[starts[b], starts[b + 1]) */
  int64_t nb;
  int max_batch;
  slot *slots; /* (nslots) ring */
  int nslots;
  int nthreads;
  pthread_t *threads;
  sn_decoder *dec; /* (nthreads) */
  float **scratch; /* (nthreads) (H, W, C) augmentation scratch */
  int started;     /* threads running */
  size_t bytes;
  pthread_mutex_t mu;
  pthread_cond_t work;  /* workers wait here */
  pthread_cond_t ready; /* the consumer waits here */
  int64_t opened;       /* batches opened (fetched or being fetched) */
  int64_t cur;          /* batch whose rows are being claimed, or -1 */
  int fetching;         /* a thread is fetching batch opened - 1 */
  int64_t produced;     /* leading batches finished */
  int64_t released;     /* batches handed back by the consumer */
  int64_t next;         /* next batch to hand out */
  int holding;          /* the consumer holds batch next - 1 */
  int stop, halt, failed, bad_input;
  double wait;
  int decode_crop; /* resized-crop taken at decode (encoded dataset), undone by destroy */
};

void sn_reader_options_init(sn_reader_options *o) {
  memset(o, 0, sizeof *o);
  o->batch = 32;
  o->prefetch = 2;
  o->preprocess = SN_PRE_NONE;
  o->augment = SN_AUG_NONE;
  o->crop_scale = SN_CROP_SCALE_DEFAULT;
  o->threads = 1;
  o->bad_images = SN_BAD_FAIL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static size_t row_vals(const sn_reader *r) {
  const sn_dataset_info *i = &r->ds->info;
  return (size_t)i->h * i->w * i->c;
}

/* Fetches batch b into its slot (the opening thread, no ring lock held). */
static void open_batch(sn_reader *r, slot *s, int64_t b) {
  const int64_t *rows = r->rows + r->starts[b];
  for (int i = 0; i < s->n; ++i) {
    free(s->why[i]);
    s->why[i] = NULL;
    s->rst[i] = SN_OK;
  }
  memcpy(s->rows, rows, (size_t)s->n * sizeof *rows);
  s->st = sn_dataset_fetch(r->ds, &s->f, rows, s->n, s->raw);
  if (s->st != SN_OK) snprintf(s->msg, sizeof s->msg, "%s", sn_last_error());
}

/* Places, preprocesses and augments row k (sorted order) of the slot's batch (worker t). */
static void do_row(sn_reader *r, slot *s, int k, int t) {
  const sn_dataset_info *info = &r->ds->info;
  const int dest = s->f.refs[k].dest;
  char why[512];
  sn_status st = sn_dataset_place_one(r->ds, &s->f, k, s->raw, &r->dec[t], why, sizeof why);
  s->rst[dest] = st;
  if (st != SN_OK) {
    s->why[dest] = strdup(why);
    return;
  }
  const size_t vals = row_vals(r);
  float *x = s->x + (size_t)dest * vals;
  if (info->dtype == SN_U8) {
    sn_preprocess_u8((const uint8_t *)s->raw + (size_t)dest * vals, 1, info->h, info->w, info->c,
                     r->o.preprocess, x);
  } else {
    memcpy(x, (const float *)s->raw + (size_t)dest * vals, vals * sizeof(float));
    sn_preprocess_f32(x, 1, info->h, info->w, info->c, r->o.preprocess);
  }
  if (r->o.augment != SN_AUG_NONE)
    sn_augment_batch(x, 1, info->h, info->w, info->c, r->o.augment, r->o.pad, r->o.crop_scale,
                     r->o.seed, r->o.epoch, &s->rows[dest], r->scratch[t]);
}

/* After every row: labels, and the failed rows (an error, or removed with bad_images = skip). */
static void finalize(sn_reader *r, slot *s) {
  s->count = s->skipped = 0;
  if (s->st != SN_OK) return;
  const sn_dataset *ds = r->ds;
  const size_t vals = row_vals(r);
  const int skip = r->o.bad_images == SN_BAD_SKIP;
  char label[1024];
  for (int i = 0; i < s->n; ++i) {
    const sn_status st = s->rst[i];
    const int bad = st == SN_ERR_IO || st == SN_ERR_FORMAT;
    if (st == SN_OK) {
      if (ds->labels) s->labels[s->count] = ds->labels[s->rows[i]];
      if (s->count != i) {
        memmove(s->x + (size_t)s->count * vals, s->x + (size_t)i * vals, vals * sizeof(float));
        s->rows[s->count] = s->rows[i];
      }
      s->count++;
    } else if (bad && skip) {
      s->skip_rows[s->skipped] = s->rows[i];
      s->skip_why[s->skipped++] = s->why[i] ? s->why[i] : "out of memory";
    } else {
      sn_dataset_row_label(ds, s->rows[i], label, sizeof label);
      s->st = st;
      s->bad_input = bad;
      snprintf(s->msg, sizeof s->msg, "%.1023s: %.500s", label,
               s->why[i] ? s->why[i] : "out of memory");
      return;
    }
  }
}

/* Marks a finished batch done and advances `produced` (ring lock held). */
static void mark_done(sn_reader *r, slot *s) {
  s->done = 1;
  if (s->st != SN_OK) r->halt = 1;
  while (r->produced < r->nb) {
    slot *p = &r->slots[r->produced % r->nslots];
    if (p->b != r->produced || !p->done) break;
    r->produced++;
  }
  pthread_cond_broadcast(&r->ready);
  pthread_cond_broadcast(&r->work);
}

typedef struct worker_arg {
  sn_reader *r;
  int t;
} worker_arg;

static void *worker(void *arg) {
  sn_reader *r = ((worker_arg *)arg)->r;
  const int t = ((worker_arg *)arg)->t;
  free(arg);
  pthread_mutex_lock(&r->mu);
  for (;;) {
    if (r->stop) break;
    /* 1. a row of the batch being claimed */
    if (r->cur >= 0) {
      slot *s = &r->slots[r->cur % r->nslots];
      if (s->claimed < s->n) {
        const int k = s->claimed++;
        pthread_mutex_unlock(&r->mu);
        do_row(r, s, k, t);
        pthread_mutex_lock(&r->mu);
        if (++s->finished == s->n) {
          pthread_mutex_unlock(&r->mu);
          finalize(r, s);
          pthread_mutex_lock(&r->mu);
          mark_done(r, s);
        }
        continue;
      }
      r->cur = -1; /* every row claimed: the next batch may open */
    }
    /* 2. open the next batch when its slot is free */
    if (!r->fetching && !r->halt && r->opened < r->nb && r->opened - r->released < r->nslots) {
      const int64_t b = r->opened++;
      slot *s = &r->slots[b % r->nslots];
      s->b = b;
      s->n = (int)(r->starts[b + 1] - r->starts[b]);
      s->claimed = s->finished = s->done = 0;
      s->bad_input = 0;
      r->fetching = 1;
      pthread_mutex_unlock(&r->mu);
      open_batch(r, s, b);
      pthread_mutex_lock(&r->mu);
      r->fetching = 0;
      if (s->st != SN_OK || s->n == 0) {
        finalize(r, s);
        mark_done(r, s);
      } else {
        r->cur = b;
        pthread_cond_broadcast(&r->work);
      }
      continue;
    }
    /* 3. nothing left for this thread */
    if (r->cur < 0 && !r->fetching && (r->halt || r->opened >= r->nb)) break;
    pthread_cond_wait(&r->work, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static sn_status start(sn_reader *r) {
  const size_t rv = row_vals(r);
  if (rv == 0) return sn_error_set(SN_ERR_INVALID, "reader: empty rows");
  size_t xbytes, rawbytes;
  if (!sn_io_mul(rv * sizeof(float), (size_t)r->max_batch, &xbytes) ||
      !sn_io_mul(rv * (size_t)r->ds->elem, (size_t)r->max_batch, &rawbytes))
    return sn_error_set(SN_ERR_NOMEM, "reader: batch of %d rows overflows", r->max_batch);
  const size_t mb = (size_t)r->max_batch;
  r->slots = calloc((size_t)r->nslots, sizeof *r->slots);
  r->threads = calloc((size_t)r->nthreads, sizeof *r->threads);
  r->dec = calloc((size_t)r->nthreads, sizeof *r->dec);
  r->scratch = calloc((size_t)r->nthreads, sizeof *r->scratch);
  if (!r->slots || !r->threads || !r->dec || !r->scratch)
    return sn_error_set(SN_ERR_NOMEM, "reader: %d batch buffers", r->nslots);
  for (int i = 0; i < r->nthreads; ++i)
    if (!(r->scratch[i] = malloc(rv * sizeof(float))))
      return sn_error_set(SN_ERR_NOMEM, "reader: scratch");
  const size_t small = mb * (sizeof(int32_t) + 2 * sizeof(int64_t) + sizeof(sn_status) +
                             sizeof(char *) + sizeof(const char *));
  for (int i = 0; i < r->nslots; ++i) {
    slot *s = &r->slots[i];
    s->b = -1;
    s->x = malloc(xbytes);
    s->raw = malloc(rawbytes);
    s->labels = malloc(mb * sizeof *s->labels);
    s->rows = malloc(mb * sizeof *s->rows);
    s->rst = malloc(mb * sizeof *s->rst);
    s->why = calloc(mb, sizeof *s->why);
    s->skip_rows = malloc(mb * sizeof *s->skip_rows);
    s->skip_why = malloc(mb * sizeof *s->skip_why);
    if (!s->x || !s->raw || !s->labels || !s->rows || !s->rst || !s->why || !s->skip_rows ||
        !s->skip_why)
      return sn_error_set(SN_ERR_NOMEM, "reader: %d batch buffers of %zu bytes", r->nslots,
                          xbytes + rawbytes);
  }
  r->bytes = (size_t)r->nslots * (xbytes + rawbytes + small) + (size_t)r->nthreads * rv * 4;
  r->cur = -1;
  if (pthread_mutex_init(&r->mu, NULL) != 0 || pthread_cond_init(&r->work, NULL) != 0 ||
      pthread_cond_init(&r->ready, NULL) != 0)
    return sn_error_set(SN_ERR_NOMEM, "reader: cannot create a mutex");
  r->started = -1; /* the mutex exists */
  for (int t = 0; t < r->nthreads; ++t) {
    worker_arg *a = malloc(sizeof *a);
    if (!a) return sn_error_set(SN_ERR_NOMEM, "reader: threads");
    a->r = r;
    a->t = t;
    if (pthread_create(&r->threads[t], NULL, worker, a) != 0) {
      free(a);
      return sn_error_set(SN_ERR_NOMEM, "reader: cannot start decoding thread %d", t);
    }
    r->started = t + 1;
  }
  return SN_OK;
}

static sn_status check(sn_dataset *ds, const sn_reader_options *o, sn_reader **out) {
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_reader_create: out is NULL");
  *out = NULL;
  if (!ds || !o || o->prefetch < 0 || o->prefetch > 64 || o->pad < 0 ||
      o->preprocess == SN_PRE_DEFAULT || o->threads < 0 || o->threads > 256 ||
      (o->bad_images != SN_BAD_FAIL && o->bad_images != SN_BAD_SKIP))
    return sn_error_set(SN_ERR_INVALID,
                        "sn_reader_create: invalid options (prefetch %d, pad %d, preprocess %s, "
                        "threads %d, bad_images %d)",
                        o ? o->prefetch : 0, o ? o->pad : 0,
                        o ? sn_preprocess_name(o->preprocess) : "?", o ? o->threads : 0,
                        o ? (int)o->bad_images : 0);
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
  r->nthreads = o->threads > 0 ? o->threads : 1;
  if (o->augment == SN_AUG_RESIZED_CROP && ds->info.encoded) {
    /* from the original picture, flip included: nothing left for sn_augment_batch */
    sn_dataset_set_decode_crop(ds, 1, o->seed, o->epoch, o->crop_scale, o->jpeg_scale);
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

sn_status sn_reader_next_batch(sn_reader *r, sn_batch *b) {
  if (!b) return sn_error_set(SN_ERR_INVALID, "sn_reader_next_batch: NULL batch");
  memset(b, 0, sizeof *b);
  if (!r) return sn_error_set(SN_ERR_INVALID, "sn_reader_next_batch: NULL reader");
  pthread_mutex_lock(&r->mu);
  if (r->holding) {
    r->released++;
    r->holding = 0;
    pthread_cond_broadcast(&r->work);
  }
  if (r->failed || r->next >= r->nb) {
    pthread_mutex_unlock(&r->mu);
    if (r->failed) return sn_error_set(SN_ERR_INVALID, "reader: finished after an error");
    return SN_OK;
  }
  const double t0 = now();
  while (r->produced <= r->next)
    pthread_cond_wait(&r->ready, &r->mu);
  r->wait += now() - t0;
  slot *s = &r->slots[r->next % r->nslots];
  r->next++;
  r->holding = 1;
  if (s->st != SN_OK) {
    r->failed = 1;
    r->bad_input = s->bad_input;
  }
  pthread_mutex_unlock(&r->mu);
  if (s->st != SN_OK) return sn_error_set(s->st, "%s", s->msg);
  b->x = s->x;
  b->labels = r->ds->info.has_labels ? s->labels : NULL;
  b->rows = s->rows;
  b->count = s->count;
  b->inputs = s->n;
  b->skipped = s->skipped;
  b->skipped_rows = s->skip_rows;
  b->skipped_reasons = s->skip_why;
  return SN_OK;
}

sn_status sn_reader_next(sn_reader *r, float **x, int32_t **labels, int64_t **rows, int *count) {
  *count = 0;
  if (x) *x = NULL;
  if (labels) *labels = NULL;
  if (rows) *rows = NULL;
  sn_batch b;
  sn_status st;
  do /* a batch whose rows were all skipped is passed over */
    st = sn_reader_next_batch(r, &b);
  while (st == SN_OK && b.inputs > 0 && b.count == 0);
  if (st != SN_OK || b.count == 0) return st;
  if (x) *x = b.x;
  if (labels) *labels = b.labels;
  if (rows) *rows = b.rows;
  *count = b.count;
  return SN_OK;
}

int sn_reader_bad_input(const sn_reader *r) { return r ? r->bad_input : 0; }
int64_t sn_reader_num_batches(const sn_reader *r) { return r ? r->nb : 0; }
double sn_reader_wait_seconds(const sn_reader *r) { return r ? r->wait : 0.0; }
size_t sn_reader_buffer_bytes(const sn_reader *r) { return r ? r->bytes : 0; }

void sn_reader_destroy(sn_reader *r) {
  if (!r) return;
  if (r->started) {
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
    for (int t = 0; t < r->started; ++t)
      pthread_join(r->threads[t], NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->ready);
  }
  if (r->decode_crop) sn_dataset_set_decode_crop(r->ds, 0, 0, 0, 0, 0);
  for (int i = 0; r->slots && i < r->nslots; ++i) {
    slot *s = &r->slots[i];
    free(s->x);
    free(s->raw);
    free(s->labels);
    free(s->rows);
    free(s->rst);
    for (int j = 0; s->why && j < r->max_batch; ++j)
      free(s->why[j]);
    free(s->why);
    free(s->skip_rows);
    free(s->skip_why);
    sn_fetch_free(&s->f);
  }
  for (int t = 0; t < r->nthreads; ++t) {
    if (r->dec) sn_decoder_free(&r->dec[t]);
    if (r->scratch) free(r->scratch[t]);
  }
  free(r->dec);
  free(r->scratch);
  free(r->threads);
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
