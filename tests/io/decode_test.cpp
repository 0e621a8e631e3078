// decode_test.cpp - tests of io/decode.c: a finished inference output decoded into CSV and JSON
// Lines (exact text, quoting and escapes), with and without /filenames (variable- and
// fixed-length strings), with a JSON, a plain or no label file; the printed lines; rows across
// the block boundary; and the refusals (incomplete output, no predictions, class outside the
// labels, unknown format), none of which leaves a decoded file behind.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string write_file(const std::string &dir, const std::string &name, const std::string &text) {
  std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// An output of n rows with top-k predictions idx/val (n, k); finished unless told otherwise.
void make_output(const std::string &p, int n, int k, int classes, const std::vector<int32_t> &idx,
                 const std::vector<float> &val, bool finish = true) {
  sn_writer_config c;
  sn_writer_config_init(&c);
  c.n_total = n;
  c.top_k = k;
  c.classes = classes;
  c.flags = SN_WRITE_PREDICTIONS;
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_writer_write_block(w, 0, n, idx.data(), val.data(), nullptr, nullptr, nullptr),
            SN_OK)
      << sn_last_error();
  if (finish) ASSERT_EQ(sn_writer_finish(w), SN_OK) << sn_last_error();
  sn_writer_destroy(w);
}

// Adds /filenames (n strings) to the output: variable-length, or fixed-length width bytes.
void add_filenames(const std::string &p, const std::vector<std::string> &names, size_t width = 0) {
  sn_h5_lock();
  hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, width ? width : H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t n = names.size();
  hid_t s = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, "filenames", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (width) {
    std::vector<char> buf(n * width, '\0');
    for (size_t i = 0; i < n; ++i)
      names[i].copy(buf.data() + i * width, width);
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  } else {
    std::vector<const char *> v;
    for (const auto &x : names)
      v.push_back(x.c_str());
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  }
  H5Dclose(d);
  H5Sclose(s);
  H5Tclose(t);
  H5Fclose(f);
  sn_h5_unlock();
}

sn_labels *labels(const std::string &dir, const char *name, const std::string &text) {
  sn_labels *l = nullptr;
  EXPECT_EQ(sn_labels_read(write_file(dir, name, text).c_str(), 0, &l), SN_OK) << sn_last_error();
  return l;
}

const char *JSON_LABELS = "{\"0\": [\"n0\", \"tench\"], \"1\": [\"n1\", \"gold, fish\"], "
                          "\"2\": [\"n2\", \"say \\\"hi\\\"\"], \"3\": [\"n3\", \"t\\u00e9\"]}";

// Three rows, top 2 of 4 classes.
const std::vector<int32_t> IDX = {1, 0, 3, 2, 0, 1};
const std::vector<float> VAL = {0.75f, 0.25f, 0.5f, 0.375f, 1.0f, 0.0f};

void collect(void *ctx, const char *line) {
  static_cast<std::vector<std::string> *>(ctx)->push_back(line);
}

TEST(Decode, CsvAndJsonLinesWithFileNames) {
  std::string dir = sntest::temp_dir(), out = dir + "/out.h5";
  make_output(out, 3, 2, 4, IDX, VAL);
  add_filenames(out, {"cats/a.jpg", "b, \"c\".png", "bad\xff.jpg"});
  sn_labels *l = labels(dir, "index.json", JSON_LABELS);
  std::vector<std::string> printed;
  sn_decode_options o;
  sn_decode_options_init(&o);
  o.print_rows = 2;
  o.print = collect;
  o.print_ctx = &printed;
  ASSERT_EQ(sn_output_decode(out.c_str(), l, (dir + "/d.csv").c_str(), &o), SN_OK)
      << sn_last_error();
  EXPECT_EQ(slurp(dir + "/d.csv"),
            "file,index,class_1,wnid_1,name_1,probability_1,class_2,wnid_2,name_2,probability_2\n"
            "cats/a.jpg,0,1,n1,\"gold, fish\",0.75,0,n0,tench,0.25\n"
            "\"b, \"\"c\"\".png\",1,3,n3,t\xC3\xA9,0.5,2,n2,\"say \"\"hi\"\"\",0.375\n"
            "bad\xff.jpg,2,0,n0,tench,1,1,n1,\"gold, fish\",0\n");
  ASSERT_EQ(printed.size(), 2u);
  EXPECT_EQ(printed[0], "cats/a.jpg: n1 gold, fish 0.7500 | n0 tench 0.2500");
  EXPECT_EQ(printed[1], "b, \"c\".png: n3 t\xC3\xA9 0.5000 | n2 say \"hi\" 0.3750");
  o.print = nullptr;
  ASSERT_EQ(sn_output_decode(out.c_str(), l, (dir + "/d.jsonl").c_str(), &o), SN_OK)
      << sn_last_error();
  EXPECT_EQ(slurp(dir + "/d.jsonl"),
            "{\"file\": \"cats/a.jpg\", \"index\": 0, \"classes\": [1, 0], \"predictions\": "
            "[[\"n1\", \"gold, fish\", 0.75], [\"n0\", \"tench\", 0.25]]}\n"
            "{\"file\": \"b, \\\"c\\\".png\", \"index\": 1, \"classes\": [3, 2], \"predictions\": "
            "[[\"n3\", \"t\xC3\xA9\", 0.5], [\"n2\", \"say \\\"hi\\\"\", 0.375]]}\n"
            "{\"file\": \"bad\\ufffd.jpg\", \"index\": 2, \"classes\": [0, 1], \"predictions\": "
            "[[\"n0\", \"tench\", 1], [\"n1\", \"gold, fish\", 0]]}\n");
  // top 1 of the file's 2
  o.top = 1;
  ASSERT_EQ(sn_output_decode(out.c_str(), l, (dir + "/t1.csv").c_str(), &o), SN_OK);
  EXPECT_EQ(slurp(dir + "/t1.csv"), "file,index,class_1,wnid_1,name_1,probability_1\n"
                                    "cats/a.jpg,0,1,n1,\"gold, fish\",0.75\n"
                                    "\"b, \"\"c\"\".png\",1,3,n3,t\xC3\xA9,0.5\n"
                                    "bad\xff.jpg,2,0,n0,tench,1\n");
  sn_labels_destroy(l);
}

TEST(Decode, WithoutFileNamesOrWnids) {
  std::string dir = sntest::temp_dir(), out = dir + "/out.h5";
  make_output(out, 3, 2, 4, IDX, VAL);
  sn_labels *plain = labels(dir, "names.txt", "tench\ngold fish\nc\nd\n");
  std::vector<std::string> printed;
  sn_decode_options o;
  sn_decode_options_init(&o);
  o.print_rows = 10;
  o.print = collect;
  o.print_ctx = &printed;
  ASSERT_EQ(sn_output_decode(out.c_str(), plain, (dir + "/d.JSONL").c_str(), &o), SN_OK)
      << sn_last_error();
  std::string j = slurp(dir + "/d.JSONL");
  EXPECT_TRUE(has(j, "{\"file\": null, \"index\": 0, \"classes\": [1, 0], \"predictions\": "
                     "[[null, \"gold fish\", 0.75], [null, \"tench\", 0.25]]}\n"))
      << j;
  ASSERT_EQ(printed.size(), 3u);
  EXPECT_EQ(printed[0], "row 0: gold fish (1) 0.7500 | tench (0) 0.2500");
  printed.clear();
  ASSERT_EQ(sn_output_decode(out.c_str(), nullptr, (dir + "/d.csv").c_str(), &o), SN_OK);
  EXPECT_EQ(slurp(dir + "/d.csv"),
            "file,index,class_1,wnid_1,name_1,probability_1,class_2,wnid_2,name_2,probability_2\n"
            ",0,1,,,0.75,0,,,0.25\n,1,3,,,0.5,2,,,0.375\n,2,0,,,1,1,,,0\n");
  EXPECT_EQ(printed[2], "row 2: 0 1.0000 | 1 0.0000");
  sn_labels_destroy(plain);
}

TEST(Decode, RowsAcrossBlocksKeepTheirNames) {
  std::string dir = sntest::temp_dir(), out = dir + "/out.h5";
  const int n = 5000; // more than one block of rows
  std::vector<int32_t> idx(n);
  std::vector<float> val(n);
  std::vector<std::string> names(n);
  for (int i = 0; i < n; ++i) {
    idx[i] = i % 7;
    val[i] = 1.0f / (float)(1 + i % 7);
    names[i] = "img" + std::to_string(i) + ".jpg";
  }
  make_output(out, n, 1, 7, idx, val);
  add_filenames(out, names, 16); // fixed-length strings
  ASSERT_EQ(sn_output_decode(out.c_str(), nullptr, (dir + "/d.csv").c_str(), nullptr), SN_OK)
      << sn_last_error();
  std::ifstream f(dir + "/d.csv");
  std::string line;
  std::getline(f, line);
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(std::getline(f, line)) << i;
    char want[96];
    snprintf(want, sizeof want, "img%d.jpg,%d,%d,,,%.9g", i, i, i % 7, (double)val[i]);
    ASSERT_EQ(line, want);
  }
  EXPECT_FALSE(std::getline(f, line));
}

TEST(Decode, RefusalsLeaveNoDecodedFile) {
  std::string dir = sntest::temp_dir(), out = dir + "/out.h5", dec = dir + "/d.csv";
  make_output(out, 3, 2, 4, IDX, VAL);
  // a class outside the labels (4 classes decoded with 3 names)
  sn_labels *three = labels(dir, "three.txt", "a\nb\nc\n");
  EXPECT_EQ(sn_output_decode(out.c_str(), three, dec.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "row 1: class 3 is outside the 3 classes")) << sn_last_error();
  sn_labels_destroy(three);
  // an unknown format
  EXPECT_EQ(sn_output_decode(out.c_str(), nullptr, (dir + "/d.txt").c_str(), nullptr),
            SN_ERR_INVALID);
  EXPECT_TRUE(has(sn_last_error(), "d.txt")) << sn_last_error();
  // an incomplete output
  std::string part = dir + "/part.h5";
  make_output(part, 3, 2, 4, IDX, VAL, false);
  EXPECT_EQ(sn_output_decode(part.c_str(), nullptr, dec.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "not a complete inference output")) << sn_last_error();
  // an output without predictions (features only)
  std::string feat = dir + "/feat.h5";
  sn_writer_config c;
  sn_writer_config_init(&c);
  c.n_total = 2;
  c.feature_dim = 3;
  c.flags = SN_WRITE_FEATURES;
  sn_writer *w = nullptr;
  std::vector<float> fv(6, 1.0f);
  ASSERT_EQ(sn_writer_create(feat.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(sn_writer_write_block(w, 0, 2, nullptr, nullptr, nullptr, fv.data(), nullptr), SN_OK);
  ASSERT_EQ(sn_writer_finish(w), SN_OK);
  sn_writer_destroy(w);
  EXPECT_EQ(sn_output_decode(feat.c_str(), nullptr, dec.c_str(), nullptr), SN_ERR_NOTFOUND);
  EXPECT_TRUE(has(sn_last_error(), "holds no predictions")) << sn_last_error();
  // /filenames of the wrong length
  add_filenames(out, {"only-one.jpg"});
  EXPECT_EQ(sn_output_decode(out.c_str(), nullptr, dec.c_str(), nullptr), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "filenames")) << sn_last_error();
  // an unwritable decoded path
  EXPECT_EQ(sn_output_decode(part.c_str(), nullptr, "/nonexistent/d.csv", nullptr), SN_ERR_FORMAT);
  std::string good = dir + "/good.h5";
  make_output(good, 3, 2, 4, IDX, VAL);
  EXPECT_EQ(sn_output_decode(good.c_str(), nullptr, "/nonexistent/d.csv", nullptr), SN_ERR_IO);
  EXPECT_TRUE(has(sn_last_error(), "/nonexistent/d.csv")) << sn_last_error();
  // nothing written under the decoded name, and no temporary left
  EXPECT_FALSE(sntest::file_exists(dec));
  for (const auto &e : std::filesystem::directory_iterator(dir))
    EXPECT_NE(e.path().filename().string().rfind("d.", 0), 0u) << e.path();
  EXPECT_EQ(sn_decode_format_of("a/b.CSV"), SN_DECODE_CSV);
  EXPECT_EQ(sn_decode_format_of("b.ndjson"), SN_DECODE_JSONL);
  EXPECT_EQ(sn_decode_format_of("dir.csv/b"), SN_DECODE_AUTO);
}

} // namespace
