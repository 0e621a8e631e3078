/* main.c - the shardnet program: dispatches to subcommands. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* OpenBLAS 0.3.21 does not know recent Xeons and falls back to its SSE3 "Prescott" kernels (8x
 * slower here). It reads OPENBLAS_CORETYPE only when it loads, so when it picked Prescott on an
 * AVX-512 machine and the user set nothing, restart once with the AVX-512 kernels. */
static void fix_openblas_core(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv("SN_NO_REEXEC")) return;
  const char *core = openblas_get_corename();
  if (!core || strcmp(core, "Prescott") != 0) return;
  __builtin_cpu_init();
  const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                       : NULL;
  if (!want) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
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
  fix_openblas_core(argv);
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
