/* cmd_bench.c - `shardnet bench`. */
#include "cli.h"

int cmd_bench(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cli_error("bench: not implemented yet");
  return EXIT_FAIL;
}
