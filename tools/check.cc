#include "check.h"

#include <fmt/format.h>
#include <omp.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "check_cases.h"
#include "hisa/check.h"
#include "hisa/hisa.h"
#include "memory.h"
#include "return_if_error.h"

namespace hisa::tools {
namespace {

enum class Outcome { kPass, kFail, kSkip };

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kFail:
      return "fail";
    case Outcome::kSkip:
      return "skip";
  }
  return "?";
}

/// One checked call: "pool", "update", "flat" or "hisa".
struct StepResult {
  std::string step;
  Outcome outcome = Outcome::kPass;
  std::string detail;  // why it failed or was skipped
};

/// A backend under test and its rounding allowance.
struct BackendUnderTest {
  Backend backend;
  double rel_tol;
  int32_t threads;
  RunOptions Options(const CheckCase& c) const {
    RunOptions opts;
    opts.backend = backend;
    opts.positions = c.positions;
    opts.sorted = c.sorted;
    opts.num_threads = threads;
    return opts;
  }
};

/// An output buffer with kGuard sentinel elements on each side, to catch stray writes.
template <typename T>
class GuardedOutput {
 public:
  static constexpr size_t kGuard = 64;

  Status Create(Backend backend, size_t count, T sentinel) {
    count_ = count;
    sentinel_ = sentinel;
    const std::vector<T> filled(count + 2 * kGuard, sentinel);
    return Upload(backend, filled, &buffer_);
  }
  T* data() const { return static_cast<T*>(buffer_.data()) + kGuard; }

  /// The count_ elements between the guards; "" or which guard element was overwritten.
  Status Fetch(std::vector<T>* values, std::string* guard_error) const {
    std::vector<T> all;
    HISA_TOOLS_RETURN_IF_ERROR(Download(buffer_, &all));
    for (size_t i = 0; i < all.size(); ++i) {
      const bool guard = i < kGuard || i >= kGuard + count_;
      if (guard && std::memcmp(&all[i], &sentinel_, sizeof(T)) != 0) {
        *guard_error = fmt::format("wrote outside its output: element {} of the guard {} it",
                                   i < kGuard ? kGuard - i : i - kGuard - count_ + 1,
                                   i < kGuard ? "before" : "after");
        break;
      }
    }
    values->assign(all.begin() + kGuard,
                   all.begin() + static_cast<std::ptrdiff_t>(kGuard + count_));
    return {};
  }

 private:
  BackendBuffer buffer_;
  size_t count_ = 0;
  T sentinel_{};
};

constexpr int32_t kIndexSentinel = 0x5EADBEEF;
constexpr float kScoreSentinel = std::bit_cast<float>(0x7FA5A5A5u);  // a NaN no backend writes

StepResult Fail(const char* step, const std::string& detail) {
  return {step, Outcome::kFail, detail};
}

/// Scores of a sorted row must not increase; ties keep lower positions first (relative
/// positions only: absolute decode slots do not follow positions). Unused slots are NaN.
std::string CheckScores(const CheckCase& c, int64_t rows, const std::vector<int32_t>& indices,
                        const std::vector<float>& scores) {
  const int64_t k = c.cfg.top_k;
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t i = 0; i < k; ++i) {
      const int64_t at = t * k + i;
      if (indices[at] < 0 && !std::isnan(scores[at])) {
        return fmt::format("row {}: unused slot {} has score {} (expected NaN)", t, i, scores[at]);
      }
      if (!c.sorted || i + 1 >= k || indices[at + 1] < 0) continue;
      const float a = scores[at], b = scores[at + 1];
      const bool out_of_order =
          (std::isnan(a) && !std::isnan(b)) || a < b ||
          (a == b && c.positions == PositionBase::kRelative && indices[at] > indices[at + 1]);
      if (out_of_order) {
        return fmt::format(
            "row {}: sorted output out of order at slot {}: ({}, {:.9g}) before "
            "({}, {:.9g})",
            t, i, indices[at], a, indices[at + 1], b);
      }
    }
  }
  return "";
}

/// Runs a selection on the backend and checks it against the reference.
StepResult SelectionStep(const char* step, const CheckCase& c, Backend backend, int64_t rows,
                         bool hisa, const std::function<Status(const TopkOutputs&)>& select,
                         const std::function<CheckResult(const int32_t*, const int32_t*)>& check) {
  const IndexerConfig& cfg = c.cfg;
  GuardedOutput<int32_t> indices, blocks;
  GuardedOutput<float> scores;
  const size_t slots = static_cast<size_t>(rows * cfg.top_k);
  Status status = indices.Create(backend, slots, kIndexSentinel);
  if (status.ok() && hisa) {
    status = blocks.Create(backend, static_cast<size_t>(rows * cfg.block_budget), kIndexSentinel);
  }
  if (status.ok() && c.with_scores) status = scores.Create(backend, slots, kScoreSentinel);
  if (!status.ok()) return Fail(step, status.ToString());
  TopkOutputs out;
  out.indices = indices.data();
  out.blocks = hisa ? blocks.data() : nullptr;
  out.scores = c.with_scores ? scores.data() : nullptr;
  status = select(out);
  if (status.ok()) status = Synchronize(backend);
  if (status.code() == StatusCode::kUnsupported) return {step, Outcome::kSkip, status.message()};
  if (!status.ok()) return Fail(step, status.ToString());

  std::vector<int32_t> got_indices, got_blocks;
  std::vector<float> got_scores;
  std::string guard_error;
  status = indices.Fetch(&got_indices, &guard_error);
  if (status.ok() && hisa) status = blocks.Fetch(&got_blocks, &guard_error);
  if (status.ok() && c.with_scores) status = scores.Fetch(&got_scores, &guard_error);
  if (!status.ok()) return Fail(step, status.ToString());
  if (!guard_error.empty()) return Fail(step, guard_error);
  const CheckResult result = check(got_indices.data(), hisa ? got_blocks.data() : nullptr);
  if (!result.ok()) {
    return Fail(step, fmt::format("{} of {} rows wrong; {}", result.rows_failed,
                                  result.rows_checked, result.first_failure));
  }
  if (c.with_scores) {
    const std::string why = CheckScores(c, rows, got_indices, got_scores);
    if (!why.empty()) return Fail(step, why);
  }
  return {step, Outcome::kPass, ""};
}

/// Pooled keys on the host.
struct HostPooled {
  std::vector<uint8_t> k;
  std::vector<float> kscale;
  HostPooled(const IndexerConfig& cfg, int64_t slots)
      : k(static_cast<size_t>(slots * cfg.head_dim * DTypeSize(cfg.k_dtype))),
        kscale(static_cast<size_t>(slots)) {}
  PooledKeys View() { return {k.data(), kscale.data(), static_cast<int64_t>(kscale.size())}; }
};

/// Builds pooled keys on the backend with `build` and compares them bit for bit with the
/// reference's. The backend's pooled keys are left in `pooled`.
StepResult PoolStep(const char* step, const IndexerConfig& cfg, Backend backend,
                    const HostPooled& reference, BackendBuffer* pooled_k,
                    BackendBuffer* pooled_scale,
                    const std::function<Status(const PooledKeys&)>& build) {
  const int64_t slots = static_cast<int64_t>(reference.kscale.size());
  Status status = BackendBuffer::Allocate(backend, reference.k.size(), pooled_k);
  if (status.ok()) status = BackendBuffer::Allocate(backend, slots * sizeof(float), pooled_scale);
  if (status.ok()) {
    status = build({pooled_k->data(), static_cast<float*>(pooled_scale->data()), slots});
  }
  if (status.ok()) status = Synchronize(backend);
  if (status.code() == StatusCode::kUnsupported) return {step, Outcome::kSkip, status.message()};
  HostPooled got(cfg, slots);
  if (status.ok()) status = pooled_k->CopyToHost(got.k.data(), got.k.size());
  if (status.ok()) status = pooled_scale->CopyToHost(got.kscale.data(), slots * sizeof(float));
  if (!status.ok()) return Fail(step, status.ToString());
  const size_t row_bytes = static_cast<size_t>(cfg.head_dim) * DTypeSize(cfg.k_dtype);
  for (int64_t j = 0; j < slots; ++j) {
    const float a = got.kscale[j], b = reference.kscale[j];
    if (std::bit_cast<uint32_t>(a) != std::bit_cast<uint32_t>(b)) {
      return Fail(step, fmt::format("slot {}: scale {:.9g}, the reference {:.9g}", j, a, b));
    }
    if (std::memcmp(got.k.data() + j * row_bytes, reference.k.data() + j * row_bytes, row_bytes) !=
        0) {
      return Fail(step, fmt::format("slot {}: the pooled key differs from the reference's", j));
    }
  }
  return {step, Outcome::kPass, ""};
}

/// When the backend could not pool (skipped), its selection runs on the reference's pooled keys.
Status UseReferenceIfSkipped(const StepResult& pool, Backend backend, const HostPooled& reference,
                             BackendBuffer* pooled_k, BackendBuffer* pooled_scale) {
  if (pool.outcome != Outcome::kSkip) return {};
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, reference.k, pooled_k));
  return Upload(backend, reference.kscale, pooled_scale);
}

std::vector<StepResult> CheckPrefill(const CheckCase& c, const BackendUnderTest& b) {
  const IndexerConfig& cfg = c.cfg;
  const Workload& d = c.data;
  const Backend backend = b.backend;
  const RunOptions opts = b.Options(c);
  const int32_t num_seqs = static_cast<int32_t>(d.seq_starts.size());
  RunOptions reference_opts;
  reference_opts.backend = Backend::kReference;
  reference_opts.num_threads = b.threads;
  HostPooled reference(cfg, PooledSlotsForRows(cfg, d.num_keys));
  Status status = BuildPooledKeysPrefill(cfg, d.Keys(), d.seq_starts.data(), d.seq_lens.data(),
                                         num_seqs, reference.View(), reference_opts);
  BackendBuffer q, w, k, kscale, ks, ke, starts, lens, pooled_k, pooled_scale;
  if (status.ok()) status = Upload(backend, d.q, &q);
  if (status.ok()) status = Upload(backend, d.w, &w);
  if (status.ok()) status = Upload(backend, d.k, &k);
  if (status.ok()) status = Upload(backend, d.kscale, &kscale);
  if (status.ok()) status = Upload(backend, d.ks, &ks);
  if (status.ok()) status = Upload(backend, d.ke, &ke);
  if (status.ok()) status = Upload(backend, d.seq_starts, &starts);
  if (status.ok()) status = Upload(backend, d.seq_lens, &lens);
  if (!status.ok()) return {Fail("setup", status.ToString())};
  PrefillInputs in;
  in.q = q.data();
  in.w = static_cast<const float*>(w.data());
  in.keys = {k.data(), static_cast<const float*>(kscale.data()), d.num_keys};
  in.ks = static_cast<const int32_t*>(ks.data());
  in.ke = static_cast<const int32_t*>(ke.data());
  in.num_queries = d.num_queries;
  const PrefillInputs host_in = c.Prefill();
  CheckOptions check_opts;
  check_opts.rel_tol = b.rel_tol;
  check_opts.positions = c.positions;

  std::vector<StepResult> results;
  results.push_back(PoolStep(
      "pool", cfg, backend, reference, &pooled_k, &pooled_scale, [&](const PooledKeys& pooled) {
        return BuildPooledKeysPrefill(cfg, in.keys, static_cast<const int32_t*>(starts.data()),
                                      static_cast<const int32_t*>(lens.data()), num_seqs, pooled,
                                      opts);
      }));
  status = UseReferenceIfSkipped(results.back(), backend, reference, &pooled_k, &pooled_scale);
  if (!status.ok()) return {Fail("setup", status.ToString())};
  results.push_back(SelectionStep(
      "flat", c, backend, d.num_queries, false,
      [&](const TopkOutputs& out) { return FlatTopkPrefill(cfg, in, out, opts); },
      [&](const int32_t* indices, const int32_t*) {
        return CheckFlatPrefill(cfg, host_in, indices, check_opts);
      }));
  const ConstPooledKeys pooled(pooled_k.data(), static_cast<const float*>(pooled_scale.data()),
                               static_cast<int64_t>(reference.kscale.size()));
  const ConstPooledKeys host_pooled(reference.k.data(), reference.kscale.data(),
                                    static_cast<int64_t>(reference.kscale.size()));
  results.push_back(SelectionStep(
      "hisa", c, backend, d.num_queries, true,
      [&](const TopkOutputs& out) { return HisaTopkPrefill(cfg, in, pooled, out, opts); },
      [&](const int32_t* indices, const int32_t* blocks) {
        return CheckHisaPrefill(cfg, host_in, host_pooled, indices, blocks, check_opts);
      }));
  return results;
}

std::vector<StepResult> CheckDecode(const CheckCase& c, const BackendUnderTest& b) {
  const IndexerConfig& cfg = c.cfg;
  const Workload& d = c.data;
  const Backend backend = b.backend;
  const RunOptions opts = b.Options(c);
  RunOptions reference_opts;
  reference_opts.backend = Backend::kReference;
  reference_opts.num_threads = b.threads;
  HostPooled reference(cfg, PooledSlotsForPages(cfg, c.num_pages, c.page_size));
  Status status = BuildPooledKeysPaged(cfg, c.Cache(), c.Sequences(c.context_lens),
                                       reference.View(), reference_opts);
  BackendBuffer q, w, k, kscale, table, lens, old_lens, pooled_k, pooled_scale, updated_k,
      updated_scale;
  if (status.ok()) status = Upload(backend, d.q, &q);
  if (status.ok()) status = Upload(backend, d.w, &w);
  if (status.ok()) status = Upload(backend, d.k, &k);
  if (status.ok()) status = Upload(backend, d.kscale, &kscale);
  if (status.ok()) status = Upload(backend, c.block_table, &table);
  if (status.ok()) status = Upload(backend, c.context_lens, &lens);
  if (status.ok()) status = Upload(backend, c.old_lens, &old_lens);
  if (!status.ok()) return {Fail("setup", status.ToString())};
  const int32_t num_seqs = static_cast<int32_t>(c.context_lens.size());
  const PagedKeys cache{k.data(), static_cast<const float*>(kscale.data()), c.num_pages,
                        c.page_size};
  const auto sequences = [&](const BackendBuffer& seq_lens) {
    return PagedSequences{static_cast<const int32_t*>(table.data()), c.max_pages_per_seq,
                          static_cast<const int32_t*>(seq_lens.data()), num_seqs};
  };
  DecodeInputs in;
  in.q = q.data();
  in.w = static_cast<const float*>(w.data());
  in.cache = cache;
  in.seqs = sequences(lens);
  in.next_n = c.next_n;
  const DecodeInputs host_in = c.Decode();
  CheckOptions check_opts;
  check_opts.rel_tol = b.rel_tol;
  check_opts.positions = c.positions;
  const int64_t rows = int64_t{num_seqs} * c.next_n;

  std::vector<StepResult> results;
  results.push_back(PoolStep("pool", cfg, backend, reference, &pooled_k, &pooled_scale,
                             [&](const PooledKeys& pooled) {
                               return BuildPooledKeysPaged(cfg, cache, in.seqs, pooled, opts);
                             }));
  status = UseReferenceIfSkipped(results.back(), backend, reference, &pooled_k, &pooled_scale);
  if (!status.ok()) return {Fail("setup", status.ToString())};
  // Pooling the sequences at their old lengths, then updating them, equals a full build.
  results.push_back(PoolStep(
      "update", cfg, backend, reference, &updated_k, &updated_scale, [&](const PooledKeys& pooled) {
        HISA_TOOLS_RETURN_IF_ERROR(
            BuildPooledKeysPaged(cfg, cache, sequences(old_lens), pooled, opts));
        return UpdatePooledKeysPaged(cfg, cache, in.seqs,
                                     static_cast<const int32_t*>(old_lens.data()), pooled, opts);
      }));
  results.push_back(SelectionStep(
      "flat", c, backend, rows, false,
      [&](const TopkOutputs& out) { return FlatTopkDecode(cfg, in, out, opts); },
      [&](const int32_t* indices, const int32_t*) {
        return CheckFlatDecode(cfg, host_in, indices, check_opts);
      }));
  const ConstPooledKeys pooled(pooled_k.data(), static_cast<const float*>(pooled_scale.data()),
                               static_cast<int64_t>(reference.kscale.size()));
  const ConstPooledKeys host_pooled(reference.k.data(), reference.kscale.data(),
                                    static_cast<int64_t>(reference.kscale.size()));
  results.push_back(SelectionStep(
      "hisa", c, backend, rows, true,
      [&](const TopkOutputs& out) { return HisaTopkDecode(cfg, in, pooled, out, opts); },
      [&](const int32_t* indices, const int32_t* blocks) {
        return CheckHisaDecode(cfg, host_in, host_pooled, indices, blocks, check_opts);
      }));
  return results;
}

struct Tally {
  int64_t passed = 0, failed = 0, skipped = 0;
  void Add(Outcome o) { (o == Outcome::kPass ? passed : o == Outcome::kFail ? failed : skipped)++; }
};

/// "ok 3/3", "FAIL hisa, flat", "skipped (why)".
std::string Summarize(const std::vector<StepResult>& steps) {
  std::vector<std::string> failed;
  int64_t passed = 0, skipped = 0;
  for (const StepResult& s : steps) {
    if (s.outcome == Outcome::kFail) failed.push_back(s.step);
    passed += s.outcome == Outcome::kPass;
    skipped += s.outcome == Outcome::kSkip;
  }
  if (!failed.empty()) return fmt::format("FAIL {}", fmt::join(failed, ", "));
  if (passed == 0) return fmt::format("skipped ({})", steps.front().detail);
  std::string text = fmt::format("ok {}/{}", passed, steps.size());
  if (skipped > 0) text += fmt::format(", {} skipped", skipped);
  return text;
}

}  // namespace

void AddCheckOptions(CLI::App* command, CheckCommandOptions* options) {
  command
      ->add_option("--cases", options->cases,
                   "random problems to check; case i uses seed --seed + i")
      ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command
      ->add_option("--seed", options->seed,
                   "seed of the first case; `--seed=S --cases=1` repeats the case printed "
                   "with seed S")
      ->capture_default_str();
  command
      ->add_option("--cuda-rel-tol", options->cuda_rel_tol,
                   "rounding allowance of the cuda backend, relative to a row's largest score "
                   "magnitude (the cpu backend uses hisa::Float32RelTol)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command
      ->add_option("--threads", options->threads, "CPU worker threads, 0 = every hardware thread")
      ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command->add_flag("--json", options->json, "print JSON to stdout instead of one line per case");
}

int RunCheck(const CheckCommandOptions& options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  struct Candidate {
    Backend backend;
    bool available;
    std::string why;
  };
  std::vector<Candidate> candidates;
  for (Backend backend : {Backend::kCpu, Backend::kCuda}) {
    std::string why;
    const bool available = BackendAvailable(backend, &why);
    candidates.push_back({backend, available, why});
  }
  const auto label = [](Backend backend) {
    return backend == Backend::kCpu ? fmt::format("cpu (kernel {})", CpuKernelName())
                                    : std::string(BackendName(backend));
  };
  if (!options.json) {
    std::printf("hisa check: %d random cases (seeds %llu..%llu) against the reference, tie-aware\n",
                options.cases, static_cast<unsigned long long>(options.seed),
                static_cast<unsigned long long>(options.seed + std::max(options.cases, 1) - 1));
    for (const Candidate& c : candidates) {
      std::printf("  %s: %s\n", label(c.backend).c_str(),
                  c.available ? "checked" : fmt::format("not checked: {}", c.why).c_str());
    }
    std::printf("\n");
  }

  std::vector<Tally> tallies(candidates.size());
  nlohmann::json cases_json = nlohmann::json::array();
  for (int32_t i = 0; i < options.cases; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const CheckCase c = MakeCheckCase(options.seed + static_cast<uint64_t>(i));
    std::vector<std::string> summaries, failures;
    nlohmann::json results_json = nlohmann::json::array();
    for (size_t bi = 0; bi < candidates.size(); ++bi) {
      if (!candidates[bi].available) continue;
      const Backend backend = candidates[bi].backend;
      const BackendUnderTest b{
          backend, backend == Backend::kCuda ? options.cuda_rel_tol : Float32RelTol(c.cfg),
          options.threads};
      const std::vector<StepResult> steps =
          c.kind == CheckCase::Kind::kPrefill ? CheckPrefill(c, b) : CheckDecode(c, b);
      for (const StepResult& s : steps) {
        tallies[bi].Add(s.outcome);
        results_json.push_back({{"backend", BackendName(backend)},
                                {"step", s.step},
                                {"outcome", OutcomeName(s.outcome)},
                                {"detail", s.detail}});
        if (s.outcome == Outcome::kFail) {
          failures.push_back(fmt::format("    {} {}: {}", BackendName(backend), s.step, s.detail));
        }
      }
      summaries.push_back(fmt::format("{}: {}", BackendName(backend), Summarize(steps)));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.json) {
      cases_json.push_back({{"seed", c.seed}, {"case", c.Describe()}, {"results", results_json}});
      continue;
    }
    std::printf(
        "case %3d  seed %-5llu %-16s %5.2f s  %s\n", i, static_cast<unsigned long long>(c.seed),
        fmt::format("{}", fmt::join(summaries, " | ")).c_str(), seconds, c.Describe().c_str());
    for (const std::string& line : failures) std::printf("%s\n", line.c_str());
    if (!failures.empty()) {
      std::printf("    reproduce: hisa check --seed=%llu --cases=1\n",
                  static_cast<unsigned long long>(c.seed));
    }
    std::fflush(stdout);
  }

  Tally total;
  for (const Tally& t : tallies) {
    total.passed += t.passed;
    total.failed += t.failed;
    total.skipped += t.skipped;
  }
  if (options.json) {
    nlohmann::json out;
    out["command"] = "check";
    out["backends"] = nlohmann::json::array();
    for (size_t bi = 0; bi < candidates.size(); ++bi) {
      out["backends"].push_back({{"backend", BackendName(candidates[bi].backend)},
                                 {"available", candidates[bi].available},
                                 {"why", candidates[bi].why},
                                 {"passed", tallies[bi].passed},
                                 {"failed", tallies[bi].failed},
                                 {"skipped", tallies[bi].skipped}});
    }
    out["cases"] = cases_json;
    out["passed"] = total.passed;
    out["failed"] = total.failed;
    out["skipped"] = total.skipped;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("\n");
    for (size_t bi = 0; bi < candidates.size(); ++bi) {
      if (!candidates[bi].available) continue;
      std::printf("%s: %lld passed, %lld failed, %lld skipped\n",
                  label(candidates[bi].backend).c_str(), static_cast<long long>(tallies[bi].passed),
                  static_cast<long long>(tallies[bi].failed),
                  static_cast<long long>(tallies[bi].skipped));
    }
    std::printf("%lld passed, %lld failed\n", static_cast<long long>(total.passed),
                static_cast<long long>(total.failed));
  }
  return total.failed > 0 ? 1 : 0;
}

}  // namespace hisa::tools
