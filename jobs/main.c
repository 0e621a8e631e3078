/* main.c - the shardnet program: dispatches to subcommands. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "shardnet.h" /* sn_cpu_has_avx512 */

/* 1 if this process is the only MPI rank on its node (or not under a launcher): Open MPI's
 * mpirun, MPICH's hydra, Slurm's srun ("2(x3)": the first node's count). */
static int sole_local_rank(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                        "SLURM_STEP_TASKS_PER_NODE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && atoi(v) > 1) return 0;
  }
  return 1;
}

/* Settings read only when the libraries load, so they are fixed by restarting once:
 * - OpenBLAS 0.3.21 does not know recent Xeons and falls back to its SSE3 "Prescott" kernels
 *   (8x slower here): when it picked Prescott on an AVX-512 (or AVX2) machine and the user set
 *   nothing, use the SkylakeX (Haswell) kernels.
 * - How idle OpenMP threads wait, unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT):
 *   - They never spin for long: OpenBLAS runs its own thread pool beside OpenMP's, and under
 *     mpirun other ranks and MPI progress share the cores; spinning OpenMP threads stole them
 *     (5x slower measured here with libgomp's default 3 ms of spinning): OMP_WAIT_POLICY=passive.
 *   - Each layer is a parallel region of its own (about 180 waits per resnet50 pass at batch 1,
 *     340 per resnet20 training step at batch 128), and a passive worker sleeps at each one and
 *     is woken by a futex: about 10 us per region on this VM against 2 us for a spinning one.
 *     So when this process is the only rank on its node and OpenBLAS is idle (the engine's own
 *     AVX-512 kernels run the convolutions), workers spin about 0.2 ms first
 *     (GOMP_SPINCOUNT=10000), then sleep. libgomp itself cuts the spin to almost nothing when
 *     its threads outnumber the cores of the affinity mask. */
static void fix_environment(char **argv) {
  if (getenv("SN_NO_REEXEC")) return;
  int restart = 0;
  const char *core = openblas_get_corename();
  if (!getenv("OPENBLAS_CORETYPE") && core && !strcmp(core, "Prescott")) {
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                         : NULL;
    if (want) {
      setenv("OPENBLAS_CORETYPE", want, 1);
      restart = 1;
    }
  }
  if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    /* the engine's own AVX-512 kernels, not OpenBLAS, run the convolutions (unless
     * SN_NO_AVX512 asks for the portable ones: cli_apply_engine_env) */
    const char *portable = getenv("SN_NO_AVX512");
    const int own = sn_cpu_has_avx512() && !(portable && portable[0] && strcmp(portable, "0"));
    if (sole_local_rank() && own) setenv("GOMP_SPINCOUNT", "10000", 1);
    restart = 1;
  }
  if (!restart) return;
  setenv("SN_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: shardnet <command> [options]\n\n"
          "commands:\n"
          "  summary   print a model's layers and parameter counts\n"
          "  infer     predictions, logits and features for an HDF5 dataset (mpirun: sharded)\n"
          "  train     train a model on an HDF5 dataset (mpirun: data parallel, synchronized BN)\n"
          "  convert   idx (MNIST/Fashion-MNIST) or image folders to HDF5 datasets\n"
          "  bench     time inference or training steps\n"
          "  calibrate int8 activation scales from a sample of a dataset (mpirun: sharded)\n\n"
          "'shardnet <command> --help' shows a command's options. 'shardnet --version'.\n");
}

int main(int argc, char **argv) {
  fix_environment(argv);
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *c = argv[1];
  if (!strcmp(c, "--version") || !strcmp(c, "version")) {
    printf("shardnet %s\n", SN_VERSION);
    return 0;
  }
  if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(c, "summary")) return cmd_summary(argc, argv);
  if (!strcmp(c, "infer")) return cmd_infer(argc, argv);
  if (!strcmp(c, "train")) return cmd_train(argc, argv);
  if (!strcmp(c, "convert")) return cmd_convert(argc, argv);
  if (!strcmp(c, "bench")) return cmd_bench(argc, argv);
  if (!strcmp(c, "calibrate")) return cmd_calibrate(argc, argv);
  cli_error("unknown command '%s' (commands: summary infer train convert bench calibrate)", c);
  return EXIT_USAGE;
}
