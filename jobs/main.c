/* main.c - the shardnet program: dispatches to subcommands. */
#include <string.h>

#include "cli.h"

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
