/* train_loop.c - the steps of a `shardnet train` epoch and what happens at their boundaries:
 * the ranks agree on each step's status and on two kinds of flags in the same messages (a
 * periodic checkpoint is due; a stop signal came to some rank), write the checkpoint and, on a
 * stop request, leave the loop together (docs/checkpoints.md). */
#include <stdlib.h>
#include <string.h>

#include "train_job.h"

void train_start(train_job *c) {
  c->saved_at = cli_now();
  c->saved_step = c->resume && c->meta.step > 0 ? c->meta.step : -1;
  /* A signal during set-up stops the job before its first step: nothing new to save. */
  unsigned f = cli_stop_flags();
  cli_check_flags(&c->job, SN_OK, &f);
  c->stop = f & CLI_STOP_ANY;
}

void train_save(train_job *c, int64_t epoch, const double sums[4], int report_pending) {
  sn_checkpoint_meta m;
  memset(&m, 0, sizeof m);
  m.epoch = epoch;
  m.step = c->step;
  m.report_pending = report_pending;
  m.ranks = c->job.size;
  memcpy(m.epoch_sums, sums, sizeof m.epoch_sums);
  m.has_recipe = 1;
  m.recipe = c->recipe;
  sn_status s = c->ckpt ? sn_checkpoint_save(c->net, c->ckpt, &m, c->job.comm) : SN_OK;
  cli_check(&c->job, s); /* rank 0's write, agreed */
  c->saved_step = c->step;
  c->saved_at = cli_now();
}

/* This rank's flags after step st of an epoch: a periodic checkpoint (not after an epoch's or
 * the run's last step, whose own checkpoint follows; the clock is rank 0's alone) and a stop
 * signal. */
static unsigned boundary_flags(const train_job *c, int64_t st) {
  unsigned f = cli_stop_flags();
  if (!c->ckpt || st + 1 == c->steps_per_epoch || c->step == c->total_steps) return f;
  if (c->ckpt_every > 0 && c->step % c->ckpt_every == 0) f |= TRAIN_SAVE;
  if (c->ckpt_minutes > 0 && c->job.rank == 0 && cli_now() - c->saved_at >= 60 * c->ckpt_minutes)
    f |= TRAIN_SAVE;
  return f;
}

/* The step boundary after step st: agree (the SGD update's status and the flags), then save and
 * stop as agreed. Returns 1 to leave the loop. */
static int boundary(train_job *c, int64_t epoch, int64_t st, sn_status s, const double sums[5]) {
  unsigned f = boundary_flags(c, st) | c->stop; /* c->stop: agreed during a --val-every pass */
  cli_check_flags(&c->job, s, &f);
  if (!(f & (TRAIN_SAVE | CLI_STOP_ANY))) return 0;
  double tot[4] = {sums[0], sums[1], sums[2], sums[3]};
  cli_check(&c->job, sn_comm_allreduce(c->job.comm, tot, 4, SN_F64, SN_SUM));
  /* After the epoch's (or the run's) last step only its report is left: resumed, it comes first */
  const int pending = st + 1 == c->steps_per_epoch || c->step == c->total_steps;
  train_save(c, epoch, tot, pending);
  c->stop = f & CLI_STOP_ANY;
  return c->stop != 0;
}

/* --val-every: the validation set evaluated after step st (not after an epoch's or the run's last
 * step: the epoch's report has it); rank 0 writes a metrics line. A stop signal during it is
 * agreed there; the caller's boundary then saves and stops. */
static void validate_between(train_job *c, int64_t epoch, int64_t st) {
  if (!c->val_every || c->step % c->val_every || st + 1 == c->steps_per_epoch ||
      c->step == c->total_steps)
    return;
  double v[4];
  if (!train_validate(c, v) || c->job.rank != 0 || v[3] <= 0) return;
  if (c->metrics) {
    fprintf(c->metrics, "{\"epoch\": %lld, \"step\": %lld, \"val_loss\": %.6f, \"val_acc\": %.6f",
            (long long)epoch + 1, (long long)c->step, v[0], v[1] / v[3]);
    if (c->k > 5) fprintf(c->metrics, ", \"val_top5\": %.6f", v[2] / v[3]);
    fprintf(c->metrics, "}\n");
    fflush(c->metrics);
  }
  if (cli_verbose)
    printf("step %lld: val loss %.4f acc %.2f%%\n", (long long)c->step, v[0], 100.0 * v[1] / v[3]);
}

double train_epoch(train_job *c, int64_t epoch, double sums[5]) {
  int64_t first = c->step - epoch * c->steps_per_epoch, b, e;
  if (first < 0) first = 0;
  sn_shard_block(c->batch, c->job.rank, c->job.size, &b, &e); /* this rank's rows per step */
  sn_reader_options ro;
  train_reader_options(c, &ro);
  sn_reader *rd = NULL;
  sn_status s =
      sn_reader_create_epoch_from(c->train, (uint64_t)c->seed, epoch, first, c->shuffle,
                                  c->job.rank, c->job.size, c->batch, c->drop_last, &ro, &rd);
  cli_watch_reader(rd);
  cli_check(&c->job, s);
  double t0 = cli_now();
  for (int64_t st = first; st < c->steps_per_epoch && c->step < c->total_steps; ++st) {
    float *x, loss = 0;
    int32_t *lb;
    int64_t *rb;
    int n = 0, correct = 0;
    s = sn_reader_next(rd, &x, &lb, &rb, &n);
    if (s == SN_OK) s = train_check_batch(c, n, (int)(e - b), x, lb, rb);
    cli_check(&c->job, s);
    s = sn_net_train_step(c->net, x, lb, n, (int)c->batch, &c->tc, &loss, &correct);
    if (s == SN_ERR_NUMERIC)
      s = sn_error_set(s, "epoch %lld step %lld: %s; the last checkpoint is kept",
                       (long long)epoch + 1, (long long)c->step + 1, sn_last_error());
    cli_check(&c->job, s);
    if (c->k > 5) sums[2] += sn_topk_hits(sn_net_output(c->net), n, c->k, 5, lb);
    s = sn_net_sgd_update(c->net, &c->tc, sn_lr_at(&c->lrs, c->step));
    sums[0] += (double)loss * n;
    sums[1] += correct;
    sums[3] += n;
    sums[4] += n;
    ++c->step;
    train_progress(c, epoch, st, first, t0, sums);
    if (boundary(c, epoch, st, s, sums)) break;
    validate_between(c, epoch, st);
    if (c->stop && boundary(c, epoch, st, SN_OK, sums)) break;
  }
  c->wait_data += sn_reader_wait_seconds(rd);
  cli_watch_reader(NULL);
  sn_reader_destroy(rd);
  return t0;
}

void train_report_stop(const train_job *c) {
  if (c->job.rank != 0) return;
  char where[160];
  if (c->step == 0 || (c->saved_step == c->step && c->step == c->meta.step))
    snprintf(where, sizeof where, "before its first step%s", c->step ? " after the resume" : "");
  else
    snprintf(where, sizeof where, "after step %lld of %lld (epoch %lld)", (long long)c->step,
             (long long)c->total_steps, (long long)((c->step - 1) / c->steps_per_epoch + 1));
  const char *again = c->resume ? " again" : " with --resume";
  if (!c->ckpt)
    fprintf(stderr, "shardnet: stopped by %s %s; nothing saved (no --checkpoint)\n",
            cli_stop_name(c->stop), where);
  else if (c->saved_step < 0)
    fprintf(stderr,
            "shardnet: stopped by %s %s; no checkpoint yet: run the same command%s to "
            "start again\n",
            cli_stop_name(c->stop), where, again);
  else
    fprintf(stderr,
            "shardnet: stopped by %s %s; checkpoint %s is at step %lld: run the same "
            "command%s to continue\n",
            cli_stop_name(c->stop), where, c->ckpt, (long long)c->saved_step, again);
  fflush(stderr);
}
