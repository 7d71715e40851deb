// `hisa bench --backend cuda`: the GPU sweep. Prefill (queries at the end of an L-token prefix)
// and paged decode (batch x context x next_n), flat and HISA side by side, each timed with CUDA
// events after a warm-up over inputs rotated past the L2 cache; medians of many runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hisa/status.h"
#include "hisa/types.h"
#include "hisa/workload.h"

namespace hisa::tools {

struct CudaBenchOptions {
  IndexerConfig cfg;
  std::vector<int64_t> prefill_contexts = {8192, 16384, 32768, 65536, 131072};
  int64_t prefill_queries = 1024;
  std::vector<int64_t> decode_contexts = {32768, 131072};
  std::vector<int32_t> decode_batches = {1, 32, 64, 128};
  std::vector<int32_t> next_ns = {1, 2};
  int32_t repeats = 20;
  int32_t warmup = 3;
  Regime regime = Regime::kSinksLocal;
  uint64_t seed = 0;
  bool flat = true;
  bool hisa = true;
  bool scoring = true;  ///< also time the scoring kernel alone (FlatLogitsPrefill) for prefill
  size_t workspace_limit_bytes = size_t{1} << 30;
};

/// One measured configuration.
struct CudaBenchRow {
  std::string phase;   ///< "prefill" or "decode"
  std::string method;  ///< "flat", "hisa", "score" (logits only), "pool" (pooled-key build)
  int64_t context = 0;
  int64_t queries = 0;  ///< prefill queries, or decode batch
  int32_t next_n = 0;   ///< decode only
  double ms_median = 0, ms_min = 0, ms_max = 0;  ///< CUDA-graph replays
  double ms_eager = 0;  ///< median of plain launches (host launch gaps included)
  double pairs = 0;            ///< valid (query, key) pairs scored, pooled blocks included
  double tflops = 0;           ///< 2 * H * D * pairs / median time
  double key_gbytes_s = 0;     ///< key bytes (128 + 4 per key) read / median time
  double workspace_bytes = 0;  ///< extra device memory of one call
  double speedup = 0;          ///< hisa rows: flat median / hisa median of the same case
};

/// Runs the sweep; `progress` receives a line per configuration started.
Status RunCudaBench(const CudaBenchOptions& options,
                    const std::function<void(const std::string&)>& progress,
                    std::vector<CudaBenchRow>* rows);

/// Device name, memory and clocks, for the report header.
std::string CudaDeviceSummary();

}  // namespace hisa::tools
