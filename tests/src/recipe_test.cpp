// recipe_test.cpp - tests of src/recipe.c: every field of a training recipe is compared and
// named as `shardnet train`'s option, the list is cut with "..." when the buffer is short, and
// schedule names parse back.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "shardnet.h"

namespace {

sn_train_recipe base() {
  sn_train_recipe r;
  sn_train_recipe_init(&r);
  snprintf(r.arch, sizeof r.arch, "resnet20");
  r.classes = 10;
  r.height = r.width = 28;
  r.channels = 1;
  r.base_width = 16;
  r.data_rows = 60000;
  r.augment = SN_AUG_FLIP;
  r.preprocess = SN_PRE_UNIT;
  return r;
}

std::string diff(const sn_train_recipe &a, const sn_train_recipe &b, int *n) {
  char buf[2048];
  *n = sn_train_recipe_diff(&a, &b, buf, sizeof buf);
  return buf;
}

TEST(Recipe, DefaultsAreTheCommandLines) {
  sn_train_recipe r;
  memset(&r, 0x5a, sizeof r);
  sn_train_recipe_init(&r);
  EXPECT_EQ(r.epochs, 1);
  EXPECT_EQ(r.global_batch, 128);
  EXPECT_EQ(r.lr, 0.1);
  EXPECT_EQ(r.momentum, 0.9);
  EXPECT_EQ(r.weight_decay, 5e-4);
  EXPECT_EQ(r.decay_bn_and_bias, 1);
  EXPECT_EQ(r.schedule, SN_SCHED_COSINE);
  EXPECT_EQ(r.shuffle, 1);
  EXPECT_EQ(r.seed, 1u);
  EXPECT_EQ(r.bn_group, 0);
  EXPECT_EQ(r.arch[0], '\0');
}

TEST(Recipe, EqualRecipesHaveNoDifference) {
  int n = -1;
  EXPECT_EQ(diff(base(), base(), &n), "");
  EXPECT_EQ(n, 0);
}

// Each field alone, with the text that names it.
TEST(Recipe, EveryFieldIsComparedAndNamed) {
  struct Case {
    void (*change)(sn_train_recipe *);
    const char *text;
  } cases[] = {
      {[](sn_train_recipe *r) { snprintf(r->arch, sizeof r->arch, "resnet32"); },
       "arch resnet20 -> resnet32"},
      {[](sn_train_recipe *r) { r->classes = 12; }, "classes 10 -> 12"},
      {[](sn_train_recipe *r) { r->height = 32; }, "input 28x28x1 -> 32x28x1"},
      {[](sn_train_recipe *r) { r->width = 32; }, "input 28x28x1 -> 28x32x1"},
      {[](sn_train_recipe *r) { r->channels = 3; }, "input 28x28x1 -> 28x28x3"},
      {[](sn_train_recipe *r) { r->base_width = 4; }, "width 16 -> 4"},
      {[](sn_train_recipe *r) { r->data_rows = 300; }, "data rows 60000 -> 300"},
      {[](sn_train_recipe *r) { r->epochs = 3; }, "epochs 1 -> 3"},
      {[](sn_train_recipe *r) { r->steps = 7; }, "steps 0 -> 7"},
      {[](sn_train_recipe *r) { r->global_batch = 256; }, "batch 128 -> 256"},
      {[](sn_train_recipe *r) { r->lr = 0.05; }, "lr 0.1 -> 0.05"},
      {[](sn_train_recipe *r) { r->lr = 0.1 + 1e-12; },
       "lr 0.10000000000000001 -> 0.10000000000100001"},
      {[](sn_train_recipe *r) { r->schedule = SN_SCHED_STEP; }, "schedule cosine -> step"},
      {[](sn_train_recipe *r) { r->warmup_epochs = 0.5; }, "warmup 0 -> 0.5"},
      {[](sn_train_recipe *r) { r->momentum = 0.8; }, "momentum 0.9 -> 0.8"},
      {[](sn_train_recipe *r) { r->nesterov = 1; }, "nesterov off -> on"},
      {[](sn_train_recipe *r) { r->weight_decay = 1e-4; }, "weight-decay 0.0005 -> 0.0001"},
      {[](sn_train_recipe *r) { r->decay_bn_and_bias = 0; }, "no-decay-bn-bias off -> on"},
      {[](sn_train_recipe *r) { r->label_smoothing = 0.1; }, "label-smoothing 0 -> 0.1"},
      {[](sn_train_recipe *r) { r->augment = SN_AUG_CROP_FLIP; }, "augment flip -> crop-flip"},
      {[](sn_train_recipe *r) { r->preprocess = SN_PRE_TORCH; }, "preprocess unit -> torch"},
      {[](sn_train_recipe *r) { r->shuffle = 0; }, "shuffle on -> off"},
      {[](sn_train_recipe *r) { r->drop_last = 1; }, "drop-last off -> on"},
      {[](sn_train_recipe *r) { r->seed = 7; }, "seed 1 -> 7"},
      {[](sn_train_recipe *r) { r->bn_group = 1; }, "bn sync -> local"},
      {[](sn_train_recipe *r) { r->bn_group = 4; }, "bn sync -> groups of 4"},
      {[](sn_train_recipe *r) { r->bn_style = SN_STYLE_KERAS; }, "bn-style torch -> keras"},
  };
  for (const Case &c : cases) {
    sn_train_recipe b = base();
    c.change(&b);
    int n = 0;
    EXPECT_EQ(diff(base(), b, &n), c.text);
    EXPECT_EQ(n, 1) << c.text;
  }
  // the crop scale counts where a resized crop is taken (in either recipe), and only there
  sn_train_recipe a = base(), b = base();
  a.augment = b.augment = SN_AUG_RESIZED_CROP;
  b.crop_scale = 0.35;
  int n = 0;
  EXPECT_EQ(diff(a, b, &n), "crop-scale 0.08 -> 0.35");
  EXPECT_EQ(n, 1);
  a.augment = b.augment = SN_AUG_FLIP;
  EXPECT_EQ(diff(a, b, &n), "");
  EXPECT_EQ(n, 0);
}

TEST(Recipe, SeveralDifferencesInOrderAndCutShort) {
  sn_train_recipe a = base(), b = base();
  b.epochs = 3;
  b.lr = 0.05;
  b.bn_group = 1;
  int n = 0;
  EXPECT_EQ(diff(a, b, &n), "epochs 1 -> 3, lr 0.1 -> 0.05, bn sync -> local");
  EXPECT_EQ(n, 3);
  char small[20];
  EXPECT_EQ(sn_train_recipe_diff(&a, &b, small, sizeof small), 3);
  EXPECT_EQ(std::string(small), "epochs 1 -> 3, l...");
  EXPECT_EQ(sn_train_recipe_diff(&a, &b, nullptr, 0), 3);
}

TEST(Recipe, ScheduleNamesParseBack) {
  for (sn_schedule k : {SN_SCHED_CONSTANT, SN_SCHED_STEP, SN_SCHED_COSINE}) {
    sn_schedule back = SN_SCHED_CONSTANT;
    ASSERT_EQ(sn_schedule_parse(sn_schedule_name(k), &back), SN_OK);
    EXPECT_EQ(back, k);
  }
  sn_schedule back;
  EXPECT_EQ(sn_schedule_parse("linear", &back), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("'linear'"), std::string::npos);
}

} // namespace
