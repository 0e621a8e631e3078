// summary_test.cpp - sn_net_summary prints the rows Keras' model.summary() prints for the Keras
// code of every Keras architecture (tests/fixtures/keras_summaries.txt, written by
// gen_fixtures.py from keras_applications' model functions and the course's Sequential LeNets on
// the stand-ins of keras_standins.py): the same layers in the same order, with Keras' names
// (automatic ones included), classes, output shapes and parameter counts, and the same totals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

struct Section {
  std::string arch, pooling, model;
  int top = 1;
  std::vector<std::string> rows; // "name (Class)|shape|params"
  std::string params;            // "total trainable non-trainable"
};

std::vector<Section> read_sections() {
  std::ifstream in(sntest::fixture("keras_summaries.txt"));
  std::vector<Section> v;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "arch") {
      v.emplace_back();
      std::string t, p;
      ls >> v.back().arch >> t >> v.back().top >> p >> v.back().pooling;
    } else if (key == "model") {
      ls >> v.back().model;
    } else if (key == "row") {
      v.back().rows.push_back(line.substr(4));
    } else if (key == "params") {
      v.back().params = line.substr(7);
    }
  }
  return v;
}

// The table rows of a shardnet summary in the fixture's form, and the three count lines.
void parse_summary(const std::string &text, std::string *model, std::vector<std::string> *rows,
                   std::string *params) {
  static const std::regex row(R"(^ (\S+ \(\w+\))\s+(\[?\(None[^)]*\)\]?)\s+([\d,]+)(\s.*)?$)");
  static const std::regex title("^Model: \"(.*)\"$"), count("^(Total|Trainable|Non-trainable) "
                                                            "params: ([\\d,]+)$");
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> counts;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, title)) {
      *model = m[1];
    } else if (std::regex_match(line, m, row)) {
      std::string n = m[3];
      n.erase(std::remove(n.begin(), n.end(), ','), n.end());
      rows->push_back(std::string(m[1]) + "|" + std::string(m[2]) + "|" + n);
    } else if (std::regex_match(line, m, count)) {
      std::string n = m[2];
      n.erase(std::remove(n.begin(), n.end(), ','), n.end());
      counts.push_back(n);
    }
  }
  *params = counts.size() == 3 ? counts[0] + " " + counts[1] + " " + counts[2] : "";
}

} // namespace

TEST(Summary, KerasArchitecturesPrintKerasRows) {
  std::vector<Section> sections = read_sections();
  ASSERT_EQ(sections.size(), 13u) << "tests/fixtures/keras_summaries.txt";
  for (const Section &s : sections) {
    SCOPED_TRACE(s.arch + (s.top ? "" : " no top, pooling " + s.pooling));
    sn_model_config cfg;
    sn_model_config_init(&cfg, s.arch.c_str());
    cfg.include_top = s.top;
    cfg.pooling = s.pooling == "avg"   ? SN_POOL_AVG
                  : s.pooling == "max" ? SN_POOL_MAX
                                       : SN_POOL_NONE;
    cfg.skip_init = 1;
    sn_net *net = nullptr;
    ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
    char *text = nullptr;
    ASSERT_EQ(sn_net_summary(net, &text), SN_OK);
    std::string model, params;
    std::vector<std::string> rows;
    parse_summary(text, &model, &rows, &params);
    free(text);
    sn_net_destroy(net);
    EXPECT_EQ(model, s.model);
    EXPECT_EQ(params, s.params);
    ASSERT_EQ(rows.size(), s.rows.size());
    for (size_t i = 0; i < rows.size(); ++i)
      ASSERT_EQ(rows[i], s.rows[i]) << "row " << i;
  }
}

// The Sequential LeNets: no input row, no "Connected to" column, as Keras prints them; the
// activations given to Conv2D and Dense appear in no row of their own.
TEST(Summary, LeNetTableIsKerasSequential) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "lenet");
  cfg.skip_init = 1;
  sn_net *net = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  char *text = nullptr;
  ASSERT_EQ(sn_net_summary(net, &text), SN_OK);
  const std::string s(text);
  free(text);
  sn_net_destroy(net);
  EXPECT_EQ(s.find("InputLayer"), std::string::npos) << s;
  EXPECT_EQ(s.find("Connected to"), std::string::npos) << s;
  EXPECT_EQ(s.find("relu"), std::string::npos) << s;
  EXPECT_NE(s.find(" dense_2 (Dense)"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: 107,786\n"), std::string::npos) << s;
}

// torchvision-style nets keep their own table: every layer in network order.
TEST(Summary, TorchArchitecturesListEveryLayer) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet18");
  cfg.skip_init = 1;
  sn_net *net = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  char *text = nullptr;
  ASSERT_EQ(sn_net_summary(net, &text), SN_OK);
  const std::string s(text);
  free(text);
  sn_net_destroy(net);
  EXPECT_NE(s.find("Model: \"resnet18\""), std::string::npos);
  EXPECT_NE(s.find(" input (InputLayer)"), std::string::npos);
  EXPECT_LT(s.find("layer1.0.conv1 (Conv2D)"), s.find("layer1.0.relu1 (Activation)"));
  EXPECT_NE(s.find("Total params: 11,699,112\n"), std::string::npos);
}
