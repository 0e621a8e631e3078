/* fuzz_dataset.c - dataset open, validation and row reads on arbitrary file bytes.
 *
 * Input: a whole HDF5 file (seeds: small raw, float, grey and encoded datasets,
 * tests/fuzz/corpus/fuzz_dataset); its last byte also selects the read options of fuzz_ds.h
 * (a trailing byte after the end of an HDF5 file is ignored by HDF5).
 */
#include "fuzz_ds.h"
#include "h5util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  sn_h5_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *path = fz_path("dataset.h5");
  fz_write(path, data, size);
  fz_dataset_exercise(path, data[size - 1]);
  return 0;
}
