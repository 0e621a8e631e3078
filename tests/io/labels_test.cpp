// labels_test.cpp - tests of io/labels.c: the two label-file forms (a plain list and Keras'
// imagenet_class_index.json, the shipped files of jobs/data/ included), the class-count check
// naming both counts, and the malformed files each refused with a message naming the line.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

std::string write_file(const std::string &name, const std::string &text) {
  std::string p = sntest::temp_dir() + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string shipped(const char *name) { return std::string(SN_SOURCE_DIR "/jobs/data/") + name; }

// Reads text as a label file; returns the status and the message (empty on success).
sn_status read_text(const std::string &text, int classes, sn_labels **l, std::string *msg,
                    const char *name = "labels.txt") {
  sn_status s = sn_labels_read(write_file(name, text).c_str(), classes, l);
  *msg = s == SN_OK ? "" : sn_last_error();
  return s;
}

TEST(Labels, PlainList) {
  sn_labels *l = nullptr;
  std::string m;
  // a byte-order mark, CR LF, trailing blank lines; names keep inner and edge spaces
  ASSERT_EQ(read_text("\xEF\xBB\xBFtench\r\ngreat white shark\r\n sp ace \n\n\n", 3, &l, &m), SN_OK)
      << m;
  EXPECT_EQ(sn_labels_count(l), 3);
  EXPECT_STREQ(sn_labels_name(l, 0), "tench");
  EXPECT_STREQ(sn_labels_name(l, 1), "great white shark");
  EXPECT_STREQ(sn_labels_name(l, 2), " sp ace ");
  EXPECT_EQ(sn_labels_wnid(l, 0), nullptr); // a plain list has no WordNet ids
  EXPECT_EQ(sn_labels_name(l, 3), nullptr);
  EXPECT_EQ(sn_labels_name(l, -1), nullptr);
  sn_labels_destroy(l);
  // no final newline; classes 0: any count
  ASSERT_EQ(read_text("a\nb", 0, &l, &m), SN_OK) << m;
  EXPECT_EQ(sn_labels_count(l), 2);
  EXPECT_STREQ(sn_labels_name(l, 1), "b");
  sn_labels_destroy(l);
  sn_labels_destroy(nullptr);
  EXPECT_EQ(sn_labels_count(nullptr), 0);
}

TEST(Labels, KerasClassIndex) {
  sn_labels *l = nullptr;
  std::string m;
  // keys in any order, any white space, escapes (\u00e9 as UTF-8, a surrogate pair)
  const char *json = "{\n \"1\" : [\"n01443537\", \"gold\\\"fish\"],\n"
                     "\"0\": [\"n01440764\",\"t\\u00e9nch\"], \"2\":[\"n0\",\"\\ud83d\\ude00\"]}\n";
  ASSERT_EQ(read_text(json, 3, &l, &m, "index.json"), SN_OK) << m;
  EXPECT_EQ(sn_labels_count(l), 3);
  EXPECT_STREQ(sn_labels_wnid(l, 0), "n01440764");
  EXPECT_STREQ(sn_labels_name(l, 0), "t\xC3\xA9nch");
  EXPECT_STREQ(sn_labels_name(l, 1), "gold\"fish");
  EXPECT_STREQ(sn_labels_name(l, 2), "\xF0\x9F\x98\x80");
  sn_labels_destroy(l);
  // the form is told by the content, not the extension
  ASSERT_EQ(read_text("  {\"0\": [\"w\", \"x\"]}", 1, &l, &m, "names.txt"), SN_OK) << m;
  EXPECT_STREQ(sn_labels_wnid(l, 0), "w");
  sn_labels_destroy(l);
}

TEST(Labels, ShippedFilesAgree) {
  sn_labels *json = nullptr, *keras = nullptr, *plain = nullptr;
  ASSERT_EQ(sn_labels_read(shipped("imagenet_class_index.json").c_str(), 1000, &json), SN_OK)
      << sn_last_error();
  ASSERT_EQ(sn_labels_read(shipped("imagenet_labels_keras.txt").c_str(), 1000, &keras), SN_OK)
      << sn_last_error();
  ASSERT_EQ(sn_labels_read(shipped("imagenet_labels.txt").c_str(), 1000, &plain), SN_OK)
      << sn_last_error();
  std::ifstream wnids(shipped("imagenet_wnids.txt"));
  std::string w;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(std::getline(wnids, w));
    ASSERT_STREQ(sn_labels_wnid(json, i), w.c_str()) << "class " << i;
    ASSERT_STREQ(sn_labels_name(json, i), sn_labels_name(keras, i)) << "class " << i;
  }
  EXPECT_STREQ(sn_labels_name(json, 281), "tabby");
  EXPECT_STREQ(sn_labels_name(plain, 2), "great white shark");
  sn_labels_destroy(json);
  sn_labels_destroy(keras);
  sn_labels_destroy(plain);
}

TEST(Labels, ClassCountMustBeTheModels) {
  sn_labels *l = nullptr;
  sn_status s = sn_labels_read(shipped("imagenet_class_index.json").c_str(), 3, &l);
  EXPECT_EQ(s, SN_ERR_SHAPE);
  EXPECT_EQ(l, nullptr);
  std::string m = sn_last_error();
  EXPECT_TRUE(has(m, "imagenet_class_index.json") && has(m, "names 1000 classes") &&
              has(m, "the model has 3"))
      << m;
  EXPECT_EQ(sn_labels_read(shipped("imagenet_labels.txt").c_str(), 1001, &l), SN_ERR_SHAPE);
  m = sn_last_error();
  EXPECT_TRUE(has(m, "names 1000 classes") && has(m, "the model has 1001")) << m;
}

TEST(Labels, MalformedFilesNameTheLine) {
  struct Case {
    const char *name, *text, *want;
    sn_status st;
  } cases[] = {
      {"empty.txt", "", "no class names", SN_ERR_FORMAT},
      {"blank.txt", "\n\n", "no class names", SN_ERR_FORMAT},
      {"gap.txt", "a\n\nb\n", "line 2 is empty", SN_ERR_FORMAT},
      {"nul.txt", "", "NUL", SN_ERR_FORMAT}, // text set below
      {"trunc.json", "{\"0\": [\"n0\", \"a\"], \"1\": [\"n1\"", "line 1", SN_ERR_FORMAT},
      {"missing.json", "{\"0\": [\"n0\", \"a\"],\n \"2\": [\"n2\", \"c\"]}", "class 1 missing",
       SN_ERR_FORMAT},
      {"twice.json", "{\"0\": [\"n0\", \"a\"],\n\"0\": [\"n1\", \"b\"]}", "class 0 given twice",
       SN_ERR_FORMAT},
      {"key.json", "{\"zero\": [\"n0\", \"a\"]}", "key \"zero\" is not a class index",
       SN_ERR_FORMAT},
      {"lead0.json", "{\"00\": [\"n0\", \"a\"]}", "not a class index", SN_ERR_FORMAT},
      {"value.json", "{\"0\":\n \"tench\"}", "line 2: expected '['", SN_ERR_FORMAT},
      {"three.json", "{\"0\": [\"n0\", \"a\", \"b\"]}", "expected ']'", SN_ERR_FORMAT},
      {"trail.json", "{\"0\": [\"n0\", \"a\"]} x", "end of the file", SN_ERR_FORMAT},
      {"nokeys.json", "{}", "no classes", SN_ERR_FORMAT},
      {"esc.json", "{\"0\": [\"n0\", \"a\\q\"]}", "JSON escape", SN_ERR_FORMAT},
  };
  for (const Case &c : cases) {
    sn_labels *l = nullptr;
    std::string m, text = c.text;
    if (!strcmp(c.name, "nul.txt")) text = std::string("a\0b\n", 4);
    EXPECT_EQ(read_text(text, 0, &l, &m, c.name), c.st) << c.name;
    EXPECT_EQ(l, nullptr) << c.name;
    EXPECT_TRUE(has(m, c.name) && has(m, c.want)) << c.name << ": " << m;
  }
  sn_labels *l = nullptr;
  EXPECT_EQ(sn_labels_read("/nonexistent/labels.txt", 0, &l), SN_ERR_IO);
  EXPECT_TRUE(has(sn_last_error(), "/nonexistent/labels.txt"));
}

} // namespace
