// `hisa eval`: fidelity of HISA against the flat indexer per workload and context length.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace hisa::tools {

struct EvalOptions {
  ShapeOptions shape;
  RunSettings run;
  std::vector<std::string> regimes = {"all"};
  std::vector<std::string> contexts = {"8K", "32K", "64K"};
  int64_t queries = 64;
  std::string npy_dir;  // evaluate the activations in this directory instead
  bool json = false;
};

/// Registers the options of `hisa eval` on its subcommand.
void AddEvalOptions(CLI::App* command, EvalOptions* options);

/// Runs `hisa eval`; returns the process exit code.
int RunEval(const EvalOptions& options);

}  // namespace hisa::tools
