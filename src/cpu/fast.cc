// The fast CPU backend: the reference's selections from vector kernels and streaming top-k.
//
// Every selection is a "pass": queries, each with a range of visible positions [lo, hi) of its
// sequence, scored against the keys at those positions, keeping the top k by core::OrderKey.
//   flat:         positions are tokens, [0, length), k = top_k
//   HISA stage 1: positions are blocks, [1, o), scored on pooled keys, k = m - 2
//   HISA stage 2: positions are tokens of the selected blocks, [0, length), k = top_k
// A sequence's positions are cut into chunks of up to kChunkKeys (never across a block), and its
// queries into groups of up to kGroupQueries. A group walks its chunks in order and scores every
// query of the group against a chunk's packed keys while they are in cache. Keys are packed into
// the kernel's tile layout once per call when several groups share a sequence (and the copy fits
// kPrepackBudgetBytes), else by each group as it goes. A group with more than its share of the
// work is split into segments of chunks whose partial top-k lists are merged afterwards (exact:
// OrderKeys are unique).
#include "cpu/fast.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "core/parallel.h"
#include "core/topk.h"
#include "cpu/kernels.h"
#include "cpu/stream_topk.h"

namespace hisa::cpu {
namespace {

constexpr int64_t kGroupQueries = 16;      // queries that share one packed chunk
constexpr int64_t kChunkKeys = 128;        // positions packed at once (a multiple of kTileKeys)
constexpr int64_t kMinSegmentChunks = 16;  // smallest piece of a group worth a thread
constexpr int64_t kItemsPerThread = 4;     // work items per thread, for load balance
constexpr int64_t kPrepackBudgetBytes = int64_t{128} << 20;  // keys packed once per call

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], FreeDeleter>;

AlignedBuffer AllocateAligned(int64_t bytes) {
  const size_t size = static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
  return AlignedBuffer(static_cast<uint8_t*>(std::aligned_alloc(64, size)));
}

// A range of positions (or of chunk indices).
struct Span {
  int64_t begin = 0, end = 0;
};

Span Intersect(Span a, Span b) {
  return {std::max(a.begin, b.begin), std::min(a.end, b.end)};
}

int64_t TilesIn(Span chunk) {
  return (chunk.end - chunk.begin + kTileKeys - 1) / kTileKeys;
}

// The keys a pass scores for one sequence: its tokens, or its pooled keys (position = block).
struct KeySource {
  const uint8_t* k = nullptr;                    // [rows, D] k_dtype
  const float* kscale = nullptr;                 // [rows], null = 1
  const core::SequenceKeys* keys = nullptr;      // set: positions are tokens
  const core::SequencePooled* pooled = nullptr;  // set: positions are blocks

  int64_t Row(int64_t pos) const { return keys ? keys->Row(pos) : pooled->Slot(pos); }
  float Scale(int64_t row) const { return kscale ? kscale[row] : 1.0f; }
};

struct PassQuery {
  int64_t task = 0;                 // index into the call's tasks (and output rows)
  Span visible;                     // positions [lo, hi)
  const int32_t* blocks = nullptr;  // stage 2: selected blocks, ascending, -1 padded; null: all
};

// The queries of one sequence and the chunks of positions they see.
struct PassSequence {
  KeySource source;
  Span visible;                      // union of its queries' visible ranges
  std::vector<Span> chunks;          // ascending, each starting at a multiple of kTileKeys
  std::vector<int64_t> first_tiles;  // prepacked: each chunk's first tile in Pass::packed_tiles
};

// Consecutive queries of one sequence, scanned together.
struct PassGroup {
  int64_t sequence = 0;
  int64_t first = 0, count = 0;  // queries [first, first + count) of the pass
  Span visible;                  // union of the queries' visible ranges
  std::vector<Span> runs;        // the sequence's chunk indices the group scans, ascending
  int64_t num_chunks = 0;        // total length of the runs
};

struct Pass {
  int64_t top_k = 0;
  int32_t block_size = 0;    // for PassQuery::blocks
  int32_t block_budget = 0;  // length of a PassQuery::blocks row
  std::vector<PassQuery> queries;
  std::vector<PassSequence> sequences;
  std::vector<PassGroup> groups;
  AlignedBuffer packed_tiles;        // prepacked keys of every chunk; null: groups pack their own
  std::vector<float> packed_kscale;  // [tiles * kTileKeys] their scales, 0 for holes
};

// A piece of one group's chunks (the ordinals [first_chunk, end_chunk) along its runs),
// processed by one thread.
struct WorkItem {
  int64_t group = 0;
  int64_t first_chunk = 0, end_chunk = 0;
  int64_t partial = -1;  // first slot in the partial results, -1: the group is not split
};

bool SameSequence(const core::QueryTask& a, const core::QueryTask& b) {
  return a.keys.k == b.keys.k && a.keys.kscale == b.keys.kscale && a.keys.pages == b.keys.pages &&
         a.keys.base_row == b.keys.base_row && a.keys.page_size == b.keys.page_size;
}

// Cuts the pass's queries into sequences (runs of consecutive queries of one sequence) and those
// into groups.
template <class MakeSource>
void FormGroups(const std::vector<core::QueryTask>& tasks, Pass* pass, MakeSource make_source) {
  const int64_t n = static_cast<int64_t>(pass->queries.size());
  for (int64_t i = 0; i < n;) {
    const core::QueryTask& first = tasks[pass->queries[i].task];
    PassSequence sequence;
    sequence.source = make_source(first);
    sequence.visible = pass->queries[i].visible;
    const int64_t index = static_cast<int64_t>(pass->sequences.size());
    for (; i < n && SameSequence(first, tasks[pass->queries[i].task]); ++i) {
      const Span visible = pass->queries[i].visible;
      sequence.visible = {std::min(sequence.visible.begin, visible.begin),
                          std::max(sequence.visible.end, visible.end)};
      if (pass->groups.empty() || pass->groups.back().sequence != index ||
          pass->groups.back().count == kGroupQueries) {
        pass->groups.push_back({index, i, 0, visible, {}, 0});
      }
      PassGroup& group = pass->groups.back();
      ++group.count;
      group.visible = {std::min(group.visible.begin, visible.begin),
                       std::max(group.visible.end, visible.end)};
    }
    pass->sequences.push_back(std::move(sequence));
  }
}

// Chunks of kChunkKeys positions (aligned to multiples of kChunkKeys) covering each sequence's
// visible range; a group scans those that overlap its own.
void ChunkRanges(Pass* pass) {
  for (PassSequence& sequence : pass->sequences) {
    for (int64_t begin = sequence.visible.begin / kChunkKeys * kChunkKeys;
         begin < sequence.visible.end; begin += kChunkKeys) {
      sequence.chunks.push_back({begin, std::min(begin + kChunkKeys, sequence.visible.end)});
    }
  }
  for (PassGroup& group : pass->groups) {
    const std::vector<Span>& chunks = pass->sequences[group.sequence].chunks;
    const int64_t first = (group.visible.begin - chunks.front().begin) / kChunkKeys;
    const int64_t end = (group.visible.end - chunks.front().begin + kChunkKeys - 1) / kChunkKeys;
    group.runs = {{first, end}};
    group.num_chunks = end - first;
  }
}

// Blocks (ascending, unique) selected by queries [first, first + count) of the pass.
std::vector<int64_t> SelectedBlocks(const Pass& pass, int64_t first, int64_t count) {
  int64_t end_block = 0;
  for (int64_t i = first; i < first + count; ++i) {
    end_block =
        std::max(end_block, core::OwnBlock(pass.queries[i].visible.end, pass.block_size) + 1);
  }
  std::vector<char> selected(static_cast<size_t>(end_block), 0);
  for (int64_t i = first; i < first + count; ++i) {
    const PassQuery& query = pass.queries[i];
    if (query.blocks == nullptr) {
      const int64_t own = core::OwnBlock(query.visible.end, pass.block_size);
      std::fill(selected.begin(), selected.begin() + own + 1, 1);
    } else {
      for (int32_t slot = 0; slot < pass.block_budget && query.blocks[slot] >= 0; ++slot) {
        selected[query.blocks[slot]] = 1;
      }
    }
  }
  std::vector<int64_t> blocks;
  for (int64_t j = 0; j < end_block; ++j) {
    if (selected[j]) blocks.push_back(j);
  }
  return blocks;
}

// Chunks of the blocks any query of each sequence selected (pieces of up to kChunkKeys from each
// block's start); a group scans the chunks of the blocks its own queries selected.
void ChunkSelectedBlocks(Pass* pass) {
  const int64_t block_size = pass->block_size;
  const int64_t num_groups = static_cast<int64_t>(pass->groups.size());
  for (int64_t s = 0, g = 0; s < static_cast<int64_t>(pass->sequences.size()); ++s) {
    PassSequence& sequence = pass->sequences[s];
    const int64_t first_group = g;
    while (g < num_groups && pass->groups[g].sequence == s) ++g;
    const int64_t first_query = pass->groups[first_group].first;
    const PassGroup& last = pass->groups[g - 1];
    // first_chunk[j]: index of block j's first chunk (its chunks are consecutive).
    std::vector<int64_t> first_chunk;
    for (int64_t j : SelectedBlocks(*pass, first_query, last.first + last.count - first_query)) {
      first_chunk.resize(static_cast<size_t>(j + 1), -1);
      first_chunk[j] = static_cast<int64_t>(sequence.chunks.size());
      const int64_t end = std::min((j + 1) * block_size, sequence.visible.end);
      for (int64_t begin = j * block_size; begin < end; begin += kChunkKeys) {
        sequence.chunks.push_back({begin, std::min(begin + kChunkKeys, end)});
      }
    }
    const int64_t num_chunks = static_cast<int64_t>(sequence.chunks.size());
    for (int64_t i = first_group; i < g; ++i) {
      PassGroup& group = pass->groups[i];
      for (int64_t j : SelectedBlocks(*pass, group.first, group.count)) {
        int64_t end = first_chunk[j] + 1;
        while (end < num_chunks && sequence.chunks[end].begin < (j + 1) * block_size) ++end;
        const Span run = {first_chunk[j], end};
        if (!group.runs.empty() && group.runs.back().end == run.begin) {
          group.runs.back().end = run.end;
        } else {
          group.runs.push_back(run);
        }
        group.num_chunks += run.end - run.begin;
      }
    }
  }
}

// Packs the tiles of `chunk` that hold positions in `seen` into tiles / kscale (indexed from the
// chunk's start); the other keys of those tiles are zero with scale 0.
void PackChunk(const Kernel& kernel, const KernelLayout& layout, DType k_dtype,
               const KeySource& source, int64_t row_bytes, Span chunk, Span seen, uint8_t* tiles,
               float* kscale) {
  const void* rows[kTileKeys];
  for (int64_t tile = chunk.begin; tile < chunk.end; tile += kTileKeys) {
    if (tile + kTileKeys <= seen.begin || tile >= seen.end) continue;
    const int64_t offset = tile - chunk.begin;
    for (int s = 0; s < kTileKeys; ++s) {
      const int64_t pos = tile + s;
      if (pos >= seen.begin && pos < seen.end) {
        const int64_t row = source.Row(pos);
        rows[s] = source.k + row * row_bytes;
        kscale[offset + s] = source.Scale(row);
      } else {
        rows[s] = nullptr;
        kscale[offset + s] = 0.0f;
      }
    }
    kernel.pack_tile(layout, k_dtype, rows, tiles + offset / kTileKeys * layout.tile_bytes);
  }
}

// Packs every chunk of every sequence once, when several groups share a sequence and the copy
// fits the budget.
void Prepack(const Kernel& kernel, const IndexerConfig& cfg, int threads, Pass* pass) {
  if (pass->groups.size() <= pass->sequences.size()) return;  // nothing would be reused
  const KernelLayout layout = kernel.layout(cfg);
  std::vector<std::pair<int64_t, int64_t>> jobs;  // (sequence, chunk)
  int64_t tiles = 0;
  for (int64_t s = 0; s < static_cast<int64_t>(pass->sequences.size()); ++s) {
    PassSequence& sequence = pass->sequences[s];
    for (int64_t c = 0; c < static_cast<int64_t>(sequence.chunks.size()); ++c) {
      sequence.first_tiles.push_back(tiles);
      tiles += TilesIn(sequence.chunks[c]);
      jobs.emplace_back(s, c);
    }
  }
  if (tiles * layout.tile_bytes > kPrepackBudgetBytes) {
    for (PassSequence& sequence : pass->sequences) sequence.first_tiles.clear();
    return;
  }
  pass->packed_tiles = AllocateAligned(tiles * layout.tile_bytes);
  pass->packed_kscale.resize(static_cast<size_t>(tiles * kTileKeys));
  const int64_t row_bytes = int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
  for (int64_t i = 0; i < static_cast<int64_t>(jobs.size()); ++i) {
    const auto [s, c] = jobs[i];
    const PassSequence& sequence = pass->sequences[s];
    const int64_t tile = sequence.first_tiles[c];
    PackChunk(kernel, layout, cfg.k_dtype, sequence.source, row_bytes, sequence.chunks[c],
              sequence.visible, pass->packed_tiles.get() + tile * layout.tile_bytes,
              pass->packed_kscale.data() + tile * kTileKeys);
  }
}

// Whether the query selected the block that holds position pos. Positions must not decrease
// between calls with the same cursor (the next slot of query.blocks to look at, from 0).
bool HasBlock(const Pass& pass, const PassQuery& query, int64_t pos, int32_t* cursor) {
  if (query.blocks == nullptr) return true;
  const int64_t block = pos / pass.block_size;
  while (*cursor < pass.block_budget && query.blocks[*cursor] >= 0 &&
         query.blocks[*cursor] < block) {
    ++*cursor;
  }
  return *cursor < pass.block_budget && query.blocks[*cursor] == block;
}

// Everything one thread needs to scan work items: prepared queries and one packed chunk.
class Scanner {
 public:
  Scanner(const Kernel& kernel, const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
          const Pass& pass)
      : kernel_(kernel),
        cfg_(cfg),
        tasks_(tasks),
        pass_(pass),
        layout_(kernel.layout(cfg)),
        row_bytes_(int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype)),
        queries_(AllocateAligned(kGroupQueries * layout_.query_bytes)),
        tiles_(AllocateAligned(kChunkKeys / kTileKeys * layout_.tile_bytes)),
        kscale_(static_cast<size_t>(kChunkKeys)),
        scores_(AllocateAligned(2 * kTileKeys * sizeof(float))) {}

  /// Scores the item's chunks for every query of its group: consume(query_in_group, first_pos,
  /// scores, count) receives the scores of consecutive visible positions.
  template <class Consume>
  void Scan(const WorkItem& item, Consume&& consume) {
    const PassGroup& group = pass_.groups[item.group];
    const PassSequence& sequence = pass_.sequences[group.sequence];
    for (int64_t i = 0; i < group.count; ++i) {
      const core::QueryTask& task = tasks_[pass_.queries[group.first + i].task];
      kernel_.prepare_query(layout_, cfg_.q_dtype, task.q, task.w, QueryAt(i));
    }
    if (kernel_.begin_scores) kernel_.begin_scores();
    int32_t cursors[kGroupQueries] = {};  // HasBlock's, per query
    int64_t ordinal = 0;                  // of the chunk along the group's runs
    for (const Span run : group.runs) {
      for (int64_t c = run.begin; c < run.end; ++c, ++ordinal) {
        if (ordinal < item.first_chunk || ordinal >= item.end_chunk) continue;
        const Span chunk = sequence.chunks[c];
        const uint8_t* tiles = tiles_.get();
        const float* kscale = kscale_.data();
        if (pass_.packed_tiles) {
          tiles = pass_.packed_tiles.get() + sequence.first_tiles[c] * layout_.tile_bytes;
          kscale = pass_.packed_kscale.data() + sequence.first_tiles[c] * kTileKeys;
        } else {
          PackChunk(kernel_, layout_, cfg_.k_dtype, sequence.source, row_bytes_, chunk,
                    Intersect(chunk, group.visible), tiles_.get(), kscale_.data());
        }
        for (int64_t i = 0; i < group.count; ++i) {
          const PassQuery& query = pass_.queries[group.first + i];
          const Span seen = Intersect(chunk, query.visible);
          if (seen.begin >= seen.end || !HasBlock(pass_, query, chunk.begin, &cursors[i])) {
            continue;
          }
          ScoreRange(
              QueryAt(i), chunk, seen, tiles, kscale,
              [&](int64_t pos, const float* scores, int64_t n) { consume(i, pos, scores, n); });
        }
      }
    }
    if (kernel_.end_scores) kernel_.end_scores();
  }

 private:
  uint8_t* QueryAt(int64_t i) { return queries_.get() + i * layout_.query_bytes; }

  // Scores the tiles that cover `seen` (inside `chunk`), two at a time.
  template <class Emit>
  void ScoreRange(const uint8_t* query, Span chunk, Span seen, const uint8_t* tiles,
                  const float* kscale, Emit&& emit) {
    float* scores = reinterpret_cast<float*>(scores_.get());
    const int64_t first_tile = (seen.begin - chunk.begin) / kTileKeys;
    const int64_t end_tile = (seen.end - chunk.begin + kTileKeys - 1) / kTileKeys;
    for (int64_t tile = first_tile; tile < end_tile; tile += 2) {
      const int num_tiles = static_cast<int>(std::min<int64_t>(2, end_tile - tile));
      kernel_.score_tiles(layout_, query, tiles + tile * layout_.tile_bytes, num_tiles,
                          kscale + tile * kTileKeys, scores);
      const int64_t tile_pos = chunk.begin + tile * kTileKeys;
      const int64_t begin = std::max(tile_pos, seen.begin);
      const int64_t end = std::min(tile_pos + num_tiles * kTileKeys, seen.end);
      emit(begin, scores + (begin - tile_pos), end - begin);
    }
  }

  const Kernel& kernel_;
  const IndexerConfig& cfg_;
  const std::vector<core::QueryTask>& tasks_;
  const Pass& pass_;
  const KernelLayout layout_;
  const int64_t row_bytes_;
  AlignedBuffer queries_;      // [kGroupQueries, query_bytes]
  AlignedBuffer tiles_;        // one chunk of packed tiles, when not prepacked
  std::vector<float> kscale_;  // [kChunkKeys] their scales
  AlignedBuffer scores_;       // [2 * kTileKeys]
};

// A group split into segments: its partial top-k lists, segment-major.
struct SplitGroup {
  int64_t group = 0;
  int64_t segments = 0;
  int64_t first_partial = 0;
};

struct WorkPlan {
  std::vector<WorkItem> items;
  std::vector<SplitGroup> splits;
  int64_t num_partials = 0;
};

// Cuts the pass into work items, splitting the groups that carry more than their share of the
// work (and enough chunks to split) into segments.
WorkPlan PlanItems(const Pass& pass, int threads) {
  WorkPlan plan;
  double total_work = 0.0;
  for (const PassGroup& group : pass.groups) {
    total_work += static_cast<double>(group.num_chunks) * static_cast<double>(group.count);
  }
  const double target_items = static_cast<double>(threads) * kItemsPerThread;
  for (int64_t g = 0; g < static_cast<int64_t>(pass.groups.size()); ++g) {
    const PassGroup& group = pass.groups[g];
    const int64_t chunks = group.num_chunks;
    const double work = static_cast<double>(chunks) * static_cast<double>(group.count);
    int64_t segments = 1;
    if (threads > 1 && total_work > 0.0) {
      const int64_t share = static_cast<int64_t>(std::ceil(work * target_items / total_work));
      segments = std::clamp<int64_t>(share, 1, std::max<int64_t>(1, chunks / kMinSegmentChunks));
    }
    if (segments == 1) {
      plan.items.push_back({g, 0, chunks, -1});
      continue;
    }
    plan.splits.push_back({g, segments, plan.num_partials});
    for (int64_t s = 0; s < segments; ++s) {
      plan.items.push_back({g, chunks * s / segments, chunks * (s + 1) / segments,
                            plan.num_partials + s * group.count});
    }
    plan.num_partials += segments * group.count;
  }
  return plan;
}

// The top pass.top_k keys of every pass query: finish(query, keys) receives them best first,
// once per query, from any thread.
template <class Finish>
void RunSelection(const Kernel& kernel, const IndexerConfig& cfg,
                  const std::vector<core::QueryTask>& tasks, const Pass& pass, int threads,
                  Finish&& finish) {
  const WorkPlan plan = PlanItems(pass, threads);
  const std::vector<WorkItem>& items = plan.items;
  std::vector<std::vector<uint64_t>> partials(static_cast<size_t>(plan.num_partials));
#pragma omp parallel num_threads(threads)
  {
    Scanner scanner(kernel, cfg, tasks, pass);
    std::vector<StreamTopk> selectors(kGroupQueries, StreamTopk(kernel.keep_in_range));
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < static_cast<int64_t>(items.size()); ++it) {
      const WorkItem& item = items[it];
      const PassGroup& group = pass.groups[item.group];
      for (int64_t i = 0; i < group.count; ++i) selectors[i].Reset(pass.top_k);
      scanner.Scan(item, [&](int64_t i, int64_t pos, const float* scores, int64_t n) {
        // Only keys whose score can reach the current threshold are appended.
        StreamTopk& selector = selectors[i];
        selector.Commit(kernel.append_keys(scores, static_cast<int>(n), pos, selector.ScoreFloor(),
                                           selector.Reserve(2 * kTileKeys)));
      });
      for (int64_t i = 0; i < group.count; ++i) {
        if (item.partial < 0) {
          finish(group.first + i, selectors[i].Finish());
        } else {  // in push order, so that the merge pushes in ascending position order
          partials[item.partial + i] = selectors[i].FinishInPushOrder();
        }
      }
    }
  }
  if (plan.splits.empty()) return;
  // Merge the segments of split groups, one query at a time.
  std::vector<std::pair<const SplitGroup*, int64_t>> merges;
  for (const SplitGroup& split : plan.splits) {
    for (int64_t i = 0; i < pass.groups[split.group].count; ++i) merges.emplace_back(&split, i);
  }
#pragma omp parallel num_threads(threads)
  {
    StreamTopk selector(kernel.keep_in_range);
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < static_cast<int64_t>(merges.size()); ++r) {
      const auto [split, i] = merges[r];
      const int64_t count = pass.groups[split->group].count;
      selector.Reset(pass.top_k);
      for (int64_t s = 0; s < split->segments; ++s) {
        for (uint64_t key : partials[split->first_partial + s * count + i]) selector.Push(key);
      }
      finish(pass.groups[split->group].first + i, selector.Finish());
    }
  }
}

KeySource TokenKeys(const core::QueryTask& task) {
  return {static_cast<const uint8_t*>(task.keys.k), task.keys.kscale, &task.keys, nullptr};
}

KeySource PooledKeys(const core::QueryTask& task) {
  return {static_cast<const uint8_t*>(task.pooled.k), task.pooled.kscale, nullptr, &task.pooled};
}

// Writes row t: the keys' positions (and scores), best first, then -1 (and NaN).
void WriteRow(const IndexerConfig& cfg, const core::QueryTask& task, int64_t t,
              const std::vector<uint64_t>& keys, const TopkOutputs& out, const RunOptions& opts) {
  int32_t* indices = out.indices + t * cfg.top_k;
  float* scores = out.scores ? out.scores + t * cfg.top_k : nullptr;
  const int64_t n = static_cast<int64_t>(keys.size());
  for (int64_t i = 0; i < cfg.top_k; ++i) {
    indices[i] =
        i < n ? core::OutputPosition(task, core::PositionOfKey(keys[i]), opts.positions) : -1;
    if (scores) {
      scores[i] = i < n ? core::ScoreOfKey(keys[i]) : std::numeric_limits<float>::quiet_NaN();
    }
  }
}

// HISA stage 1: the selected blocks of every query, ascending and -1 padded, into blocks
// [T, block_budget].
void SelectBlocks(const Kernel& kernel, const IndexerConfig& cfg,
                  const std::vector<core::QueryTask>& tasks, int threads, int32_t* blocks) {
  const int32_t budget = cfg.block_budget;
  Pass pass;
  pass.top_k = budget - 2;
  for (int64_t t = 0; t < static_cast<int64_t>(tasks.size()); ++t) {
    const int64_t own = core::OwnBlock(tasks[t].length, cfg.block_size);
    int32_t* row = blocks + t * budget;
    std::fill(row, row + budget, -1);
    if (own + 1 <= budget) {  // every eligible block (none for an empty row)
      for (int64_t j = 0; j <= own; ++j) row[j] = static_cast<int32_t>(j);
    } else if (budget == 2) {  // only the forced blocks
      row[0] = 0;
      row[1] = static_cast<int32_t>(own);
    } else {  // blocks 1 .. own - 1 compete for budget - 2 places
      pass.queries.push_back({t, {1, own}, nullptr});
    }
  }
  FormGroups(tasks, &pass, PooledKeys);
  ChunkRanges(&pass);
  Prepack(kernel, cfg, threads, &pass);
  RunSelection(kernel, cfg, tasks, pass, threads,
               [&](int64_t q, const std::vector<uint64_t>& keys) {
                 const int64_t t = pass.queries[q].task;
                 int32_t* row = blocks + t * budget;
                 row[0] = 0;
                 for (size_t i = 0; i < keys.size(); ++i) {
                   row[i + 1] = static_cast<int32_t>(core::PositionOfKey(keys[i]));
                 }
                 row[keys.size() + 1] = static_cast<int32_t>(pass.queries[q].visible.end);
                 std::sort(row, row + keys.size() + 2);
               });
}

}  // namespace

Status FlatTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  const Kernel& kernel = ActiveKernel();
  Pass pass;
  pass.top_k = cfg.top_k;
  for (int64_t t = 0; t < static_cast<int64_t>(tasks.size()); ++t) {
    if (tasks[t].length > 0) {
      pass.queries.push_back({t, {0, tasks[t].length}, nullptr});
    } else {
      WriteRow(cfg, tasks[t], t, {}, out, opts);
    }
  }
  FormGroups(tasks, &pass, TokenKeys);
  ChunkRanges(&pass);
  const int threads = core::ThreadCount(opts);
  Prepack(kernel, cfg, threads, &pass);
  RunSelection(kernel, cfg, tasks, pass, threads,
               [&](int64_t q, const std::vector<uint64_t>& keys) {
                 const int64_t t = pass.queries[q].task;
                 WriteRow(cfg, tasks[t], t, keys, out, opts);
               });
  return {};
}

Status HisaTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  const Kernel& kernel = ActiveKernel();
  const int threads = core::ThreadCount(opts);
  const int32_t budget = cfg.block_budget, block_size = cfg.block_size;
  std::vector<int32_t> own_blocks;
  int32_t* blocks = out.blocks;
  if (blocks == nullptr) {
    own_blocks.resize(tasks.size() * static_cast<size_t>(budget));
    blocks = own_blocks.data();
  }
  SelectBlocks(kernel, cfg, tasks, threads, blocks);

  // Stage 2: top-k over the tokens of the selected blocks.
  Pass pass;
  pass.top_k = cfg.top_k;
  pass.block_size = block_size;
  pass.block_budget = budget;
  for (int64_t t = 0; t < static_cast<int64_t>(tasks.size()); ++t) {
    const int64_t length = tasks[t].length;
    if (length == 0) {
      WriteRow(cfg, tasks[t], t, {}, out, opts);
      continue;
    }
    const bool all_blocks = core::HisaIsFlat(length, cfg);
    pass.queries.push_back({t, {0, length}, all_blocks ? nullptr : blocks + t * budget});
  }
  FormGroups(tasks, &pass, TokenKeys);
  ChunkSelectedBlocks(&pass);
  Prepack(kernel, cfg, threads, &pass);
  RunSelection(kernel, cfg, tasks, pass, threads,
               [&](int64_t q, const std::vector<uint64_t>& keys) {
                 const int64_t t = pass.queries[q].task;
                 WriteRow(cfg, tasks[t], t, keys, out, opts);
               });
  return {};
}

Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts) {
  const Kernel& kernel = ActiveKernel();
  const int threads = core::ThreadCount(opts);
  const std::vector<core::QueryTask> tasks = core::PrefillTasks(cfg, in, nullptr);
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < in.num_queries; ++t) {
    float* row = logits + t * logits_stride;
    std::fill(row, row + in.ks[t], kMinusInf);
    std::fill(row + in.ke[t], row + in.keys.num_keys, kMinusInf);
  }
  Pass pass;
  for (int64_t t = 0; t < in.num_queries; ++t) {
    if (tasks[t].length > 0) pass.queries.push_back({t, {0, tasks[t].length}, nullptr});
  }
  FormGroups(tasks, &pass, TokenKeys);
  ChunkRanges(&pass);
  Prepack(kernel, cfg, threads, &pass);
  const std::vector<WorkItem> items = PlanItems(pass, threads).items;  // no merge: disjoint
#pragma omp parallel num_threads(threads)
  {
    Scanner scanner(kernel, cfg, tasks, pass);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < static_cast<int64_t>(items.size()); ++it) {
      const PassGroup& group = pass.groups[items[it].group];
      scanner.Scan(items[it], [&](int64_t i, int64_t pos, const float* scores, int64_t n) {
        const int64_t t = pass.queries[group.first + i].task;
        std::copy(scores, scores + n, logits + t * logits_stride + in.ks[t] + pos);
      });
    }
  }
  return {};
}

const char* KernelName() {
  return ActiveKernel().name;
}

}  // namespace hisa::cpu
