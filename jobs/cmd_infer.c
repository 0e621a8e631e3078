/* cmd_infer.c - `shardnet infer`. */
#include "cli.h"

int cmd_infer(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cli_error("infer: not implemented yet");
  return EXIT_FAIL;
}
