/* cmd_convert.c - `shardnet convert` (waiting for io/convert.c). */
#include "cli.h"

int cmd_convert(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cli_error("convert: not implemented yet");
  return EXIT_FAIL;
}
