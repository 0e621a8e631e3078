// writer_test.cpp - tests of io/writer.c (serial): write then read back every dataset, IEEE half
// features, resume from /done, complete = 1 only when every row is written, output status.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

bool has(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

struct Rows {
  int n, k, classes, d;
  std::vector<int32_t> idx;
  std::vector<float> val, logits, feat;
  Rows(int n_, int k_, int c_, int d_) : n(n_), k(k_), classes(c_), d(d_) {
    logits = sntest::randn((size_t)n * classes, 11);
    feat = sntest::randn((size_t)n * d, 12, 3.0f);
    idx.resize((size_t)n * k);
    val.resize((size_t)n * k);
    sn_topk(logits.data(), n, classes, k, idx.data(), val.data());
  }
};

template <typename T>
std::vector<T> read_ds(const std::string &path, const char *name, hid_t mtype,
                       std::vector<hsize_t> *dims_out = nullptr) {
  sn_h5_lock();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  std::vector<T> v;
  if (d >= 0) {
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {0, 1};
    int r = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, nullptr);
    if (dims_out) dims_out->assign(dims, dims + r);
    v.resize(dims[0] * (r == 2 ? dims[1] : 1));
    H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Sclose(s);
    H5Dclose(d);
  }
  H5Fclose(f);
  sn_h5_unlock();
  return v;
}

std::string str_attr(const std::string &path, const char *name) {
  sn_h5_lock();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  std::string s(H5Tget_size(t), '\0');
  H5Aread(a, t, s.data());
  H5Tclose(t);
  H5Aclose(a);
  H5Fclose(f);
  sn_h5_unlock();
  return std::string(s.c_str());
}

sn_writer_config config(int n, int k, int classes, int d, sn_feature_dtype t) {
  sn_writer_config c;
  sn_writer_config_init(&c);
  c.n_total = n;
  c.top_k = k;
  c.classes = classes;
  c.feature_dim = d;
  c.feature_dtype = t;
  c.flags = SN_WRITE_PREDICTIONS | SN_WRITE_LOGITS | SN_WRITE_FEATURES;
  c.chunk_rows = 4;
  return c;
}

sn_status write_range(sn_writer *w, const Rows &r, int64_t b, int cnt) {
  return sn_writer_write_block(w, b, cnt, r.idx.data() + b * r.k, r.val.data() + b * r.k,
                               r.logits.data() + b * r.classes, r.feat.data() + b * r.d, nullptr);
}

TEST(Writer, SerialWriteReadBack) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/out.h5";
  Rows r(10, 3, 7, 5);
  sn_writer_config c = config(10, 3, 7, 5, SN_FEATURES_F32);
  c.compression = 4;
  sn_output_state state;
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_MISSING);
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_writer_chunk_rows(w), 4);
  int64_t *miss = nullptr, nmiss = 0;
  ASSERT_EQ(sn_writer_missing_rows(w, &miss, &nmiss), SN_OK);
  EXPECT_EQ(nmiss, 10);
  free(miss);
  ASSERT_EQ(sn_writer_set_attr_str(w, "arch", "resnet50"), SN_OK);
  ASSERT_EQ(sn_writer_set_attr_str(w, "weights_md5", "0123456789abcdef0123456789abcdef"), SN_OK);
  ASSERT_EQ(write_range(w, r, 6, 4), SN_OK) << sn_last_error();
  ASSERT_EQ(write_range(w, r, 0, 6), SN_OK) << sn_last_error();
  ASSERT_EQ(write_range(w, r, 0, 0), SN_OK);
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_INCOMPLETE);
  ASSERT_EQ(sn_writer_finish(w), SN_OK) << sn_last_error();
  sn_writer_destroy(w);
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_COMPLETE);

  std::vector<hsize_t> dims;
  EXPECT_EQ(read_ds<int32_t>(p, "predictions/top_k_indices", H5T_NATIVE_INT32, &dims), r.idx);
  EXPECT_EQ(dims, (std::vector<hsize_t>{10, 3}));
  EXPECT_EQ(read_ds<float>(p, "predictions/top_k_scores", H5T_NATIVE_FLOAT), r.val);
  EXPECT_EQ(read_ds<float>(p, "logits", H5T_NATIVE_FLOAT, &dims), r.logits);
  EXPECT_EQ(dims, (std::vector<hsize_t>{10, 7}));
  EXPECT_EQ(read_ds<float>(p, "features", H5T_NATIVE_FLOAT), r.feat);
  std::vector<int64_t> ids(10);
  for (int i = 0; i < 10; ++i)
    ids[i] = i;
  EXPECT_EQ(read_ds<int64_t>(p, "index", H5T_NATIVE_INT64), ids);
  EXPECT_EQ(read_ds<uint8_t>(p, "done", H5T_NATIVE_UINT8), std::vector<uint8_t>(10, 1));
  EXPECT_EQ(str_attr(p, "arch"), "resnet50");
  EXPECT_EQ(str_attr(p, "weights_md5"), "0123456789abcdef0123456789abcdef");
}

TEST(Writer, HalfFeatures) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/half.h5";
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> vals = {0.0f,
                             -0.0f,
                             1.0f,
                             -2.5f,
                             65504.0f,
                             65520.0f,
                             1e6f,
                             -1e6f,
                             inf,
                             -inf,
                             6.1035156e-5f,
                             5.96e-8f,
                             2.98e-8f,
                             2.99e-8f,
                             1e-9f,
                             3.14159265f,
                             1.0009766f /* tie */,
                             1.0004883f,
                             1.0014648f,
                             1e-5f,
                             -7.2e-6f,
                             2049.0f,
                             2051.0f,
                             0.33333334f,
                             1.5e-7f};
  const int n = (int)vals.size();
  sn_writer_config c = config(n, 0, 0, 1, SN_FEATURES_F16);
  c.flags = SN_WRITE_FEATURES;
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_writer_write_block(w, 0, n, nullptr, nullptr, nullptr, vals.data(), nullptr), SN_OK)
      << sn_last_error();
  ASSERT_EQ(sn_writer_finish(w), SN_OK);
  sn_writer_destroy(w);
  // HDF5 converts the stored halves back to float; compare with the compiler's conversion.
  std::vector<float> back = read_ds<float>(p, "features", H5T_NATIVE_FLOAT);
  ASSERT_EQ(back.size(), vals.size());
  for (int i = 0; i < n; ++i) {
    const float want = (float)(_Float16)vals[i];
    EXPECT_EQ(std::memcmp(&back[i], &want, 4), 0)
        << vals[i] << " -> " << back[i] << " want " << want;
  }
  // Random values in a wide range, raw bits against _Float16.
  std::vector<float> many = sntest::randn(4096, 5, 200.0f);
  for (size_t i = 0; i < 1024; ++i)
    many[i] *= 1e-6f;
  std::string p2 = dir + "/half2.h5";
  c.n_total = (int64_t)many.size();
  ASSERT_EQ(sn_writer_create(p2.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(sn_writer_write_block(w, 0, (int)many.size(), nullptr, nullptr, nullptr, many.data(),
                                  nullptr),
            SN_OK);
  ASSERT_EQ(sn_writer_finish(w), SN_OK);
  sn_writer_destroy(w);
  std::vector<uint16_t> bits(many.size()); // raw bits: read with the file's own type
  sn_h5_lock();
  hid_t f = H5Fopen(p2.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "features", H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  EXPECT_EQ(H5Tget_size(t), 2u);
  H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data());
  H5Tclose(t);
  H5Dclose(d);
  H5Fclose(f);
  sn_h5_unlock();
  int bad = 0;
  for (size_t i = 0; i < many.size(); ++i) {
    _Float16 h = (_Float16)many[i];
    uint16_t want;
    std::memcpy(&want, &h, 2);
    bad += bits[i] != want;
  }
  EXPECT_EQ(bad, 0);
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0) {
    std::string cmd = "/usr/bin/python3 -c \"import h5py,sys; f=h5py.File('" + p2 +
                      "','r'); sys.exit(0 if f['features'].dtype == 'float16' else 1)\"";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "h5py does not see float16";
  }
}

TEST(Writer, ResumeFromDone) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/res.h5";
  Rows r(11, 2, 4, 3);
  sn_writer_config c = config(11, 2, 4, 3, SN_FEATURES_F32);
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(write_range(w, r, 0, 4), SN_OK);
  ASSERT_EQ(write_range(w, r, 8, 2), SN_OK);
  sn_writer_destroy(w); // "crash": never finished
  sn_output_state state;
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_INCOMPLETE);

  sn_writer_config bad = c;
  bad.resume = 1;
  bad.classes = 5;
  EXPECT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &bad, &w), SN_ERR_SHAPE);
  EXPECT_TRUE(has(sn_last_error(), "cannot resume: dataset /logits has shape (11,4)"))
      << sn_last_error();
  bad = c;
  bad.resume = 1;
  bad.feature_dtype = SN_FEATURES_F16;
  EXPECT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &bad, &w), SN_ERR_SHAPE);

  c.resume = 1;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  int64_t *miss = nullptr, nmiss = 0;
  ASSERT_EQ(sn_writer_missing_rows(w, &miss, &nmiss), SN_OK);
  std::vector<int64_t> m(miss, miss + nmiss);
  free(miss);
  EXPECT_EQ(m, (std::vector<int64_t>{4, 5, 6, 7, 10}));
  ASSERT_EQ(write_range(w, r, 4, 3), SN_OK);
  EXPECT_EQ(sn_writer_finish(w), SN_ERR_INVALID); // row 7 and 10 still missing
  EXPECT_TRUE(has(sn_last_error(), "2 of 11 rows not written (first: row 7)")) << sn_last_error();
  sn_writer_destroy(w);
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_INCOMPLETE);

  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_writer_missing_rows(w, &miss, &nmiss), SN_OK);
  EXPECT_EQ(nmiss, 2);
  free(miss);
  ASSERT_EQ(write_range(w, r, 7, 1), SN_OK);
  ASSERT_EQ(write_range(w, r, 10, 1), SN_OK);
  ASSERT_EQ(sn_writer_finish(w), SN_OK) << sn_last_error();
  sn_writer_destroy(w);
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_COMPLETE);
  EXPECT_EQ(read_ds<float>(p, "logits", H5T_NATIVE_FLOAT), r.logits);
  EXPECT_EQ(read_ds<float>(p, "features", H5T_NATIVE_FLOAT), r.feat);
  EXPECT_EQ(read_ds<int32_t>(p, "predictions/top_k_indices", H5T_NATIVE_INT32), r.idx);

  // Resuming a complete output: nothing is missing.
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(sn_writer_missing_rows(w, &miss, &nmiss), SN_OK);
  EXPECT_EQ(nmiss, 0);
  EXPECT_EQ(miss, nullptr);
  sn_writer_destroy(w);
  ASSERT_EQ(sn_output_status(p.c_str(), &state), SN_OK);
  EXPECT_EQ(state, SN_OUTPUT_COMPLETE);
}

TEST(Writer, Errors) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/e.h5";
  Rows r(5, 2, 4, 3);
  sn_writer_config c = config(5, 2, 4, 3, SN_FEATURES_F32);
  sn_writer *w = nullptr;
  sn_writer_config bad = c;
  bad.top_k = 5;
  EXPECT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &bad, &w), SN_ERR_INVALID);
  bad = c;
  bad.n_total = 0;
  EXPECT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &bad, &w), SN_ERR_INVALID);
  EXPECT_EQ(sn_writer_create((dir + "/no/such/dir.h5").c_str(), sn_comm_serial(), &c, &w),
            SN_ERR_IO);
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  EXPECT_EQ(write_range(w, r, 4, 2), SN_ERR_INVALID);
  EXPECT_TRUE(has(sn_last_error(), "cannot write rows [4, 6) of 5")) << sn_last_error();
  EXPECT_EQ(
      sn_writer_write_block(w, 0, 1, r.idx.data(), r.val.data(), nullptr, r.feat.data(), nullptr),
      SN_ERR_INVALID);
  EXPECT_TRUE(has(sn_last_error(), "no data given for /logits")) << sn_last_error();
  sn_writer_destroy(w);
  {
    std::ofstream o(dir + "/text.h5");
    o << "not hdf5";
  }
  sn_output_state state;
  EXPECT_EQ(sn_output_status((dir + "/text.h5").c_str(), &state), SN_ERR_FORMAT);
}

} // namespace

// Serial: this rank's share is every missing row, one write per run of consecutive missing rows
// inside a chunk.
TEST(Writer, LocalRowsAreTheMissingRowsInChunkUnits) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/local.h5";
  Rows r(11, 2, 4, 3);
  sn_writer_config c = config(11, 2, 4, 3, SN_FEATURES_F32); // chunks of 4 rows
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  int64_t *rows = nullptr, n = 0, writes = 0;
  ASSERT_EQ(sn_writer_local_rows(w, &rows, &n, &writes), SN_OK);
  EXPECT_EQ(n, 11);
  EXPECT_EQ(writes, 3); // [0,4) [4,8) [8,11)
  free(rows);
  ASSERT_EQ(write_range(w, r, 0, 5), SN_OK);
  ASSERT_EQ(write_range(w, r, 6, 3), SN_OK);
  sn_writer_destroy(w);
  // The work restarts at the first input not done (rows 6..8, done already, are computed again:
  // an output's rows are always those of a prefix of the inputs), in chunk-sized units.
  c.resume = 1;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(sn_writer_local_rows(w, &rows, &n, &writes), SN_OK);
  EXPECT_EQ(std::vector<int64_t>(rows, rows + n), (std::vector<int64_t>{5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(writes, 2); // [5, 9) [9, 11)
  free(rows);
  sn_writer_destroy(w);
}

// With 3 ranks (computed as every rank would, from its own view), the units of each round go to
// the ranks in turn; a resumed output whose /index does not match /done is refused.
TEST(Writer, LocalRowsTakeUnitsInTurn) {
  std::string dir = sntest::temp_dir();
  std::string p = dir + "/turn.h5";
  Rows r(11, 2, 4, 3);
  sn_writer_config c = config(11, 2, 4, 3, SN_FEATURES_F32); // chunks of 4 rows
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(write_range(w, r, 0, 2), SN_OK);
  sn_writer_destroy(w);
  // /index of row 1 says input 7: the file cannot be resumed
  sn_h5_lock();
  hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "index", H5P_DEFAULT);
  int64_t wrong[2] = {0, 7};
  hsize_t two[1] = {2};
  hid_t ms = H5Screate_simple(1, two, nullptr), fs = H5Dget_space(d);
  hsize_t zero[1] = {0};
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, zero, nullptr, two, nullptr);
  H5Dwrite(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, wrong);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  H5Fclose(f);
  sn_h5_unlock();
  c.resume = 1;
  EXPECT_EQ(sn_writer_create(p.c_str(), sn_comm_serial(), &c, &w), SN_ERR_FORMAT);
  EXPECT_TRUE(has(sn_last_error(), "row 1 holds input 7 in /index but /done says input 1"))
      << sn_last_error();
}

// Staged batches of any size give the same file as direct block writes; the staging refuses
// rows it cannot place and writes before a unit is complete.
TEST(Writer, StagingWritesUnitsInOrder) {
  std::string dir = sntest::temp_dir();
  Rows r(23, 3, 6, 5);
  sn_writer_config c = config(23, 3, 6, 5, SN_FEATURES_F16);
  c.chunk_rows = 5;
  const std::string direct = dir + "/direct.h5", staged = dir + "/staged.h5";
  sn_writer *w = nullptr;
  ASSERT_EQ(sn_writer_create(direct.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  ASSERT_EQ(write_range(w, r, 0, 23), SN_OK);
  ASSERT_EQ(sn_writer_finish(w), SN_OK);
  sn_writer_destroy(w);
  for (int batch : {1, 3, 7, 23}) {
    ASSERT_EQ(sn_writer_create(staged.c_str(), sn_comm_serial(), &c, &w), SN_OK);
    sn_staging *st = nullptr;
    ASSERT_EQ(sn_staging_create(w, batch, &st), SN_OK) << sn_last_error();
    int64_t n = 0;
    const int64_t *rows = sn_staging_rows(st, &n);
    ASSERT_EQ(n, 23);
    EXPECT_EQ(sn_staging_writes(st), 5);
    EXPECT_EQ(
        sn_staging_add(st, batch + 1, r.idx.data(), r.val.data(), r.logits.data(), r.feat.data()),
        SN_ERR_INVALID); // more than a batch
    EXPECT_EQ(sn_staging_add(st, 1, nullptr, r.val.data(), r.logits.data(), r.feat.data()),
              SN_ERR_INVALID);                       // a dataset's values missing
    EXPECT_EQ(sn_staging_write(st), SN_ERR_INVALID); // unit 0 not complete
    int64_t added = 0;
    while (sn_staging_writes(st) > 0) {
      while (!sn_staging_ready(st)) {
        const int k = (int)std::min<int64_t>(batch, n - added);
        const int64_t b = rows[added];
        ASSERT_EQ(sn_staging_add(st, k, r.idx.data() + b * r.k, r.val.data() + b * r.k,
                                 r.logits.data() + b * r.classes, r.feat.data() + b * r.d),
                  SN_OK)
            << sn_last_error();
        added += k;
      }
      ASSERT_EQ(sn_staging_write(st), SN_OK) << sn_last_error();
    }
    EXPECT_EQ(sn_staging_written(st), 23);
    EXPECT_EQ(sn_staging_write(st), SN_ERR_INVALID); // no writes left
    ASSERT_EQ(sn_writer_finish(w), SN_OK) << sn_last_error();
    sn_staging_destroy(st);
    sn_writer_destroy(w);
    for (const char *name : {"predictions/top_k_indices", "index", "done"})
      EXPECT_EQ(read_ds<int64_t>(staged, name, H5T_NATIVE_INT64),
                read_ds<int64_t>(direct, name, H5T_NATIVE_INT64))
          << name << " batch " << batch;
    for (const char *name : {"predictions/top_k_scores", "logits", "features"})
      EXPECT_EQ(read_ds<float>(staged, name, H5T_NATIVE_FLOAT),
                read_ds<float>(direct, name, H5T_NATIVE_FLOAT))
          << name << " batch " << batch;
  }
  // only the datasets written are staged: logits may be NULL without SN_WRITE_LOGITS
  c.flags = SN_WRITE_PREDICTIONS;
  ASSERT_EQ(sn_writer_create(staged.c_str(), sn_comm_serial(), &c, &w), SN_OK);
  sn_staging *st = nullptr;
  ASSERT_EQ(sn_staging_create(w, 23, &st), SN_OK);
  EXPECT_EQ(sn_staging_add(st, 23, r.idx.data(), r.val.data(), nullptr, nullptr), SN_OK);
  EXPECT_EQ(sn_staging_add(st, 1, r.idx.data(), r.val.data(), nullptr, nullptr), SN_ERR_INVALID);
  sn_staging_destroy(st);
  EXPECT_EQ(sn_staging_create(nullptr, 4, &st), SN_ERR_INVALID);
  EXPECT_EQ(st, nullptr);
  EXPECT_EQ(sn_staging_create(w, 0, &st), SN_ERR_INVALID);
  sn_writer_destroy(w);
}
