// Google Benchmark: the CPU backend's tile kernels and whole selection calls.
//
//   hisa_cpu_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Problems are random FP8 (E4M3) queries and keys at DeepSeek-V3.2's indexer shape (H = 64,
// D = 128, k = 2048) with HISA's B = 128, m = 64. Prefill: Q queries at the end of an L-token
// prefix (ks = 0, causal), so query i sees L - Q + i + 1 keys. Decode: one query at the end of
// each of S sequences of L tokens in a paged cache. Pooled keys are built once outside the timed
// region. Whole calls use every hardware thread and the kernel CpuKernelName() reports
// (HISA_CPU_KERNEL=amx_bf16|avx512|avx2|scalar picks another); the tile benchmarks run every
// kernel this CPU supports.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "cpu/kernels.h"
#include "hisa/hisa.h"
#include "hisa/numeric.h"

namespace hisa {
namespace {

IndexerConfig BenchConfig() {
  IndexerConfig cfg;  // defaults: H = 64, D = 128, k = 2048, B = 128, m = 64, FP8
  return cfg;
}

std::vector<uint8_t> RandomFp8(int64_t count, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 24.0f);
  std::vector<uint8_t> codes(static_cast<size_t>(count));
  for (uint8_t& code : codes) code = FloatToFp8(normal(rng));
  return codes;
}

// One prefill problem: num_queries queries at the end of a context-token sequence.
struct Problem {
  IndexerConfig cfg;
  std::vector<uint8_t> q, k, pooled_k;
  std::vector<float> w, kscale, pooled_scale;
  std::vector<int32_t> ks, ke;

  Problem(int64_t context, int64_t num_queries) : cfg(BenchConfig()) {
    std::mt19937_64 rng(static_cast<uint64_t>(context * 1000 + num_queries));
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    q = RandomFp8(num_queries * cfg.num_heads * cfg.head_dim, rng);
    k = RandomFp8(context * cfg.head_dim, rng);
    for (int64_t i = 0; i < num_queries * cfg.num_heads; ++i) w.push_back(uniform(rng) - 0.3f);
    for (int64_t s = 0; s < context; ++s) kscale.push_back(0.5f + uniform(rng));
    for (int64_t t = 0; t < num_queries; ++t) {
      ks.push_back(0);
      ke.push_back(static_cast<int32_t>(context - num_queries + t + 1));
    }
    const int64_t slots = PooledSlotsForRows(cfg, context);
    pooled_k.resize(static_cast<size_t>(slots * cfg.head_dim));
    pooled_scale.resize(static_cast<size_t>(slots));
    const int32_t start = 0, length = static_cast<int32_t>(context);
    if (!BuildPooledKeysPrefill(cfg, Inputs().keys, &start, &length, 1,
                                {pooled_k.data(), pooled_scale.data(), slots})
             .ok()) {
      std::abort();
    }
  }

  PrefillInputs Inputs() const {
    return {q.data(),  w.data(),  {k.data(), kscale.data(), static_cast<int64_t>(kscale.size())},
            ks.data(), ke.data(), static_cast<int64_t>(ks.size())};
  }
  ConstPooledKeys Pooled() const {
    return {pooled_k.data(), pooled_scale.data(), static_cast<int64_t>(pooled_scale.size())};
  }
  // Query-key pairs a flat call scores.
  double FlatPairs() const {
    double pairs = 0.0;
    for (size_t t = 0; t < ks.size(); ++t) pairs += ke[t] - ks[t];
    return pairs;
  }
};

// One decode step: num_seqs sequences of context tokens in a paged cache (P = 64, pages in
// shuffled order), one query at the end of each.
struct DecodeProblem {
  static constexpr int32_t kPageSize = 64;
  IndexerConfig cfg;
  std::vector<uint8_t> q, k, pooled_k;
  std::vector<float> w, kscale, pooled_scale;
  std::vector<int32_t> block_table, context_lens;
  int32_t pages_per_seq = 0;

  DecodeProblem(int64_t context, int32_t num_seqs) : cfg(BenchConfig()) {
    std::mt19937_64 rng(static_cast<uint64_t>(context * 7 + num_seqs));
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    pages_per_seq = static_cast<int32_t>((context + kPageSize - 1) / kPageSize);
    const int64_t num_pages = int64_t{pages_per_seq} * num_seqs;
    q = RandomFp8(int64_t{num_seqs} * cfg.num_heads * cfg.head_dim, rng);
    k = RandomFp8(num_pages * kPageSize * cfg.head_dim, rng);
    for (int64_t i = 0; i < int64_t{num_seqs} * cfg.num_heads; ++i) {
      w.push_back(uniform(rng) - 0.3f);
    }
    for (int64_t s = 0; s < num_pages * kPageSize; ++s) kscale.push_back(0.5f + uniform(rng));
    block_table.resize(static_cast<size_t>(num_pages));
    std::iota(block_table.begin(), block_table.end(), 0);
    std::shuffle(block_table.begin(), block_table.end(), rng);
    context_lens.assign(static_cast<size_t>(num_seqs), static_cast<int32_t>(context));
    const int64_t slots = PooledSlotsForPages(cfg, num_pages, kPageSize);
    pooled_k.resize(static_cast<size_t>(slots * cfg.head_dim));
    pooled_scale.resize(static_cast<size_t>(slots));
    const DecodeInputs in = Inputs();
    if (!BuildPooledKeysPaged(cfg, in.cache, in.seqs, {pooled_k.data(), pooled_scale.data(), slots})
             .ok()) {
      std::abort();
    }
  }

  DecodeInputs Inputs() const {
    DecodeInputs in;
    in.q = q.data();
    in.w = w.data();
    in.cache = {k.data(), kscale.data(), static_cast<int64_t>(kscale.size()) / kPageSize,
                kPageSize};
    in.seqs = {block_table.data(), pages_per_seq, context_lens.data(),
               static_cast<int32_t>(context_lens.size())};
    in.next_n = 1;
    return in;
  }
  ConstPooledKeys Pooled() const {
    return {pooled_k.data(), pooled_scale.data(), static_cast<int64_t>(pooled_scale.size())};
  }
};

// Problems are built once per shape and shared by repetitions.
const Problem& GetProblem(int64_t context, int64_t num_queries) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Problem>> problems;
  auto& slot = problems[{context, num_queries}];
  if (!slot) slot = std::make_unique<Problem>(context, num_queries);
  return *slot;
}

// ---------------------------------------------------------------------------------------------
// Tile kernel: one query against 8 packed tiles (128 keys), two tiles per call.
// ---------------------------------------------------------------------------------------------

struct AlignedDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::unique_ptr<uint8_t[], AlignedDeleter> Aligned(int64_t bytes) {
  return std::unique_ptr<uint8_t[], AlignedDeleter>(
      static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64))));
}

void BM_TileKernel(benchmark::State& state, const cpu::Kernel* kernel) {
  constexpr int kTiles = 8;
  const IndexerConfig cfg = BenchConfig();
  const cpu::KernelLayout layout = kernel->layout(cfg);
  std::mt19937_64 rng(1);
  const std::vector<uint8_t> q = RandomFp8(int64_t{cfg.num_heads} * cfg.head_dim, rng);
  const std::vector<uint8_t> k = RandomFp8(int64_t{kTiles} * cpu::kTileKeys * cfg.head_dim, rng);
  const std::vector<float> w(static_cast<size_t>(cfg.num_heads), 0.25f);
  const std::vector<float> kscale(kTiles * cpu::kTileKeys, 1.0f);
  auto query = Aligned(layout.query_bytes);
  auto tiles = Aligned(kTiles * layout.tile_bytes);
  auto scores = Aligned(2 * cpu::kTileKeys * sizeof(float));
  kernel->prepare_query(layout, cfg.q_dtype, q.data(), w.data(), query.get());
  for (int t = 0; t < kTiles; ++t) {
    const void* rows[cpu::kTileKeys];
    for (int s = 0; s < cpu::kTileKeys; ++s) {
      rows[s] = k.data() + (int64_t{t} * cpu::kTileKeys + s) * cfg.head_dim;
    }
    kernel->pack_tile(layout, cfg.k_dtype, rows, tiles.get() + t * layout.tile_bytes);
  }
  float* out = reinterpret_cast<float*>(scores.get());
  if (kernel->begin_scores) kernel->begin_scores();
  for (auto _ : state) {
    for (int t = 0; t < kTiles; t += 2) {
      kernel->score_tiles(layout, query.get(), tiles.get() + t * layout.tile_bytes, 2,
                          kscale.data() + t * cpu::kTileKeys, out);
      benchmark::DoNotOptimize(out);
    }
    benchmark::ClobberMemory();
  }
  if (kernel->end_scores) kernel->end_scores();
  const double pairs = static_cast<double>(state.iterations()) * kTiles * cpu::kTileKeys;
  state.counters["pairs/s"] = benchmark::Counter(pairs, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(pairs * 2.0 * cfg.num_heads * cfg.head_dim * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

// Packing 16 FP8 keys into the kernel's tile layout.
void BM_PackTile(benchmark::State& state, const cpu::Kernel* kernel) {
  const IndexerConfig cfg = BenchConfig();
  const cpu::KernelLayout layout = kernel->layout(cfg);
  std::mt19937_64 rng(2);
  const std::vector<uint8_t> k = RandomFp8(int64_t{cpu::kTileKeys} * cfg.head_dim, rng);
  const void* rows[cpu::kTileKeys];
  for (int s = 0; s < cpu::kTileKeys; ++s) rows[s] = k.data() + int64_t{s} * cfg.head_dim;
  auto tile = Aligned(layout.tile_bytes);
  for (auto _ : state) {
    kernel->pack_tile(layout, cfg.k_dtype, rows, tile.get());
    benchmark::ClobberMemory();
  }
  state.counters["keys/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * cpu::kTileKeys, benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------------------------
// Whole calls. Args: {context L, queries Q}.
// ---------------------------------------------------------------------------------------------

void SetCallCounters(benchmark::State& state, const Problem& problem) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["queries/s"] = benchmark::Counter(calls * static_cast<double>(problem.ks.size()),
                                                   benchmark::Counter::kIsRate);
  state.counters["flat_pairs/s"] =
      benchmark::Counter(calls * problem.FlatPairs(), benchmark::Counter::kIsRate);
  state.SetLabel(CpuKernelName());
}

void RunFlat(benchmark::State& state, Backend backend) {
  const Problem& problem = GetProblem(state.range(0), state.range(1));
  std::vector<int32_t> indices(problem.ks.size() * static_cast<size_t>(problem.cfg.top_k));
  RunOptions opts;
  opts.backend = backend;
  for (auto _ : state) {
    if (!FlatTopkPrefill(problem.cfg, problem.Inputs(), {indices.data(), nullptr, nullptr}, opts)
             .ok()) {
      state.SkipWithError("FlatTopkPrefill failed");
    }
    benchmark::DoNotOptimize(indices.data());
  }
  SetCallCounters(state, problem);
  if (backend == Backend::kReference) state.SetLabel("reference");
}

void BM_FlatPrefill(benchmark::State& state) {
  RunFlat(state, Backend::kCpu);
}
void BM_FlatPrefillReference(benchmark::State& state) {
  RunFlat(state, Backend::kReference);
}

void BM_HisaPrefill(benchmark::State& state) {
  const Problem& problem = GetProblem(state.range(0), state.range(1));
  std::vector<int32_t> indices(problem.ks.size() * static_cast<size_t>(problem.cfg.top_k));
  std::vector<int32_t> blocks(problem.ks.size() * static_cast<size_t>(problem.cfg.block_budget));
  for (auto _ : state) {
    if (!HisaTopkPrefill(problem.cfg, problem.Inputs(), problem.Pooled(),
                         {indices.data(), blocks.data(), nullptr})
             .ok()) {
      state.SkipWithError("HisaTopkPrefill failed");
    }
    benchmark::DoNotOptimize(indices.data());
  }
  SetCallCounters(state, problem);
}

const DecodeProblem& GetDecodeProblem(int64_t context, int64_t num_seqs) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<DecodeProblem>> problems;
  auto& slot = problems[{context, num_seqs}];
  if (!slot) slot = std::make_unique<DecodeProblem>(context, static_cast<int32_t>(num_seqs));
  return *slot;
}

// Decode steps. Args: {context, sequences}.
void RunDecode(benchmark::State& state, bool hisa) {
  const DecodeProblem& problem = GetDecodeProblem(state.range(0), state.range(1));
  const size_t rows = problem.context_lens.size();
  std::vector<int32_t> indices(rows * static_cast<size_t>(problem.cfg.top_k));
  std::vector<int32_t> blocks(rows * static_cast<size_t>(problem.cfg.block_budget));
  for (auto _ : state) {
    const Status status =
        hisa ? HisaTopkDecode(problem.cfg, problem.Inputs(), problem.Pooled(),
                              {indices.data(), blocks.data(), nullptr})
             : FlatTopkDecode(problem.cfg, problem.Inputs(), {indices.data(), nullptr, nullptr});
    if (!status.ok()) state.SkipWithError(status.ToString().c_str());
    benchmark::DoNotOptimize(indices.data());
  }
  state.counters["queries/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(rows),
                         benchmark::Counter::kIsRate);
  state.SetLabel(CpuKernelName());
}

void BM_FlatDecode(benchmark::State& state) {
  RunDecode(state, false);
}
void BM_HisaDecode(benchmark::State& state) {
  RunDecode(state, true);
}

void RegisterKernelBenchmarks() {
  for (const cpu::Kernel* kernel : cpu::SupportedKernels()) {
    benchmark::RegisterBenchmark((std::string("BM_TileKernel/") + kernel->name).c_str(),
                                 BM_TileKernel, kernel);
    benchmark::RegisterBenchmark((std::string("BM_PackTile/") + kernel->name).c_str(), BM_PackTile,
                                 kernel);
  }
}

// Whole calls: milliseconds of wall time (the calls run threads), after a short warm-up.
void WholeCalls(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)->MinWarmUpTime(0.2)->MeasureProcessCPUTime()->UseRealTime();
}

BENCHMARK(BM_FlatPrefill)
    ->Args({8192, 32})
    ->Args({8192, 256})
    ->Args({32768, 256})
    ->Args({65536, 256})
    ->Apply(WholeCalls);
BENCHMARK(BM_HisaPrefill)
    ->Args({8192, 256})
    ->Args({32768, 256})
    ->Args({65536, 256})
    ->Apply(WholeCalls);
BENCHMARK(BM_FlatDecode)->Args({65536, 1})->Args({65536, 8})->Apply(WholeCalls);
BENCHMARK(BM_HisaDecode)->Args({65536, 1})->Args({65536, 8})->Apply(WholeCalls);
BENCHMARK(BM_FlatPrefillReference)->Args({8192, 32})->Apply(WholeCalls);

}  // namespace
}  // namespace hisa

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  hisa::RegisterKernelBenchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
