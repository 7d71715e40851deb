// `hisa check`: every available backend against the reference on random problems.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

namespace hisa::tools {

struct CheckCommandOptions {
  int32_t cases = 40;
  uint64_t seed = 0;
  double cuda_rel_tol = 2e-3;
  int32_t threads = 0;
  bool json = false;
};

/// Registers the options of `hisa check` on its subcommand.
void AddCheckOptions(CLI::App* command, CheckCommandOptions* options);

/// Runs `hisa check`; returns the process exit code (1 when a check fails).
int RunCheck(const CheckCommandOptions& options);

}  // namespace hisa::tools
