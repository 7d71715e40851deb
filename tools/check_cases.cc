#include "check_cases.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <random>

namespace hisa::tools {
namespace {

// Work the reference checker does per case, in multiply-adds (rows x visible keys x H x D).
constexpr double kCheckBudget = 4e8;
constexpr int64_t kMaxLength = 8192;

/// Integers from mt19937_64's raw output (its sequence is fixed by the standard; the standard
/// distributions are not), so a seed makes the same case everywhere.
class CaseRng {
 public:
  explicit CaseRng(uint64_t seed) : engine_(seed) {}
  /// Uniform in [lo, hi].
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(engine_() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool OneIn(int64_t n) { return Between(1, n) == 1; }
  template <typename T>
  T Choose(std::initializer_list<T> values) {
    return values.begin()[Between(0, static_cast<int64_t>(values.size()) - 1)];
  }

 private:
  std::mt19937_64 engine_;
};

IndexerConfig RandomConfig(CaseRng& rng) {
  IndexerConfig cfg;
  cfg.num_heads = rng.Choose({1, 4, 8, 16, 32, 64, 128});
  cfg.head_dim = rng.Choose({16, 32, 48, 64, 128});
  cfg.block_size = rng.Choose({16, 32, 64, 128});
  cfg.block_budget = static_cast<int32_t>(rng.Between(2, 12));
  cfg.top_k =
      std::min(cfg.block_budget * cfg.block_size, rng.Choose({1, 5, 16, 64, 200, 512, 2048}));
  cfg.q_dtype = rng.OneIn(4) ? DType::kBf16 : DType::kFp8E4M3;
  cfg.k_dtype = rng.OneIn(4) ? DType::kBf16 : DType::kFp8E4M3;
  cfg.pooled_scale_rule = rng.OneIn(2) ? ScaleRule::kUe8m0 : ScaleRule::kAmax;
  return cfg;
}

/// Longest sequence that keeps the checker's work within budget for `rows` query rows.
int64_t MaxLength(const IndexerConfig& cfg, int64_t rows) {
  const double per_key = static_cast<double>(rows) * cfg.num_heads * cfg.head_dim;
  return std::clamp<int64_t>(static_cast<int64_t>(kCheckBudget / per_key), 64, kMaxLength);
}

/// Random q, w and keys for `rows` key rows and `queries` queries in the case's dtypes.
Workload RandomData(const IndexerConfig& cfg, CaseRng& rng, int64_t rows, int64_t queries,
                    uint64_t seed) {
  const std::vector<Regime> regimes = AllRegimes();
  const Regime regime = regimes[rng.Between(0, static_cast<int64_t>(regimes.size()) - 1)];
  // The generator puts its queries among the keys: ask for enough keys, then keep `rows`.
  Workload data =
      GenerateWorkload(cfg, {regime, std::max<int64_t>({rows, queries, 1}), queries, seed});
  data.num_keys = rows;
  data.k.resize(static_cast<size_t>(rows * cfg.head_dim * DTypeSize(cfg.k_dtype)));
  data.kscale.resize(static_cast<size_t>(rows));
  return data;
}

/// Copies about 5% of the key rows onto other rows, scales included: exact ties.
void DuplicateKeys(const IndexerConfig& cfg, CaseRng& rng, Workload* data) {
  const int64_t rows = data->num_keys;
  const int64_t row_bytes = int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype);
  for (int64_t i = 0; i < rows / 20; ++i) {
    const int64_t from = rng.Between(0, rows - 1), to = rng.Between(0, rows - 1);
    std::copy_n(data->k.begin() + from * row_bytes, row_bytes, data->k.begin() + to * row_bytes);
    data->kscale[to] = data->kscale[from];
  }
}

void MakePrefill(CaseRng& rng, CheckCase* c) {
  const int32_t num_seqs = static_cast<int32_t>(rng.Between(1, 4));
  const int64_t max_length = MaxLength(c->cfg, num_seqs * 4);
  // Sequences with gaps between them; lengths ragged, sometimes 0 or 1.
  std::vector<int32_t> starts, lens, ks, ke;
  int64_t row = 0;
  for (int32_t i = 0; i < num_seqs; ++i) {
    row += rng.Between(0, 40);
    const int64_t length = rng.OneIn(12) ? 0 : rng.OneIn(12) ? 1 : rng.Between(1, max_length);
    starts.push_back(static_cast<int32_t>(row));
    lens.push_back(static_cast<int32_t>(length));
    if (length == 0) {
      if (rng.OneIn(2)) {  // an empty row: ks == ke
        ks.push_back(static_cast<int32_t>(row));
        ke.push_back(static_cast<int32_t>(row));
      }
      continue;
    }
    // The last position always, a few others anywhere (short prefixes give p < k).
    const int64_t queries = rng.Between(1, 6);
    for (int64_t q = 0; q < queries; ++q) {
      const int64_t pos = q == 0 ? length - 1 : rng.Between(0, length - 1);
      ks.push_back(static_cast<int32_t>(row));
      ke.push_back(static_cast<int32_t>(row + pos + 1));
    }
    row += length;
  }
  const int64_t num_keys = row + rng.Between(0, 40);
  c->data = RandomData(c->cfg, rng, num_keys, static_cast<int64_t>(ks.size()), c->seed);
  c->data.ks = std::move(ks);
  c->data.ke = std::move(ke);
  c->data.seq_starts = std::move(starts);
  c->data.seq_lens = std::move(lens);
}

void MakeDecode(CaseRng& rng, CheckCase* c) {
  c->page_size = rng.Choose({16, 32, 64, 128});
  c->next_n = static_cast<int32_t>(rng.Between(1, 4));
  const int32_t num_seqs = static_cast<int32_t>(rng.Between(1, 4));
  const int64_t max_length = MaxLength(c->cfg, int64_t{num_seqs} * c->next_n);
  std::vector<int64_t> pages(static_cast<size_t>(num_seqs));
  int64_t used_pages = 0;
  for (int32_t b = 0; b < num_seqs; ++b) {
    const int64_t length =
        rng.OneIn(8) ? c->next_n : rng.Between(c->next_n, std::max<int64_t>(c->next_n, max_length));
    c->context_lens.push_back(static_cast<int32_t>(length));
    c->old_lens.push_back(static_cast<int32_t>(rng.Between(0, length)));
    pages[b] = (length + c->page_size - 1) / c->page_size;
    used_pages += pages[b];
  }
  c->max_pages_per_seq =
      static_cast<int32_t>(*std::max_element(pages.begin(), pages.end()) + rng.Between(0, 2));
  c->num_pages = used_pages + rng.Between(0, 4);
  // Physical pages in random order; entries past a sequence's pages stay -1 (never read).
  std::vector<int32_t> order(static_cast<size_t>(c->num_pages));
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = static_cast<int32_t>(i);
    std::swap(order[i], order[rng.Between(0, static_cast<int64_t>(i))]);
  }
  c->block_table.assign(static_cast<size_t>(num_seqs) * c->max_pages_per_seq, -1);
  size_t next = 0;
  for (int32_t b = 0; b < num_seqs; ++b) {
    for (int64_t i = 0; i < pages[b]; ++i) {
      c->block_table[b * c->max_pages_per_seq + i] = order[next++];
    }
  }
  c->data =
      RandomData(c->cfg, rng, c->num_pages * c->page_size, int64_t{num_seqs} * c->next_n, c->seed);
}

}  // namespace

PagedKeys CheckCase::Cache() const {
  return {data.k.data(), data.kscale.data(), num_pages, page_size};
}

PagedSequences CheckCase::Sequences(const std::vector<int32_t>& lens) const {
  return {block_table.data(), max_pages_per_seq, lens.data(), static_cast<int32_t>(lens.size())};
}

DecodeInputs CheckCase::Decode() const {
  DecodeInputs in;
  in.q = data.q.data();
  in.w = data.w.data();
  in.cache = Cache();
  in.seqs = Sequences(context_lens);
  in.next_n = next_n;
  return in;
}

std::string CheckCase::Describe() const {
  std::string text = fmt::format("{} H={} D={} k={} B={} m={} q={} k={} {} {}{}{}",
                                 kind == Kind::kPrefill ? "prefill" : "decode", cfg.num_heads,
                                 cfg.head_dim, cfg.top_k, cfg.block_size, cfg.block_budget,
                                 cfg.q_dtype == DType::kFp8E4M3 ? "fp8" : "bf16",
                                 cfg.k_dtype == DType::kFp8E4M3 ? "fp8" : "bf16",
                                 cfg.pooled_scale_rule == ScaleRule::kAmax ? "amax" : "ue8m0",
                                 positions == PositionBase::kRelative ? "rel" : "abs",
                                 sorted ? " sorted" : "", duplicated_keys ? " ties" : "");
  if (kind == Kind::kPrefill) {
    return text + fmt::format(" seqs={} T={} N={}", data.seq_starts.size(), data.num_queries,
                              data.num_keys);
  }
  return text + fmt::format(" P={} seqs={} next_n={} pages={}", page_size, context_lens.size(),
                            next_n, num_pages);
}

CheckCase MakeCheckCase(uint64_t seed) {
  CaseRng rng(seed);
  CheckCase c;
  c.seed = seed;
  c.kind = rng.OneIn(2) ? CheckCase::Kind::kPrefill : CheckCase::Kind::kDecode;
  c.cfg = RandomConfig(rng);
  c.positions = rng.OneIn(2) ? PositionBase::kRelative : PositionBase::kAbsolute;
  c.sorted = rng.OneIn(2);
  c.with_scores = rng.OneIn(2);
  if (c.kind == CheckCase::Kind::kPrefill) {
    MakePrefill(rng, &c);
  } else {
    MakeDecode(rng, &c);
  }
  c.duplicated_keys = rng.OneIn(2);
  if (c.duplicated_keys) DuplicateKeys(c.cfg, rng, &c.data);
  return c;
}

}  // namespace hisa::tools
