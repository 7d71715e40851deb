#include "options.h"

#include <fmt/format.h>
#include <omp.h>

#include <charconv>
#include <cstdio>
#include <limits>
#include <string_view>

namespace hisa::tools {
namespace {

/// A value and the word the options spell it with.
template <typename T>
struct Named {
  std::string_view name;
  T value;
};

constexpr Named<DType> kDTypes[] = {{"bf16", DType::kBf16}, {"fp8", DType::kFp8E4M3}};
constexpr Named<ScaleRule> kScaleRules[] = {{"amax", ScaleRule::kAmax},
                                            {"ue8m0", ScaleRule::kUe8m0}};
constexpr Named<Backend> kBackends[] = {
    {"cpu", Backend::kCpu}, {"cuda", Backend::kCuda}, {"reference", Backend::kReference}};

template <typename T, size_t N>
std::vector<std::string> Names(const Named<T> (&table)[N]) {
  std::vector<std::string> names;
  for (const Named<T>& entry : table) names.emplace_back(entry.name);
  return names;
}

/// The value named `name`; the option parser has already checked that it is in the table.
template <typename T, size_t N>
T ValueOf(const Named<T> (&table)[N], std::string_view name) {
  for (const Named<T>& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return table[0].value;
}

constexpr int64_t kMaxContext = (int64_t{1} << 31) - 1;

Status Invalid(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}

}  // namespace

void AddShapeOptions(CLI::App* app, ShapeOptions* shape) {
  app->add_option("--heads", shape->heads, "indexer heads H")->capture_default_str();
  app->add_option("--head-dim", shape->head_dim, "head dimension D of queries and keys")
      ->capture_default_str();
  app->add_option("--top-k", shape->top_k, "keys selected per query k")->capture_default_str();
  app->add_option("--block-size", shape->block_size,
                  "HISA block size B: keys per pooled block (a multiple of 16)")
      ->capture_default_str();
  app->add_option("--block-budget", shape->block_budget,
                  "HISA block budget m: blocks kept per query, block 0 and the query's own block "
                  "included (m * B >= k)")
      ->capture_default_str();
  app->add_option("--dtype", shape->dtype, "element type of queries and keys: fp8 (E4M3) or bf16")
      ->transform(CLI::IsMember(Names(kDTypes), CLI::ignore_case))
      ->capture_default_str();
  app->add_option("--scale-rule", shape->scale_rule,
                  "FP8 scale of keys, queries and pooled keys: amax (amax / 448) or ue8m0 "
                  "(rounded up to a power of two)")
      ->transform(CLI::IsMember(Names(kScaleRules), CLI::ignore_case))
      ->capture_default_str();
}

void AddRunSettings(CLI::App* app, RunSettings* run) {
  app->add_option("--backend", run->backend,
                  "implementation to run: reference (the executable spec, slow), cpu or cuda")
      ->transform(CLI::IsMember(Names(kBackends), CLI::ignore_case))
      ->capture_default_str();
  app->add_option("--threads", run->threads, "CPU worker threads, 0 = every hardware thread")
      ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  app->add_option("--seed", run->seed, "seed of the generated workloads")->capture_default_str();
}

void ApplyThreads(const RunSettings& run) {
  if (run.threads > 0) omp_set_num_threads(run.threads);
}

IndexerConfig MakeConfig(const ShapeOptions& shape) {
  IndexerConfig cfg;
  cfg.num_heads = shape.heads;
  cfg.head_dim = shape.head_dim;
  cfg.top_k = shape.top_k;
  cfg.block_size = shape.block_size;
  cfg.block_budget = shape.block_budget;
  cfg.q_dtype = ValueOf(kDTypes, shape.dtype);
  cfg.k_dtype = cfg.q_dtype;
  cfg.pooled_scale_rule = ValueOf(kScaleRules, shape.scale_rule);
  return cfg;
}

RunOptions MakeRunOptions(const RunSettings& run) {
  RunOptions opts;
  opts.backend = ParseBackend(run.backend);
  opts.num_threads = run.threads;
  return opts;
}

Status ValidateSetup(const IndexerConfig& cfg, const RunOptions& opts) {
  // An empty batch runs every check of the configuration and the backend, and nothing else.
  int32_t unused_index = 0;
  int32_t unused_block = 0;
  const PrefillInputs empty;
  return HisaTopkPrefill(cfg, empty, ConstPooledKeys(), {&unused_index, &unused_block}, opts);
}

Status ParseContexts(const std::vector<std::string>& texts, std::vector<int64_t>* contexts) {
  contexts->clear();
  for (const std::string& text : texts) {
    int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [rest, error] = std::from_chars(text.data(), end, value);
    int64_t unit = 1;
    if (rest + 1 == end && (*rest == 'k' || *rest == 'K')) unit = 1024;
    if (rest + 1 == end && (*rest == 'm' || *rest == 'M')) unit = 1024 * 1024;
    const bool suffix_ok = rest == end || unit > 1;
    if (error != std::errc() || !suffix_ok || value < 1 || value > kMaxContext / unit) {
      return Invalid(
          fmt::format("--contexts: '{}' is not a context length in [1, 2^31): write "
                      "it as 65536, 64K or 1M",
                      text));
    }
    contexts->push_back(value * unit);
  }
  if (contexts->empty()) return Invalid("--contexts: no context length given");
  return {};
}

std::string FormatContext(int64_t tokens) {
  if (tokens >= 1024 * 1024 && tokens % (1024 * 1024) == 0) {
    return fmt::format("{}M", tokens / (1024 * 1024));
  }
  if (tokens >= 1024 && tokens % 1024 == 0) return fmt::format("{}K", tokens / 1024);
  return fmt::format("{}", tokens);
}

Status ParseRegimes(const std::vector<std::string>& names, std::vector<Regime>* regimes) {
  regimes->clear();
  for (const std::string& name : names) {
    if (name == "all") {
      const std::vector<Regime> all = AllRegimes();
      regimes->insert(regimes->end(), all.begin(), all.end());
      continue;
    }
    Regime regime;
    if (!ParseRegime(name, &regime)) {
      std::vector<std::string> known;
      for (Regime r : AllRegimes()) known.push_back(RegimeName(r));
      return Invalid(fmt::format("--regimes: '{}' is not a regime; known: {}, all", name,
                                 fmt::join(known, ", ")));
    }
    regimes->push_back(regime);
  }
  if (regimes->empty()) return Invalid("--regimes: no regime given");
  return {};
}

Backend ParseBackend(const std::string& name) {
  return ValueOf(kBackends, name);
}

const char* DTypeOption(DType dtype) {
  return dtype == DType::kFp8E4M3 ? "fp8" : "bf16";
}

const char* ScaleRuleOption(ScaleRule rule) {
  return rule == ScaleRule::kAmax ? "amax" : "ue8m0";
}

std::string ShapeArguments(const ShapeOptions& shape) {
  return fmt::format(
      "--heads={} --head-dim={} --top-k={} --block-size={} --block-budget={} --dtype={} "
      "--scale-rule={}",
      shape.heads, shape.head_dim, shape.top_k, shape.block_size, shape.block_budget, shape.dtype,
      shape.scale_rule);
}

std::string RunArguments(const RunSettings& run) {
  return fmt::format("--backend={} --threads={} --seed={}", run.backend, run.threads, run.seed);
}

std::string DescribeBackend(const RunSettings& run) {
  const int threads = run.threads > 0 ? run.threads : omp_get_max_threads();
  switch (ParseBackend(run.backend)) {
    case Backend::kCpu:
      return fmt::format("cpu (kernel {}, {} threads)", CpuKernelName(), threads);
    case Backend::kReference:
      return fmt::format("reference ({} threads)", threads);
    case Backend::kCuda:
      return "cuda";
  }
  return run.backend;
}

int ExitCodeFor(const Status& status) {
  if (status.ok()) return 0;
  const bool bad_request =
      status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kUnsupported;
  return bad_request ? 2 : 1;
}

int ReportError(const char* command, const Status& status) {
  std::fprintf(stderr, "hisa %s: error: %s\n", command, status.ToString().c_str());
  return ExitCodeFor(status);
}

nlohmann::json ConfigJson(const IndexerConfig& cfg, const RunSettings& run) {
  return {{"heads", cfg.num_heads},
          {"head_dim", cfg.head_dim},
          {"top_k", cfg.top_k},
          {"block_size", cfg.block_size},
          {"block_budget", cfg.block_budget},
          {"q_dtype", DTypeName(cfg.q_dtype)},
          {"k_dtype", DTypeName(cfg.k_dtype)},
          {"scale_rule", ScaleRuleOption(cfg.pooled_scale_rule)},
          {"backend", run.backend},
          {"cpu_kernel", CpuKernelName()},
          {"threads", run.threads},
          {"seed", run.seed}};
}

}  // namespace hisa::tools
