// checkpoint_test.cpp - tests of io/checkpoint.c: a save and load give back the parameter and
// momentum blocks, the loop state and the recipe bit for bit; a checkpoint of an older version
// (no recipe) still loads; a failed load changes nothing; both calls hold the io lock, so a
// checkpoint can be written while a dataset reader's thread is alive. Serial communicator here;
// tests/mpi/checkpoint_mpi_test.cpp covers the collective parts.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "h5util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

// A small training net with momentum buffers after `steps` SGD steps on random data.
sn_net *trained_net(uint64_t seed, int steps) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.base_width = 2;
  cfg.height = cfg.width = 8;
  cfg.channels = 1;
  cfg.classes = 3;
  sn_net *net = nullptr;
  if (sn_net_create(&cfg, seed, &net) != SN_OK) return nullptr;
  if (sn_net_plan(net, 4, 1) != SN_OK) return nullptr;
  sn_train_config tc;
  sn_train_config_init(&tc);
  std::vector<float> x = sntest::randn(4 * 8 * 8, seed + 1);
  int32_t labels[4] = {0, 1, 2, 1};
  for (int i = 0; i < steps; ++i) {
    float loss;
    int correct;
    if (sn_net_train_step(net, x.data(), labels, 4, 4, &tc, &loss, &correct) != SN_OK ||
        sn_net_sgd_update(net, &tc, 0.1f) != SN_OK)
      return nullptr;
  }
  return net;
}

std::vector<float> block_of(sn_net *net) {
  size_t n;
  float *b = sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}

// A meta with every recipe field set to something other than its default.
sn_checkpoint_meta full_meta() {
  sn_checkpoint_meta m;
  memset(&m, 0, sizeof m);
  m.epoch = 1;
  m.step = 7;
  m.ranks = 2;
  m.report_pending = 1;
  m.epoch_sums[0] = 12.345678901234567;
  m.epoch_sums[1] = 3;
  m.epoch_sums[2] = 5;
  m.epoch_sums[3] = 16;
  m.has_recipe = 1;
  sn_train_recipe *r = &m.recipe;
  sn_train_recipe_init(r);
  snprintf(r->arch, sizeof r->arch, "resnet20");
  r->classes = 3;
  r->height = r->width = 8;
  r->channels = 1;
  r->base_width = 2;
  r->data_rows = 300;
  r->epochs = 4;
  r->steps = 9;
  r->global_batch = 16;
  r->lr = 0.05;
  r->schedule = SN_SCHED_STEP;
  r->warmup_epochs = 0.5;
  r->momentum = 0.8;
  r->nesterov = 1;
  r->weight_decay = 1e-4;
  r->decay_bn_and_bias = 0;
  r->label_smoothing = 0.1;
  r->augment = SN_AUG_RESIZED_CROP;
  r->crop_scale = 0.35;
  r->preprocess = SN_PRE_UNIT;
  r->shuffle = 0;
  r->drop_last = 1;
  r->seed = (1ull << 62) + 5;
  r->bn_group = 1;
  r->bn_style = SN_STYLE_KERAS;
  return m;
}

// Changes the /recipe group of the checkpoint at path in place (edit gets the group and the path).
void edit_recipe(const std::string &path, void (*edit)(hid_t g, const char *file)) {
  sn_h5_lock();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT),
        g = H5Gopen2(f, "recipe", H5P_DEFAULT);
  EXPECT_GE(g, 0) << path;
  edit(g, path.c_str());
  H5Gclose(g);
  H5Fclose(f);
  sn_h5_unlock();
}

std::vector<float> momentum_of(sn_net *net) {
  size_t n;
  float *b = sn_net_momentum_block(net, &n);
  return std::vector<float>(b, b + n);
}

TEST(Checkpoint, RoundTripIsBitExact) {
  sn_net *a = trained_net(3, 2), *b = trained_net(4, 0);
  ASSERT_TRUE(a && b) << sn_last_error();
  std::string path = sntest::temp_dir() + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
  sn_checkpoint_meta back, head;
  memset(&back, 0x55, sizeof back);
  ASSERT_EQ(sn_checkpoint_load(b, path.c_str(), nullptr, &back), SN_OK) << sn_last_error();
  EXPECT_EQ(block_of(a), block_of(b));
  EXPECT_EQ(momentum_of(a), momentum_of(b));
  EXPECT_EQ(sn_net_sgd_steps(b), 2);
  EXPECT_EQ(back.epoch, 1);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.ranks, 2);
  EXPECT_EQ(back.report_pending, 1);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(back.epoch_sums[i], m.epoch_sums[i]);
  EXPECT_EQ(back.has_recipe, 1);
  char diff[512];
  EXPECT_EQ(sn_train_recipe_diff(&m.recipe, &back.recipe, diff, sizeof diff), 0) << diff;
  EXPECT_EQ(back.recipe.seed, (1ull << 62) + 5);
  EXPECT_EQ(back.recipe.lr, 0.05);
  EXPECT_EQ(back.recipe.crop_scale, 0.35);
  // the loop state and recipe alone, without a net
  ASSERT_EQ(sn_checkpoint_read_meta(path.c_str(), nullptr, &head), SN_OK) << sn_last_error();
  EXPECT_EQ(head.step, 7);
  EXPECT_EQ(sn_train_recipe_diff(&m.recipe, &head.recipe, diff, sizeof diff), 0) << diff;
  sn_net_destroy(a);
  sn_net_destroy(b);
}

// A checkpoint written before recipes were recorded: no /recipe, no epoch_sums, no
// report_pending. It loads, says so, and its seed and global batch are known.
TEST(Checkpoint, OlderCheckpointWithoutRecipeLoads) {
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string path = sntest::temp_dir() + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
  sn_h5_lock();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  H5Ldelete(f, "recipe", H5P_DEFAULT);
  H5Adelete(f, "epoch_sums");
  H5Adelete(f, "report_pending");
  H5Fclose(f);
  sn_h5_unlock();
  sn_checkpoint_meta back;
  ASSERT_EQ(sn_checkpoint_load(a, path.c_str(), nullptr, &back), SN_OK) << sn_last_error();
  EXPECT_EQ(back.has_recipe, 0);
  EXPECT_EQ(back.recipe.seed, m.recipe.seed);
  EXPECT_EQ(back.recipe.global_batch, 16);
  EXPECT_STREQ(back.recipe.arch, "resnet20");
  EXPECT_EQ(back.report_pending, 0);
  EXPECT_EQ(back.epoch_sums[3], 0.0);
  sn_net_destroy(a);
}

// A recipe written before the crop scale was recorded reads as torchvision's default, 0.08.
TEST(Checkpoint, RecipeWithoutCropScaleReadsTheDefault) {
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string path = sntest::temp_dir() + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
  edit_recipe(path, [](hid_t g, const char *) { EXPECT_GE(H5Adelete(g, "crop_scale"), 0); });
  sn_checkpoint_meta back;
  ASSERT_EQ(sn_checkpoint_read_meta(path.c_str(), nullptr, &back), SN_OK) << sn_last_error();
  EXPECT_EQ(back.recipe.crop_scale, SN_CROP_SCALE_DEFAULT);
  EXPECT_EQ(back.recipe.lr, 0.05);
  sn_net_destroy(a);
}

// A malformed recipe attribute is a format error naming the file, the group and the attribute.
TEST(Checkpoint, BadRecipeAttributeIsNamed) {
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string path = sntest::temp_dir() + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
  edit_recipe(path, [](hid_t g, const char *file) {
    sn_h5_write_str_attr(g, "augment", "jitter", file);
    H5Adelete(g, "lr");
    sn_h5_write_int_attr(g, "lr", 1, file);
  });
  std::vector<float> before = block_of(a);
  sn_checkpoint_meta back;
  EXPECT_EQ(sn_checkpoint_read_meta(path.c_str(), nullptr, &back), SN_ERR_FORMAT);
  std::string msg = sn_last_error();
  EXPECT_NE(msg.find("/recipe: attribute lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_EQ(sn_checkpoint_load(a, path.c_str(), nullptr, &back), SN_ERR_FORMAT);
  EXPECT_EQ(block_of(a), before);
  sn_net_destroy(a);
}

TEST(Checkpoint, FailedLoadChangesNothing) {
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string dir = sntest::temp_dir(), path = dir + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.base_width = 4; // another parameter count
  cfg.height = cfg.width = 8;
  cfg.channels = 1;
  cfg.classes = 3;
  sn_net *other = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 5, &other), SN_OK);
  std::vector<float> before = block_of(other);
  sn_checkpoint_meta back;
  EXPECT_EQ(sn_checkpoint_load(other, path.c_str(), nullptr, &back), SN_ERR_SHAPE);
  EXPECT_NE(std::string(sn_last_error()).find("param_count"), std::string::npos) << sn_last_error();
  EXPECT_EQ(block_of(other), before);
  EXPECT_EQ(sn_checkpoint_load(other, (dir + "/missing.h5").c_str(), nullptr, &back), SN_ERR_IO);
  EXPECT_EQ(block_of(other), before);
  sn_net_destroy(a);
  sn_net_destroy(other);
}

// While another thread holds the io lock, a save or a load must wait for it: otherwise a
// checkpoint written during an epoch would race a dataset reader's thread inside HDF5, which is
// not thread-safe (docs/reliability.md, F4).
TEST(Checkpoint, SaveAndLoadWaitForTheIoLock) {
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string path = sntest::temp_dir() + "/ck.h5";
  sn_checkpoint_meta m = full_meta();
  for (int load = 0; load < 2; ++load) {
    std::atomic<bool> done{false};
    sn_status st = SN_ERR_INVALID;
    sn_h5_lock();
    std::thread t([&] {
      sn_checkpoint_meta back;
      st = load ? sn_checkpoint_load(a, path.c_str(), nullptr, &back)
                : sn_checkpoint_save(a, path.c_str(), &m, nullptr);
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(done) << (load ? "load" : "save") << " ran while the io lock was held";
    sn_h5_unlock();
    t.join();
    EXPECT_EQ(st, SN_OK) << sn_last_error();
  }
  sn_net_destroy(a);
}

// Checkpoints written and read while a reader's thread streams a dataset: every batch arrives
// intact and every checkpoint loads.
TEST(Checkpoint, WrittenWhileAReaderStreams) {
  std::string dir = sntest::temp_dir();
  const int n = 600;
  std::string data = dir + "/data.h5";
  {
    std::vector<uint8_t> img((size_t)n * 8 * 8);
    std::vector<int32_t> lab(n);
    for (int i = 0; i < n; ++i) {
      lab[i] = i % 3;
      for (int j = 0; j < 64; ++j)
        img[(size_t)i * 64 + j] = (uint8_t)(i + j);
    }
    sn_h5_lock();
    hid_t f = H5Fcreate(data.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t di[4] = {(hsize_t)n, 8, 8, 1}, dl[1] = {(hsize_t)n}, ch[4] = {4, 8, 8, 1};
    hid_t s = H5Screate_simple(4, di, nullptr), p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, 4, ch);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, s, H5P_DEFAULT, p, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img.data());
    H5Dclose(d);
    H5Pclose(p);
    H5Sclose(s);
    s = H5Screate_simple(1, dl, nullptr);
    d = H5Dcreate2(f, "labels", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab.data());
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    sn_h5_unlock();
  }
  sn_dataset *ds = nullptr;
  ASSERT_EQ(sn_dataset_open(data.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
  std::vector<int64_t> rows(n);
  for (int i = 0; i < n; ++i)
    rows[i] = (i * 7) % n; // scattered: one small HDF5 read per row
  sn_reader_options o;
  sn_reader_options_init(&o);
  o.batch = 3;
  o.prefetch = 1;
  o.preprocess = SN_PRE_NONE;
  sn_reader *rd = nullptr;
  ASSERT_EQ(sn_reader_create(ds, rows.data(), n, &o, &rd), SN_OK) << sn_last_error();
  sn_net *a = trained_net(3, 1);
  ASSERT_TRUE(a) << sn_last_error();
  std::string path = dir + "/ck.h5";
  sn_checkpoint_meta m = full_meta(), back;
  float *x;
  int32_t *lb;
  int64_t *rr;
  int cnt, seen = 0;
  while (sn_reader_next(rd, &x, &lb, &rr, &cnt) == SN_OK && cnt > 0) {
    for (int i = 0; i < cnt; ++i) {
      ASSERT_EQ(lb[i], rr[i] % 3);
      ASSERT_EQ(x[(size_t)i * 64 + 5], (float)(uint8_t)(rr[i] + 5));
    }
    seen += cnt;
    if (seen % 30 == 0) {
      ASSERT_EQ(sn_checkpoint_save(a, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
      ASSERT_EQ(sn_checkpoint_load(a, path.c_str(), nullptr, &back), SN_OK) << sn_last_error();
    }
  }
  EXPECT_EQ(seen, n);
  sn_reader_destroy(rd);
  sn_dataset_close(ds);
  sn_net_destroy(a);
}

// A checkpoint holding NaN or infinity in a weight, a moving statistic or a momentum is refused
// naming the tensor (layer and role) and the counts, and the net is left unchanged.
TEST(Checkpoint, NonFiniteValuesAreRefusedNamingTheTensor) {
  const std::string dir = sntest::temp_dir(), path = dir + "/ck.h5";
  sn_net *dst = trained_net(2, 1);
  ASSERT_NE(dst, nullptr) << sn_last_error();
  sn_checkpoint_meta m = full_meta(), back;
  int kernel = -1, var = -1;
  for (int i = 0; i < sn_net_num_params(dst); ++i) {
    sn_param_info p;
    ASSERT_EQ(sn_net_param(dst, i, &p), SN_OK);
    if (p.role == SN_ROLE_KERNEL && kernel < 0 && i > 0) kernel = i;
    if (p.role == SN_ROLE_MOVING_VAR) var = i;
  }
  ASSERT_GE(kernel, 0);
  ASSERT_GE(var, 0);
  for (int what = 0; what < 3; ++what) {
    SCOPED_TRACE(what);
    sn_net *bad = trained_net(1, 1);
    ASSERT_NE(bad, nullptr) << sn_last_error();
    sn_param_info p;
    std::string expect;
    if (what == 0) { // a weight
      sn_net_param(bad, kernel, &p);
      p.data[5] = NAN;
      expect = std::string("params of layer ") + p.layer + " kernel: 1 NaN and 0 infinite";
    } else if (what == 1) { // a moving statistic
      sn_net_param(bad, var, &p);
      p.data[0] = INFINITY;
      expect = std::string("params of layer ") + p.layer + " moving_variance: 0 NaN and 1 infinite";
    } else { // the momentum of a weight
      sn_net_param(bad, kernel, &p);
      float *mom = sn_net_momentum_block(bad, nullptr);
      mom[(p.data - sn_net_param_block(bad, nullptr)) + 2] = NAN;
      expect = std::string("momentum of layer ") + p.layer + " kernel: 1 NaN and 0 infinite";
    }
    ASSERT_EQ(sn_checkpoint_save(bad, path.c_str(), &m, nullptr), SN_OK) << sn_last_error();
    const std::vector<float> before = block_of(dst);
    EXPECT_EQ(sn_checkpoint_load(dst, path.c_str(), nullptr, &back), SN_ERR_NUMERIC);
    EXPECT_NE(std::strstr(sn_last_error(), expect.c_str()), nullptr) << sn_last_error();
    EXPECT_NE(std::strstr(sn_last_error(), path.c_str()), nullptr) << sn_last_error();
    EXPECT_EQ(block_of(dst), before);
    sn_net_destroy(bad);
  }
  sn_net_destroy(dst);
}

} // namespace
