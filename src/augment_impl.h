/* augment_impl.h - private: the pieces of augment.c its tests check directly. */
#ifndef SN_AUGMENT_IMPL_H
#define SN_AUGMENT_IMPL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The crop resized-crop takes for the random stream r of an h x w image with the smallest area
 * fraction smin (outside (0, 1]: SN_CROP_SCALE_DEFAULT): top-left corner (top, left) and size
 * (ch, cw). */
void sn_resized_crop_params(uint64_t r, int h, int w, double smin, int *top, int *left, int *ch,
                            int *cw);

#ifdef __cplusplus
}
#endif
#endif /* SN_AUGMENT_IMPL_H */
