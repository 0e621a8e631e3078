/* md5.c - MD5 (RFC 1321): incremental hashing and the digest of a whole file. */
#include "md5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SN_MD5_ROTL(x, c) (((x) << (c)) | ((x) >> (32 - (c))))

/* Per-round shift amounts and the constants K[i] = floor(2^32 * |sin(i + 1)|). */
static const uint32_t sn_md5_s[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                      5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                      4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                      6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
static const uint32_t sn_md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

/* Processes one 64-byte block (little-endian words). */
static void sn_md5_block(uint32_t st[4], const unsigned char *p) {
  uint32_t w[16];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
           (uint32_t)p[4 * i + 3] << 24;
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
  for (int i = 0; i < 64; ++i) {
    uint32_t f;
    int g;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) & 15;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) & 15;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) & 15;
    }
    uint32_t tmp = d;
    d = c;
    c = b;
    b = b + SN_MD5_ROTL(a + f + sn_md5_k[i] + w[g], sn_md5_s[i]);
    a = tmp;
  }
  st[0] += a;
  st[1] += b;
  st[2] += c;
  st[3] += d;
}

void sn_md5_init(sn_md5 *m) {
  m->state[0] = 0x67452301;
  m->state[1] = 0xefcdab89;
  m->state[2] = 0x98badcfe;
  m->state[3] = 0x10325476;
  m->bytes = 0;
}

void sn_md5_update(sn_md5 *m, const void *data, size_t len) {
  const unsigned char *p = data;
  size_t have = (size_t)(m->bytes & 63);
  m->bytes += len;
  if (have) {
    size_t take = 64 - have < len ? 64 - have : len;
    memcpy(m->block + have, p, take);
    p += take;
    len -= take;
    if (have + take < 64) return;
    sn_md5_block(m->state, m->block);
  }
  for (; len >= 64; p += 64, len -= 64)
    sn_md5_block(m->state, p);
  memcpy(m->block, p, len);
}

void sn_md5_final(sn_md5 *m, char hex[33]) {
  uint64_t bits = m->bytes * 8;
  static const unsigned char pad[64] = {0x80};
  size_t have = (size_t)(m->bytes & 63);
  sn_md5_update(m, pad, have < 56 ? 56 - have : 120 - have);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = (unsigned char)(bits >> (8 * i));
  sn_md5_update(m, len, 8);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    unsigned char byte = (unsigned char)(m->state[i / 4] >> (8 * (i % 4)));
    hex[2 * i] = digits[byte >> 4];
    hex[2 * i + 1] = digits[byte & 15];
  }
  hex[32] = '\0';
}

sn_status sn_md5_file(const char *path, char hex[33]) {
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = malloc(CHUNK);
  if (!buf) {
    fclose(f);
    return sn_error_set(SN_ERR_NOMEM, "file %s: out of memory for MD5", path);
  }
  sn_md5 m;
  sn_md5_init(&m);
  size_t got;
  while ((got = fread(buf, 1, CHUNK, f)) > 0)
    sn_md5_update(&m, buf, got);
  int err = ferror(f);
  free(buf);
  fclose(f);
  if (err) return sn_error_set(SN_ERR_IO, "file %s: read error while hashing", path);
  sn_md5_final(&m, hex);
  return SN_OK;
}
