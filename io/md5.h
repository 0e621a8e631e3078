/* md5.h - private: MD5 (RFC 1321), used to identify weight files (io/weights.c) and by tests.
 * No HDF5: any io/ file or test may include it. */
#ifndef SN_MD5_H
#define SN_MD5_H

#include <stddef.h>
#include <stdint.h>

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_md5 {
  uint32_t state[4];
  uint64_t bytes;          /* total length so far */
  unsigned char block[64]; /* pending partial block */
} sn_md5;

void sn_md5_init(sn_md5 *m);
void sn_md5_update(sn_md5 *m, const void *data, size_t len);
/* Writes 32 lowercase hex digits and a terminating NUL into hex (33 bytes). */
void sn_md5_final(sn_md5 *m, char hex[33]);
/* MD5 of a whole file; missing or unreadable -> SN_ERR_IO naming the file. */
sn_status sn_md5_file(const char *path, char hex[33]);

#ifdef __cplusplus
}
#endif
#endif /* SN_MD5_H */
