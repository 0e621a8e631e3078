// md5_test.cpp - tests of io/md5.c: the RFC 1321 test suite, incremental updates across block
// and padding boundaries, and the digest of a file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "md5.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

std::string md5_of(const std::string &s) {
  sn_md5 m;
  sn_md5_init(&m);
  sn_md5_update(&m, s.data(), s.size());
  char hex[33];
  sn_md5_final(&m, hex);
  return hex;
}

void write_text(const std::string &path, const std::string &text) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

} // namespace

TEST(Md5, Rfc1321Suite) {
  EXPECT_EQ(md5_of(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_of("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5_of("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_of("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5_of("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  std::string digits;
  for (int i = 0; i < 8; ++i)
    digits += "1234567890";
  EXPECT_EQ(md5_of(digits), "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(Md5, IncrementalMatchesOneShotAndFile) {
  std::string data(300001, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = (char)(i * 131 + (i >> 7));
  const std::string whole = md5_of(data);
  for (size_t chunk : {1u, 7u, 55u, 56u, 63u, 64u, 65u, 1000u}) {
    sn_md5 m;
    sn_md5_init(&m);
    for (size_t p = 0; p < data.size(); p += chunk)
      sn_md5_update(&m, data.data() + p, std::min(chunk, data.size() - p));
    char hex[33];
    sn_md5_final(&m, hex);
    EXPECT_EQ(whole, hex) << "chunk " << chunk;
  }
  // Padding boundaries: lengths 55, 56, 63, 64 and 119/120 must all differ and be stable.
  EXPECT_EQ(md5_of(std::string(56, 'a')), "3b0c8ac703f828b04c6c197006d17218");
  EXPECT_EQ(md5_of(std::string(64, 'a')), "014842d480b571495a4a0363793f7367");
  const std::string dir = sntest::temp_dir();
  write_text(dir + "/blob", data);
  char hex[33];
  ASSERT_EQ(sn_md5_file((dir + "/blob").c_str(), hex), SN_OK);
  EXPECT_EQ(whole, hex);
  EXPECT_EQ(sn_md5_file((dir + "/absent").c_str(), hex), SN_ERR_IO);
  EXPECT_TRUE(contains(sn_last_error(), dir + "/absent"));
}
