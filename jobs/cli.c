#define _GNU_SOURCE
/* cli.c - option parsing, messages, progress and exit codes for the shardnet program. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_verbose = 1;
int cli_rank = 0;

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_exit_code(sn_status s) {
  switch (s) {
  case SN_OK:
    return EXIT_OK;
  case SN_ERR_INVALID:
    return EXIT_USAGE;
  case SN_ERR_IO:
  case SN_ERR_FORMAT:
  case SN_ERR_SHAPE:
  case SN_ERR_NOTFOUND:
    return EXIT_INPUT;
  case SN_ERR_NUMERIC:
    return EXIT_NUMERIC;
  case SN_ERR_COMM:
    return EXIT_COMM;
  default:
    return EXIT_FAIL;
  }
}

void cli_error(const char *fmt, ...) {
  char buf[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (char *p = buf; *p; ++p)
    if (*p == '\n') *p = ' ';
  fprintf(stderr, "shardnet: error: %s\n", buf);
  fflush(stderr);
}

static cli_opt *find(cli_opt *opts, int n, const char *name) {
  for (int i = 0; i < n; ++i)
    if (!strcmp(opts[i].name, name)) return &opts[i];
  return NULL;
}

/* The values of options that take several (takes_value 2), beside the option tables. */
static struct multi {
  const cli_opt *o;
  const char **v;
  int n;
} multis[4];

static struct multi *multi_of(const cli_opt *o) {
  for (size_t i = 0; i < sizeof multis / sizeof multis[0]; ++i)
    if (multis[i].o == o || !multis[i].o) {
      multis[i].o = o;
      return &multis[i];
    }
  return NULL;
}

static int add_value(const cli_opt *o, const char *v) {
  struct multi *m = multi_of(o);
  const char **nv = m ? realloc(m->v, (size_t)(m->n + 1) * sizeof *nv) : NULL;
  if (!nv) return 0;
  m->v = nv;
  m->v[m->n++] = v;
  return 1;
}

int cli_parse(const char *cmd, int argc, char **argv, int first, cli_opt *opts, int nopts) {
  for (int i = first; i < argc; ++i) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      cli_error("%s: unexpected argument '%s' (options start with --; see --help)", cmd, a);
      return EXIT_USAGE;
    }
    char name[64];
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, a + 2, len);
    name[len] = 0;
    cli_opt *o = find(opts, nopts, name);
    if (!o) {
      cli_error("%s: unknown option '--%s' (see 'shardnet %s --help')", cmd, name, cmd);
      return EXIT_USAGE;
    }
    if (o->takes_value) {
      if (eq)
        o->value = eq + 1;
      else if (i + 1 < argc)
        o->value = argv[++i];
      else {
        cli_error("%s: option --%s needs a value", cmd, name);
        return EXIT_USAGE;
      }
      if (o->takes_value == 2) {
        const char *v = o->value;
        do {
          if (!add_value(o, v)) {
            cli_error("%s: out of memory", cmd);
            return EXIT_FAIL;
          }
        } while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && (v = argv[++i]));
        o->value = multi_of(o)->v[0];
      }
    } else {
      if (eq) {
        cli_error("%s: option --%s takes no value", cmd, name);
        return EXIT_USAGE;
      }
      o->value = "1";
    }
  }
  return 0;
}

const char *cli_get(cli_opt *opts, int nopts, const char *name) {
  cli_opt *o = find(opts, nopts, name);
  return o ? o->value : NULL;
}

const char **cli_get_all(cli_opt *opts, int nopts, const char *name, int *n) {
  cli_opt *o = find(opts, nopts, name);
  struct multi *m = o && o->value ? multi_of(o) : NULL;
  *n = m ? m->n : 0;
  return m ? m->v : NULL;
}

int cli_has(cli_opt *opts, int nopts, const char *name) {
  return cli_get(opts, nopts, name) != NULL;
}

int cli_int(cli_opt *opts, int nopts, const char *name, long lo, long hi, long dflt, long *out) {
  const char *v = cli_get(opts, nopts, name);
  if (!v) {
    *out = dflt;
    return 0;
  }
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi) {
    cli_error("option --%s: '%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
    return EXIT_USAGE;
  }
  *out = x;
  return 0;
}

int cli_float(cli_opt *opts, int nopts, const char *name, double lo, double hi, double dflt,
              double *out) {
  const char *v = cli_get(opts, nopts, name);
  if (!v) {
    *out = dflt;
    return 0;
  }
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || *end || end == v || !isfinite(x) || x < lo || x > hi) {
    cli_error("option --%s: '%s' is not a number in [%g, %g]", name, v, lo, hi);
    return EXIT_USAGE;
  }
  *out = x;
  return 0;
}

void cli_print_help(FILE *f, const char *cmd, const char *usage, const char *examples,
                    const cli_opt *opts, int nopts) {
  fprintf(f, "usage: shardnet %s %s\n\noptions:\n", cmd, usage);
  for (int i = 0; i < nopts; ++i) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s", opts[i].name, opts[i].takes_value ? " V" : "");
    fprintf(f, "  %-22s %s\n", left, opts[i].help);
  }
  if (examples) fprintf(f, "\nexamples:\n%s", examples);
}

int cli_model_config(cli_opt *opts, int nopts, sn_model_config *cfg) {
  const char *arch = cli_get(opts, nopts, "arch");
  if (!arch) {
    cli_error(
        "--arch is required (one of: resnet18 resnet34 resnet50 resnet101 resnet152 "
        "keras_resnet50 ... lenet lenet_bn resnet20 resnet32 resnet56 plain20 plain32 plain56)");
    return EXIT_USAGE;
  }
  sn_model_config_init(cfg, arch);
  long v;
  if (cli_int(opts, nopts, "classes", 1, 1000000, 0, &v)) return EXIT_USAGE;
  cfg->classes = (int)v;
  if (cli_int(opts, nopts, "width", 1, 4096, 0, &v)) return EXIT_USAGE;
  cfg->base_width = (int)v;
  const char *in = cli_get(opts, nopts, "input");
  if (in) {
    int h, w, c;
    char extra;
    if (sscanf(in, "%dx%dx%d%c", &h, &w, &c, &extra) != 3 || h <= 0 || w <= 0 || c <= 0) {
      cli_error("option --input: '%s' is not HxWxC (e.g. 224x224x3)", in);
      return EXIT_USAGE;
    }
    cfg->height = h;
    cfg->width = w;
    cfg->channels = c;
  }
  cfg->include_top = !cli_has(opts, nopts, "no-top");
  const char *p = cli_get(opts, nopts, "pooling");
  if (p) {
    if (cfg->include_top) {
      cli_error("option --pooling needs --no-top");
      return EXIT_USAGE;
    }
    if (!strcmp(p, "avg"))
      cfg->pooling = SN_POOL_AVG;
    else if (!strcmp(p, "max"))
      cfg->pooling = SN_POOL_MAX;
    else if (!strcmp(p, "none"))
      cfg->pooling = SN_POOL_NONE;
    else {
      cli_error("option --pooling: '%s' is not avg, max or none", p);
      return EXIT_USAGE;
    }
  }
  return 0;
}

int cli_input_options(cli_opt *opts, int nopts, sn_labels_from *from, sn_bad_images *bad) {
  const char *lf = cli_get(opts, nopts, "labels-from"), *bi = cli_get(opts, nopts, "bad-images");
  *from = SN_LABELS_AUTO;
  *bad = SN_BAD_FAIL;
  if (lf && !strcmp(lf, "folders"))
    *from = SN_LABELS_FOLDERS;
  else if (lf && !strcmp(lf, "none"))
    *from = SN_LABELS_NONE;
  else if (lf && strcmp(lf, "auto")) {
    cli_error("option --labels-from: '%s' is not auto, folders or none", lf);
    return EXIT_USAGE;
  }
  if (bi && !strcmp(bi, "skip"))
    *bad = SN_BAD_SKIP;
  else if (bi && strcmp(bi, "fail")) {
    cli_error("option --bad-images: '%s' is not fail or skip", bi);
    return EXIT_USAGE;
  }
  return 0;
}

void cli_progress(const char *what, double done, double total, const char *extra) {
  static int tty = -1;
  if (cli_rank != 0 || !cli_verbose) return;
  if (tty < 0) {
    const char *e = getenv("SN_PROGRESS");
    tty = e ? atoi(e) : isatty(2);
  }
  if (!tty) return;
  int width = 30, filled = total > 0 ? (int)(width * done / total) : 0;
  if (filled > width) filled = width;
  char bar[64];
  for (int i = 0; i < width; ++i)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "\r%s [%s] %5.1f%% %s", what, bar, total > 0 ? 100.0 * done / total : 0.0,
          extra ? extra : "");
  if (done >= total) fprintf(stderr, "\n");
  fflush(stderr);
}

#include <sched.h>

/* The environment variables that set engine options (docs/cli.md, "Environment"): for A/B timing,
 * tests of the portable paths and isolating a suspected fusion bug. */
static sn_status env_choice(const char *name, sn_choice *out) {
  const char *e = getenv(name);
  if (!e || !e[0]) return SN_OK;
  if (!strcmp(e, "0"))
    *out = SN_CHOICE_OFF;
  else if (!strcmp(e, "1"))
    *out = SN_CHOICE_ON;
  else
    return sn_error_set(SN_ERR_INVALID, "environment %s=%s: expected 0 or 1", name, e);
  return SN_OK;
}

static sn_status env_flag(const char *name, int *out) {
  const char *e = getenv(name);
  if (!e || !e[0]) return SN_OK;
  if (strcmp(e, "0") && strcmp(e, "1"))
    return sn_error_set(SN_ERR_INVALID, "environment %s=%s: expected 0 or 1", name, e);
  *out = e[0] == '1';
  return SN_OK;
}

sn_status cli_load_weights(cli_job *job, sn_net *net, const char *path, unsigned flags, char *md5) {
  sn_weights_info info;
  sn_status s = sn_weights_load_bcast_info(net, path, job->comm, flags, &info);
  if (s == SN_OK && md5) memcpy(md5, info.md5, sizeof info.md5);
  if (s == SN_OK && info.note[0] && job->rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: note: %s\n", info.note);
  return s;
}

sn_status cli_apply_engine_env(sn_net *net) {
  sn_engine_options o = *sn_net_options(net);
  sn_status s = env_flag("SN_NO_AVX512", &o.portable);
  if (s == SN_OK) s = env_choice("SN_CONV_GEMM", &o.conv_gemm);
  if (s == SN_OK) s = env_choice("SN_CONV_WGRAD", &o.conv_wgrad);
  if (s == SN_OK) s = env_choice("SN_WINOGRAD", &o.winograd);
  if (s == SN_OK) s = env_flag("SN_PROFILE", &o.profile);
  if (s == SN_OK) s = env_flag("SN_COMM_POLL", &o.comm_poll);
  const char *keep = getenv("SN_FP32_LAYERS");
  if (s == SN_OK && keep && keep[0]) {
    char *end;
    unsigned long m = strtoul(keep, &end, 0);
    if (*end || m > SN_FP32_DEFAULT)
      s = sn_error_set(SN_ERR_INVALID, "environment SN_FP32_LAYERS=%s: expected a mask 0..%d", keep,
                       SN_FP32_DEFAULT);
    o.fp32_layers = (unsigned)m;
  }
  const char *fuse = getenv("SN_FUSE");
  if (s == SN_OK && fuse && fuse[0]) {
    char *end;
    unsigned long m = strtoul(fuse, &end, 0);
    if (*end || m > SN_FUSE_ALL)
      s = sn_error_set(SN_ERR_INVALID, "environment SN_FUSE=%s: expected a mask 0..%d", fuse,
                       SN_FUSE_ALL);
    o.fuse = (unsigned)m;
  }
  return s == SN_OK ? sn_net_set_options(net, &o) : s;
}

sn_status cli_set_precision(cli_job *job, sn_net *net, sn_precision p, const char *scales,
                            const char *md5) {
  sn_engine_options o = *sn_net_options(net);
  o.precision = p;
  sn_status s = sn_net_set_options(net, &o);
  if (s != SN_OK || p != SN_PRECISION_INT8) return s;
  sn_scales_info info;
  s = sn_scales_load_bcast(net, scales, job->comm, &info);
  if (s == SN_OK && strcmp(info.weights_md5, md5))
    s = sn_error_set(SN_ERR_INVALID,
                     "file %s: scales calibrated with weights %s (md5 %s), but the weights "
                     "loaded have md5 %s: calibrate again",
                     scales, info.weights, info.weights_md5[0] ? info.weights_md5 : "none",
                     md5[0] ? md5 : "none (random)");
  return s;
}

void cli_print_profile(const sn_net *net) {
  sn_layer_profile *r = NULL;
  int n = 0;
  long passes = 0;
  if (!net || sn_net_profile(net, &r, &n, &passes) != SN_OK || passes == 0) {
    free(r);
    return;
  }
  const int tr = sn_net_is_training(net);
  double total = 0;
  int *order = malloc((n ? (size_t)n : 1) * sizeof *order), m = 0;
  if (!order) {
    free(r);
    return;
  }
#define LAYER_S(i) (r[i].forward_s + r[i].backward_s)
  for (int i = 0; i < n; ++i)
    if (LAYER_S(i) > 0) {
      total += LAYER_S(i);
      order[m++] = i;
    }
  for (int a = 1; a < m; ++a) /* insertion sort, largest first */
    for (int b = a; b > 0 && LAYER_S(order[b]) > LAYER_S(order[b - 1]); --b) {
      int o = order[b];
      order[b] = order[b - 1];
      order[b - 1] = o;
    }
  const double per = 1e3 / (double)passes;
  fprintf(stderr, "shardnet profile: %s, %ld %s, %.3f ms per pass\n", sn_net_arch(net), passes,
          tr ? "training steps (forward, backward; loss and SGD not included)" : "forward passes",
          per * total);
  if (tr)
    fprintf(stderr, "%-32s %-8s %-12s %10s %10s %7s\n", "layer", "kind", "algorithm", "fwd ms",
            "bwd ms", "share");
  else
    fprintf(stderr, "%-32s %-8s %-12s %10s %7s\n", "layer", "kind", "algorithm", "ms/pass",
            "share");
  for (int k = 0; k < m; ++k) {
    const sn_layer_profile *p = &r[order[k]];
    if (tr)
      fprintf(stderr, "%-32s %-8s %-12s %10.3f %10.3f %6.1f%%\n", p->layer, p->kind, p->algorithm,
              per * p->forward_s, per * p->backward_s, 100.0 * LAYER_S(order[k]) / total);
    else
      fprintf(stderr, "%-32s %-8s %-12s %10.3f %6.1f%%\n", p->layer, p->kind, p->algorithm,
              per * p->forward_s, 100.0 * p->forward_s / total);
  }
#undef LAYER_S
  free(order);
  free(r);
}

int cli_job_start(cli_job *job, int *argc, char ***argv, long threads) {
  memset(job, 0, sizeof *job);
  job->comm = sn_comm_serial();
  job->size = 1;
  job->mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
  if (job->mpi) {
    sn_status s = sn_mpi_init(argc, argv);
    if (s == SN_OK) s = sn_comm_create_world(&job->comm);
    if (s != SN_OK) {
      cli_error("%s", sn_last_error());
      return cli_exit_code(s);
    }
    job->rank = sn_comm_rank(job->comm);
    job->size = sn_comm_size(job->comm);
    sn_mpi_exit_status = cli_exit_code; /* the documented exit codes under MPI too */
  }
  cli_rank = job->rank;
  cpu_set_t set;
  int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : cores;
  /* Ranks on this node: Open MPI's local size, Slurm's tasks per node, else this one. */
  const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local) local = getenv("SLURM_NTASKS_PER_NODE");
  if (!local) local = getenv("MPI_LOCALNRANKS");
  int per_node = local && atoi(local) > 0 ? atoi(local) : 1;
  /* --threads, else OMP_NUM_THREADS, else the cores this rank may run on; when the rank is not
   * bound (its mask spans the node), those cores are shared with the node's other ranks. */
  const char *env_threads = getenv("OMP_NUM_THREADS");
  int omp_env = env_threads ? atoi(env_threads) : 0;
  int avail = mine > 0 ? mine : 1;
  if (avail >= cores && per_node > 1) avail = avail / per_node > 0 ? avail / per_node : 1;
  job->threads = threads > 0 ? (int)threads : omp_env > 0 ? omp_env : avail;
  const int warn = job->rank == 0 && cli_verbose; /* --quiet: none */
  if (warn && !(threads <= 0 && omp_env > 0) && per_node * job->threads > cores)
    fprintf(stderr,
            "shardnet: warning: %d ranks x %d threads on this node oversubscribe its %d cores "
            "(set --threads)\n",
            per_node, job->threads, cores);
  else if (warn && mine > 0 && job->threads > mine)
    /* e.g. `mpirun -np 1 ... --threads 2`: Open MPI binds each of up to 2 ranks to one core, so
     * the threads would share it (measured: about half the images per second) */
    fprintf(stderr,
            "shardnet: warning: rank 0: %d threads but its CPU affinity mask allows %d core%s "
            "(the launcher's binding: use mpirun --map-by slot:PE=%d, or --bind-to none)\n",
            job->threads, mine, mine == 1 ? "" : "s", job->threads);
  sn_threads_set(job->threads); /* always >= 1 here */
  return 0;
}

int cli_job_end(cli_job *job, int code) {
  if (job->mpi) {
    sn_comm_destroy(job->comm);
    sn_mpi_finalize();
  }
  return code;
}

static sn_reader *watched_reader;
static void stop_watched_reader(void) {
  sn_reader_destroy(watched_reader);
  watched_reader = NULL;
}
void cli_watch_reader(sn_reader *rd) {
  static int registered;
  watched_reader = rd;
  if (rd && !registered++) {
    atexit(stop_watched_reader);
    sn_mpi_before_exit = stop_watched_reader;
  }
}

void cli_check(cli_job *job, sn_status s) {
  if (job->mpi) {
    sn_mpi_check(job->comm, s, 600.0, "shardnet");
    return;
  }
  if (s != SN_OK) {
    cli_error("%s", sn_last_error());
    /* _exit: a prefetching reader thread may be inside HDF5; HDF5's atexit teardown racing with
     * it crashes. Outputs rely on complete = 1 written last and atomic renames, not on exit. */
    fflush(stdout);
    _exit(cli_exit_code(s));
  }
}

int cli_check_output(const char *cmd, const char *in, const char *out, int resume, int force,
                     sn_output_state *state) {
  if (resume && force) {
    cli_error("%s: --resume and --force exclude each other", cmd);
    return EXIT_USAGE;
  }
  char rin[PATH_MAX], rout[PATH_MAX];
  if (realpath(in, rin) && realpath(out, rout) && !strcmp(rin, rout)) {
    cli_error("%s: output %s is the input file", cmd, out);
    return EXIT_USAGE;
  }
  *state = SN_OUTPUT_MISSING;
  sn_status s = sn_output_status(out, state);
  if (s != SN_OK && !force) {
    cli_error("%s (use --force to replace it)", sn_last_error());
    return cli_exit_code(s);
  }
  if (*state == SN_OUTPUT_COMPLETE && !force) {
    cli_error("%s: output %s is complete already (use --force to recompute it)", cmd, out);
    return EXIT_USAGE;
  }
  if (*state == SN_OUTPUT_INCOMPLETE && !force && !resume) {
    cli_error("%s: output %s exists and is incomplete (use --resume to finish it or --force)", cmd,
              out);
    return EXIT_USAGE;
  }
  return 0;
}

sn_status cli_fopen(const char *path, const char *mode, const char *what, FILE **f) {
  *f = fopen(path, mode);
  return *f ? SN_OK : sn_error_set(SN_ERR_IO, "%s %s", what, path);
}
