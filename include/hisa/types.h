// hisa: configuration and non-owning views over caller memory.
//
// Every pointer below is borrowed: hisa never frees or keeps it past the call. Layouts are dense
// and row-major; the comment at the end of each field gives the shape and whether it may be null.
// For the CUDA backend the pointers are device pointers, for the CPU backends host pointers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hisa {

/// Element type of queries, keys and pooled keys.
enum class DType : uint8_t {
  kFp8E4M3,  ///< FP8 E4M3 "fn" (no infinities, max 448), one byte per element
  kBf16,     ///< bfloat16, two bytes per element
};

/// How the scale of a re-quantized (pooled) FP8 key is chosen.
enum class ScaleRule : uint8_t {
  kAmax,   ///< scale = amax / 448
  kUe8m0,  ///< scale = amax / 448 rounded up to a power of two (DeepSeek-V3.2's keys)
};

/// Which implementation runs the call.
enum class Backend : uint8_t {
  kReference,  ///< the executable spec: plain loops, float64 scores, exact FP8 products
  kCpu,        ///< multithreaded, vectorized (AVX-512 BF16 / AVX2 with runtime dispatch)
  kCuda,       ///< Hopper kernels (sm_90a); available when the library was built with CUDA
};

/// What the output indices mean.
enum class PositionBase : uint8_t {
  kRelative,  ///< position inside the query's visible range: s - ks[t] (prefill), token position
              ///< in the sequence (decode). The vLLM / FlashMLA convention.
  kAbsolute,  ///< row of the key array (prefill: s), physical slot page * page_size + offset
              ///< in the paged cache (decode)
};

/// Indexer shape and HISA parameters. Defaults are DeepSeek-V3.2's indexer and the HISA paper's.
struct IndexerConfig {
  int32_t num_heads = 64;     ///< H, indexer heads per query (32, 64 or 128 on the GPU)
  int32_t head_dim = 128;     ///< D, shared by queries and keys
  int32_t top_k = 2048;       ///< k, keys selected per query
  int32_t block_size = 128;   ///< B, keys per HISA block (a multiple of 16)
  int32_t block_budget = 64;  ///< m, blocks kept per query (>= 2, m * B >= k)
  DType q_dtype = DType::kFp8E4M3;
  DType k_dtype = DType::kFp8E4M3;  ///< also the type of pooled keys
  ScaleRule pooled_scale_rule = ScaleRule::kAmax;  ///< scale rule of pooled FP8 keys
};

/// Keys stored as consecutive rows (prefill).
struct KeyRows {
  const void* k = nullptr;        ///< [N, D] k_dtype
  const float* kscale = nullptr;  ///< [N] per-token dequant scale; may be null for BF16 keys (1)
  int64_t num_keys = 0;           ///< N
};

/// A packed prefill batch: query t sees key rows [ks[t], ke[t]) (DeepGEMM's convention). Rows of
/// one sequence share ks; a query's own position in its sequence is ke[t] - 1 - ks[t].
struct PrefillInputs {
  const void* q = nullptr;      ///< [T, H, D] q_dtype (already scaled: see w)
  const float* w = nullptr;     ///< [T, H] gate with q scale, D^-0.5 and H^-0.5 folded in
  KeyRows keys;                 ///< [N, D] keys and [N] scales
  const int32_t* ks = nullptr;  ///< [T] first visible key row, 0 <= ks[t] <= ke[t]
  const int32_t* ke = nullptr;  ///< [T] one past the last visible row, ke[t] <= N; ks == ke: empty
  int64_t num_queries = 0;      ///< T
};

/// A paged key cache: page p holds page_size consecutive tokens of one sequence.
struct PagedKeys {
  const void* k = nullptr;        ///< [num_pages, page_size, D] k_dtype
  const float* kscale = nullptr;  ///< [num_pages, page_size]; may be null for BF16 keys (1)
  int64_t num_pages = 0;
  int32_t page_size = 64;  ///< P, a multiple of 16
};

/// Sequences that live in a paged cache.
struct PagedSequences {
  const int32_t* block_table = nullptr;   ///< [num_seqs, max_pages_per_seq] physical page ids
  int32_t max_pages_per_seq = 0;          ///< row stride of block_table
  const int32_t* context_lens = nullptr;  ///< [num_seqs] tokens in each sequence
  int32_t num_seqs = 0;
};

/// A decode step: next_n query tokens at the end of each sequence; query i of sequence b sits at
/// position context_lens[b] - next_n + i and sees positions [0, that position].
struct DecodeInputs {
  const void* q = nullptr;   ///< [num_seqs * next_n, H, D] q_dtype, sequence-major
  const float* w = nullptr;  ///< [num_seqs * next_n, H]
  PagedKeys cache;
  PagedSequences seqs;       ///< context_lens[b] >= next_n
  int32_t next_n = 1;        ///< query tokens per sequence, >= 1
};

/// Pooled keys (HISA): one FP8/BF16 key and scale per complete block of B keys.
///
/// Prefill layout: block j of a sequence whose first key row is a lives in slot ceil(a / B) + j;
/// packed sequences never share a slot, and ceil(N / B) slots hold every block
/// (see PooledSlotsForRows). Paged layout: slot page * max(1, P / B) + (j % max(1, P / B)) where
/// page = block_table[b][j * B / P]: one slot per physical page when B >= P (used by the block's
/// first page), P / B slots per page otherwise; no second block table (see PooledSlotsForPages).
struct PooledKeys {
  void* k = nullptr;        ///< [num_slots, D] k_dtype
  float* kscale = nullptr;  ///< [num_slots]; written for FP8 and BF16 (1.0) alike
  int64_t num_slots = 0;
};

/// Read-only pooled keys, as the selection entry points take them.
struct ConstPooledKeys {
  const void* k = nullptr;        ///< [num_slots, D] k_dtype
  const float* kscale = nullptr;  ///< [num_slots]
  int64_t num_slots = 0;
  ConstPooledKeys() = default;
  ConstPooledKeys(const void* k_, const float* s_, int64_t n) : k(k_), kscale(s_), num_slots(n) {}
  ConstPooledKeys(const PooledKeys& p)  // NOLINT: a mutable view converts implicitly
      : k(p.k), kscale(p.kscale), num_slots(p.num_slots) {}
};

/// Where results go.
struct TopkOutputs {
  int32_t* indices = nullptr;  ///< [T, top_k] selected keys, -1 in unused slots; not null
  int32_t* blocks = nullptr;   ///< [T, block_budget] HISA only, may be null: the selected blocks,
                               ///< ascending, -1 in unused slots (all eligible blocks when
                               ///< o + 1 <= m)
  float* scores = nullptr;     ///< [T, top_k] may be null: I(t, s) of each selected key, NaN in
                               ///< unused slots (float32, even from the reference)
};

/// How to run a call.
struct RunOptions {
  Backend backend = Backend::kCpu;
  PositionBase positions = PositionBase::kRelative;
  bool sorted = false;       ///< sort each row by score, highest first, ties by lower position
  int32_t num_threads = 0;   ///< CPU backends: worker threads, 0 = all hardware threads
  void* stream = nullptr;    ///< CUDA backend: cudaStream_t to run on (null = default stream)
  size_t workspace_limit_bytes = size_t{1} << 30;  ///< CUDA: cap on extra device memory per call
  /// CUDA: copy the index arrays (ks/ke, block table, context lengths) to the host and validate
  /// them first (one device-to-host copy and stream sync per call). When false they are not
  /// checked, but the kernels clamp them: no value makes hisa access memory out of bounds.
  bool check_indices = true;
  size_t* workspace_bytes = nullptr;  ///< CUDA: if not null, receives the extra device memory used
};

/// Bytes per element of a dtype.
constexpr int DTypeSize(DType t) { return t == DType::kFp8E4M3 ? 1 : 2; }

/// Printable name ("fp8_e4m3", "bf16", "reference", "cpu", "cuda", ...).
const char* DTypeName(DType t);
const char* BackendName(Backend b);

}  // namespace hisa
