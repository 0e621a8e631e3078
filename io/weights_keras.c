/* weights_keras.c - saving weights in Keras 2's legacy HDF5 layout (model.save_weights("x.h5")),
 * which Keras' load_weights reads by position (docs/weights.md, "Writing Keras files").
 *
 * Root attributes: layer_names (fixed-length strings: the layers of sn_net_keras_layers, in Keras'
 * model.layers order, the weightless ones included), backend = "tensorflow", keras_version =
 * "2.15.0" (Keras applies its Keras 1 conversions to files without it). One group per layer with
 * the attribute weight_names: "<layer>/kernel:0", "<layer>/bias:0" (convolution, dense), gamma,
 * beta, moving_mean, moving_variance (batch norm), or an empty float64 array for a layer without
 * weights, as Keras 2 writes it; the tensors at <layer>/<layer>/<role>:0, float32, in engine layout
 * (= Keras': HWIO kernels, (in, out) dense kernels). Written to a temporary name and renamed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "shardnet.h"

/* weight_names of a layer without weights: an empty float64 array, as Keras 2 writes it. */
static sn_status empty_weight_names(hid_t g, const char *layer, const char *path) {
  hsize_t zero = 0;
  hid_t s = H5Screate_simple(1, &zero, NULL);
  hid_t a = s < 0 ? -1 : H5Acreate2(g, "weight_names", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  if (s >= 0) H5Sclose(s);
  if (a < 0)
    return sn_error_set(SN_ERR_IO, "file %s: layer %s: cannot write weight_names", path, layer);
  H5Aclose(a);
  return SN_OK;
}

/* One layer's group: weight_names and its tensors (the net's tensors of the layer, in Keras'
 * order, which is the net's role order). */
static sn_status write_layer(hid_t f, const sn_net *net, const char *layer, const char *path) {
  hid_t g = H5Gcreate2(f, layer, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return sn_error_set(SN_ERR_IO, "file %s: layer %s: cannot create group", path, layer);
  char names[SN_ROLE_MOVING_VAR + 1][SN_MAX_NAME + 24];
  const char *np[SN_ROLE_MOVING_VAR + 1];
  int nw = 0;
  sn_status st = SN_OK;
  for (int i = 0; i < sn_net_num_params(net) && !st; ++i) {
    sn_param_info p;
    st = sn_net_param(net, i, &p);
    if (st || strcmp(p.layer, layer)) continue;
    if (nw > SN_ROLE_MOVING_VAR) {
      st = sn_error_set(SN_ERR_INVALID, "file %s: layer %s: too many tensors", path, layer);
      break;
    }
    snprintf(names[nw], sizeof names[nw], "%s/%s:0", layer,
             sn_param_role_name(p.role, SN_STYLE_KERAS, p.layer_kind));
    np[nw] = names[nw];
    int64_t dims[4];
    for (int k = 0; k < p.ndim; ++k)
      dims[k] = p.shape[k];
    st = sn_h5_write_f32(g, names[nw], path, p.ndim, dims, p.data);
    nw++;
  }
  if (!st)
    st = nw ? sn_h5_write_str_array_attr(g, "weight_names", np, nw, 1, path)
            : empty_weight_names(g, layer, path);
  H5Gclose(g);
  return st;
}

static sn_status save_keras(const sn_net *net, const char *path) {
  const char **layers = NULL;
  int n = 0;
  sn_status st = sn_net_keras_layers(net, &layers, &n);
  if (st) return st;
  for (int k = 0; k < n && !st; ++k)
    if (strchr(layers[k], '/'))
      st = sn_error_set(SN_ERR_INVALID, "file %s: layer name %s contains '/'", path, layers[k]);
  hid_t f = -1;
  char tmp[4096];
  sn_h5_lock(); /* HDF5 is not thread-safe here (h5util.h) */
  if (!st) st = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
  if (!st) {
    st = sn_h5_write_str_array_attr(f, "layer_names", layers, n, 1, path);
    if (!st) st = sn_h5_write_str_attr(f, "backend", "tensorflow", path);
    if (!st) st = sn_h5_write_str_attr(f, "keras_version", "2.15.0", path);
    for (int k = 0; k < n && !st; ++k)
      st = write_layer(f, net, layers[k], path);
    sn_status fin = sn_h5_finish_atomic(f, tmp, path, st == SN_OK);
    if (!st) st = fin;
  }
  sn_h5_unlock();
  free(layers);
  return st;
}

sn_status sn_weights_save_as(const sn_net *net, const char *path, sn_weights_format fmt) {
  if (!net || !path)
    return sn_error_set(SN_ERR_INVALID, "sn_weights_save_as: net and path are required");
  if (fmt == SN_WEIGHTS_NATIVE) return sn_weights_save(net, path);
  if (fmt != SN_WEIGHTS_KERAS)
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: weights are saved in the native or the Keras layout, not in "
                        "format %d",
                        path, (int)fmt);
  return save_keras(net, path);
}
