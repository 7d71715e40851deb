// The workload generator, the .npy reader and writer, and LoadWorkloadNpy.
#include "hisa/workload.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "hisa/numeric.h"

namespace hisa {
namespace {

// A size the reference backend handles in milliseconds.
constexpr int64_t kContext = 4096;
constexpr int64_t kQueries = 8;

IndexerConfig SmallConfig() {
  IndexerConfig cfg;
  cfg.num_heads = 16;
  cfg.head_dim = 64;
  cfg.top_k = 256;
  cfg.block_size = 64;
  cfg.block_budget = 8;
  return cfg;
}

Workload Generate(Regime regime, uint64_t seed, IndexerConfig cfg = SmallConfig()) {
  return GenerateWorkload(cfg, {regime, kContext, kQueries, seed});
}

RunOptions Reference() {
  RunOptions opts;
  opts.backend = Backend::kReference;
  return opts;
}

/// The reference flat top-k of every query, one set of relative positions per query.
std::vector<std::set<int32_t>> FlatSets(const Workload& w) {
  std::vector<int32_t> indices(static_cast<size_t>(w.num_queries * w.cfg.top_k));
  const Status status = FlatTopkPrefill(w.cfg, w.Inputs(), {indices.data()}, Reference());
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::vector<std::set<int32_t>> sets(static_cast<size_t>(w.num_queries));
  for (int64_t t = 0; t < w.num_queries; ++t) {
    for (int32_t i = 0; i < w.cfg.top_k; ++i) {
      const int32_t s = indices[t * w.cfg.top_k + i];
      if (s >= 0) sets[t].insert(s);
    }
  }
  return sets;
}

/// Mean number of distinct blocks the flat top-k of a query touches.
double MeanBlocksTouched(const Workload& w) {
  double total = 0;
  for (const auto& set : FlatSets(w)) {
    std::set<int32_t> blocks;
    for (int32_t s : set) blocks.insert(s / w.cfg.block_size);
    total += static_cast<double>(blocks.size());
  }
  return total / static_cast<double>(w.num_queries);
}

bool SameTensors(const Workload& a, const Workload& b) {
  return a.q == b.q && a.w == b.w && a.k == b.k && a.kscale == b.kscale && a.ks == b.ks &&
         a.ke == b.ke;
}

// ---------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------

TEST(GenerateWorkload, SameSeedGivesTheSameWorkload) {
  for (Regime regime : AllRegimes()) {
    EXPECT_TRUE(SameTensors(Generate(regime, 7), Generate(regime, 7))) << RegimeName(regime);
  }
}

TEST(GenerateWorkload, SeedsGiveDifferentWorkloads) {
  for (Regime regime : AllRegimes()) {
    const Workload a = Generate(regime, 1), b = Generate(regime, 2);
    EXPECT_NE(a.k, b.k) << RegimeName(regime);
    EXPECT_NE(a.q, b.q) << RegimeName(regime);
  }
}

TEST(GenerateWorkload, IndependentOfTheThreadCount) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Workload one = Generate(Regime::kTopics, 3);
  omp_set_num_threads(3);
  const Workload three = Generate(Regime::kTopics, 3);
  omp_set_num_threads(threads);
  EXPECT_TRUE(SameTensors(one, three));
}

TEST(GenerateWorkload, ShapesAndQueryRanges) {
  for (DType q_dtype : {DType::kFp8E4M3, DType::kBf16}) {
    for (DType k_dtype : {DType::kFp8E4M3, DType::kBf16}) {
      IndexerConfig cfg = SmallConfig();
      cfg.q_dtype = q_dtype;
      cfg.k_dtype = k_dtype;
      const Workload w = GenerateWorkload(cfg, {Regime::kNeedle, 1000, 10, 0});
      EXPECT_EQ(w.num_keys, 1000);
      EXPECT_EQ(w.num_queries, 10);
      EXPECT_EQ(w.name, "needle");
      EXPECT_EQ(w.q.size(), size_t{10} * 16 * 64 * DTypeSize(q_dtype));
      EXPECT_EQ(w.w.size(), size_t{10} * 16);
      EXPECT_EQ(w.k.size(), size_t{1000} * 64 * DTypeSize(k_dtype));
      EXPECT_EQ(w.kscale.size(), size_t{1000});
      EXPECT_EQ(w.seq_starts, std::vector<int32_t>{0});
      EXPECT_EQ(w.seq_lens, std::vector<int32_t>{1000});
      for (int32_t t = 0; t < 10; ++t) {
        EXPECT_EQ(w.ks[t], 0);
        EXPECT_EQ(w.ke[t], 1000 - 10 + t + 1);  // query t at position N - T + t
      }
      if (k_dtype == DType::kBf16) {
        EXPECT_TRUE(std::all_of(w.kscale.begin(), w.kscale.end(), [](float s) { return s == 1; }));
      }
    }
  }
}

TEST(GenerateWorkload, ClampsQueriesToTheContext) {
  const Workload w = GenerateWorkload(SmallConfig(), {Regime::kRandom, 5, 9, 0});
  EXPECT_EQ(w.num_queries, 5);
  EXPECT_EQ(w.ke.back(), 5);
}

TEST(GenerateWorkload, Fp8RowsUseTheRangeOfTheirScaleRule) {
  for (ScaleRule rule : {ScaleRule::kAmax, ScaleRule::kUe8m0}) {
    IndexerConfig cfg = SmallConfig();
    cfg.pooled_scale_rule = rule;
    const Workload w = Generate(Regime::kSinksLocal, 0, cfg);
    const int32_t dim = cfg.head_dim;
    for (int64_t s = 0; s < w.num_keys; ++s) {
      float amax = 0;
      for (int32_t d = 0; d < dim; ++d) {
        amax = std::max(amax, std::fabs(Fp8ToFloat(w.k[s * dim + d])));
      }
      if (rule == ScaleRule::kAmax) {
        ASSERT_EQ(amax, kFp8Max) << "key " << s;
      } else {
        ASSERT_GE(amax, kFp8Max / 2) << "key " << s;
        int exponent;
        ASSERT_EQ(std::frexp(w.kscale[s], &exponent), 0.5f) << "key " << s << " scale not 2^n";
      }
    }
  }
}

TEST(GenerateWorkload, GatesAreMostlyPositive) {
  const Workload w = Generate(Regime::kTopics, 0);
  const auto negative = std::count_if(w.w.begin(), w.w.end(), [](float g) { return g < 0; });
  const double share = static_cast<double>(negative) / static_cast<double>(w.w.size());
  EXPECT_GT(share, 0.01);
  EXPECT_LT(share, 0.25);
}

TEST(Regimes, NamesRoundTrip) {
  for (Regime regime : AllRegimes()) {
    Regime parsed;
    ASSERT_TRUE(ParseRegime(RegimeName(regime), &parsed));
    EXPECT_EQ(parsed, regime);
  }
  Regime parsed;
  EXPECT_FALSE(ParseRegime("haystack", &parsed));
  EXPECT_EQ(AllRegimes().size(), 5u);
}

TEST(Regimes, SinksLocalSelectsTheSinkAndTheRecentKeys) {
  for (uint64_t seed : {0, 1, 2}) {
    const Workload w = Generate(Regime::kSinksLocal, seed);
    const auto sets = FlatSets(w);
    int recent = 0;
    for (int64_t t = 0; t < w.num_queries; ++t) {
      EXPECT_TRUE(sets[t].count(0)) << "seed " << seed << " query " << t << ": no sink";
      recent += sets[t].count(w.ke[t] - 2) ? 1 : 0;  // the key just before the query
    }
    EXPECT_GE(recent, w.num_queries - 1) << "seed " << seed;
  }
}

TEST(Regimes, NeedlesAreInTheFlatTopK) {
  for (uint64_t seed : {0, 1, 2}) {
    const Workload w = Generate(Regime::kNeedle, seed);
    // Needles are the keys that stand out by norm in the middle of the context.
    const int32_t dim = w.cfg.head_dim;
    std::vector<double> norms(static_cast<size_t>(w.num_keys));
    for (int64_t s = 0; s < w.num_keys; ++s) {
      double sum = 0;
      for (int32_t d = 0; d < dim; ++d) {
        const double v = Fp8ToFloat(w.k[s * dim + d]) * double{w.kscale[s]};
        sum += v * v;
      }
      norms[s] = std::sqrt(sum);
    }
    std::vector<double> sorted = norms;
    std::nth_element(sorted.begin(), sorted.begin() + w.num_keys / 2, sorted.end());
    const double median = sorted[w.num_keys / 2];
    std::vector<int32_t> needles;
    for (int64_t s = w.num_keys / 10; s < w.num_keys * 9 / 10; ++s) {
      if (norms[s] > 1.6 * median) needles.push_back(static_cast<int32_t>(s));
    }
    ASSERT_FALSE(needles.empty()) << "seed " << seed;
    const auto sets = FlatSets(w);
    for (int32_t needle : needles) {
      int64_t found = 0;
      for (const auto& set : sets) found += set.count(needle);
      EXPECT_GE(found, w.num_queries - 1) << "seed " << seed << " needle " << needle;
    }
  }
}

TEST(Regimes, StructuredTopKConcentratesWhereDiffuseSpreads) {
  const double blocks = static_cast<double>(kContext / SmallConfig().block_size);
  for (uint64_t seed : {0, 1}) {
    const double sinks_local = MeanBlocksTouched(Generate(Regime::kSinksLocal, seed));
    const double topics = MeanBlocksTouched(Generate(Regime::kTopics, seed));
    const double diffuse = MeanBlocksTouched(Generate(Regime::kDiffuse, seed));
    EXPECT_LT(sinks_local, 0.65 * blocks) << "seed " << seed;
    EXPECT_LT(topics, 0.75 * blocks) << "seed " << seed;
    EXPECT_GT(diffuse, 0.9 * blocks) << "seed " << seed;
  }
}

TEST(Regimes, HisaEqualsFlatWhenEveryBlockFits) {
  // o + 1 <= m for every query: the selections must match exactly on generated data too.
  IndexerConfig cfg = SmallConfig();
  cfg.block_budget = static_cast<int32_t>(kContext / cfg.block_size);
  const Workload w = Generate(Regime::kTopics, 0, cfg);
  const int64_t slots = PooledSlotsForRows(cfg, w.num_keys);
  std::vector<uint8_t> pooled_k(static_cast<size_t>(slots * cfg.head_dim));
  std::vector<float> pooled_scale(static_cast<size_t>(slots));
  const PooledKeys pooled{pooled_k.data(), pooled_scale.data(), slots};
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg, w.Keys(), w.seq_starts.data(), w.seq_lens.data(), 1,
                                     pooled, Reference())
                  .ok());
  std::vector<int32_t> hisa(static_cast<size_t>(w.num_queries * cfg.top_k));
  ASSERT_TRUE(HisaTopkPrefill(cfg, w.Inputs(), pooled, {hisa.data()}, Reference()).ok());
  const auto flat = FlatSets(w);
  for (int64_t t = 0; t < w.num_queries; ++t) {
    const std::set<int32_t> got(hisa.begin() + t * cfg.top_k, hisa.begin() + (t + 1) * cfg.top_k);
    EXPECT_EQ(got, flat[t]) << "query " << t;
  }
}

// ---------------------------------------------------------------------------------------------
// .npy files
// ---------------------------------------------------------------------------------------------

/// A fresh directory per test, removed afterwards.
class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("hisa_workload_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  void WriteBytes(const std::string& name, const std::string& bytes) const {
    std::ofstream(Path(name), std::ios::binary) << bytes;
  }

  template <typename T>
  void Write(const std::string& name, const char* dtype, std::vector<int64_t> shape,
             const std::vector<T>& values) const {
    NpyArray a;
    a.dtype = dtype;
    a.shape = std::move(shape);
    a.data.resize(values.size() * sizeof(T));
    std::memcpy(a.data.data(), values.data(), a.data.size());
    const Status status = WriteNpy(Path(name), a);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  std::filesystem::path dir_;
};

/// An .npy file as numpy writes it, from its header dict (padded to 64 bytes) and raw data.
std::string NpyBytes(const std::string& dict, const std::string& data, int major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  for (size_t i = 0; i < prefix - 8; ++i) {
    out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  }
  return out + header + data;
}

std::string FloatBytes(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

TEST_F(NpyTest, RoundTripsEveryDtypeAndShape) {
  const std::vector<std::pair<std::string, size_t>> dtypes = {
      {"b1", 1}, {"i1", 1}, {"u1", 1}, {"i2", 2}, {"u2", 2}, {"f2", 2},
      {"i4", 4}, {"u4", 4}, {"f4", 4}, {"i8", 8}, {"u8", 8}, {"f8", 8}};
  const std::vector<std::vector<int64_t>> shapes = {{}, {5}, {2, 3, 4}, {0, 3}};
  for (const auto& [dtype, item] : dtypes) {
    for (const auto& shape : shapes) {
      NpyArray a;
      a.dtype = dtype;
      a.shape = shape;
      a.data.resize(static_cast<size_t>(a.size()) * item);
      for (size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<uint8_t>(i * 37 + 11);
      if (dtype == "b1") {
        for (uint8_t& b : a.data) b &= 1;
      }
      const std::string path = Path("a.npy");
      ASSERT_TRUE(WriteNpy(path, a).ok());
      // numpy's layout: the data starts 64-byte aligned after a version 1.0 header.
      const auto file_size = std::filesystem::file_size(path);
      EXPECT_EQ((file_size - a.data.size()) % 64, 0u) << dtype;
      NpyArray b;
      const Status status = ReadNpy(path, &b);
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(b.dtype, dtype);
      EXPECT_EQ(b.shape, shape);
      EXPECT_EQ(b.data, a.data) << dtype;
    }
  }
}

TEST_F(NpyTest, ReadsHeadersAsNumpyWritesThem) {
  const std::string data = FloatBytes({1, 2, 3, 4, 5, 6});
  for (int major : {1, 2, 3}) {
    WriteBytes("a.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                 data, major));
    NpyArray a;
    const Status status = ReadNpy(Path("a.npy"), &a);
    ASSERT_TRUE(status.ok()) << "version " << major << ": " << status.ToString();
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.dtype, "f4");
  }
  // Key order, quotes, spacing and Python 2 longs vary between writers.
  WriteBytes("b.npy",
             NpyBytes("{\"shape\":(2L,3L),\"fortran_order\":False,\"descr\":\"<f4\"}", data));
  NpyArray b;
  ASSERT_TRUE(ReadNpy(Path("b.npy"), &b).ok());
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
}

TEST_F(NpyTest, ReadErrorsNameTheFileAndTheProblem) {
  const std::string six = FloatBytes({1, 2, 3, 4, 5, 6});
  const std::string dict_f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  struct Case {
    std::string name, bytes, expected;
  };
  const std::vector<Case> cases = {
      {"fortran", NpyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", six),
       "Fortran order"},
      {"big_endian", NpyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", six),
       "big-endian"},
      {"complex", NpyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", six),
       "bad dtype '<c8'"},
      {"structured",
       NpyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", six),
       "structured"},
      {"truncated", NpyBytes(dict_f4, six.substr(0, 20)), "truncated data"},
      {"too_long", NpyBytes(dict_f4, six + "xxxx"), "shape mismatch"},
      {"magic", "PK\x03\x04 not numpy", "not an .npy file"},
      {"version", NpyBytes(dict_f4, six, 4), "unsupported .npy version 4"},
      {"no_shape", NpyBytes("{'descr': '<f4', 'fortran_order': False}", six), "no 'shape'"},
      {"bad_shape", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", six),
       "'shape' is not a tuple"},
      {"short_header", std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 17), "truncated header"},
  };
  for (const Case& c : cases) {
    const std::string file = c.name + ".npy";
    WriteBytes(file, c.bytes);
    NpyArray a;
    const Status status = ReadNpy(Path(file), &a);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(status.message().find(Path(file)), std::string::npos) << status.message();
    EXPECT_NE(status.message().find(c.expected), std::string::npos)
        << c.name << ": " << status.message();
  }
  NpyArray a;
  const Status missing = ReadNpy(Path("missing.npy"), &a);
  EXPECT_NE(missing.message().find("missing.npy: cannot open"), std::string::npos)
      << missing.message();
}

TEST_F(NpyTest, WriteErrors) {
  NpyArray a;
  a.dtype = "f4";
  a.shape = {2, 3};
  a.data.resize(20);
  Status status = WriteNpy(Path("a.npy"), a);
  EXPECT_NE(status.message().find("shape mismatch: shape [2, 3] of f4 needs 24 bytes"),
            std::string::npos)
      << status.message();
  a.dtype = "c8";
  status = WriteNpy(Path("a.npy"), a);
  EXPECT_NE(status.message().find("cannot write dtype 'c8'"), std::string::npos)
      << status.message();
  a.dtype = "u1";
  a.shape = {20};
  status = WriteNpy(Path("no_such_dir/a.npy"), a);
  EXPECT_NE(status.message().find("cannot open"), std::string::npos) << status.message();
}

// ---------------------------------------------------------------------------------------------
// LoadWorkloadNpy
// ---------------------------------------------------------------------------------------------

class LoadWorkloadTest : public NpyTest {
 protected:
  /// Writes a generated FP8 workload as FP8 codes with scales.
  void WriteFp8Workload(const Workload& w) const {
    const IndexerConfig& cfg = w.cfg;
    Write("q.npy", "u1", {w.num_queries, cfg.num_heads, cfg.head_dim}, w.q);
    Write("w.npy", "f4", {w.num_queries, cfg.num_heads}, w.w);
    Write("k.npy", "u1", {w.num_keys, cfg.head_dim}, w.k);
    Write("kscale.npy", "f4", {w.num_keys}, w.kscale);
  }

  Status Load(const IndexerConfig& cfg, Workload* out) const {
    return LoadWorkloadNpy(cfg, dir_.string(), out);
  }

  /// Expects loading to fail with a message that contains every one of `parts`.
  void ExpectLoadError(std::initializer_list<std::string> parts) const {
    Workload w;
    const Status status = Load(SmallConfig(), &w);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    for (const std::string& part : parts) {
      EXPECT_NE(status.message().find(part), std::string::npos)
          << "'" << part << "' not in: " << status.message();
    }
  }
};

TEST_F(LoadWorkloadTest, Fp8CodesLoadUnchanged) {
  const Workload generated = Generate(Regime::kNeedle, 4);
  WriteFp8Workload(generated);
  IndexerConfig cfg = SmallConfig();
  cfg.num_heads = 3;  // replaced by the files' H and D
  cfg.head_dim = 5;
  Workload loaded;
  const Status status = Load(cfg, &loaded);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(loaded.cfg.num_heads, generated.cfg.num_heads);
  EXPECT_EQ(loaded.cfg.head_dim, generated.cfg.head_dim);
  EXPECT_TRUE(SameTensors(loaded, generated));
  EXPECT_EQ(loaded.seq_starts, generated.seq_starts);
  EXPECT_EQ(loaded.seq_lens, generated.seq_lens);
  EXPECT_EQ(loaded.name, "npy:" + dir_.string());
}

TEST_F(LoadWorkloadTest, RangesDefinePackedSequences) {
  const Workload generated = Generate(Regime::kRandom, 0);
  WriteFp8Workload(generated);
  // Two sequences: rows [0, 1000) with 3 queries, rows [1000, 4000) with 5, one empty query.
  const std::vector<int64_t> ks = {0, 0, 0, 1000, 1000, 1000, 1000, 1000};
  const std::vector<int64_t> ke = {10, 999, 1000, 1000, 1500, 2999, 4000, 1000};
  Write("ks.npy", "i8", {kQueries}, ks);
  Write("ke.npy", "i8", {kQueries}, ke);
  Workload loaded;
  const Status status = Load(SmallConfig(), &loaded);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(loaded.ks, std::vector<int32_t>(ks.begin(), ks.end()));
  EXPECT_EQ(loaded.ke, std::vector<int32_t>(ke.begin(), ke.end()));
  EXPECT_EQ(loaded.seq_starts, (std::vector<int32_t>{0, 1000}));
  EXPECT_EQ(loaded.seq_lens, (std::vector<int32_t>{1000, 3000}));
  // The loaded batch runs through the API.
  const IndexerConfig& cfg = loaded.cfg;
  const int64_t slots = PooledSlotsForRows(cfg, loaded.num_keys);
  std::vector<uint8_t> pooled_k(static_cast<size_t>(slots * cfg.head_dim));
  std::vector<float> pooled_scale(static_cast<size_t>(slots));
  const PooledKeys pooled{pooled_k.data(), pooled_scale.data(), slots};
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg, loaded.Keys(), loaded.seq_starts.data(),
                                     loaded.seq_lens.data(), 2, pooled, Reference())
                  .ok());
  std::vector<int32_t> indices(static_cast<size_t>(kQueries * cfg.top_k));
  const Status run = HisaTopkPrefill(cfg, loaded.Inputs(), pooled, {indices.data()}, Reference());
  EXPECT_TRUE(run.ok()) << run.ToString();
}

TEST_F(LoadWorkloadTest, QuantizesFloatActivations) {
  const int64_t t_count = 2, heads = 3, dim = 4, n = 5;
  std::vector<float> q(t_count * heads * dim), w(t_count * heads), k(n * dim);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.7f * static_cast<float>(i)) * 3.0f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f - 0.1f * static_cast<float>(i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(1.3f * static_cast<float>(i)) * 50.0f;
  Write("q.npy", "f4", {t_count, heads, dim}, q);
  Write("w.npy", "f4", {t_count, heads}, w);
  Write("k.npy", "f4", {n, dim}, k);

  IndexerConfig cfg = SmallConfig();
  cfg.pooled_scale_rule = ScaleRule::kUe8m0;
  Workload fp8;
  ASSERT_TRUE(Load(cfg, &fp8).ok());
  for (int64_t r = 0; r < t_count * heads; ++r) {
    uint8_t codes[4];
    const float scale = QuantizeRowFp8(q.data() + r * dim, dim, ScaleRule::kUe8m0, codes);
    EXPECT_EQ(0, std::memcmp(codes, fp8.q.data() + r * dim, dim)) << "q row " << r;
    EXPECT_EQ(fp8.w[r], w[r] * scale) << "the q scale is folded into w";
  }
  for (int64_t s = 0; s < n; ++s) {
    uint8_t codes[4];
    EXPECT_EQ(fp8.kscale[s], QuantizeRowFp8(k.data() + s * dim, dim, ScaleRule::kUe8m0, codes));
    EXPECT_EQ(0, std::memcmp(codes, fp8.k.data() + s * dim, dim)) << "k row " << s;
  }

  cfg.q_dtype = cfg.k_dtype = DType::kBf16;
  Workload bf16;
  ASSERT_TRUE(Load(cfg, &bf16).ok());
  ASSERT_EQ(bf16.k.size(), k.size() * 2);
  for (size_t i = 0; i < k.size(); ++i) {
    uint16_t code;
    std::memcpy(&code, bf16.k.data() + 2 * i, 2);
    EXPECT_EQ(code, FloatToBf16(k[i]));
  }
  EXPECT_EQ(bf16.w, w);
  EXPECT_TRUE(std::all_of(bf16.kscale.begin(), bf16.kscale.end(), [](float s) { return s == 1; }));
}

TEST_F(LoadWorkloadTest, ReadsFloat16AndWidensFp8CodesExactly) {
  // float16: 1, -2.5, 2^-24 (the smallest subnormal), 0.375.
  const std::vector<uint16_t> halves = {0x3C00, 0xC100, 0x0001, 0x3600};
  const std::vector<float> values = {1.0f, -2.5f, std::ldexp(1.0f, -24), 0.375f};
  Write("q.npy", "f2", {1, 1, 4}, halves);
  Write("w.npy", "f4", {1, 1}, std::vector<float>{1});
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(i == 0x7F || i == 0xFF ? 0 : i);
  Write("k.npy", "u1", {64, 4}, codes);
  Write("kscale.npy", "f4", {64}, std::vector<float>(64, 0.5f));
  IndexerConfig cfg = SmallConfig();
  cfg.q_dtype = cfg.k_dtype = DType::kBf16;
  Workload w;
  const Status status = Load(cfg, &w);
  ASSERT_TRUE(status.ok()) << status.ToString();
  for (int d = 0; d < 4; ++d) {
    uint16_t bits;
    std::memcpy(&bits, w.q.data() + 2 * d, 2);
    EXPECT_EQ(Bf16ToFloat(bits), values[d]);
  }
  for (int i = 0; i < 256; ++i) {
    uint16_t bits;
    std::memcpy(&bits, w.k.data() + 2 * i, 2);
    EXPECT_EQ(Bf16ToFloat(bits), Fp8ToFloat(codes[i])) << "code " << i;
  }
  EXPECT_EQ(w.kscale, std::vector<float>(64, 0.5f));
}

TEST_F(LoadWorkloadTest, ShapeErrorsNameTheFileAndTheShape) {
  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("w.npy", "f4", {kQueries, 17}, std::vector<float>(kQueries * 17));
  ExpectLoadError({"w.npy", "shape [8, 17] does not match q.npy [8, 16, 64]"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("k.npy", "u1", {kContext, 32}, std::vector<uint8_t>(kContext * 32));
  ExpectLoadError({"k.npy", "shape [4096, 32]", "[N, 64]"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("kscale.npy", "f4", {7}, std::vector<float>(7, 1));
  ExpectLoadError({"kscale.npy", "shape [7]", "expected [4096]"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("q.npy", "u1", {kQueries, 16 * 64}, std::vector<uint8_t>(kQueries * 16 * 64));
  ExpectLoadError({"q.npy", "shape [8, 1024] has 2 dimensions, expected 3"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("q.npy", "i4", {kQueries, 16, 64}, std::vector<int32_t>(kQueries * 16 * 64));
  ExpectLoadError({"q.npy", "dtype 'i4' is not supported"});
}

TEST_F(LoadWorkloadTest, MissingAndInconsistentFiles) {
  ExpectLoadError({"q.npy", "cannot open"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  std::filesystem::remove(Path("kscale.npy"));
  ExpectLoadError({"kscale.npy", "missing"});

  Write("k.npy", "f4", {kContext, 64}, std::vector<float>(kContext * 64));
  Write("kscale.npy", "f4", {kContext}, std::vector<float>(kContext, 1));
  ExpectLoadError({"kscale.npy", "given, but k.npy holds f4 values"});

  WriteFp8Workload(Generate(Regime::kRandom, 0));
  Write("ks.npy", "i4", {kQueries}, std::vector<int32_t>(kQueries, 0));
  ExpectLoadError({"ke.npy", "missing"});

  Write("ke.npy", "i4", {3}, std::vector<int32_t>(3, 1));
  ExpectLoadError({"ke.npy", "shape [3]", "expected [8]"});

  Write("ke.npy", "i4", {kQueries}, std::vector<int32_t>(kQueries, kContext + 1));
  ExpectLoadError({"ks.npy", "query 0", "[0, 4097)", "N = 4096"});

  // Queries of the sequence at row 0 read past the start of the one at row 100.
  Write("ks.npy", "i4", {kQueries}, std::vector<int32_t>{0, 0, 0, 0, 100, 100, 100, 100});
  Write("ke.npy", "i4", {kQueries}, std::vector<int32_t>{50, 60, 200, 70, 150, 160, 170, 180});
  ExpectLoadError({"ks = 100", "must not overlap"});

  std::filesystem::remove(Path("ks.npy"));
  std::filesystem::remove(Path("ke.npy"));
  Write("k.npy", "u1", {4, 64}, std::vector<uint8_t>(4 * 64));
  Write("kscale.npy", "f4", {4}, std::vector<float>(4, 1));
  ExpectLoadError({"8 queries but k.npy has only 4 keys"});
}

}  // namespace
}  // namespace hisa
