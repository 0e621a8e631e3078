/* overlap_bench.c - all-reduce cost and overlap, through the public sn_comm API.
 *
 * Mode "overlap" (default): does a non-blocking all-reduce progress while the rank computes?
 * Each rank starts sn_comm_iallreduce_f32 on MB MiB, computes for COMPUTE seconds in SLICES
 * equal slices (a busy loop, as backward would), optionally calling sn_comm_test between slices,
 * then times sn_comm_wait. Without asynchronous progress in the MPI library the wait costs as
 * much as a blocking all-reduce; with polling it should shrink towards zero. Also times a
 * blocking sn_comm_allreduce of the same size for reference. Prints one JSON line (rank 0) per
 * mode with the median over REPS repetitions.
 *
 * Build (jobs/bench/scaling.sh does it):
 *   mpicc -O2 -std=c11 -Isrc jobs/bench/overlap_bench.c build/libshardnet.so -Wl,-rpath,build
 *
 * Mode "sweep": blocking sn_comm_allreduce and non-blocking iallreduce + wait of 4 B .. MAXMB MiB
 * (x4 steps), median of REPS, one JSON line per size: fit T(S) = a + S / B to get the latency
 * term and the bandwidth of the cost model (docs/distributed.md).
 *
 * Mode "algos": the gradient all-reduce's algorithms side by side: for each size from 64 KiB to
 * MAXMB MiB (x4), ROUNDS rounds of one sn_comm_iallreduce_f32 + sn_comm_wait with the ring and
 * one with the MPI library's algorithm (SN_ALLREDUCE_MPI), in alternating order; each time is
 * the slowest rank's. One JSON line per size: medians and quartiles of both, and of the
 * per-round ratio mpi / ring.
 *
 * Mode "train": sn_net_train_step of ARCH (random input, local batch N, sync BN) for STEPS steps
 * after one warm-up step, with bucket polling on or off (POLL 1/0) and BUCKET MiB buckets. Per
 * step and rank: step time, exposed communication (sn_net_comm_stats) and buckets complete when
 * backward ended (sn_net_comm_buckets). Rank 0's exposed time includes waiting for a slower
 * rank; the minimum over ranks is the part that is communication (the last rank to arrive
 * waits only for the network), so both are printed.
 *
 * Run:
 *   mpirun --allow-run-as-root --oversubscribe -np 2 ./overlap_bench overlap [MB] [COMPUTE]
 * [SLICES] [REPS] mpirun --allow-run-as-root --oversubscribe -np 2 ./overlap_bench sweep [MAXMB]
 * [REPS] mpirun ... ./overlap_bench algos [MAXMB] [ROUNDS]
 * mpirun ... ./overlap_bench train ARCH HxWxC CLASSES N STEPS BUCKET_MB POLL [sync|local]
 * (sync: synchronized batch norm, whose blocking all-reduces in backward also drive progress;
 * local: per-rank BN statistics, so only the polling does.)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardnet.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile double sink;

/* Busy work for `secs` seconds (no system calls besides the clock). */
static void compute(double secs) {
  double t0 = now(), acc = 0;
  while (now() - t0 < secs)
    for (int i = 0; i < 2000; ++i)
      acc += (double)i * 1e-9;
  sink = acc;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int sweep(sn_comm *comm, double max_mb, int reps) {
  size_t max_n = (size_t)(max_mb * 1048576.0 / sizeof(float));
  if (max_n < 1) max_n = 1;
  float *buf = malloc(max_n * sizeof(float));
  if (!buf) return 1;
  for (size_t i = 0; i < max_n; ++i)
    buf[i] = 0.0f;
  int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  for (size_t n = 1; n <= max_n; n *= 4) {
    double tb[64], tn[64];
    int r_n = n * sizeof(float) < 65536 ? 4 * reps : reps; /* small sizes: cheap, noisier */
    if (r_n > 64) r_n = 64;
    sn_comm_allreduce(comm, buf, n, SN_F32, SN_SUM); /* warm-up (connections, buffers) */
    for (int r = 0; r < r_n; ++r) {
      sn_comm_barrier(comm);
      double t0 = now();
      sn_comm_allreduce(comm, buf, n, SN_F32, SN_SUM);
      tb[r] = now() - t0;
      sn_comm_barrier(comm);
      sn_request *req = NULL;
      t0 = now();
      if (sn_comm_iallreduce_f32(comm, buf, n, &req) != SN_OK || sn_comm_wait(comm, req) != SN_OK) {
        fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
        free(buf);
        return 1;
      }
      tn[r] = now() - t0;
    }
    /* Every rank's median, the slowest rank's is reported. */
    double med[2] = {median(tb, r_n), median(tn, r_n)};
    sn_comm_allreduce(comm, med, 2, SN_F64, SN_MAX);
    if (rank == 0) {
      printf("{\"mode\": \"sweep\", \"ranks\": %d, \"bytes\": %zu, \"allreduce_s\": %.7f, "
             "\"iallreduce_wait_s\": %.7f, \"allreduce_GBps\": %.3f, \"reps\": %d}\n",
             size, n * sizeof(float), med[0], med[1], (double)(n * sizeof(float)) / med[0] / 1e9,
             r_n);
      fflush(stdout);
    }
  }
  free(buf);
  return 0;
}

/* Quartile q (0, 0.25, 0.5, 0.75, 1) of v (sorted in place), by linear interpolation. */
static double quartile(double *v, int n, double q) {
  qsort(v, (size_t)n, sizeof(double), cmp);
  double pos = q * (n - 1);
  int i = (int)pos;
  return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[i];
}

static int algos(sn_comm *comm, double max_mb, int rounds) {
  size_t max_n = (size_t)(max_mb * 1048576.0 / sizeof(float));
  float *buf = malloc((max_n ? max_n : 1) * sizeof(float));
  double *t[2], *ratio = malloc((size_t)rounds * sizeof(double));
  t[0] = malloc((size_t)rounds * sizeof(double));
  t[1] = malloc((size_t)rounds * sizeof(double));
  if (!buf || !ratio || !t[0] || !t[1]) return 1;
  const sn_allreduce_algo which[2] = {SN_ALLREDUCE_RING, SN_ALLREDUCE_MPI};
  for (size_t n = 16384; n <= max_n; n *= 4) {
    for (size_t i = 0; i < n; ++i)
      buf[i] = (float)(i % 13);
    for (int r = -1; r < rounds; ++r) { /* round -1: warm-up */
      double pair[2];
      for (int k = 0; k < 2; ++k) {
        const int a = (r & 1) ? 1 - k : k;
        if (sn_comm_set_allreduce(comm, which[a]) != SN_OK) goto fail;
        sn_comm_barrier(comm);
        sn_request *req = NULL;
        double t0 = now();
        if (sn_comm_iallreduce_f32(comm, buf, n, &req) != SN_OK || sn_comm_wait(comm, req) != SN_OK)
          goto fail;
        pair[a] = now() - t0;
      }
      sn_comm_allreduce(comm, pair, 2, SN_F64, SN_MAX);
      if (r < 0) continue;
      t[0][r] = pair[0];
      t[1][r] = pair[1];
      ratio[r] = pair[1] / pair[0];
    }
    if (sn_comm_rank(comm) == 0) {
      double q[3][3];
      double *v[3] = {t[0], t[1], ratio};
      for (int k = 0; k < 3; ++k)
        for (int j = 0; j < 3; ++j)
          q[k][j] = quartile(v[k], rounds, 0.25 * (j + 1));
      printf("{\"mode\": \"algos\", \"ranks\": %d, \"bytes\": %zu, \"rounds\": %d, "
             "\"ring_s\": [%.6f, %.6f, %.6f], \"mpi_s\": [%.6f, %.6f, %.6f], "
             "\"mpi_over_ring\": [%.3f, %.3f, %.3f]}\n",
             sn_comm_size(comm), n * sizeof(float), rounds, q[0][0], q[0][1], q[0][2], q[1][0],
             q[1][1], q[1][2], q[2][0], q[2][1], q[2][2]);
      fflush(stdout);
    }
  }
  free(buf);
  free(ratio);
  free(t[0]);
  free(t[1]);
  return 0;
fail:
  fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
  return 1;
}

static int train(sn_comm *comm, int argc, char **argv) {
  if (argc < 9) {
    fprintf(stderr, "overlap_bench train ARCH HxWxC CLASSES N STEPS BUCKET_MB POLL\n");
    return 2;
  }
  sn_model_config cfg;
  sn_model_config_init(&cfg, argv[2]);
  if (sscanf(argv[3], "%dx%dx%d", &cfg.height, &cfg.width, &cfg.channels) != 3) return 2;
  cfg.classes = atoi(argv[4]);
  int n = atoi(argv[5]), steps = atoi(argv[6]), poll = atoi(argv[8]);
  double bucket = atof(argv[7]);
  if (n < 1 || steps < 1 || steps > 64) return 2;
  int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  sn_net *net = NULL;
  sn_status st = sn_net_create(&cfg, 1, &net);
  if (st == SN_OK) {
    sn_engine_options o = *sn_net_options(net);
    o.comm_poll = poll;
    st = sn_net_set_options(net, &o);
  }
  if (st == SN_OK) st = sn_net_plan(net, n, 1);
  if (st != SN_OK) {
    fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
    return 1;
  }
  int sync_bn = !(argc > 9 && !strcmp(argv[9], "local"));
  sn_net_set_comm(net, comm, sync_bn);
  sn_net_set_bucket_mb(net, bucket);
  size_t img = (size_t)cfg.height * cfg.width * cfg.channels;
  float *x = malloc((size_t)n * img * sizeof(float));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  if (!x || !y) return 1;
  uint64_t r = 88172645463325252ull + (uint64_t)rank;
  for (size_t i = 0; i < (size_t)n * img; ++i) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    x[i] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5);
  }
  for (int i = 0; i < n; ++i)
    y[i] = (rank * 7 + i) % cfg.classes;
  sn_train_config tc;
  sn_train_config_init(&tc);
  double step_s[65], exposed[65], early[65], launched[65];
  for (int s = 0; s <= steps; ++s) { /* step 0: warm-up, not reported */
    double e0, t0;
    int64_t b0, l0, d0, l1, d1;
    sn_net_comm_stats(net, &e0, &b0);
    sn_net_comm_buckets(net, &l0, &d0);
    sn_comm_barrier(comm);
    t0 = now();
    float loss;
    int correct;
    st = sn_net_train_step(net, x, y, n, n * size, &tc, &loss, &correct);
    step_s[s] = now() - t0;
    if (st != SN_OK) {
      fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
      return 1;
    }
    double e1;
    sn_net_comm_stats(net, &e1, &b0);
    sn_net_comm_buckets(net, &l1, &d1);
    exposed[s] = e1 - e0;
    launched[s] = (double)(l1 - l0);
    early[s] = (double)(d1 - d0);
  }
  /* Per step: min and max over ranks of the exposed time (the last rank to reach the final wait
   * waits only for the network: the min is the communication, max - min the skew). Then medians
   * over the steps; step time and buckets: the slowest rank. */
  double emin[64], emax[64];
  memcpy(emin, exposed + 1, (size_t)steps * sizeof(double));
  memcpy(emax, exposed + 1, (size_t)steps * sizeof(double));
  sn_comm_allreduce(comm, emin, (size_t)steps, SN_F64, SN_MIN);
  sn_comm_allreduce(comm, emax, (size_t)steps, SN_F64, SN_MAX);
  double med[4] = {median(step_s + 1, steps), median(exposed + 1, steps),
                   median(launched + 1, steps), median(early + 1, steps)};
  double lo[4], hi[4];
  memcpy(lo, med, sizeof med);
  memcpy(hi, med, sizeof med);
  sn_comm_allreduce(comm, lo, 4, SN_F64, SN_MIN);
  sn_comm_allreduce(comm, hi, 4, SN_F64, SN_MAX);
  lo[1] = median(emin, steps);
  hi[1] = median(emax, steps);
  if (rank == 0) {
    size_t ng = 0;
    sn_net_grad_block(net, &ng);
    printf("{\"mode\": \"train\", \"arch\": \"%s\", \"ranks\": %d, \"local_batch\": %d, "
           "\"grad_MB\": %.2f, \"bucket_MB\": %.3f, \"poll\": %d, \"bn\": \"%s\", \"steps\": %d, "
           "\"step_s\": %.4f, \"images_per_s\": %.2f, \"exposed_ms_rank0\": %.2f, "
           "\"exposed_ms_min\": %.2f, \"exposed_ms_max\": %.2f, \"buckets\": %.0f, "
           "\"buckets_done_in_backward_min\": %.1f, \"buckets_done_in_backward_max\": %.1f}\n",
           argv[2], size, n, (double)ng * 4 / 1e6, bucket, poll, sync_bn ? "sync" : "local", steps,
           hi[0], (double)n * size / hi[0], 1e3 * med[1], 1e3 * lo[1], 1e3 * hi[1], hi[2], lo[3],
           hi[3]);
    fflush(stdout);
  }
  free(x);
  free(y);
  sn_net_destroy(net);
  return 0;
}

int main(int argc, char **argv) {
  if (sn_mpi_init(&argc, &argv) != SN_OK) {
    fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
    return 1;
  }
  sn_comm *comm = NULL;
  if (sn_comm_create_world(&comm) != SN_OK) {
    fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
    return 1;
  }
  const char *mode = argc > 1 ? argv[1] : "overlap";
  if (!strcmp(mode, "sweep")) {
    double max_mb = argc > 2 ? atof(argv[2]) : 64.0;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1) reps = 1;
    if (reps > 16) reps = 16;
    int rc = sweep(comm, max_mb, reps);
    sn_comm_destroy(comm);
    sn_mpi_finalize();
    return rc;
  }
  if (!strcmp(mode, "algos")) {
    int rounds = argc > 3 ? atoi(argv[3]) : 9;
    int rc = algos(comm, argc > 2 ? atof(argv[2]) : 16.0, rounds > 0 ? rounds : 1);
    sn_comm_destroy(comm);
    sn_mpi_finalize();
    return rc;
  }
  if (!strcmp(mode, "train")) {
    int rc = train(comm, argc, argv);
    sn_comm_destroy(comm);
    sn_mpi_finalize();
    return rc;
  }
  if (strcmp(mode, "overlap")) {
    fprintf(stderr, "overlap_bench: mode is overlap, sweep, algos or train, not '%s'\n", mode);
    return 2;
  }
  double mb = argc > 2 ? atof(argv[2]) : 25.0;
  double compute_s = argc > 3 ? atof(argv[3]) : 0.3;
  int slices = argc > 4 ? atoi(argv[4]) : 60;
  int reps = argc > 5 ? atoi(argv[5]) : 5;
  if (slices < 1) slices = 1;
  if (reps < 1) reps = 1;
  if (reps > 64) reps = 64;
  size_t n = (size_t)(mb * 1048576.0 / sizeof(float));
  float *buf = malloc(n * sizeof(float));
  if (!buf) return 1;
  for (size_t i = 0; i < n; ++i)
    buf[i] = 1.0f;
  int rank = sn_comm_rank(comm), size = sn_comm_size(comm);

  double blocking[64], waits[2][64], totals[2][64], done_at[2][64];
  for (int r = 0; r < reps; ++r) {
    sn_comm_barrier(comm);
    double t0 = now();
    sn_comm_allreduce(comm, buf, n, SN_F32, SN_SUM);
    blocking[r] = now() - t0;
    for (int poll = 0; poll < 2; ++poll) {
      sn_request *req = NULL;
      sn_comm_barrier(comm);
      double ts = now();
      if (sn_comm_iallreduce_f32(comm, buf, n, &req) != SN_OK) {
        fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
        return 1;
      }
      int done = 0;
      done_at[poll][r] = -1;
      for (int s = 0; s < slices; ++s) {
        compute(compute_s / slices);
        if (poll && !done) {
          sn_comm_test(comm, req, &done);
          if (done) done_at[poll][r] = now() - ts;
        }
      }
      double tw = now();
      sn_status st = sn_comm_wait(comm, req);
      waits[poll][r] = now() - tw;
      totals[poll][r] = now() - ts;
      if (st != SN_OK) {
        fprintf(stderr, "overlap_bench: %s\n", sn_last_error());
        return 1;
      }
    }
  }
  if (rank == 0) {
    double bl[64];
    memcpy(bl, blocking, sizeof bl);
    qsort(bl, (size_t)reps, sizeof(double), cmp);
    for (int poll = 0; poll < 2; ++poll) {
      double w[64], t[64], d[64];
      memcpy(w, waits[poll], sizeof w);
      memcpy(t, totals[poll], sizeof t);
      memcpy(d, done_at[poll], sizeof d);
      qsort(w, (size_t)reps, sizeof(double), cmp);
      qsort(t, (size_t)reps, sizeof(double), cmp);
      qsort(d, (size_t)reps, sizeof(double), cmp);
      printf("{\"mode\": \"overlap\", \"ranks\": %d, \"mb\": %.3f, \"compute_s\": %.3f, "
             "\"slices\": %d, \"poll\": %d, "
             "\"blocking_allreduce_s\": %.4f, \"final_wait_s\": %.4f, \"total_s\": %.4f, "
             "\"completed_at_s\": %.4f, \"reps\": %d}\n",
             size, mb, compute_s, slices, poll, bl[reps / 2], w[reps / 2], t[reps / 2],
             poll ? d[reps / 2] : -1.0, reps);
    }
    fflush(stdout);
  }
  free(buf);
  sn_comm_destroy(comm);
  sn_mpi_finalize();
  return 0;
}
