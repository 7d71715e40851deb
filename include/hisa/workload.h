// hisa: synthetic workloads with named attention regimes, and activations loaded from .npy files.
//
// Part of the evaluation library (hisa_eval), used by the command line, the tests and the
// benchmarks; the core library does not depend on it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa {

/// Named attention regimes (see README, "Workloads").
enum class Regime : uint8_t {
  kSinksLocal,  ///< attention sink, local window, a few contiguous relevant spans
  kNeedle,      ///< a handful of strongly matching tokens deep in irrelevant context
  kTopics,      ///< documents of varying length on different topics, queries about several
  kDiffuse,     ///< relevant tokens scattered thinly over many blocks (pooling's weak case)
  kRandom,      ///< i.i.d. Gaussian queries and keys
};

const char* RegimeName(Regime r);                      ///< "sinks-local", "needle", ...
bool ParseRegime(std::string_view name, Regime* out);  ///< inverse of RegimeName
std::vector<Regime> AllRegimes();

/// What to generate: one sequence of `context` keys and `num_queries` queries at its end
/// (positions context - num_queries .. context - 1), each seeing its own prefix.
struct WorkloadSpec {
  Regime regime = Regime::kSinksLocal;
  int64_t context = 8192;     ///< N, keys in the sequence
  int64_t num_queries = 256;  ///< T <= N
  uint64_t seed = 0;
};

/// An owned prefill batch: tensors plus the views the API takes.
struct Workload {
  IndexerConfig cfg;             ///< shape (H, D, dtypes) of the tensors below
  std::vector<uint8_t> q;        ///< [T, H, D] cfg.q_dtype
  std::vector<float> w;          ///< [T, H]
  std::vector<uint8_t> k;        ///< [N, D] cfg.k_dtype
  std::vector<float> kscale;     ///< [N]
  std::vector<int32_t> ks, ke;   ///< [T]
  std::vector<int32_t> seq_starts, seq_lens;  ///< the sequences the keys form
  int64_t num_queries = 0;
  int64_t num_keys = 0;
  std::string name;  ///< "sinks-local", "npy:<dir>", ...

  PrefillInputs Inputs() const;
  KeyRows Keys() const;
};

/// Generates a workload in the given regime. q and k are drawn in float32 and quantized as the
/// models store them: FP8 with a per-token amax / 448 scale (k), FP8 per (token, head) with the
/// scale folded into w (q); or BF16. Deterministic for a seed.
Workload GenerateWorkload(const IndexerConfig& cfg, const WorkloadSpec& spec);

/// Loads activations from a directory of .npy files (C order, little endian):
///   q.npy       [T, H, D] float32 / float16, or uint8 FP8 E4M3 codes
///   w.npy       [T, H]    float32
///   k.npy       [N, D]    float32 / float16 (quantized per token), or uint8 FP8 codes
///   kscale.npy  [N]       float32, required when k.npy holds FP8 codes
///   ks.npy, ke.npy [T]    int32 or int64, optional: default causal, queries at the end of
///                         one sequence (query t at position N - T + t)
/// H and D are read from the files and replace cfg's; dtypes follow cfg.
Status LoadWorkloadNpy(const IndexerConfig& cfg, const std::string& dir, Workload* out);

/// A parsed .npy array.
struct NpyArray {
  std::string dtype;  ///< numpy descr without byte order: "f4", "f2", "u1", "i4", "i8", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  ///< raw little-endian elements
  int64_t size() const;       ///< number of elements
};
Status ReadNpy(const std::string& path, NpyArray* out);
Status WriteNpy(const std::string& path, const NpyArray& array);

}  // namespace hisa
