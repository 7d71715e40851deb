// The CUDA backend's entry points (cuda/api.h): checks what this backend supports, validates the
// device-resident index arrays on the host (RunOptions::check_indices), then runs
//   flat:  prepare ranges -> score kernel -> top-k kernel            (in query chunks that keep
//          the scores buffer within RunOptions::workspace_limit_bytes)
//   HISA:  prepare -> score pooled keys -> top-(m-2) blocks -> score the selected blocks' keys
//          -> top-k
#include <algorithm>
#include <vector>

#include "core/check.h"
#include "core/validate.h"
#include "cuda/api.h"
#include "cuda/common.h"
#include "cuda/pool.h"
#include "cuda/prepare.h"
#include "cuda/score.h"
#include "cuda/tma.h"
#include "cuda/topk.h"

namespace hisa::cuda {
namespace {

constexpr int kHeadDim = 128;
constexpr int kMaxTopk = 4096;

Status CheckSupport(const IndexerConfig& cfg, bool hisa) {
  if (cfg.q_dtype != DType::kFp8E4M3 || cfg.k_dtype != DType::kFp8E4M3) {
    return core::Unsupported("backend = cuda: q_dtype = {}, k_dtype = {}: only FP8 E4M3 queries "
                             "and keys are supported on the GPU",
                             DTypeName(cfg.q_dtype), DTypeName(cfg.k_dtype));
  }
  if (cfg.head_dim != kHeadDim) {
    return core::Unsupported("backend = cuda: head_dim = {}: only 128 is supported",
                             cfg.head_dim);
  }
  if (cfg.num_heads != 32 && cfg.num_heads != 64 && cfg.num_heads != 128) {
    return core::Unsupported("backend = cuda: num_heads = {}: 32, 64 or 128 are supported",
                             cfg.num_heads);
  }
  if (cfg.top_k > kMaxTopk) {
    return core::Unsupported("backend = cuda: top_k = {} exceeds {}", cfg.top_k, kMaxTopk);
  }
  if (hisa) {
    if (cfg.block_size % 64 != 0) {
      return core::Unsupported("backend = cuda: block_size = {} must be a multiple of 64",
                               cfg.block_size);
    }
    if (cfg.block_budget > kMaxTopk) {
      return core::Unsupported("backend = cuda: block_budget = {} exceeds {}", cfg.block_budget,
                               kMaxTopk);
    }
  }
  return {};
}

Status CheckAligned(const void* ptr, const char* name) {
  if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) {
    return core::Invalid("{} = {} is not 16-byte aligned (the GPU copies it in bulk)", name, ptr);
  }
  return {};
}

// The kernels copy min(P, 64) rows a box and find a key's box by shifts: of the page sizes the
// library takes (multiples of 16), 16, 32, 64 and the multiples of 64. 48 was once accepted here
// and gave wrong key scales, silently.
Status CheckPageSize(int32_t page_size) {
  if (page_size != 16 && page_size != 32 && page_size % 64 != 0) {
    return core::Unsupported(
        "backend = cuda: page_size = {} must be 16, 32, 64 or a multiple of 64", page_size);
  }
  return {};
}

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Fills an output with -1 (indices) / NaN (scores): every byte 0xFF.
Status FillEmpty(void* ptr, size_t bytes, cudaStream_t stream) {
  if (ptr == nullptr || bytes == 0) return {};
  HISA_CUDA_RETURN(cudaMemsetAsync(ptr, 0xFF, bytes, stream));
  return {};
}

// Key segments per group of flat rows: enough items for every slot of the persistent grid
// (slots: SMs x resident CTAs per SM; at least two rounds when the rows are long enough, segments
// of at least 1024 keys), choosing among the counts that qualify the one whose last round is
// fullest. Rounds are counted in slots (ScoreSlots), not SMs: flat decode at batch 64 x 128K (two
// CTAs per SM) had 6 segments a row, 1.45 rounds of 264 slots, and took 461-466 us on one H100
// where 12 (2.9 rounds) took 447 us; on another both took 447 us
// (bench/results/2026-11-23-h100-experiments-r18/).
int Segments(int64_t groups, int64_t max_len, int slots) {
  if (groups <= 0) return 1;
  const int64_t cap = std::max<int64_t>(1, max_len / 1024);
  const int64_t least = std::clamp<int64_t>((2 * slots + groups - 1) / groups, 1, cap);
  if (least == 1) return 1;
  int64_t best = least;
  double best_use = 0.0;
  for (int64_t s = least; s <= std::min(cap, 2 * least); ++s) {
    const int64_t items = groups * s;
    const int64_t rounds = (items + slots - 1) / slots;
    const double use = static_cast<double>(items) / static_cast<double>(rounds * slots);
    if (use > best_use + 1e-9) best = s, best_use = use;
  }
  return static_cast<int>(best);
}

// Key segments per group for short rows (HISA's blocks and candidates): as many as fill the resident
// CTAs once, at least one tile (of tile_keys) each; a second, partial round would cost more than
// it spreads.
int OneRoundSegments(int64_t groups, int64_t max_len, int slots, int tile_keys) {
  if (groups <= 0) return 1;
  const int64_t cap = std::max<int64_t>(1, max_len / tile_keys);
  return static_cast<int>(std::clamp<int64_t>(slots / groups, 1, cap));
}

// Largest group (queries per CTA: 1, 2 or 4, at most 128 / H) that divides next_n.
int DecodeGroup(int heads, int next_n) {
  for (int g = 128 / heads; g > 1; g /= 2) {
    if (next_n % g == 0) return g;
  }
  return 1;
}

Status CopyIndices(const int32_t* device, int64_t count, std::vector<int32_t>* host,
                   cudaStream_t stream) {
  host->resize(static_cast<size_t>(count));
  return CopyToHost(device, count * sizeof(int32_t), host->data(), stream);
}

// Host copies of a paged batch's index arrays, validated.
Status ValidatePagedOnHost(const IndexerConfig& cfg, const PagedKeys& cache,
                           const PagedSequences& seqs, int32_t min_len, cudaStream_t stream,
                           std::vector<int32_t>* lens, int32_t* max_len) {
  std::vector<int32_t> table;
  HISA_RETURN_IF_ERROR(CopyIndices(seqs.context_lens, seqs.num_seqs, lens, stream));
  HISA_RETURN_IF_ERROR(CopyIndices(seqs.block_table,
                                   int64_t{seqs.num_seqs} * seqs.max_pages_per_seq, &table,
                                   stream));
  PagedSequences host = seqs;
  host.context_lens = lens->data();
  host.block_table = table.data();
  HISA_RETURN_IF_ERROR(core::ValidatePaged(cfg, cache, host, min_len, true));
  *max_len = 0;
  for (int32_t len : *lens) *max_len = std::max(*max_len, len);
  return {};
}

// block_size > 0 (HISA): also the own blocks and stage-1 ranges, filled by the flat preparation.
Status AllocateRanges(Scratch& scratch, int64_t n, QueryRanges* r, int32_t block_size = 0) {
  HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->lo));
  HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->hi));
  HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->base));
  HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->length));
  if (block_size > 0) {
    HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->own));
    HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->lo1));
    HISA_RETURN_IF_ERROR(scratch.Allocate(n, &r->hi1));
    r->block_size = block_size;
  }
  return {};
}

void ReportWorkspace(const RunOptions& opts, const Scratch& scratch) {
  if (opts.workspace_bytes) *opts.workspace_bytes = scratch.bytes();
}

// What every call on a prefill batch checks on top of api.cc: alignment of the arrays copied in
// bulk, and (check_indices) the device-resident ks/ke, read back to the host. *max_len receives
// the longest row, or N when the indices are not read.
Status CheckPrefillOnDevice(const IndexerConfig& cfg, const PrefillInputs& in,
                            const void* pooled_k, const RunOptions& opts, int32_t* max_len) {
  const int32_t T = static_cast<int32_t>(in.num_queries);
  const int64_t N = in.keys.num_keys;
  HISA_RETURN_IF_ERROR(CheckAligned(in.q, "q"));
  if (N > 0) HISA_RETURN_IF_ERROR(CheckAligned(in.keys.k, "k"));
  if (pooled_k != nullptr) HISA_RETURN_IF_ERROR(CheckAligned(pooled_k, "pooled.k"));
  *max_len = static_cast<int32_t>(N);
  if (!opts.check_indices) return {};
  cudaStream_t stream = StreamOf(opts);
  std::vector<int32_t> ks, ke;
  HISA_RETURN_IF_ERROR(CopyIndices(in.ks, T, &ks, stream));
  HISA_RETURN_IF_ERROR(CopyIndices(in.ke, T, &ke, stream));
  PrefillInputs host = in;
  host.ks = ks.data();
  host.ke = ke.data();
  HISA_RETURN_IF_ERROR(core::ValidatePrefill(cfg, host, true));
  *max_len = 0;
  for (int32_t t = 0; t < T; ++t) *max_len = std::max(*max_len, ke[t] - ks[t]);
  return {};
}

// The same for a decode step: *capacity receives max_pages_per_seq * P, *max_len the longest
// sequence (the capacity when the indices are not read).
Status CheckDecodeOnDevice(const IndexerConfig& cfg, const DecodeInputs& in, const void* pooled_k,
                           const RunOptions& opts, int64_t* capacity, int32_t* max_len) {
  HISA_RETURN_IF_ERROR(CheckAligned(in.q, "q"));
  if (in.cache.num_pages > 0) HISA_RETURN_IF_ERROR(CheckAligned(in.cache.k, "cache.k"));
  if (pooled_k != nullptr) HISA_RETURN_IF_ERROR(CheckAligned(pooled_k, "pooled.k"));
  *capacity = int64_t{in.seqs.max_pages_per_seq} * in.cache.page_size;
  *max_len = static_cast<int32_t>(std::min<int64_t>(*capacity, core::kMaxPositions - 1));
  if (!opts.check_indices) return {};
  std::vector<int32_t> lens;
  return ValidatePagedOnHost(cfg, in.cache, in.seqs, in.next_n, StreamOf(opts), &lens, max_len);
}

// Outputs of a call with no visible key: -1 indices and blocks, NaN scores.
Status FillEmptyOutputs(const IndexerConfig& cfg, int64_t T, const TopkOutputs& out,
                        cudaStream_t stream) {
  HISA_RETURN_IF_ERROR(FillEmpty(out.indices, size_t(T) * cfg.top_k * 4, stream));
  HISA_RETURN_IF_ERROR(FillEmpty(out.blocks, size_t(T) * cfg.block_budget * 4, stream));
  return FillEmpty(out.scores, size_t(T) * cfg.top_k * 4, stream);
}

// Key fields of the scoring parameters: consecutive rows (prefill keys, pooled slots).
ScoreParams RowKeys(int64_t rows, const float* kscale) {
  ScoreParams p;
  p.layout = KeyLayout::kRows;
  p.box_rows = 64;
  p.num_rows = rows;
  p.kscale = kscale;
  return p;
}

// Key fields for a paged cache: boxes of min(P, 64) rows, pages found through the block table.
ScoreParams PagedKeyFields(const DecodeInputs& in) {
  ScoreParams p;
  p.layout = KeyLayout::kPaged;
  p.box_rows = std::min(in.cache.page_size, 64);
  p.num_rows = in.cache.num_pages * in.cache.page_size;
  p.kscale = in.cache.kscale;
  p.page_size = in.cache.page_size;
  p.block_table = in.seqs.block_table;
  p.bt_stride = in.seqs.max_pages_per_seq;
  p.next_n = in.next_n;
  return p;
}

// The query chunk that keeps per_query_bytes * chunk within what the budget leaves: a multiple
// of `unit`, at least one unit, at most T. The unit is the group (queries per CTA) and, in
// decode, next_n (which the group divides): a chunk then starts at a sequence's first query, as
// the kernels assume when they find query t's sequence as t / next_n within the chunk.
int64_t QueryChunk(const RunOptions& opts, const Scratch& scratch, int64_t per_query_bytes,
                   int32_t unit, int64_t T) {
  const int64_t budget = static_cast<int64_t>(opts.workspace_limit_bytes) -
                         static_cast<int64_t>(scratch.bytes());
  int64_t chunk = std::max<int64_t>(unit, budget / per_query_bytes);
  chunk = std::min<int64_t>(chunk / unit * unit, T);
  return std::max<int64_t>(chunk, std::min<int64_t>(unit, T));
}

// Map over the q rows of queries [t0, t0 + tc).
Status ChunkQueryMap(const IndexerConfig& cfg, const void* q, int64_t t0, int32_t tc,
                     CUtensorMap* map) {
  return MakeRowMap(map, static_cast<const uint8_t*>(q) + t0 * cfg.num_heads * kHeadDim,
                    int64_t{tc} * cfg.num_heads, kHeadDim, kQueryRowsPerCta);
}

// ---- The two-kernel flat pipeline over query chunks ---------------------------------------------

struct FlatJob {
  const IndexerConfig* cfg;
  const void* q;      // [T, H, 128]
  const float* w;     // [T, H]
  int32_t num_queries;
  QueryRanges ranges;  // lo/hi/base/length filled; for HISA also own, lo1 and hi1
  int32_t max_len;
  ScoreParams score;   // key fields filled (layout, kscale, paging)
  CUtensorMap k_map;
  int32_t group;
  // output
  TopkOutput output;
  const TopkOutputs* out;
  const RunOptions* opts;
  TopkParams topk;     // add (absolute prefill) or paging fields (kPagedRow) filled
};

// Query chunks hold whole groups and, in decode, whole sequences (next_n is 1 in prefill; the
// decode group divides next_n).
int32_t ChunkUnit(const FlatJob& job) { return std::max(job.group, job.score.next_n); }

// The block-table rows of a chunk starting at query t0 (a sequence's first query, ChunkUnit):
// the kernels find query t's sequence as t / next_n within the chunk. Null stays null.
const int32_t* ChunkTable(const int32_t* table, int32_t stride, int32_t next_n, int64_t t0) {
  return table ? table + (t0 / next_n) * int64_t{stride} : nullptr;
}

Status RunFlat(FlatJob& job, Scratch& scratch, cudaStream_t stream) {
  const IndexerConfig& cfg = *job.cfg;
  DeviceInfo device;
  HISA_RETURN_IF_ERROR(CurrentDevice(&device));
  const int64_t stride = RoundUp(std::max<int32_t>(job.max_len, 1), 4);
  const int64_t chunk =
      QueryChunk(*job.opts, scratch, stride * 4, ChunkUnit(job), job.num_queries);
  float* scores = nullptr;
  HISA_RETURN_IF_ERROR(scratch.Allocate(chunk * stride, &scores));
  for (int64_t t0 = 0; t0 < job.num_queries; t0 += chunk) {
    const int32_t tc = static_cast<int32_t>(std::min<int64_t>(chunk, job.num_queries - t0));
    CUtensorMap q_map;
    HISA_RETURN_IF_ERROR(ChunkQueryMap(cfg, job.q, t0, tc, &q_map));
    ScoreParams sp = job.score;
    sp.w = job.w + t0 * cfg.num_heads;
    sp.num_queries = tc;
    sp.group_size = job.group;
    sp.segments = Segments((tc + job.group - 1) / job.group, job.max_len,
                           ScoreSlots(device.sm_count, cfg.num_heads, job.group));
    sp.lo = job.ranges.lo + t0;
    sp.hi = job.ranges.hi + t0;
    sp.scores = scores;
    sp.score_stride = stride;
    sp.block_table = ChunkTable(job.score.block_table, sp.bt_stride, sp.next_n, t0);
    HISA_RETURN_IF_ERROR(LaunchScore(cfg.num_heads, sp, q_map, job.k_map, stream));

    TopkParams tp = job.topk;
    tp.scores = scores;
    tp.stride = stride;
    tp.lo = job.ranges.lo + t0;
    tp.hi = job.ranges.hi + t0;
    tp.rows = tc;
    tp.k = cfg.top_k;
    tp.max_len = job.max_len;
    tp.output = job.output;
    tp.out = job.out->indices + t0 * cfg.top_k;
    tp.out_stride = cfg.top_k;
    tp.out_scores = job.out->scores ? job.out->scores + t0 * cfg.top_k : nullptr;
    tp.sort_by_score = job.opts->sorted;
    tp.add = job.topk.add ? job.topk.add + t0 : nullptr;
    tp.block_table = ChunkTable(job.topk.block_table, tp.bt_stride, tp.next_n, t0);
    HISA_RETURN_IF_ERROR(LaunchTopk(tp, stream));
  }
  return {};
}

// Validates a prefill batch (pooled_k: HISA's pooled keys, checked for alignment, or null),
// prepares its ranges (HISA's stage-1 ranges too when hisa) and its flat job (keys as rows;
// relative or absolute positions). *done when there is nothing to run (no query, or no visible
// key: outputs filled).
Status SetUpPrefill(const IndexerConfig& cfg, const PrefillInputs& in, const void* pooled_k,
                    const TopkOutputs& out, const RunOptions& opts, bool hisa, Scratch& scratch,
                    FlatJob* job, bool* done) {
  cudaStream_t stream = StreamOf(opts);
  const int32_t T = static_cast<int32_t>(in.num_queries);
  const int64_t N = in.keys.num_keys;
  *done = true;
  if (T == 0) return {};
  int32_t max_len = 0;
  HISA_RETURN_IF_ERROR(CheckPrefillOnDevice(cfg, in, pooled_k, opts, &max_len));
  if (N == 0 || max_len == 0) return FillEmptyOutputs(cfg, T, out, stream);
  *done = false;
  HISA_RETURN_IF_ERROR(AllocateRanges(scratch, T, &job->ranges, hisa ? cfg.block_size : 0));
  HISA_RETURN_IF_ERROR(PrepareFlatPrefill(in.ks, in.ke, T, N, max_len, job->ranges, stream));
  job->cfg = &cfg;
  job->q = in.q;
  job->w = in.w;
  job->num_queries = T;
  job->max_len = max_len;
  job->score = RowKeys(N, in.keys.kscale);
  HISA_RETURN_IF_ERROR(MakeRowMap(&job->k_map, in.keys.k, N, kHeadDim, job->score.box_rows));
  job->group = kQueryRowsPerCta / cfg.num_heads;
  job->output = TopkOutput::kIndex;
  job->out = &out;
  job->opts = &opts;
  job->topk.add = opts.positions == PositionBase::kAbsolute ? job->ranges.base : nullptr;
  return {};
}

// The same for a decode batch (paged keys; positions or, absolute, paged rows).
Status SetUpDecode(const IndexerConfig& cfg, const DecodeInputs& in, const void* pooled_k,
                   const TopkOutputs& out, const RunOptions& opts, bool hisa, Scratch& scratch,
                   FlatJob* job, bool* done) {
  HISA_RETURN_IF_ERROR(CheckPageSize(in.cache.page_size));
  cudaStream_t stream = StreamOf(opts);
  const int32_t T = in.seqs.num_seqs * in.next_n;
  *done = true;
  if (T == 0) return {};
  int64_t capacity = 0;
  int32_t max_len = 0;
  HISA_RETURN_IF_ERROR(CheckDecodeOnDevice(cfg, in, pooled_k, opts, &capacity, &max_len));
  if (in.cache.num_pages == 0 || max_len == 0) return FillEmptyOutputs(cfg, T, out, stream);
  *done = false;
  HISA_RETURN_IF_ERROR(AllocateRanges(scratch, T, &job->ranges, hisa ? cfg.block_size : 0));
  HISA_RETURN_IF_ERROR(PrepareFlatDecode(in.seqs.context_lens, in.seqs.num_seqs, in.next_n,
                                         capacity, job->ranges, stream));
  job->cfg = &cfg;
  job->q = in.q;
  job->w = in.w;
  job->num_queries = T;
  job->max_len = max_len;
  job->score = PagedKeyFields(in);
  HISA_RETURN_IF_ERROR(MakeRowMap(&job->k_map, in.cache.k, job->score.num_rows, kHeadDim,
                                  job->score.box_rows));
  job->group = DecodeGroup(cfg.num_heads, in.next_n);
  const bool absolute = opts.positions == PositionBase::kAbsolute;
  job->output = absolute ? TopkOutput::kPagedRow : TopkOutput::kIndex;
  job->topk.block_table = in.seqs.block_table;
  job->topk.bt_stride = in.seqs.max_pages_per_seq;
  job->topk.page_size = in.cache.page_size;
  job->topk.next_n = in.next_n;
  job->out = &out;
  job->opts = &opts;
  return {};
}

// True when no query sees more than m blocks (o + 1 <= m): HISA keeps every block and selects
// exactly what flat selects (SPEC.md), so the batch runs as flat, without the two stages.
bool EveryBlockFits(const IndexerConfig& cfg, int32_t max_len) {
  return int64_t{max_len} <= int64_t{cfg.block_budget} * cfg.block_size;
}

// HISA's result when every block fits: flat's indices, and every block up to the own one.
Status RunFlatForHisa(FlatJob& job, Scratch& scratch, cudaStream_t stream) {
  HISA_RETURN_IF_ERROR(RunFlat(job, scratch, stream));
  const IndexerConfig& cfg = *job.cfg;
  if (job.out->blocks == nullptr) return {};
  return PrepareAllBlocks(job.num_queries, cfg.block_budget, job.ranges, job.out->blocks, stream);
}

// ---- HISA pipeline --------------------------------------------------------------------------------

struct HisaJob {
  FlatJob flat;             // queries, flat ranges, outputs; its keys are stage 2's (read as kBlocks)
  bool paged;
  ScoreParams pooled_keys;  // stage-1 key fields
  CUtensorMap pooled_map;
};

Status RunHisa(HisaJob& hisa, Scratch& scratch, cudaStream_t stream) {
  const FlatJob& job = hisa.flat;
  const IndexerConfig& cfg = *job.cfg;
  DeviceInfo device;
  HISA_RETURN_IF_ERROR(CurrentDevice(&device));
  const int32_t T = job.num_queries;
  const int32_t B = cfg.block_size, m = cfg.block_budget;
  const int32_t max_blocks = std::max<int32_t>(1, (job.max_len + B - 1) / B);

  const int32_t* lo1 = job.ranges.lo1;  // stage 1's block ranges, from the flat preparation
  const int32_t* hi1 = job.ranges.hi1;
  int32_t *lo2, *hi2, *blocks;
  HISA_RETURN_IF_ERROR(scratch.Allocate(T, &lo2));
  HISA_RETURN_IF_ERROR(scratch.Allocate(T, &hi2));
  blocks = job.out->blocks;
  if (blocks == nullptr) HISA_RETURN_IF_ERROR(scratch.Allocate(int64_t{T} * m, &blocks));

  // Scores of both stages, in query chunks within the budget.
  const int64_t stride1 = RoundUp(max_blocks, 4);
  int64_t stride2 = RoundUp(int64_t{m} * B, 4);
  int64_t chunk = QueryChunk(*job.opts, scratch, (stride1 + stride2) * 4, ChunkUnit(job), T);
  // Where the budget splits the queries into chunks, stage 2 selects on chip if it can
  // (FusedSelectionFits, not sorted by score; prefill: a decode query's candidates are split over
  // several CTAs): its scores never leave shared memory, so the workspace holds stage 1's only
  // and the chunks grow (on the H100, 12-21% faster than the chunked two-kernel path at 8 and
  // 16 MiB, bench/results/2026-11-23-h100-onchip-regime/). Otherwise a top-k kernel follows it:
  // unchunked, the on-chip selection made HISA prefill 1-3% slower on average (it stalls the
  // CTA's scoring, bench/results/2026-11-23-h100-onchip-stage2/).
  const bool on_chip = chunk < T && !job.opts->sorted && !hisa.paged &&
                       FusedSelectionFits(cfg.num_heads, m, B);
  if (on_chip) {
    stride2 = 0;
    chunk = QueryChunk(*job.opts, scratch, stride1 * 4, ChunkUnit(job), T);
  }
  float *scores1, *scores2 = nullptr;
  HISA_RETURN_IF_ERROR(scratch.Allocate(chunk * stride1, &scores1));
  if (!on_chip) HISA_RETURN_IF_ERROR(scratch.Allocate(chunk * stride2, &scores2));

  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int32_t tc = static_cast<int32_t>(std::min<int64_t>(chunk, T - t0));
    CUtensorMap q_map;
    HISA_RETURN_IF_ERROR(ChunkQueryMap(cfg, job.q, t0, tc, &q_map));
    // 1. Block scores J over the complete blocks 1 .. o-1.
    ScoreParams s1 = hisa.pooled_keys;
    s1.w = job.w + t0 * cfg.num_heads;
    s1.num_queries = tc;
    s1.group_size = job.group;
    s1.segments = OneRoundSegments((tc + job.group - 1) / job.group, max_blocks,
                                   ScoreSlots(device.sm_count, cfg.num_heads, job.group),
                                   ScoreTileKeys(cfg.num_heads, job.group, s1));
    s1.lo = lo1 + t0;
    s1.hi = hi1 + t0;
    s1.scores = scores1;
    s1.score_stride = stride1;
    s1.block_table = ChunkTable(s1.block_table, s1.bt_stride, s1.next_n, t0);
    HISA_RETURN_IF_ERROR(
        LaunchScore(cfg.num_heads, s1, q_map, hisa.pooled_map, stream));
    // 2. Keep block 0, the own block and the m - 2 best others.
    TopkParams t1;
    t1.scores = scores1;
    t1.stride = stride1;
    t1.lo = lo1 + t0;
    t1.hi = hi1 + t0;
    t1.rows = tc;
    t1.k = m - 2;
    t1.max_len = max_blocks;
    t1.output = TopkOutput::kBlocks;
    t1.out = blocks + t0 * m;
    t1.out_stride = m;
    t1.own = job.ranges.own + t0;
    t1.lo2 = lo2 + t0;  // and stage 2's candidate ranges
    t1.hi2 = hi2 + t0;
    t1.length = job.ranges.length + t0;
    t1.block_size = B;
    HISA_RETURN_IF_ERROR(LaunchTopk(t1, stream));
    // 3. Token scores over the selected blocks' keys, one query per CTA.
    ScoreParams s2 = job.score;
    s2.w = job.w + t0 * cfg.num_heads;
    s2.num_queries = tc;
    s2.group_size = 1;
    s2.segments =
        OneRoundSegments(tc, int64_t{m} * B, ScoreSlots(device.sm_count, cfg.num_heads, 1),
                         ScoreTileKeys(cfg.num_heads, 1, s2));
    s2.lo = lo2 + t0;
    s2.hi = hi2 + t0;
    s2.layout = KeyLayout::kBlocks;
    s2.blocks = blocks + t0 * m;
    s2.blocks_stride = m;
    s2.block_size = B;
    s2.row_base = job.ranges.base + t0;
    s2.blocks_paged = hisa.paged;
    s2.block_table = ChunkTable(s2.block_table, s2.bt_stride, s2.next_n, t0);
    s2.scores = scores2;
    s2.score_stride = stride2;
    const bool absolute = job.opts->positions == PositionBase::kAbsolute;
    if (on_chip) {  // 3 + 4: one query per CTA selects its top-k from shared memory (prefill)
      s2.segments = 1;
      s2.topk_out = job.out->indices + t0 * cfg.top_k;
      s2.topk_scores = job.out->scores ? job.out->scores + t0 * cfg.top_k : nullptr;
      s2.topk_k = cfg.top_k;
      s2.topk_stride = cfg.top_k;
      s2.topk_add = absolute ? job.ranges.base + t0 : nullptr;
    }
    HISA_RETURN_IF_ERROR(LaunchScore(cfg.num_heads, s2, q_map, job.k_map, stream));
    if (on_chip) continue;
    // 4. Top-k of the candidates.
    TopkParams t2;
    t2.scores = scores2;
    t2.stride = stride2;
    t2.lo = lo2 + t0;
    t2.hi = hi2 + t0;
    t2.rows = tc;
    t2.k = cfg.top_k;
    t2.max_len = int64_t{m} * B;
    t2.output = TopkOutput::kCandidate;
    t2.out = job.out->indices + t0 * cfg.top_k;
    t2.out_stride = cfg.top_k;
    t2.out_scores = job.out->scores ? job.out->scores + t0 * cfg.top_k : nullptr;
    t2.sort_by_score = job.opts->sorted;
    t2.blocks = blocks + t0 * m;
    t2.blocks_stride = m;
    t2.block_size = B;
    t2.add = absolute && !hisa.paged ? job.ranges.base + t0 : nullptr;
    t2.paged = absolute && hisa.paged;
    t2.block_table = ChunkTable(job.score.block_table, job.score.bt_stride, job.score.next_n, t0);
    t2.bt_stride = job.score.bt_stride;
    t2.page_size = job.score.page_size;
    t2.next_n = job.score.next_n;
    HISA_RETURN_IF_ERROR(LaunchTopk(t2, stream));
  }
  return {};
}

}  // namespace

bool Available(std::string* why) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    if (why) {
      *why = err != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorString(err)
                                : std::string("no CUDA device");
    }
    return false;
  }
  DeviceInfo device;
  Status status = CurrentDevice(&device);
  if (!status.ok()) {
    if (why) *why = status.message();
    return false;
  }
  if (device.cc_major != 9 || device.cc_minor != 0) {
    if (why) {
      *why = "the current device has compute capability " + std::to_string(device.cc_major) +
             "." + std::to_string(device.cc_minor) + "; hisa's kernels are built for 9.0 (Hopper)";
    }
    return false;
  }
  return true;
}

Status FlatTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in, const TopkOutputs& out,
                       const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, false));
  Scratch scratch(StreamOf(opts));
  FlatJob job{};
  bool done = false;
  HISA_RETURN_IF_ERROR(SetUpPrefill(cfg, in, nullptr, out, opts, false, scratch, &job, &done));
  if (done) return {};
  HISA_RETURN_IF_ERROR(RunFlat(job, scratch, StreamOf(opts)));
  ReportWorkspace(opts, scratch);
  return {};
}

Status FlatTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in, const TopkOutputs& out,
                      const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, false));
  Scratch scratch(StreamOf(opts));
  FlatJob job{};
  bool done = false;
  HISA_RETURN_IF_ERROR(SetUpDecode(cfg, in, nullptr, out, opts, false, scratch, &job, &done));
  if (done) return {};
  HISA_RETURN_IF_ERROR(RunFlat(job, scratch, StreamOf(opts)));
  ReportWorkspace(opts, scratch);
  return {};
}

Status HisaTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                       const ConstPooledKeys& pooled, const TopkOutputs& out,
                       const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, true));
  cudaStream_t stream = StreamOf(opts);
  Scratch scratch(stream);
  HisaJob job{};
  bool done = false;
  HISA_RETURN_IF_ERROR(SetUpPrefill(cfg, in, pooled.num_slots > 0 ? pooled.k : nullptr, out, opts,
                                    true, scratch, &job.flat, &done));
  if (done) return {};
  if (EveryBlockFits(cfg, job.flat.max_len)) {
    HISA_RETURN_IF_ERROR(RunFlatForHisa(job.flat, scratch, stream));
  } else {
    job.paged = false;
    job.pooled_keys = RowKeys(pooled.num_slots, pooled.kscale);
    HISA_RETURN_IF_ERROR(MakeRowMap(&job.pooled_map, pooled.k, pooled.num_slots, kHeadDim,
                                    job.pooled_keys.box_rows));
    HISA_RETURN_IF_ERROR(RunHisa(job, scratch, stream));
  }
  ReportWorkspace(opts, scratch);
  return {};
}

Status HisaTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                      const ConstPooledKeys& pooled, const TopkOutputs& out,
                      const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, true));
  cudaStream_t stream = StreamOf(opts);
  Scratch scratch(stream);
  HisaJob job{};
  bool done = false;
  HISA_RETURN_IF_ERROR(SetUpDecode(cfg, in, pooled.num_slots > 0 ? pooled.k : nullptr, out, opts,
                                   true, scratch, &job.flat, &done));
  if (done) return {};
  if (EveryBlockFits(cfg, job.flat.max_len)) {
    HISA_RETURN_IF_ERROR(RunFlatForHisa(job.flat, scratch, stream));
  } else {
    // Stage 1 reads the pooled slots (one per page, used by a block's first page) through the
    // block table; stage 2 reads the flat job's paged keys as kBlocks.
    const int32_t P = in.cache.page_size;
    job.paged = true;
    job.pooled_keys = job.flat.score;
    job.pooled_keys.layout = KeyLayout::kPooledPaged;
    job.pooled_keys.box_rows = 1;
    job.pooled_keys.num_rows = pooled.num_slots;
    job.pooled_keys.kscale = pooled.kscale;
    job.pooled_keys.row_copies = true;
    job.pooled_keys.key_rows = static_cast<const uint8_t*>(pooled.k);
    job.pooled_keys.block_size = cfg.block_size;
    job.pooled_keys.slots_per_page = std::max(1, P / cfg.block_size);
    job.pooled_keys.pages_per_block = std::max(1, cfg.block_size / P);
    HISA_RETURN_IF_ERROR(MakeRowMap(&job.pooled_map, pooled.k, pooled.num_slots, kHeadDim, 1));
    HISA_RETURN_IF_ERROR(RunHisa(job, scratch, stream));
  }
  ReportWorkspace(opts, scratch);
  return {};
}

Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, false));
  cudaStream_t stream = StreamOf(opts);
  const int32_t T = static_cast<int32_t>(in.num_queries);
  const int64_t N = in.keys.num_keys;
  if (T == 0) return {};
  int32_t max_len = 0;
  HISA_RETURN_IF_ERROR(CheckPrefillOnDevice(cfg, in, nullptr, opts, &max_len));
  Scratch scratch(stream);
  QueryRanges ranges;
  HISA_RETURN_IF_ERROR(AllocateRanges(scratch, T, &ranges));
  HISA_RETURN_IF_ERROR(PrepareFlatPrefill(in.ks, in.ke, T, N, static_cast<int32_t>(N), ranges,
                                          stream));
  // -inf outside each row's range; the scoring kernel writes the rest, so each entry once.
  HISA_RETURN_IF_ERROR(FillOutside(logits, ranges.lo, ranges.hi, T, N, logits_stride, stream));
  if (N == 0) return {};
  CUtensorMap q_map, k_map;
  HISA_RETURN_IF_ERROR(ChunkQueryMap(cfg, in.q, 0, T, &q_map));
  ScoreParams sp = RowKeys(N, in.keys.kscale);
  HISA_RETURN_IF_ERROR(MakeRowMap(&k_map, in.keys.k, N, kHeadDim, sp.box_rows));
  DeviceInfo device;
  HISA_RETURN_IF_ERROR(CurrentDevice(&device));
  sp.w = in.w;
  sp.num_queries = T;
  sp.group_size = kQueryRowsPerCta / cfg.num_heads;
  sp.segments = Segments((T + sp.group_size - 1) / sp.group_size, N,
                         ScoreSlots(device.sm_count, cfg.num_heads, sp.group_size));
  sp.lo = ranges.lo;
  sp.hi = ranges.hi;
  sp.scores = logits;
  sp.score_stride = logits_stride;
  sp.absolute_columns = true;
  HISA_RETURN_IF_ERROR(LaunchScore(cfg.num_heads, sp, q_map, k_map, stream));
  ReportWorkspace(opts, scratch);
  return {};
}

Status BuildPooledKeysPrefill(const IndexerConfig& cfg, const KeyRows& keys,
                              const int32_t* seq_starts, const int32_t* seq_lens,
                              int32_t num_seqs, const PooledKeys& pooled,
                              const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, true));
  cudaStream_t stream = StreamOf(opts);
  if (opts.check_indices && num_seqs > 0) {
    if (seq_starts == nullptr || seq_lens == nullptr) {
      return core::Invalid("seq_starts / seq_lens is null with num_seqs = {}", num_seqs);
    }
    std::vector<int32_t> starts, lens;
    HISA_RETURN_IF_ERROR(CopyIndices(seq_starts, num_seqs, &starts, stream));
    HISA_RETURN_IF_ERROR(CopyIndices(seq_lens, num_seqs, &lens, stream));
    HISA_RETURN_IF_ERROR(
        core::ValidateSequences(starts.data(), lens.data(), num_seqs, keys.num_keys));
  }
  return LaunchPoolRows(cfg, keys, seq_starts, seq_lens, num_seqs, pooled, stream);
}

Status UpdatePooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                             const PagedSequences& seqs, const int32_t* old_lens,
                             const PooledKeys& pooled, const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(CheckSupport(cfg, true));
  cudaStream_t stream = StreamOf(opts);
  if (opts.check_indices && seqs.num_seqs > 0) {
    std::vector<int32_t> lens;
    int32_t max_len = 0;
    HISA_RETURN_IF_ERROR(ValidatePagedOnHost(cfg, cache, seqs, 0, stream, &lens, &max_len));
    if (old_lens != nullptr) {
      std::vector<int32_t> old;
      HISA_RETURN_IF_ERROR(CopyIndices(old_lens, seqs.num_seqs, &old, stream));
      for (int32_t b = 0; b < seqs.num_seqs; ++b) {
        if (old[b] < 0 || old[b] > lens[b]) {
          return core::Invalid("old_lens[{}] = {} is outside [0, context_lens[{}] = {}]", b,
                               old[b], b, lens[b]);
        }
      }
    }
  }
  return LaunchPoolPaged(cfg, cache, seqs, old_lens, pooled, stream);
}

}  // namespace hisa::cuda
