// The hisa command line: eval (fidelity), bench (latency), check (backends against the
// reference). The only part of hisa that prints and exits.
#include <CLI/CLI.hpp>

#include "bench.h"
#include "check.h"
#include "eval.h"

int main(int argc, char** argv) {
  CLI::App app{
      "hisa: the DeepSeek sparse-attention lightning indexer (flat top-k) and HISA "
      "(hierarchical block-then-token top-k). Exit codes: 0 ok, 1 failure while "
      "running (or a failed check), 2 bad usage."};
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);

  hisa::tools::EvalOptions eval;
  CLI::App* eval_command = app.add_subcommand(
      "eval",
      "Fidelity of HISA against the flat indexer: per workload and context length, the mean, 1st "
      "percentile and minimum over queries of IoU, recall and candidate coverage. Generated "
      "workloads put their queries at the last positions of the context.");
  hisa::tools::AddEvalOptions(eval_command, &eval);

  hisa::tools::BenchOptions bench;
  CLI::App* bench_command = app.add_subcommand(
      "bench",
      "Latency of the flat indexer and of HISA per context length: median ms after a warm-up, "
      "effective FLOP/s (2*H*D per scored query-key pair), pairs/s and speedup; pooled-key "
      "build time in its own column.");
  hisa::tools::AddBenchOptions(bench_command, &bench);

  hisa::tools::CheckCommandOptions check;
  CLI::App* check_command = app.add_subcommand(
      "check",
      "Every available backend against the reference on random problems (shapes, dtypes, packed "
      "ragged prefill, paged decode), tie-aware; one line per case. Exit code 1 on any failure.");
  hisa::tools::AddCheckOptions(check_command, &check);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*eval_command) return hisa::tools::RunEval(eval);
  if (*bench_command) return hisa::tools::RunBench(bench);
  return hisa::tools::RunCheck(check);
}
