// `hisa bench`: latency of the flat indexer and of HISA per context length.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace hisa::tools {

struct BenchOptions {
  ShapeOptions shape;
  RunSettings run;
  std::vector<std::string> contexts = {"8K", "32K", "64K"};
  int64_t queries = 256;
  int32_t repeats = 3;
  std::string regime = "topics";
  bool reference = false;  // add the reference backend at a small size
  bool json = false;
  // The GPU sweep (--backend cuda): prefill at --contexts with --queries (defaults 8K..128K and
  // 1024 when not given), then paged decode.
  std::vector<std::string> decode_contexts = {"32K", "128K"};
  std::vector<int32_t> batches = {1, 32, 64, 128};
  std::vector<int32_t> next_ns = {1, 2};
  // RunOptions::workspace_limit_bytes of every call, in MiB (default: the library's).
  int64_t workspace_limit_mib = static_cast<int64_t>(RunOptions{}.workspace_limit_bytes >> 20);
  bool contexts_given = false;
  bool queries_given = false;
  bool repeats_given = false;
};

/// Registers the options of `hisa bench` on its subcommand.
void AddBenchOptions(CLI::App* command, BenchOptions* options);

/// Runs `hisa bench`; returns the process exit code.
int RunBench(const BenchOptions& options);

}  // namespace hisa::tools
