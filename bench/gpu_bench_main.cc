// hisa_gpu_bench: the GPU sweep of `hisa bench --backend cuda` with its defaults, as one program
// for bench/gpu_check.sh. Prints a fixed-width table; --json for machines.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

#include "bench_cuda.h"

namespace {

// A flag that replaces the sweep with a few cases.
struct Preset {
  const char* flag;
  std::vector<int64_t> prefill_contexts, decode_contexts;
  std::vector<int32_t> decode_batches;
  int32_t repeats, warmup;
  bool scoring;  // the scoring kernel alone too
  std::vector<int32_t> next_ns = {1};
};

// The profilers' presets run each case once, without warm-up; 1024 x 1M float logits would not
// fit the point --million makes (peak memory at 1M context).
const Preset kPresets[] = {
    {"--one", {131072}, {131072}, {64}, 1, 0, false},          // HISA + flat prefill, decode 64
    {"--decode-one", {}, {131072}, {1, 64}, 1, 0, false},      // decode batch 1 and 64 at 128K
    {"--million", {int64_t{1} << 20}, {int64_t{1} << 20}, {1}, 1, 0, false},
    {"--quick", {32768, 131072}, {131072}, {1, 64}, 10, 3, true},
    // The sweep's decode cases alone (to compare two builds' decode in one call).
    {"--decode", {}, {32768, 131072}, {1, 32, 64, 128}, 20, 3, false, {1, 2}},
};

constexpr const char* kUsage =
    "usage: hisa_gpu_bench [--json] [--one | --decode-one | --million | --quick | --decode]\n"
    "                      [--at N] [--workspace-limit MIB]\n"
    "\n"
    "Without a preset: the full GPU sweep of `hisa bench --backend cuda` (prefill 8K-128K, decode\n"
    "batch 1-128 at 32K and 128K, next_n 1 and 2; several minutes), flat and HISA side by side.\n"
    "  --json        one JSON object per row instead of the table\n"
    "  --one         prefill at 128K and decode batch 64 at 128K, once each, no warm-up (profilers)\n"
    "  --decode-one  decode batch 1 and 64 at 128K, once each (profilers)\n"
    "  --million     prefill and decode batch 1 at 1M keys, once (peak memory)\n"
    "  --quick       prefill 32K and 128K (and the scoring kernel alone), decode batch 1 and 64\n"
    "                at 128K; 10 repeats after 3 warm-up runs\n"
    "  --decode      the sweep's decode cases only (batch 1-128 at 32K and 128K, next_n 1 and 2)\n"
    "  --at N        with a preset: the prefill case at N keys instead\n"
    "  --workspace-limit MIB\n"
    "                cap on each call's extra device memory (RunOptions::workspace_limit_bytes,\n"
    "                default 1024): below what a case needs, its queries run in chunks (and\n"
    "                HISA prefill's stage 2 selects its top-k on chip)\n"
    "Progress goes to stderr, the table to stdout; times are milliseconds.\n";

}  // namespace

int main(int argc, char** argv) {
  hisa::tools::CudaBenchOptions options;
  bool json = false;
  int64_t at = 0;  // --at N: the prefill case at N keys (applied after any preset)
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    const auto preset = std::find_if(std::begin(kPresets), std::end(kPresets),
                                     [&](const Preset& p) { return !std::strcmp(arg, p.flag); });
    if (!std::strcmp(arg, "--help") || !std::strcmp(arg, "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (!std::strcmp(arg, "--json")) {
      json = true;
    } else if (!std::strcmp(arg, "--at")) {
      at = i + 1 < argc ? std::atoll(argv[++i]) : 0;
      if (at <= 0) {
        std::fprintf(stderr, "hisa_gpu_bench: --at needs a positive number of keys\n%s", kUsage);
        return 2;
      }
    } else if (!std::strcmp(arg, "--workspace-limit")) {
      const long long mib = i + 1 < argc ? std::atoll(argv[++i]) : 0;
      if (mib <= 0) {
        std::fprintf(stderr, "hisa_gpu_bench: --workspace-limit needs a positive number of MiB\n%s",
                     kUsage);
        return 2;
      }
      options.workspace_limit_bytes = static_cast<size_t>(mib) << 20;
    } else if (preset != std::end(kPresets)) {
      options.prefill_contexts = preset->prefill_contexts;
      options.decode_contexts = preset->decode_contexts;
      options.decode_batches = preset->decode_batches;
      options.next_ns = preset->next_ns;
      options.repeats = preset->repeats;
      options.warmup = preset->warmup;
      options.scoring = preset->scoring;
    } else {
      std::fprintf(stderr, "hisa_gpu_bench: unknown argument '%s'\n%s", arg, kUsage);
      return 2;
    }
  }
  if (at > 0) options.prefill_contexts = {at};
  std::vector<hisa::tools::CudaBenchRow> rows;
  const hisa::Status status = hisa::tools::RunCudaBench(
      options, [](const std::string& line) { std::fprintf(stderr, "... %s\n", line.c_str()); },
      &rows);
  std::printf("# %s\n", hisa::tools::CudaDeviceSummary().c_str());
  std::printf("# times: CUDA-graph replays (median, min, max) and plain launches (eager)\n");
  std::printf("%-8s %-6s %8s %6s %3s %10s %10s %10s %10s %9s %9s %9s %8s\n", "phase", "method",
              "context", "q/batch", "nn", "median_ms", "min_ms", "max_ms", "eager_ms", "TFLOP/s",
              "GB/s", "ws_MiB", "speedup");
  for (const auto& r : rows) {
    if (json) {
      std::printf("{\"phase\":\"%s\",\"method\":\"%s\",\"context\":%lld,\"queries\":%lld,"
                  "\"next_n\":%d,\"ms_median\":%.5f,\"ms_min\":%.5f,\"ms_max\":%.5f,"
                  "\"ms_eager\":%.5f,\"pairs\":%.0f,\"tflops\":%.2f,\"key_gbytes_s\":%.1f,\"workspace_bytes\":%.0f,"
                  "\"speedup\":%.3f}\n",
                  r.phase.c_str(), r.method.c_str(), (long long)r.context, (long long)r.queries,
                  r.next_n, r.ms_median, r.ms_min, r.ms_max, r.ms_eager, r.pairs, r.tflops, r.key_gbytes_s,
                  r.workspace_bytes, r.speedup);
    } else {
      std::printf("%-8s %-6s %8lld %6lld %3d %10.4f %10.4f %10.4f %10.4f %9.1f %9.1f %9.1f %8.2f\n",
                  r.phase.c_str(), r.method.c_str(), (long long)r.context, (long long)r.queries,
                  r.next_n, r.ms_median, r.ms_min, r.ms_max, r.ms_eager, r.tflops, r.key_gbytes_s,
                  r.workspace_bytes / 1048576.0, r.speedup);
    }
  }
  if (!status.ok()) {
    std::fprintf(stderr, "hisa_gpu_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
