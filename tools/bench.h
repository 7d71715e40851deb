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
};

/// Registers the options of `hisa bench` on its subcommand.
void AddBenchOptions(CLI::App* command, BenchOptions* options);

/// Runs `hisa bench`; returns the process exit code.
int RunBench(const BenchOptions& options);

}  // namespace hisa::tools
