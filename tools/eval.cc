#include "eval.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "hisa/metrics.h"
#include "progress.h"
#include "return_if_error.h"
#include "staged.h"
#include "table.h"

namespace hisa::tools {
namespace {

/// What to evaluate: a generated workload, or the one loaded from --npy.
struct EvalItem {
  std::string label;  // for the progress line
  Regime regime = Regime::kRandom;
  int64_t context = 0;
};

struct EvalRow {
  std::string workload;
  int64_t context = 0;
  int64_t queries = 0;
  bool hisa_equals_flat = false;  // o + 1 <= m for every query
  FidelityReport fidelity;
  double pool_seconds = 0, flat_seconds = 0, hisa_seconds = 0;
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Whether every query keeps all its eligible blocks: o + 1 <= m with o = floor(p / B).
bool HisaEqualsFlat(const Workload& workload) {
  const IndexerConfig& cfg = workload.cfg;
  for (int64_t t = 0; t < workload.num_queries; ++t) {
    const int64_t length = int64_t{workload.ke[t]} - workload.ks[t];
    if (length > 0 && (length - 1) / cfg.block_size + 1 > cfg.block_budget) return false;
  }
  return true;
}

Status Evaluate(const Workload& workload, const RunOptions& opts, EvalRow* row) {
  StagedWorkload staged;
  HISA_TOOLS_RETURN_IF_ERROR(StagedWorkload::Create(workload, opts, &staged));
  auto start = std::chrono::steady_clock::now();
  HISA_TOOLS_RETURN_IF_ERROR(staged.RunFlat());
  row->flat_seconds = SecondsSince(start);
  start = std::chrono::steady_clock::now();
  HISA_TOOLS_RETURN_IF_ERROR(staged.BuildPooledKeys());
  row->pool_seconds = SecondsSince(start);
  start = std::chrono::steady_clock::now();
  HISA_TOOLS_RETURN_IF_ERROR(staged.RunHisa(/*write_blocks=*/true));
  row->hisa_seconds = SecondsSince(start);

  std::vector<int32_t> flat, hisa, blocks;
  HISA_TOOLS_RETURN_IF_ERROR(staged.FlatIndices(&flat));
  HISA_TOOLS_RETURN_IF_ERROR(staged.HisaIndices(&hisa));
  HISA_TOOLS_RETURN_IF_ERROR(staged.HisaBlocks(&blocks));
  const IndexerConfig& cfg = workload.cfg;
  row->workload = workload.name;
  row->context = workload.num_keys;
  row->queries = workload.num_queries;
  row->hisa_equals_flat = HisaEqualsFlat(workload);
  row->fidelity = CompareSelections(workload.num_queries, flat.data(), hisa.data(), cfg.top_k,
                                    blocks.data(), cfg.block_budget, cfg.block_size);
  return {};
}

/// The generated workloads to evaluate: every regime at every context length.
Status ListGenerated(const EvalOptions& options, std::vector<EvalItem>* items) {
  std::vector<Regime> regimes;
  std::vector<int64_t> contexts;
  HISA_TOOLS_RETURN_IF_ERROR(ParseRegimes(options.regimes, &regimes));
  HISA_TOOLS_RETURN_IF_ERROR(ParseContexts(options.contexts, &contexts));
  for (int64_t context : contexts) {
    if (options.queries > context) {
      return {StatusCode::kInvalidArgument,
              fmt::format("--queries = {} exceeds the context length {}: the queries are the last "
                          "positions of the context",
                          options.queries, context)};
    }
  }
  for (Regime regime : regimes) {
    for (int64_t context : contexts) {
      items->push_back(
          {fmt::format("{} {}", RegimeName(regime), FormatContext(context)), regime, context});
    }
  }
  return {};
}

nlohmann::json SummaryJson(const Summary& s) {
  return {{"mean", s.mean}, {"p1", s.p1}, {"min", s.min}};
}

void PrintJson(const IndexerConfig& cfg, const EvalOptions& options,
               const std::vector<EvalRow>& rows) {
  nlohmann::json out;
  out["command"] = "eval";
  out["config"] = ConfigJson(cfg, options.run);
  out["rows"] = nlohmann::json::array();
  for (const EvalRow& row : rows) {
    out["rows"].push_back(
        {{"workload", row.workload},
         {"context", row.context},
         {"queries", row.queries},
         {"hisa_equals_flat", row.hisa_equals_flat},
         {"iou", SummaryJson(row.fidelity.iou)},
         {"recall", SummaryJson(row.fidelity.recall)},
         {"coverage", SummaryJson(row.fidelity.coverage)},
         {"seconds",
          {{"flat", row.flat_seconds}, {"pool", row.pool_seconds}, {"hisa", row.hisa_seconds}}}});
  }
  std::printf("%s\n", out.dump(2).c_str());
}

void PrintTable(const IndexerConfig& cfg, const EvalOptions& options,
                const std::vector<EvalRow>& rows) {
  const std::string source = options.npy_dir.empty()
                                 ? fmt::format("generated, seed {}", options.run.seed)
                                 : fmt::format("loaded from {}", options.npy_dir);
  std::printf(
      "hisa eval: HISA (B=%d, m=%d, k=%d) against the flat top-%d | H=%d D=%d %s %s | "
      "%s | %s\n",
      cfg.block_size, cfg.block_budget, cfg.top_k, cfg.top_k, cfg.num_heads, cfg.head_dim,
      DTypeOption(cfg.k_dtype), ScaleRuleOption(cfg.pooled_scale_rule),
      DescribeBackend(options.run).c_str(), source.c_str());
  std::printf(
      "per query: IoU and recall of the HISA set against the flat set, coverage = share "
      "of the flat set inside HISA's blocks;\nper row: mean, 1st percentile and minimum "
      "over the queries%s\n\n",
      options.npy_dir.empty() ? " (the last positions of the context)" : "");
  Table table;
  table.AddColumn("workload", Table::Align::kLeft);
  table.AddColumn("context");
  table.AddColumn("queries");
  for (const char* group : {"IoU %", "recall %", "coverage %"}) {
    table.AddColumn("mean", Table::Align::kRight, group);
    table.AddColumn("p1", Table::Align::kRight, group);
    table.AddColumn("min", Table::Align::kRight, group);
  }
  table.AddColumn("time s");
  bool any_equal = false;
  const auto percent = [](double v) { return fmt::format("{:.2f}", 100.0 * v); };
  for (const EvalRow& row : rows) {
    any_equal = any_equal || row.hisa_equals_flat;
    std::vector<std::string> cells = {
        row.workload, FormatContext(row.context) + (row.hisa_equals_flat ? "*" : " "),
        fmt::format("{}", row.queries)};
    for (const Summary* s : {&row.fidelity.iou, &row.fidelity.recall, &row.fidelity.coverage}) {
      cells.push_back(percent(s->mean));
      cells.push_back(percent(s->p1));
      cells.push_back(percent(s->min));
    }
    cells.push_back(fmt::format("{:.2f}", row.flat_seconds + row.pool_seconds + row.hisa_seconds));
    table.AddRow(std::move(cells));
  }
  std::printf("%s", table.Render().c_str());
  if (any_equal) {
    std::printf(
        "\n* o + 1 <= m for every query (o = the query's own block): HISA keeps every "
        "eligible block and equals the flat indexer exactly, up to context m * B = %s.\n",
        FormatContext(int64_t{cfg.block_budget} * cfg.block_size).c_str());
  }
}

}  // namespace

void AddEvalOptions(CLI::App* command, EvalOptions* options) {
  command
      ->add_option("--regimes", options->regimes,
                   "workloads to generate, comma separated: sinks-local, needle, topics, "
                   "diffuse, random, or all")
      ->delimiter(',')
      ->default_str("all");
  command
      ->add_option("--contexts", options->contexts,
                   "context lengths N, comma separated: 65536, 64K, 64k or 1M")
      ->delimiter(',')
      ->default_str("8K,32K,64K");
  command
      ->add_option("--queries", options->queries,
                   "queries per workload: the last T positions of the context")
      ->check(CLI::Range(1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command
      ->add_option("--npy", options->npy_dir,
                   "evaluate the activations in this directory (q.npy, w.npy, k.npy, "
                   "[kscale.npy], [ks.npy, ke.npy]; H and D come from the files) instead of "
                   "generated workloads")
      ->check(CLI::ExistingDirectory);
  command->add_flag("--json", options->json, "print JSON to stdout instead of the table");
  AddShapeOptions(command, &options->shape);
  AddRunSettings(command, &options->run);
  command->get_option("--npy")
      ->excludes("--regimes")
      ->excludes("--contexts")
      ->excludes("--queries");
}

int RunEval(const EvalOptions& options) {
  ApplyThreads(options.run);
  const RunOptions opts = MakeRunOptions(options.run);
  IndexerConfig cfg = MakeConfig(options.shape);
  std::vector<EvalItem> items;
  Workload loaded;
  Status status;
  if (options.npy_dir.empty()) {
    status = ListGenerated(options, &items);
  } else {
    status = LoadWorkloadNpy(cfg, options.npy_dir, &loaded);
    cfg = loaded.cfg;  // H and D from the files
    items.push_back({loaded.name});
  }
  if (status.ok()) status = ValidateSetup(cfg, opts);
  if (!status.ok()) return ReportError("eval", status);

  std::vector<EvalRow> rows;
  {
    Progress progress("eval", static_cast<int>(items.size()));
    for (size_t i = 0; i < items.size() && status.ok(); ++i) {
      progress.Step(static_cast<int>(i + 1), items[i].label);
      const Workload workload = options.npy_dir.empty()
                                    ? GenerateWorkload(cfg, {items[i].regime, items[i].context,
                                                             options.queries, options.run.seed})
                                    : std::move(loaded);
      EvalRow row;
      status = Evaluate(workload, opts, &row);
      rows.push_back(std::move(row));
    }
  }  // the progress line is gone before anything else is printed
  if (!status.ok()) return ReportError("eval", status);
  if (options.json) {
    PrintJson(cfg, options, rows);
  } else {
    PrintTable(cfg, options, rows);
  }
  return 0;
}

}  // namespace hisa::tools
