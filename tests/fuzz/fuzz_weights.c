/* fuzz_weights.c - weight and checkpoint loaders on arbitrary file bytes.
 *
 * Input: a whole HDF5 file (seeds: small valid torchvision, Keras, Keras 3, native and
 * checkpoint files, tests/fuzz/corpus/fuzz_weights). The bytes are written to tmpfs and loaded
 * into both nets of fuzz_nets.h (net 0 with the format size % 4, so every forced format is
 * tried, net 1 with auto-detection) and as a checkpoint into net 0.
 * Mostly exercises HDF5's own parser against corrupt files (uninstrumented: it shows as a SEGV
 * or an intercepted memcpy/strlen report) and shardnet's handling of what HDF5 returns.
 */
#include "fuzz_nets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_nets_setup();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_path("weights.h5");
  fz_write(path, data, size);
  fz_load_weights(0, path, (sn_weights_format)(size % 4));
  fz_load_weights(1, path, SN_WEIGHTS_AUTO);
  fz_load_checkpoint(0, path);
  return 0;
}
