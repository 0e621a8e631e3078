/* cli.h - shared pieces of the shardnet command-line program (jobs/). */
#ifndef SN_CLI_H
#define SN_CLI_H

#include <stdio.h>

#include "mpi_job.h"
#include "shardnet.h"

/* Exit codes (documented in docs/cli.md). */
enum {
  EXIT_OK = 0,
  EXIT_FAIL = 1,
  EXIT_USAGE = 2,
  EXIT_INPUT = 3,
  EXIT_NUMERIC = 4,
  EXIT_COMM = 5,
  EXIT_TEMPFAIL = 75 /* stopped by a signal after writing the checkpoint: resume later */
};

/* Maps a library status to an exit code. */
int cli_exit_code(sn_status s);

/* Option parsing: options are "--name value" or "--name=value" or flags "--name". */
typedef struct cli_opt {
  const char *name;
  int takes_value; /* 0: a flag; 1: one value (given again: the last counts); 2: one or more
                      values (the option repeated, or arguments following it up to the next
                      option, as a shell glob expands) */
  const char *help;
  const char *value; /* parsed value (or "1" for a given flag; the first of several), or NULL */
} cli_opt;

/* Parses argv[first..argc) into opts; unknown options and stray arguments are errors (message on
 * stderr naming them). Returns 0 or EXIT_USAGE. */
int cli_parse(const char *cmd, int argc, char **argv, int first, cli_opt *opts, int nopts);
const char *cli_get(cli_opt *opts, int nopts, const char *name);
/* Every value of an option taking several (*n of them; NULL and 0 if absent). */
const char **cli_get_all(cli_opt *opts, int nopts, const char *name, int *n);
int cli_has(cli_opt *opts, int nopts, const char *name);
/* Integer/float option with range check; returns 0 or EXIT_USAGE with a message naming it. */
int cli_int(cli_opt *opts, int nopts, const char *name, long lo, long hi, long dflt, long *out);
int cli_float(cli_opt *opts, int nopts, const char *name, double lo, double hi, double dflt,
              double *out);
void cli_print_help(FILE *f, const char *cmd, const char *usage, const char *examples,
                    const cli_opt *opts, int nopts);

/* The model flags every model-building subcommand takes: --arch --classes --input --no-top
 * --pooling --width. */
#define CLI_MODEL_OPTS                                                                             \
  {"arch", 1, "architecture (see `shardnet summary --help`)", NULL},                               \
      {"classes", 1, "number of classes (default: 1000, or 10 for small-image models)", NULL},     \
      {"input", 1, "input size HxWxC (default: the architecture's)", NULL},                        \
      {"no-top", 0, "feature extractor: no classifier", NULL},                                     \
      {"pooling", 1, "with --no-top: avg|max|none (default avg)", NULL}, {                         \
    "width", 1, "base width (reduced-width variants; default the architecture's)", NULL            \
  }

/* Fills cfg from the model flags. Returns 0 or EXIT_USAGE. */
int cli_model_config(cli_opt *opts, int nopts, sn_model_config *cfg);
/* --labels-from auto|folders|none and --bad-images fail|skip (defaults auto, fail). Returns 0 or
 * EXIT_USAGE. */
int cli_input_options(cli_opt *opts, int nopts, sn_labels_from *from, sn_bad_images *bad);

/* Verbosity: 0 quiet, 1 normal. Progress bars print on rank 0 only. */
extern int cli_verbose;
extern int cli_rank;
/* Prints "shardnet: <msg>" on stderr (every rank may call; the message carries the rank). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress bar on rank 0 (stderr, only if a terminal or SN_PROGRESS=1). */
void cli_progress(const char *what, double done, double total, const char *extra);
double cli_now(void);

/* Job context: MPI when launched by mpirun (OMPI_COMM_WORLD_SIZE / PMI_SIZE set), else serial.
 * Sets cli_rank, the thread count (--threads, default: the cores this rank may use) and warns on
 * rank 0 when ranks x threads exceed the node's cores. */
typedef struct cli_job {
  sn_comm *comm;
  int rank, size, threads, mpi;
} cli_job;
int cli_job_start(cli_job *job, int *argc, char ***argv, long threads);
/* Ends the job: frees the communicator, finalises MPI. Returns code. */
int cli_job_end(cli_job *job, int code);
/* The reader rd (NULL: none) is destroyed before the process exits through cli_check (atexit,
 * registered after HDF5's own handler; under MPI before sn_mpi_check finalizes MPI, which closes
 * parallel HDF5), so that no reader thread is inside HDF5 while the library is torn down.
 * Call cli_watch_reader(NULL) before destroying it yourself. */
void cli_watch_reader(sn_reader *rd);
/* Collective failure check (see sn_mpi_check); serial: prints and exits on failure. */
void cli_check(cli_job *job, sn_status s);
/* cli_check that also agrees on flags (sn_mpi_check_flags): *flags is this rank's on entry and
 * the OR over the ranks on return. */
void cli_check_flags(cli_job *job, sn_status s, unsigned *flags);

/* signals.c: stop requests. After cli_catch_stop_signals, a first SIGTERM, SIGINT or SIGUSR1 is
 * only recorded (cli_stop_flags gives its CLI_STOP_* bit until the end of the process); a second
 * one of any of them ends the process at once, with the signal's own status. */
enum { CLI_STOP_TERM = 2u, CLI_STOP_INT = 4u, CLI_STOP_USR1 = 8u };
#define CLI_STOP_ANY (CLI_STOP_TERM | CLI_STOP_INT | CLI_STOP_USR1)
void cli_catch_stop_signals(void);
/* Once the stop is done (checkpoint written): the process only has to exit, so that the SIGTERM
 * mpirun sends to the other ranks when the first one exits 75 does not cut their exit short. */
void cli_ignore_stop_signals(void);
unsigned cli_stop_flags(void);
/* "SIGTERM", "SIGINT" or "SIGUSR1" for the first stop bit in flags. */
const char *cli_stop_name(unsigned flags);

/* Loads weights on rank 0 and broadcasts them (sn_weights_load_bcast_info; collective); md5 (33
 * bytes, may be NULL) receives the file's MD5. Rank 0 prints the loader's note (a Keras file whose
 * layer names differ from the net's, paired by position as Keras pairs them) as one line. */
sn_status cli_load_weights(cli_job *job, sn_net *net, const char *path, unsigned flags, char *md5);

/* Applies the engine options set in the environment (SN_NO_AVX512, SN_CONV_GEMM, SN_CONV_WGRAD,
 * SN_WINOGRAD, SN_FUSE, SN_FP32_LAYERS, SN_PROFILE, SN_COMM_POLL; docs/cli.md) to net, before it is
 * planned. */
sn_status cli_apply_engine_env(sn_net *net);
/* Sets the precision of net's inference plans; int8 loads the scales file (rank 0 reads,
 * broadcast) and checks that it was calibrated for the weights loaded (md5: theirs, "" for random
 * parameters). Collective. */
sn_status cli_set_precision(cli_job *job, sn_net *net, sn_precision p, const char *scales,
                            const char *md5);

/* The rules for an existing output OUT of a command reading IN (docs/cli.md, "Existing
 * outputs"): --resume and --force exclude each other, OUT may not be IN, a complete OUT needs
 * --force, an incomplete one --resume or --force. Sets *state. Returns 0 or the exit code after
 * printing the message. */
int cli_check_output(const char *cmd, const char *in, const char *out, int resume, int force,
                     sn_output_state *state);
/* fopen(path, mode); on failure SN_ERR_IO "<what> <path>" and *f = NULL. */
sn_status cli_fopen(const char *path, const char *mode, const char *what, FILE **f);

/* calibrate: the calibration dataset's rows read and preprocessed as the net takes them
 * (cmd_calibrate.c), and the comparison of the bf16 and int8 plans with float32 that --report asks
 * for (calib_report.c). */
typedef struct calib_read {
  sn_dataset *ds;
  const char *data; /* its path, for messages */
  sn_preprocess pre;
  long batch; /* images per pass */
} calib_read;
/* Rows rows[0..m) into x (m, H, W, C) preprocessed; raw holds m images of the dataset's dtype. */
sn_status calib_read_rows(const calib_read *rd, const int64_t *rows, int m, void *raw, float *x);
/* Compares the bf16 and int8 plans of net (calibrated) with its float32 plan on `rows` rows
 * outside the calibration sample of cal_rows rows (where the dataset has others) and writes the
 * per-layer CSV to path (rank 0), with a summary on stdout. Collective; exits on failure. */
void calib_report(cli_job *job, sn_net *net, const calib_read *rd, long rows, long cal_rows,
                  const char *path);
/* SN_ERR_INVALID when net's options and this CPU run neither bf16 nor int8 (before calibrating). */
sn_status calib_report_check(const sn_net *net);

/* report.c: what infer and train print (rank 0) and append to --metrics. */
/* Top-1 and top-k accuracy and the per-class lines (up to 100 classes), and the confusion matrix
 * as TSV into confusion (may be NULL), from metrics summed over the ranks. */
void cli_report_accuracy(const sn_metrics *m, const sn_dataset *ds, int classes, int k,
                         FILE *confusion);
/* The closing line of infer and its --metrics JSON line (then closes metrics). tot: rows, data
 * wait, compute seconds and wall seconds, summed over the ranks; skipped: bad inputs left out. */
void cli_report_infer(const cli_job *job, const double tot[4], double secs, const char *out,
                      long batch, int64_t skipped, FILE *metrics, const char *metrics_path);
/* One epoch of train. */
typedef struct cli_epoch {
  int64_t epoch, step; /* epoch (0-based) and global steps completed */
  int done;            /* 0: cut short by --steps */
  double sums[5];      /* over the ranks: loss x rows, top-1 hits, top-5 hits, rows (the whole
                          epoch's, also the part before a resume), rows trained by this run */
  int top5;            /* report top-5 accuracy (more than 5 classes) */
  int has_val;
  double val_loss, val_correct, val_top5, val_count;
  double lr, secs, wait;       /* lr of the last step; seconds of the steps; data wait so far */
  const sn_warnings *warnings; /* the run's sanity warnings, on every metrics line (may be NULL) */
} cli_epoch;
void cli_report_epoch(const cli_job *job, const cli_epoch *e, const sn_net *net, FILE *metrics);
/* With the profile option (SN_PROFILE=1) on stderr: the time of every layer over the passes of
 * net's plan, largest first, with each convolution's algorithm (docs/cli.md). Nothing without
 * it; net may be NULL. Call when done with the net. */
void cli_print_profile(const sn_net *net);

int cmd_summary(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);

#endif
