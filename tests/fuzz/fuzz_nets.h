/* fuzz_nets.h - the two small nets the weight harnesses load into, and a load-and-check step.
 *
 * Net 0: resnet18 (torch style), base width 2, input 32x32x3, 10 classes, planned for training
 *        (so that it has momentum buffers for checkpoints).
 * Net 1: keras_resnet50 (Keras style), base width 2, input 32x32x3, 10 classes.
 */
#ifndef SN_FUZZ_NETS_H
#define SN_FUZZ_NETS_H

#include "fuzz_common.h"

#define FZ_NETS 2

typedef struct fz_net {
  sn_net *net;
  int np;              /* parameter tensors */
  sn_param_info *info; /* (np) */
  float *snap;         /* (block floats) copy of the parameter block */
  float *snap_mom;     /* (momentum floats) or NULL */
  size_t nblock, nmom;
} fz_net;

static fz_net fz_nets[FZ_NETS];

static void fz_nets_setup(void) {
  static const char *arch[FZ_NETS] = {"resnet18", "keras_resnet50"};
  for (int k = 0; k < FZ_NETS; ++k) {
    fz_net *z = &fz_nets[k];
    sn_model_config cfg;
    sn_model_config_init(&cfg, arch[k]);
    cfg.classes = 10;
    cfg.height = cfg.width = 32;
    cfg.channels = 3;
    cfg.base_width = 2;
    if (sn_net_create(&cfg, 1234 + k, &z->net) != SN_OK)
      fz_fail("net %s: %s", arch[k], sn_last_error());
    if (k == 0 && sn_net_plan(z->net, 1, 1) != SN_OK) fz_fail("plan: %s", sn_last_error());
    z->np = sn_net_num_params(z->net);
    z->info = calloc((size_t)z->np, sizeof *z->info);
    for (int i = 0; i < z->np; ++i)
      if (sn_net_param(z->net, i, &z->info[i]) != SN_OK) fz_fail("param %d", i);
    float *b = sn_net_param_block(z->net, &z->nblock);
    z->snap = malloc(z->nblock * sizeof(float));
    memcpy(z->snap, b, z->nblock * sizeof(float));
    float *m = sn_net_momentum_block(z->net, &z->nmom);
    if (m && z->nmom) z->snap_mom = calloc(z->nmom, sizeof(float));
  }
}

/* Takes a fresh snapshot of net k's parameter and momentum blocks. */
static void fz_snapshot(fz_net *z) {
  size_t n;
  memcpy(z->snap, sn_net_param_block(z->net, &n), z->nblock * sizeof(float));
  if (z->snap_mom) memcpy(z->snap_mom, sn_net_momentum_block(z->net, &n), z->nmom * sizeof(float));
}

static void fz_check_unchanged(const fz_net *z, const char *call, sn_status st) {
  size_t n;
  if (memcmp(z->snap, sn_net_param_block(z->net, &n), z->nblock * sizeof(float)) != 0)
    fz_fail("%s failed (%s: %s) but changed the parameters of %s (half-loaded)", call,
            sn_status_string(st), sn_last_error(), sn_net_arch(z->net));
  if (z->snap_mom &&
      memcmp(z->snap_mom, sn_net_momentum_block(z->net, &n), z->nmom * sizeof(float)) != 0)
    fz_fail("%s failed (%s: %s) but changed the momentum of %s", call, sn_status_string(st),
            sn_last_error(), sn_net_arch(z->net));
}

/* Loads path into net k with fmt and checks the promises. Returns the status. */
static sn_status fz_load_weights(int k, const char *path, sn_weights_format fmt) {
  fz_net *z = &fz_nets[k];
  fz_snapshot(z);
  char md5[33];
  memset(md5, 'x', sizeof md5);
  sn_error_clear();
  sn_status st = sn_weights_load(z->net, path, fmt, md5);
  fz_check_status(st, "sn_weights_load", path);
  fz_check_no_open_h5("sn_weights_load");
  if (st != SN_OK) {
    fz_check_unchanged(z, "sn_weights_load", st);
  } else if (strlen(md5) != 32) {
    fz_fail("sn_weights_load succeeded without a 32-digit MD5");
  }
  return st;
}

static sn_status fz_load_checkpoint(int k, const char *path) {
  fz_net *z = &fz_nets[k];
  fz_snapshot(z);
  sn_checkpoint_meta m;
  memset(&m, 0, sizeof m);
  sn_error_clear();
  sn_status st = sn_checkpoint_load(z->net, path, NULL, &m);
  fz_check_status(st, "sn_checkpoint_load", path);
  fz_check_no_open_h5("sn_checkpoint_load");
  if (st != SN_OK) fz_check_unchanged(z, "sn_checkpoint_load", st);
  return st;
}

#endif /* SN_FUZZ_NETS_H */
