// io_mpi_test.cpp - parallel HDF5 (run by mpirun -np 1, 2, 4): collective writer blocks and
// parallel converters give datasets identical to the serial ones; resume under MPI.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "image.h"
#include "io_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

struct World {
  sn_comm *comm = nullptr;
  int rank = 0, size = 1;
  World() {
    EXPECT_EQ(sn_comm_create_world(&comm), SN_OK) << sn_last_error();
    rank = sn_comm_rank(comm);
    size = sn_comm_size(comm);
  }
  ~World() { sn_comm_destroy(comm); }
  // A directory made by rank 0, the same path on every rank.
  std::string shared_dir() {
    char buf[256] = {0};
    if (rank == 0) std::snprintf(buf, sizeof buf, "%s", sntest::temp_dir().c_str());
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, MPI_COMM_WORLD);
    return buf;
  }
};

// Raw bytes (in the file's own type), dims and type class of a dataset.
struct Blob {
  std::vector<uint8_t> bytes;
  std::vector<hsize_t> dims;
  size_t type_size = 0;
  bool ok = false;
};

Blob read_blob(const std::string &path, const char *name) {
  Blob b;
  sn_h5_lock();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
  if (d >= 0) {
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    int r = H5Sget_simple_extent_ndims(s);
    b.dims.resize(r);
    H5Sget_simple_extent_dims(s, b.dims.data(), nullptr);
    size_t n = 1;
    for (auto x : b.dims)
      n *= x;
    b.type_size = H5Tget_size(t);
    b.bytes.resize(n * b.type_size);
    b.ok = H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.bytes.data()) >= 0;
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
  }
  if (f >= 0) H5Fclose(f);
  sn_h5_unlock();
  return b;
}

void expect_same(const std::string &a, const std::string &b,
                 const std::vector<const char *> &names) {
  for (const char *n : names) {
    Blob x = read_blob(a, n), y = read_blob(b, n);
    EXPECT_TRUE(x.ok) << a << " " << n;
    EXPECT_TRUE(y.ok) << b << " " << n;
    EXPECT_EQ(x.dims, y.dims) << n;
    EXPECT_EQ(x.type_size, y.type_size) << n;
    EXPECT_TRUE(x.bytes == y.bytes) << n << " differs";
  }
}

// Every rank's status, combined: the test fails on all ranks if any failed.
void all_ok(sn_status s) {
  int bad = s != SN_OK, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  ASSERT_EQ(any, 0) << sn_last_error();
}

struct Data {
  int n, k, classes, d;
  std::vector<int32_t> idx;
  std::vector<float> val, logits, feat;
  Data(int n_, int k_, int c_, int d_) : n(n_), k(k_), classes(c_), d(d_) {
    logits = sntest::randn((size_t)n * classes, 21);
    feat = sntest::randn((size_t)n * d, 22, 4.0f);
    idx.resize((size_t)n * k);
    val.resize((size_t)n * k);
    sn_topk(logits.data(), n, classes, k, idx.data(), val.data());
  }
};

sn_writer_config out_config(int64_t n, int compression) {
  sn_writer_config c;
  sn_writer_config_init(&c);
  c.n_total = n;
  c.top_k = 3;
  c.classes = 6;
  c.feature_dim = 5;
  c.feature_dtype = SN_FEATURES_F16;
  c.flags = SN_WRITE_PREDICTIONS | SN_WRITE_LOGITS | SN_WRITE_FEATURES;
  c.compression = compression;
  c.chunk_rows = 4;
  return c;
}

// Writes rows [b, e) in sub-blocks of `step`; every rank makes the same number of calls.
sn_status write_part(sn_writer *w, const Data &x, int64_t b, int64_t e, int step, sn_comm *comm) {
  int64_t calls = (e - b + step - 1) / step;
  sn_comm_allreduce(comm, &calls, 1, SN_I64, SN_MAX);
  for (int64_t c = 0; c < calls; ++c) {
    int64_t rb = std::min(e, b + c * step), re = std::min(e, rb + step);
    int cnt = (int)(re - rb);
    sn_status s =
        sn_writer_write_block(w, rb, cnt, x.idx.data() + rb * x.k, x.val.data() + rb * x.k,
                              x.logits.data() + rb * x.classes, x.feat.data() + rb * x.d, nullptr);
    if (s != SN_OK) return s;
  }
  return SN_OK;
}

const std::vector<const char *> kOutputs = {
    "predictions/top_k_indices", "predictions/top_k_scores", "logits", "features", "index", "done"};

TEST(IoMpi, CollectiveWriterMatchesSerial) {
  World w;
  std::string dir = w.shared_dir();
  for (int compression : {0, 3}) {
    const int64_t n = 37;
    Data x((int)n, 3, 6, 5);
    std::string ser = dir + "/serial" + std::to_string(compression) + ".h5";
    std::string par = dir + "/par" + std::to_string(compression) + ".h5";
    sn_writer_config c = out_config(n, compression);
    if (w.rank == 0) {
      sn_writer *s = nullptr;
      ASSERT_EQ(sn_writer_create(ser.c_str(), sn_comm_serial(), &c, &s), SN_OK) << sn_last_error();
      ASSERT_EQ(write_part(s, x, 0, n, 10, sn_comm_serial()), SN_OK) << sn_last_error();
      ASSERT_EQ(sn_writer_finish(s), SN_OK);
      sn_writer_destroy(s);
    }
    sn_writer *pw = nullptr;
    all_ok(sn_writer_create(par.c_str(), w.comm, &c, &pw));
    all_ok(sn_writer_set_attr_str(pw, "arch", "resnet18"));
    int64_t b, e;
    sn_shard_block(n, w.rank, w.size, &b, &e); // blocks not aligned to chunks: shared chunks
    all_ok(write_part(pw, x, b, e, 3, w.comm));
    all_ok(sn_writer_finish(pw));
    sn_writer_destroy(pw);
    MPI_Barrier(MPI_COMM_WORLD);
    if (w.rank == 0) {
      expect_same(ser, par, kOutputs);
      sn_output_state st;
      ASSERT_EQ(sn_output_status(par.c_str(), &st), SN_OK);
      EXPECT_EQ(st, SN_OUTPUT_COMPLETE);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// Stages the results of `mine` (this rank's inputs, sn_staging_rows) in batches of up to 3
// inputs, leaving out the inputs for which skip(i) holds (as a reader with bad_images = skip
// would), one collective write per round, at most max_writes of them (-1: all). Returns the
// agreed status.
template <class Skip>
sn_status stage_all(sn_staging *st, const Data &x, Skip skip, int64_t max_writes = -1) {
  int64_t cnt = 0;
  const int64_t *mine = sn_staging_rows(st, &cnt);
  int64_t added = 0;
  while (sn_staging_writes(st) > 0 && max_writes-- != 0) {
    while (!sn_staging_ready(st)) {
      const int k = (int)std::min<int64_t>(3, cnt - added);
      std::vector<int32_t> idx;
      std::vector<float> val, lg, ft;
      std::vector<int64_t> kept, skipped;
      std::vector<const char *> reasons;
      for (int j = 0; j < k; ++j) {
        const int64_t r = mine[added + j];
        if (skip(r)) {
          skipped.push_back(r);
          reasons.push_back("corrupt JPEG: a test");
          continue;
        }
        kept.push_back(r);
        idx.insert(idx.end(), x.idx.begin() + r * x.k, x.idx.begin() + (r + 1) * x.k);
        val.insert(val.end(), x.val.begin() + r * x.k, x.val.begin() + (r + 1) * x.k);
        lg.insert(lg.end(), x.logits.begin() + r * x.classes,
                  x.logits.begin() + (r + 1) * x.classes);
        ft.insert(ft.end(), x.feat.begin() + r * x.d, x.feat.begin() + (r + 1) * x.d);
      }
      sn_batch b;
      memset(&b, 0, sizeof b);
      b.rows = kept.data();
      b.count = (int)kept.size();
      b.inputs = k;
      b.skipped = (int)skipped.size();
      b.skipped_rows = skipped.data();
      b.skipped_reasons = reasons.data();
      sn_status s = sn_staging_add_batch(st, &b, idx.data(), val.data(), lg.data(), ft.data());
      if (s != SN_OK) return s;
      added += k;
    }
    sn_status ws = sn_staging_write(st);
    if (ws != SN_OK) return ws;
  }
  return SN_OK;
}

// sn_writer_local_rows gives rank r the r-th chunk-sized unit of every round, from the first
// input not done; staged writes of those shares give the serial file (new, and resumed).
TEST(IoMpi, StagedSharesMatchSerial) {
  World w;
  std::string dir = w.shared_dir();
  const int64_t n = 37;
  Data x((int)n, 3, 6, 5);
  sn_writer_config c = out_config(n, 0);
  std::string ser = dir + "/staged_serial.h5", par = dir + "/staged_par.h5";
  if (w.rank == 0) {
    sn_writer *s = nullptr;
    ASSERT_EQ(sn_writer_create(ser.c_str(), sn_comm_serial(), &c, &s), SN_OK);
    ASSERT_EQ(write_part(s, x, 0, n, 10, sn_comm_serial()), SN_OK);
    ASSERT_EQ(sn_writer_finish(s), SN_OK);
    sn_writer_destroy(s);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  for (int resume : {0, 1}) {
    c.resume = resume;
    sn_writer *pw = nullptr;
    all_ok(sn_writer_create(par.c_str(), w.comm, &c, &pw));
    int64_t *rows = nullptr, cnt = 0, writes = 0;
    all_ok(sn_writer_local_rows(pw, &rows, &cnt, &writes));
    // rounds of size x chunk inputs from the first input not done (13 when resuming)
    const int64_t start = resume ? 13 : 0, chunk = sn_writer_chunk_rows(pw);
    EXPECT_EQ(chunk, 4);
    std::vector<int64_t> want;
    for (int64_t j = 0; start + j * chunk * w.size < n; ++j)
      for (int64_t i = start + (j * w.size + w.rank) * chunk;
           i < std::min(n, start + (j * w.size + w.rank + 1) * chunk); ++i)
        want.push_back(i);
    EXPECT_EQ(std::vector<int64_t>(rows, rows + cnt), want);
    EXPECT_EQ(writes, (n - start + chunk * w.size - 1) / (chunk * w.size));
    free(rows);
    sn_staging *st = nullptr;
    all_ok(sn_staging_create(pw, 3, &st));
    all_ok(stage_all(st, x, [](int64_t) { return false; }));
    sn_staging_rows(st, &cnt);
    EXPECT_EQ(sn_staging_written(st), cnt);
    sn_staging_destroy(st);
    all_ok(sn_writer_finish(pw));
    sn_writer_destroy(pw);
    MPI_Barrier(MPI_COMM_WORLD);
    if (w.rank == 0) {
      SCOPED_TRACE(resume ? "resumed" : "new");
      expect_same(ser, par, kOutputs);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    // the second pass resumes an interrupted output: inputs 0..12 written
    if (!resume) {
      sn_writer_config c0 = out_config(n, 0);
      all_ok(sn_writer_create(par.c_str(), w.comm, &c0, &pw));
      all_ok(write_part(pw, x, 0, w.rank == 0 ? 13 : 0, 8, w.comm));
      sn_writer_destroy(pw);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// Inputs left out (bad images) have no row: every rank count gives the serial file, whose rows
// are the kept inputs in order, /done says which were skipped and /skipped lists them; an output
// interrupted after some rounds and resumed on another rank count is the same file.
TEST(IoMpi, StagedSkipsMatchSerial) {
  World w;
  std::string dir = w.shared_dir();
  const int64_t n = 53;
  Data x((int)n, 3, 6, 5);
  auto bad = [](int64_t i) { return i % 7 == 3 || (i >= 20 && i < 27); };
  sn_writer_config c = out_config(n, 1);
  std::string ser = dir + "/skip_serial.h5", par = dir + "/skip_par.h5";
  if (w.rank == 0) {
    sn_writer *s = nullptr;
    sn_staging *st = nullptr;
    ASSERT_EQ(sn_writer_create(ser.c_str(), sn_comm_serial(), &c, &s), SN_OK);
    ASSERT_EQ(sn_staging_create(s, 3, &st), SN_OK);
    ASSERT_EQ(stage_all(st, x, bad), SN_OK) << sn_last_error();
    sn_staging_destroy(st);
    ASSERT_EQ(sn_writer_finish(s), SN_OK) << sn_last_error();
    int64_t rows = 0, skipped = 0;
    sn_writer_counts(s, &rows, &skipped);
    EXPECT_EQ(rows + skipped, n);
    EXPECT_EQ(skipped, 14);
    sn_writer_destroy(s);
    Blob idx = read_blob(ser, "index");
    ASSERT_EQ(idx.dims, std::vector<hsize_t>{(hsize_t)rows});
    std::vector<int64_t> got(rows), want;
    memcpy(got.data(), idx.bytes.data(), idx.bytes.size());
    for (int64_t i = 0; i < n; ++i)
      if (!bad(i)) want.push_back(i);
    EXPECT_EQ(got, want);
    Blob sk = read_blob(ser, "skipped/index");
    ASSERT_EQ(sk.dims, std::vector<hsize_t>{14});
  }
  MPI_Barrier(MPI_COMM_WORLD);
  sn_writer *pw = nullptr;
  sn_staging *st = nullptr;
  all_ok(sn_writer_create(par.c_str(), w.comm, &c, &pw));
  all_ok(sn_staging_create(pw, 3, &st));
  all_ok(stage_all(st, x, bad));
  sn_staging_destroy(st);
  all_ok(sn_writer_finish(pw));
  sn_writer_destroy(pw);
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<const char *> names = kOutputs;
  names.push_back("skipped/index");
  if (w.rank == 0) expect_same(ser, par, names);
  // interrupted: only the first round written (then "killed"), resumed by all ranks
  MPI_Barrier(MPI_COMM_WORLD);
  if (w.rank == 0) { /* a serial run killed after 3 rounds (inputs 0..11) */
    sn_writer *s = nullptr;
    ASSERT_EQ(sn_writer_create(par.c_str(), sn_comm_serial(), &c, &s), SN_OK);
    ASSERT_EQ(sn_staging_create(s, 3, &st), SN_OK);
    ASSERT_EQ(stage_all(st, x, bad, 3), SN_OK) << sn_last_error();
    sn_staging_destroy(st);
    sn_writer_destroy(s);
    int64_t *miss = nullptr, nmiss = 0;
    sn_writer_config cr = c;
    cr.resume = 1;
    ASSERT_EQ(sn_writer_create(par.c_str(), sn_comm_serial(), &cr, &s), SN_OK);
    ASSERT_EQ(sn_writer_missing_rows(s, &miss, &nmiss), SN_OK);
    EXPECT_EQ(nmiss, n - 12);
    free(miss);
    sn_writer_destroy(s);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  sn_writer_config cr = c;
  cr.resume = 1;
  all_ok(sn_writer_create(par.c_str(), w.comm, &cr, &pw));
  all_ok(sn_staging_create(pw, 3, &st));
  all_ok(stage_all(st, x, bad));
  sn_staging_destroy(st);
  all_ok(sn_writer_finish(pw));
  sn_writer_destroy(pw);
  MPI_Barrier(MPI_COMM_WORLD);
  if (w.rank == 0) expect_same(ser, par, names);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(IoMpi, ResumeUnderMpi) {
  World w;
  std::string dir = w.shared_dir();
  const int64_t n = 29;
  Data x((int)n, 3, 6, 5);
  std::string p = dir + "/resume.h5";
  sn_writer_config c = out_config(n, 0);
  sn_writer *pw = nullptr;
  all_ok(sn_writer_create(p.c_str(), w.comm, &c, &pw));
  int64_t b, e;
  sn_shard_block(n, w.rank, w.size, &b, &e);
  const int64_t half = b + (e - b) / 2; // every rank writes the first half of its block
  all_ok(write_part(pw, x, b, half, 4, w.comm));
  sn_writer_destroy(pw); // interrupted
  MPI_Barrier(MPI_COMM_WORLD);
  sn_output_state st;
  ASSERT_EQ(sn_output_status(p.c_str(), &st), SN_OK);
  EXPECT_EQ(st, SN_OUTPUT_INCOMPLETE);
  c.resume = 1;
  all_ok(sn_writer_create(p.c_str(), w.comm, &c, &pw));
  int64_t *miss = nullptr, nmiss = 0;
  ASSERT_EQ(sn_writer_missing_rows(pw, &miss, &nmiss), SN_OK);
  std::vector<int64_t> expect;
  for (int r = 0; r < w.size; ++r) {
    int64_t rb, re;
    sn_shard_block(n, r, w.size, &rb, &re);
    for (int64_t i = rb + (re - rb) / 2; i < re; ++i)
      expect.push_back(i);
  }
  EXPECT_EQ(std::vector<int64_t>(miss, miss + nmiss), expect);
  free(miss);
  all_ok(write_part(pw, x, half, e, 4, w.comm));
  all_ok(sn_writer_finish(pw));
  sn_writer_destroy(pw);
  MPI_Barrier(MPI_COMM_WORLD);
  ASSERT_EQ(sn_output_status(p.c_str(), &st), SN_OK);
  EXPECT_EQ(st, SN_OUTPUT_COMPLETE);
  Blob lg = read_blob(p, "logits");
  ASSERT_EQ(lg.bytes.size(), x.logits.size() * 4);
  EXPECT_EQ(0, memcmp(lg.bytes.data(), x.logits.data(), lg.bytes.size()));
  MPI_Barrier(MPI_COMM_WORLD);
}

void write_file(const std::string &p, const uint8_t *b, size_t n) {
  std::ofstream o(p, std::ios::binary);
  o.write((const char *)b, (std::streamsize)n);
}

// root/cls<k>/img<i>.{jpg,png}: 23 small images of varied sizes over 3 classes (rank 0 makes it).
std::string make_tree(World &w, const std::string &dir) {
  std::string root = dir + "/tree";
  if (w.rank == 0) {
    mkdir(root.c_str(), 0755);
    for (int c = 0; c < 3; ++c)
      mkdir((root + "/cls" + std::to_string(c)).c_str(), 0755);
    for (int i = 0; i < 23; ++i) {
      const int h = 10 + (i * 7) % 23, wd = 12 + (i * 5) % 19, ch = i % 5 == 0 ? 1 : 3;
      std::vector<uint8_t> pix((size_t)h * wd * ch);
      for (size_t j = 0; j < pix.size(); ++j)
        pix[j] = (uint8_t)((j * 3 + i * 17) % 200 + 20);
      uint8_t *b = nullptr;
      size_t n = 0;
      const bool jpg = i % 2 == 0;
      if (jpg)
        sn_image_encode_jpeg(pix.data(), h, wd, ch, 90, &b, &n);
      else
        sn_image_encode_png(pix.data(), h, wd, ch, &b, &n);
      char name[64];
      std::snprintf(name, sizeof name, "/cls%d/img%02d.%s", i % 3, i, jpg ? "jpg" : "png");
      write_file(root + name, b, n);
      free(b);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return root;
}

TEST(IoMpi, ParallelConvertFolderMatchesSerial) {
  World w;
  std::string dir = w.shared_dir();
  std::string root = make_tree(w, dir);
  for (int encoded : {0, 1}) {
    sn_convert_options o;
    sn_convert_options_init(&o);
    o.encoded = encoded;
    o.height = o.width = 12;
    o.resize_shorter = encoded ? 0 : 14;
    o.chunk_rows = 2;
    o.compression = encoded ? 0 : 2;
    std::string ser = dir + "/ser" + std::to_string(encoded) + ".h5";
    std::string par = dir + "/par" + std::to_string(encoded) + ".h5";
    if (w.rank == 0)
      ASSERT_EQ(sn_convert_folder(root.c_str(), ser.c_str(), sn_comm_serial(), &o), SN_OK)
          << sn_last_error();
    all_ok(sn_convert_folder(root.c_str(), par.c_str(), w.comm, &o));
    if (w.rank == 0) {
      if (encoded)
        expect_same(ser, par, {"encoded", "offsets", "labels", "classes", "filenames"});
      else
        expect_same(ser, par, {"images", "labels", "classes", "filenames"});
      sn_dataset *ds = nullptr;
      ASSERT_EQ(sn_dataset_open(par.c_str(), sn_comm_serial(), &ds), SN_OK) << sn_last_error();
      EXPECT_EQ(sn_dataset_get_info(ds)->n, 23);
      EXPECT_EQ(sn_dataset_get_info(ds)->h, 12);
      sn_dataset_close(ds);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST(IoMpi, ParallelConvertIdxMatchesSerial) {
  const std::string fm = "/usr/share/datasets/fashion-mnist/";
  if (!sntest::file_exists(fm + "t10k-images-idx3-ubyte.gz")) GTEST_SKIP();
  World w;
  std::string dir = w.shared_dir();
  sn_convert_options o;
  sn_convert_options_init(&o);
  o.fashion = 1;
  o.chunk_rows = 300;
  std::string ser = dir + "/ser.h5", par = dir + "/par.h5";
  std::string im = fm + "t10k-images-idx3-ubyte.gz", lb = fm + "t10k-labels-idx1-ubyte.gz";
  if (w.rank == 0)
    ASSERT_EQ(sn_convert_idx(im.c_str(), lb.c_str(), ser.c_str(), sn_comm_serial(), &o), SN_OK);
  all_ok(sn_convert_idx(im.c_str(), lb.c_str(), par.c_str(), w.comm, &o));
  if (w.rank == 0) expect_same(ser, par, {"images", "labels", "classes"});
  // An error on the inputs is reported on every rank, and no file is left.
  sn_status s = sn_convert_idx(lb.c_str(), im.c_str(), (dir + "/bad.h5").c_str(), w.comm, &o);
  EXPECT_EQ(s, SN_ERR_FORMAT);
  EXPECT_FALSE(sntest::file_exists(dir + "/bad.h5.partial"));
  MPI_Barrier(MPI_COMM_WORLD);
}

} // namespace
