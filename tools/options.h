// Options shared by the subcommands of the hisa command line, and their translation to the API.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "hisa/workload.h"

namespace hisa::tools {

/// The indexer's shape and HISA parameters (--heads, --head-dim, --top-k, ...).
struct ShapeOptions {
  int32_t heads = 64;
  int32_t head_dim = 128;
  int32_t top_k = 2048;
  int32_t block_size = 128;
  int32_t block_budget = 64;
  std::string dtype = "fp8";        // fp8 | bf16
  std::string scale_rule = "amax";  // amax | ue8m0
};

/// Where and how the work runs (--backend, --threads, --seed).
struct RunSettings {
  std::string backend = "cpu";  // reference | cpu | cuda
  int32_t threads = 0;
  uint64_t seed = 0;
};

void AddShapeOptions(CLI::App* app, ShapeOptions* shape);
void AddRunSettings(CLI::App* app, RunSettings* run);

/// Applies --threads to the work the command line itself does (generating, checking).
void ApplyThreads(const RunSettings& run);

IndexerConfig MakeConfig(const ShapeOptions& shape);

/// The configuration and run settings as printed under "config" by every --json output.
nlohmann::json ConfigJson(const IndexerConfig& cfg, const RunSettings& run);
RunOptions MakeRunOptions(const RunSettings& run);

/// Rejects a configuration or backend the API would refuse, before any expensive work.
Status ValidateSetup(const IndexerConfig& cfg, const RunOptions& opts);

/// "8K", "32k", "1M", "65536" -> number of tokens.
Status ParseContexts(const std::vector<std::string>& texts, std::vector<int64_t>* contexts);
/// 65536 -> "64K", 1048576 -> "1M", 1000 -> "1000".
std::string FormatContext(int64_t tokens);
/// Regime names or "all".
Status ParseRegimes(const std::vector<std::string>& names, std::vector<Regime>* regimes);

/// Short names as the options spell them: "fp8", "bf16", "amax", "ue8m0".
const char* DTypeOption(DType dtype);
const char* ScaleRuleOption(ScaleRule rule);

/// The backend --backend names (validated by the option parser).
Backend ParseBackend(const std::string& name);

/// "--heads=64 --head-dim=128 ... --scale-rule=amax", as the options would reproduce them.
std::string ShapeArguments(const ShapeOptions& shape);
/// "--backend=cpu --threads=0 --seed=0".
std::string RunArguments(const RunSettings& run);

/// "cpu (kernel avx2, 16 threads)", "cuda", "reference (2 threads)".
std::string DescribeBackend(const RunSettings& run);

/// Process exit code for an API error: 2 for a bad request, 1 for a failure while running.
int ExitCodeFor(const Status& status);

/// Prints "hisa <command>: error: <status>" to stderr and returns ExitCodeFor(status).
int ReportError(const char* command, const Status& status);

}  // namespace hisa::tools
