/* cmd_summary.c - `shardnet summary`: the Keras-style table and parameter counts. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_summary(int argc, char **argv) {
  cli_opt opts[] = {CLI_MODEL_OPTS, {"help", 0, "show this help", NULL}};
  int n = (int)(sizeof opts / sizeof opts[0]);
  if (cli_parse("summary", argc, argv, 2, opts, n)) return EXIT_USAGE;
  if (cli_has(opts, n, "help")) {
    cli_print_help(stdout, "summary",
                   "--arch A [--classes K] [--input HxWxC] [--no-top --pooling avg]",
                   "  shardnet summary --arch keras_resnet50\n"
                   "  shardnet summary --arch resnet50 --no-top --pooling avg\n"
                   "  shardnet summary --arch resnet20 --input 28x28x1\n",
                   opts, n);
    printf("\narchitectures:");
    for (const char *const *a = sn_arch_names(); *a; ++a)
      printf(" %s", *a);
    printf("\n");
    return 0;
  }
  sn_model_config cfg;
  if (cli_model_config(opts, n, &cfg)) return EXIT_USAGE;
  sn_net *net;
  cfg.skip_init = 1; /* only shapes and counts are needed */
  sn_status s = sn_net_create(&cfg, 1, &net);
  if (s != SN_OK) {
    cli_error("%s", sn_last_error());
    return cli_exit_code(s);
  }
  char *text;
  s = sn_net_summary(net, &text);
  if (s == SN_OK) {
    fputs(text, stdout);
    free(text);
  } else {
    cli_error("%s", sn_last_error());
  }
  sn_net_destroy(net);
  return cli_exit_code(s);
}
