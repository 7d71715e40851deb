#include "bench.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "bench_cuda.h"
#include "progress.h"
#include "return_if_error.h"
#include "staged.h"
#include "table.h"

namespace hisa::tools {
namespace {

// The size at which --reference compares the slow reference with the chosen backend.
constexpr int64_t kReferenceContext = 8192;
constexpr int64_t kReferenceQueries = 32;

/// Median latencies (ms) and the work behind them.
struct Timing {
  double pool_ms = 0, flat_ms = 0, hisa_ms = 0;
};

struct BenchRow {
  int64_t context = 0;
  int64_t queries = 0;
  Timing timing;
  int64_t flat_pairs = 0;  // query-key pairs the flat indexer scores
  int64_t hisa_pairs = 0;  // pooled blocks that compete plus keys of the selected blocks
};

/// Rates in the units of the backend: TFLOP/s and Gpair/s on the GPU, GFLOP/s and Mpair/s on
/// the CPU.
struct Units {
  const char* flops;
  const char* pairs;
  double flops_scale;
  double pairs_scale;
};

Units UnitsFor(Backend backend) {
  if (backend == Backend::kCuda) return {"TFLOP/s", "Gpair/s", 1e12, 1e9};
  return {"GFLOP/s", "Mpair/s", 1e9, 1e6};
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/// Runs `call` once to warm up, then `repeats` times; the median in milliseconds.
Status TimeCall(const std::function<Status()>& call, int32_t repeats, double* median_ms) {
  HISA_TOOLS_RETURN_IF_ERROR(call());
  std::vector<double> ms;
  for (int32_t r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    HISA_TOOLS_RETURN_IF_ERROR(call());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  *median_ms = Median(std::move(ms));
  return {};
}

int64_t FlatPairs(const Workload& workload) {
  int64_t pairs = 0;
  for (int64_t t = 0; t < workload.num_queries; ++t) pairs += workload.ke[t] - workload.ks[t];
  return pairs;
}

/// Pairs HISA scores: the pooled blocks 1 .. o-1 that compete for m - 2 places (none when
/// o + 1 <= m), plus every visible key of the selected blocks.
int64_t HisaPairs(const Workload& workload, const std::vector<int32_t>& blocks) {
  const IndexerConfig& cfg = workload.cfg;
  int64_t pairs = 0;
  for (int64_t t = 0; t < workload.num_queries; ++t) {
    const int64_t length = int64_t{workload.ke[t]} - workload.ks[t];
    if (length <= 0) continue;
    const int64_t own = (length - 1) / cfg.block_size;
    if (own + 1 > cfg.block_budget) pairs += own - 1;
    for (int32_t i = 0; i < cfg.block_budget; ++i) {
      const int64_t j = blocks[t * cfg.block_budget + i];
      if (j >= 0) pairs += std::min((j + 1) * cfg.block_size, length) - j * cfg.block_size;
    }
  }
  return pairs;
}

Status BenchContext(const IndexerConfig& cfg, const BenchOptions& options, Regime regime,
                    int64_t context, const RunOptions& opts, BenchRow* row) {
  const Workload workload =
      GenerateWorkload(cfg, {regime, context, options.queries, options.run.seed});
  StagedWorkload staged;
  HISA_TOOLS_RETURN_IF_ERROR(StagedWorkload::Create(workload, opts, &staged));
  // Pooled keys first: HISA reads them. Its warm-up run writes the blocks the work is counted from.
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.BuildPooledKeys(); }, options.repeats, &row->timing.pool_ms));
  HISA_TOOLS_RETURN_IF_ERROR(staged.RunHisa(/*write_blocks=*/true));
  std::vector<int32_t> blocks;
  HISA_TOOLS_RETURN_IF_ERROR(staged.HisaBlocks(&blocks));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.RunFlat(); }, options.repeats, &row->timing.flat_ms));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.RunHisa(false); }, options.repeats, &row->timing.hisa_ms));
  row->context = context;
  row->queries = workload.num_queries;
  row->flat_pairs = FlatPairs(workload);
  row->hisa_pairs = HisaPairs(workload, blocks);
  return {};
}

/// Flat and HISA at the reference size on `opts.backend` (median of repeats) and on the
/// reference (one run after the warm-up: it is slow).
Status BenchReference(const IndexerConfig& cfg, const BenchOptions& options, Regime regime,
                      const RunOptions& opts, Timing* fast, Timing* reference) {
  const Workload workload =
      GenerateWorkload(cfg, {regime, kReferenceContext, kReferenceQueries, options.run.seed});
  StagedWorkload staged;
  HISA_TOOLS_RETURN_IF_ERROR(StagedWorkload::Create(workload, opts, &staged));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.BuildPooledKeys(); }, options.repeats, &fast->pool_ms));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.RunFlat(); }, options.repeats, &fast->flat_ms));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return staged.RunHisa(false); }, options.repeats, &fast->hisa_ms));

  RunOptions reference_opts = opts;
  reference_opts.backend = Backend::kReference;
  StagedWorkload host;
  HISA_TOOLS_RETURN_IF_ERROR(StagedWorkload::Create(workload, reference_opts, &host));
  HISA_TOOLS_RETURN_IF_ERROR(
      TimeCall([&] { return host.BuildPooledKeys(); }, 1, &reference->pool_ms));
  HISA_TOOLS_RETURN_IF_ERROR(TimeCall([&] { return host.RunFlat(); }, 1, &reference->flat_ms));
  return TimeCall([&] { return host.RunHisa(false); }, 1, &reference->hisa_ms);
}

std::string Reproduce(const BenchOptions& options, const std::string& contexts) {
  return fmt::format("hisa bench {} {} --regime={} --contexts={} --queries={} --repeats={}{}",
                     RunArguments(options.run), ShapeArguments(options.shape), options.regime,
                     contexts, options.queries, options.repeats,
                     options.reference ? " --reference" : "");
}

double Rate(int64_t pairs, double factor, double ms, double scale) {
  return ms > 0 ? static_cast<double>(pairs) * factor / (ms * 1e-3) / scale : 0.0;
}

void PrintTable(const IndexerConfig& cfg, const BenchOptions& options,
                const std::vector<BenchRow>& rows, bool with_reference, const Timing& fast,
                const Timing& reference) {
  const Units units = UnitsFor(ParseBackend(options.run.backend));
  const double flops_per_pair = 2.0 * cfg.num_heads * cfg.head_dim;
  std::printf("reproduce: %s\n",
              Reproduce(options, fmt::format("{}", fmt::join(options.contexts, ","))).c_str());
  std::printf(
      "hisa bench: flat vs HISA (B=%d, m=%d, k=%d) | H=%d D=%d %s %s | %s | %s workload, "
      "queries at the end of the context | median of %d runs after a warm-up\n",
      cfg.block_size, cfg.block_budget, cfg.top_k, cfg.num_heads, cfg.head_dim,
      DTypeOption(cfg.k_dtype), ScaleRuleOption(cfg.pooled_scale_rule),
      DescribeBackend(options.run).c_str(), options.regime.c_str(), options.repeats);
  std::printf(
      "%s counts 2*H*D FLOPs per scored query-key pair: flat scores every visible key; "
      "HISA the competing pooled blocks and the keys of the selected ones\n\n",
      units.flops);
  Table table;
  table.AddColumn("context");
  table.AddColumn("queries");
  table.AddColumn("ms", Table::Align::kRight, "flat");
  table.AddColumn(units.flops, Table::Align::kRight, "flat");
  table.AddColumn(units.pairs, Table::Align::kRight, "flat");
  table.AddColumn("pool ms", Table::Align::kRight, "HISA");
  table.AddColumn("ms", Table::Align::kRight, "HISA");
  table.AddColumn(units.flops, Table::Align::kRight, "HISA");
  table.AddColumn(units.pairs, Table::Align::kRight, "HISA");
  table.AddColumn("work", Table::Align::kRight, "flat / HISA");
  table.AddColumn("speedup", Table::Align::kRight, "flat / HISA");
  table.AddColumn("w/ pool", Table::Align::kRight, "flat / HISA");
  for (const BenchRow& row : rows) {
    const Timing& t = row.timing;
    table.AddRow(
        {FormatContext(row.context), fmt::format("{}", row.queries),
         fmt::format("{:.3f}", t.flat_ms),
         fmt::format("{:.1f}", Rate(row.flat_pairs, flops_per_pair, t.flat_ms, units.flops_scale)),
         fmt::format("{:.1f}", Rate(row.flat_pairs, 1, t.flat_ms, units.pairs_scale)),
         fmt::format("{:.3f}", t.pool_ms), fmt::format("{:.3f}", t.hisa_ms),
         fmt::format("{:.1f}", Rate(row.hisa_pairs, flops_per_pair, t.hisa_ms, units.flops_scale)),
         fmt::format("{:.1f}", Rate(row.hisa_pairs, 1, t.hisa_ms, units.pairs_scale)),
         fmt::format("{:.2f}x",
                     static_cast<double>(row.flat_pairs) / std::max<int64_t>(row.hisa_pairs, 1)),
         fmt::format("{:.2f}x", t.flat_ms / t.hisa_ms),
         fmt::format("{:.2f}x", t.flat_ms / (t.hisa_ms + t.pool_ms))});
  }
  std::printf("%s", table.Render().c_str());
  if (!with_reference) return;
  std::printf("\nreference vs %s at %s, %lld queries (reference: one run after a warm-up)\n",
              options.run.backend.c_str(), FormatContext(kReferenceContext).c_str(),
              static_cast<long long>(kReferenceQueries));
  Table ratio;
  ratio.AddColumn("call", Table::Align::kLeft);
  ratio.AddColumn("reference ms");
  ratio.AddColumn(fmt::format("{} ms", options.run.backend));
  ratio.AddColumn("ratio");
  const auto add = [&](const char* call, double ref_ms, double fast_ms) {
    ratio.AddRow({call, fmt::format("{:.3f}", ref_ms), fmt::format("{:.3f}", fast_ms),
                  fmt::format("{:.1f}x", ref_ms / fast_ms)});
  };
  add("pool", reference.pool_ms, fast.pool_ms);
  add("flat", reference.flat_ms, fast.flat_ms);
  add("hisa", reference.hisa_ms, fast.hisa_ms);
  std::printf("%s", ratio.Render().c_str());
}

void PrintJson(const IndexerConfig& cfg, const BenchOptions& options,
               const std::vector<BenchRow>& rows, bool with_reference, const Timing& fast,
               const Timing& reference) {
  const double flops_per_pair = 2.0 * cfg.num_heads * cfg.head_dim;
  nlohmann::json out;
  out["command"] = "bench";
  out["reproduce"] = Reproduce(options, fmt::format("{}", fmt::join(options.contexts, ",")));
  out["config"] = ConfigJson(cfg, options.run);
  out["config"]["regime"] = options.regime;
  out["config"]["repeats"] = options.repeats;
  out["rows"] = nlohmann::json::array();
  for (const BenchRow& row : rows) {
    const Timing& t = row.timing;
    out["rows"].push_back({{"context", row.context},
                           {"queries", row.queries},
                           {"reproduce", Reproduce(options, FormatContext(row.context))},
                           {"ms", {{"pool", t.pool_ms}, {"flat", t.flat_ms}, {"hisa", t.hisa_ms}}},
                           {"pairs", {{"flat", row.flat_pairs}, {"hisa", row.hisa_pairs}}},
                           {"flops_per_s",
                            {{"flat", Rate(row.flat_pairs, flops_per_pair, t.flat_ms, 1)},
                             {"hisa", Rate(row.hisa_pairs, flops_per_pair, t.hisa_ms, 1)}}},
                           {"speedup", t.flat_ms / t.hisa_ms},
                           {"speedup_with_pool", t.flat_ms / (t.hisa_ms + t.pool_ms)}});
  }
  if (with_reference) {
    const auto timing_json = [](const Timing& t) {
      return nlohmann::json{{"pool", t.pool_ms}, {"flat", t.flat_ms}, {"hisa", t.hisa_ms}};
    };
    out["reference"] = {{"context", kReferenceContext},
                        {"queries", kReferenceQueries},
                        {"reference_ms", timing_json(reference)},
                        {"backend_ms", timing_json(fast)}};
  }
  std::printf("%s\n", out.dump(2).c_str());
}

// `hisa bench --backend cuda`: the sweep of bench_cuda.h, printed as one table.
int RunBenchCuda(const BenchOptions& options) {
  ApplyThreads(options.run);
  CudaBenchOptions cuda;
  cuda.cfg = MakeConfig(options.shape);
  cuda.seed = options.run.seed;
  Status status;
  if (options.contexts_given) status = ParseContexts(options.contexts, &cuda.prefill_contexts);
  if (status.ok()) status = ParseContexts(options.decode_contexts, &cuda.decode_contexts);
  if (options.queries_given) cuda.prefill_queries = options.queries;
  if (options.repeats_given) cuda.repeats = options.repeats;
  cuda.decode_batches.clear();  // "" parses as 0: skips decode (RunCudaBench refuses batch 0)
  for (int32_t b : options.batches) {
    if (b < 0 && status.ok()) {
      status = {StatusCode::kInvalidArgument, fmt::format("--batches: {} is not a batch size", b)};
    }
    if (b > 0) cuda.decode_batches.push_back(b);
  }
  cuda.next_ns = options.next_ns;
  cuda.workspace_limit_bytes = static_cast<size_t>(options.workspace_limit_mib) << 20;
  if (status.ok() && !ParseRegime(options.regime, &cuda.regime)) {
    status = {StatusCode::kInvalidArgument,
              fmt::format("--regime: '{}' is not a regime", options.regime)};
  }
  if (status.ok()) status = ValidateSetup(cuda.cfg, MakeRunOptions(options.run));
  if (!status.ok()) return ReportError("bench", status);
  std::vector<CudaBenchRow> rows;
  {
    const int steps = static_cast<int>(cuda.prefill_contexts.size() +
                                       cuda.decode_contexts.size() * cuda.next_ns.size() *
                                           cuda.decode_batches.size());
    Progress progress("bench", steps);
    int step = 0;
    status = RunCudaBench(cuda, [&](const std::string& what) { progress.Step(++step, what); },
                          &rows);
  }
  if (!status.ok()) return ReportError("bench", status);
  const std::string reproduce = fmt::format(
      "hisa bench --backend cuda {} --regime={} --contexts={} --queries={} --repeats={} "
      "--decode-contexts={} --batches={} --next-n={} --workspace-limit={} --seed={}",
      ShapeArguments(options.shape), options.regime,
      fmt::join(cuda.prefill_contexts, ","), cuda.prefill_queries, cuda.repeats,
      fmt::join(cuda.decode_contexts, ","), fmt::join(cuda.decode_batches, ","),
      fmt::join(cuda.next_ns, ","), options.workspace_limit_mib, cuda.seed);
  if (options.json) {
    nlohmann::json out;
    out["reproduce"] = reproduce;
    out["device"] = CudaDeviceSummary();
    for (const CudaBenchRow& r : rows) {
      out["rows"].push_back({{"phase", r.phase}, {"method", r.method}, {"context", r.context},
                             {"queries", r.queries}, {"next_n", r.next_n},
                             {"ms_median", r.ms_median}, {"ms_min", r.ms_min},
                             {"ms_max", r.ms_max}, {"ms_eager", r.ms_eager}, {"pairs", r.pairs}, {"tflops", r.tflops},
                             {"key_gbytes_s", r.key_gbytes_s},
                             {"workspace_bytes", r.workspace_bytes}, {"speedup", r.speedup}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("reproduce: %s\n", reproduce.c_str());
  std::printf("device: %s | H=%d D=%d k=%d B=%d m=%d fp8 | regime %s | CUDA events over "
              "CUDA-graph replays (eager = plain launches), median of %d after %d warm-ups, inputs rotated past L2, index checks off\n",
              CudaDeviceSummary().c_str(), cuda.cfg.num_heads, cuda.cfg.head_dim, cuda.cfg.top_k,
              cuda.cfg.block_size, cuda.cfg.block_budget, options.regime.c_str(), cuda.repeats,
              cuda.warmup);
  std::printf("score = scoring kernel alone (logits); pool = pooled-key build; TFLOP/s counts "
              "2*H*D per scored (query, key) pair; GB/s counts 132 bytes per scored key\n\n");
  Table table;
  for (const char* column : {"phase", "method", "context", "queries/batch", "next_n", "ms",
                             "min ms", "max ms", "eager ms", "TFLOP/s", "key GB/s", "extra MiB",
                             "speedup"}) {
    table.AddColumn(column);
  }
  for (const CudaBenchRow& r : rows) {
    table.AddRow({r.phase, r.method, FormatContext(r.context), fmt::format("{}", r.queries),
                  r.phase == "decode" ? fmt::format("{}", r.next_n) : "-",
                  fmt::format("{:.4f}", r.ms_median), fmt::format("{:.4f}", r.ms_min),
                  fmt::format("{:.4f}", r.ms_max), fmt::format("{:.4f}", r.ms_eager),
                  r.method == "pool" ? "-" : fmt::format("{:.1f}", r.tflops),
                  fmt::format("{:.0f}", r.key_gbytes_s),
                  r.method == "hisa" || r.method == "flat"
                      ? fmt::format("{:.1f}", r.workspace_bytes / 1048576.0)
                      : "-",
                  r.speedup > 0 ? fmt::format("{:.2f}x", r.speedup) : "-"});
  }
  std::fputs(table.Render().c_str(), stdout);
  return 0;
}

}  // namespace

void AddBenchOptions(CLI::App* command, BenchOptions* options) {
  command
      ->add_option("--contexts", options->contexts,
                   "context lengths N, comma separated: 65536, 64K, 64k or 1M")
      ->delimiter(',')
      ->default_str("8K,32K,64K");
  command->add_option("--queries", options->queries, "queries per context: the last T positions")
      ->check(CLI::Range(1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command
      ->add_option("--repeats", options->repeats,
                   "timed runs per call after one warm-up; the median is reported")
      ->check(CLI::Range(1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command
      ->add_option("--regime", options->regime,
                   "workload to generate: sinks-local, needle, topics, diffuse or random")
      ->capture_default_str();
  command->add_flag("--reference", options->reference,
                    fmt::format("also time the reference backend at {} tokens, {} queries, "
                                "against the chosen backend at the same size",
                                FormatContext(kReferenceContext), kReferenceQueries));
  command->add_flag("--json", options->json, "print JSON to stdout instead of the table");
  command
      ->add_option("--decode-contexts", options->decode_contexts,
                   "cuda only: context lengths of the decode sweep (one sequence length each)")
      ->delimiter(',')
      ->default_str("32K,128K");
  command
      ->add_option("--batches", options->batches,
                   "cuda only: decode batch sizes (sequences per step); \"\" or 0 skips decode")
      ->delimiter(',')
      ->default_str("1,32,64,128");
  command
      ->add_option("--next-n", options->next_ns, "cuda only: query tokens per sequence in decode")
      ->check(CLI::Range(1, std::numeric_limits<int32_t>::max()))
      ->delimiter(',')
      ->default_str("1,2");
  command
      ->add_option("--workspace-limit", options->workspace_limit_mib,
                   "cuda only: cap on each call's extra device memory in MiB; below what a case "
                   "needs, its queries run in chunks (HISA prefill's stage 2 then selects on chip)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  command->parse_complete_callback([command, options] {
    options->contexts_given = command->count("--contexts") > 0;
    options->queries_given = command->count("--queries") > 0;
    options->repeats_given = command->count("--repeats") > 0;
  });
  AddShapeOptions(command, &options->shape);
  AddRunSettings(command, &options->run);
}

int RunBench(const BenchOptions& options) {
  if (ParseBackend(options.run.backend) == Backend::kCuda) return RunBenchCuda(options);
  ApplyThreads(options.run);
  const RunOptions opts = MakeRunOptions(options.run);
  const IndexerConfig cfg = MakeConfig(options.shape);
  std::vector<int64_t> contexts;
  Regime regime = Regime::kTopics;
  Status status = ParseContexts(options.contexts, &contexts);
  if (status.ok() && !ParseRegime(options.regime, &regime)) {
    status = {StatusCode::kInvalidArgument,
              fmt::format("--regime: '{}' is not a regime (sinks-local, needle, topics, "
                          "diffuse, random)",
                          options.regime)};
  }
  for (int64_t context : contexts) {
    if (status.ok() && options.queries > context) {
      status = {
          StatusCode::kInvalidArgument,
          fmt::format("--queries = {} exceeds the context length {}", options.queries, context)};
    }
  }
  if (status.ok()) status = ValidateSetup(cfg, opts);
  if (!status.ok()) return ReportError("bench", status);

  std::vector<BenchRow> rows;
  Timing fast, reference;
  {
    const int steps = static_cast<int>(contexts.size()) + (options.reference ? 1 : 0);
    Progress progress("bench", steps);
    for (size_t i = 0; i < contexts.size() && status.ok(); ++i) {
      progress.Step(static_cast<int>(i + 1), FormatContext(contexts[i]));
      BenchRow row;
      status = BenchContext(cfg, options, regime, contexts[i], opts, &row);
      rows.push_back(row);
    }
    if (options.reference && status.ok()) {
      progress.Step(steps, "reference");
      status = BenchReference(cfg, options, regime, opts, &fast, &reference);
    }
  }  // the progress line is gone before anything else is printed
  if (!status.ok()) return ReportError("bench", status);
  if (options.json) {
    PrintJson(cfg, options, rows, options.reference, fast, reference);
  } else {
    PrintTable(cfg, options, rows, options.reference, fast, reference);
  }
  return 0;
}

}  // namespace hisa::tools
