// runtime_test.cpp - tests of src/runtime.c: the version the library reports, the thread count,
// sn_free.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "shardnet.h"

TEST(Runtime, VersionIsTheHeadersAndItsParts) {
  EXPECT_STREQ(sn_version(), SN_VERSION);
  const std::string parts = std::to_string(SN_VERSION_MAJOR) + "." +
                            std::to_string(SN_VERSION_MINOR) + "." +
                            std::to_string(SN_VERSION_PATCH);
  EXPECT_EQ(parts, SN_VERSION);
}

TEST(Runtime, ThreadsSetAndGet) {
  const int before = sn_threads_get();
  ASSERT_GE(before, 1);
  ASSERT_EQ(sn_threads_set(3), SN_OK);
  EXPECT_EQ(sn_threads_get(), 3);
  ASSERT_EQ(sn_threads_set(1), SN_OK);
  EXPECT_EQ(sn_threads_get(), 1);
  EXPECT_EQ(sn_threads_set(0), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("0 threads"), std::string::npos) << sn_last_error();
  EXPECT_EQ(sn_threads_get(), 1); // unchanged by the refused call
  ASSERT_EQ(sn_threads_set(before), SN_OK);
}

TEST(Runtime, FreeTakesWhatTheLibraryAllocated) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "lenet");
  cfg.skip_init = 1;
  sn_net *net = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  char *text = nullptr;
  ASSERT_EQ(sn_net_summary(net, &text), SN_OK);
  ASSERT_NE(text, nullptr);
  sn_free(text);
  sn_free(nullptr);
  sn_net_destroy(net);
}
