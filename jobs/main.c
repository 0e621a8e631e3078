/* main.c - the shardnet program: dispatches to subcommands. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Two settings are read only when the libraries load, so they are fixed by restarting once:
 * - OpenBLAS 0.3.21 does not know recent Xeons and falls back to its SSE3 "Prescott" kernels
 *   (8x slower here): when it picked Prescott on an AVX-512 (or AVX2) machine and the user set
 *   nothing, use the SkylakeX (Haswell) kernels.
 * - OpenBLAS runs its own thread pool beside OpenMP's; spinning idle OpenMP threads steal the
 *   cores OpenBLAS (and, under mpirun, other ranks and MPI progress) need - 5x slower measured
 *   here. Unless the user chose, idle OpenMP threads sleep (OMP_WAIT_POLICY=passive). */
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
  if (!getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
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
          "  bench     time inference or training steps\n\n"
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
  cli_error("unknown command '%s' (commands: summary infer train convert bench)", c);
  return EXIT_USAGE;
}
