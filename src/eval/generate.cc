// Synthetic workloads: float32 queries and keys built from latent directions plus noise, then
// quantized the way the models store them.
//
// Every key is noise plus a few components amplitude * direction, where the directions are random
// unit vectors shared by the whole workload and orthogonal to each other (as far as D allows):
//   background  the topic of the document the token belongs to, modulated per sentence
//   sink        position 0 only (the attention sink)
//   local       recency: strongest at the end of the context, decaying over kLocalWindow tokens
//   signal      what the regime makes relevant: spans, needles, scattered tokens
// A query mixes the directions its regime asks about (plus a little of its own), every head uses
// that mixture plus per-head noise, and a per-head gate w weights the heads. All amplitudes below
// are in units of a key's noise norm, so the scores of irrelevant keys spread about +-0.1 per head
// and a relevant component of amplitude a along a query weight b adds about a * b.
//
// Determinism: every key row, query row and the plan draw from their own counter-based stream
// (splitmix64-seeded xoshiro256**, Box-Muller normals), so the output depends on the seed only,
// not on the number of threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <numeric>
#include <string_view>
#include <vector>

#include "hisa/numeric.h"
#include "hisa/workload.h"

namespace hisa {
namespace {

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// What a random stream is for; with an index (row, query, direction) it names the stream.
enum class Stream : uint64_t { kPlan = 1, kDirection, kKey, kQuery };

/// xoshiro256** seeded through splitmix64 from (seed, stream, index).
class Rng {
 public:
  Rng(uint64_t seed, Stream stream, uint64_t index) {
    uint64_t mix = seed;
    mix = SplitMix64(&mix) ^ (static_cast<uint64_t>(stream) << 56) ^ index;
    mix = SplitMix64(&mix);
    for (uint64_t& word : state_) word = SplitMix64(&mix);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  /// Uniform integer in [lo, hi] (hi >= lo).
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Uniform() * static_cast<double>(hi - lo + 1));
  }

  /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  float Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // Single precision: twice as fast as double and plenty for synthetic activations.
    const uint64_t bits = Next();
    const float u1 = static_cast<float>((bits >> 40) + 1) * 0x1.0p-24f;  // (0, 1]: log is finite
    const float u2 = static_cast<float>(bits & 0xFFFFFF) * 0x1.0p-24f;   // [0, 1)
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float angle = 2.0f * std::numbers::pi_v<float> * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t state_[4];
  float spare_ = 0.0f;
  bool has_spare_ = false;
};

// ---------------------------------------------------------------------------------------------
// Shape of the regimes
// ---------------------------------------------------------------------------------------------

// Latent directions, by index.
constexpr int kSinkDirection = 0;
constexpr int kLocalDirection = 1;
constexpr int kNeedleDirection = 2;
constexpr int kDiffuseDirection = 3;
constexpr int kFirstSpanDirection = 4;
constexpr int kMaxSpans = 8;
constexpr int kFirstTopicDirection = kFirstSpanDirection + kMaxSpans;
constexpr int kNumTopics = 24;
constexpr int kNumDirections = kFirstTopicDirection + kNumTopics;

constexpr float kSinkAmplitude = 10.0f;
constexpr float kLocalAmplitude = 2.0f;
constexpr double kLocalWindow = 128.0;                // tokens over which recency decays by e
constexpr float kQueryOwnWeight = 0.25f;              // a query's private random direction
constexpr float kHeadNoise = 0.5f;                    // per-head deviation from the query direction
constexpr double kGateMean = 0.8, kGateSpread = 0.6;  // gates: about 9% negative

// Relevant tokens per selected key (k = cfg.top_k): spans (sinks-local) and scattered tokens
// (diffuse) hold about this many times k tokens, so the true top-k is made of them.
constexpr double kRelevantPerSelected = 1.3;
constexpr double kDiffuseMaxDensity = 0.2;

/// One component of a key or query: amplitude times a latent direction.
struct Component {
  int direction = -1;
  float amplitude = 0.0f;
};

/// Everything drawn once per workload: the directions, what each key holds, what queries ask.
struct Plan {
  std::vector<float> directions;  // [kNumDirections, D], unit vectors scaled by sqrt(D)
  std::vector<Component> topic;   // [N] background / document topic of each key
  std::vector<Component> signal;  // [N] the regime's relevant component of each key
  std::vector<Component> asked;   // what every query asks about (weights drawn per query)
  int asked_per_query = 0;        // topics: each query asks about this many of `asked`
};

/// Random unit directions scaled by sqrt(D), orthogonal to each other as far as D allows (the
/// first D of them), so that the components of a key do not leak into each other's scores.
void DrawDirections(uint64_t seed, int32_t dim, Plan* plan) {
  plan->directions.resize(static_cast<size_t>(kNumDirections) * dim);
  std::vector<double> v(static_cast<size_t>(dim));
  for (int i = 0; i < kNumDirections; ++i) {
    Rng rng(seed, Stream::kDirection, static_cast<uint64_t>(i));
    for (double& x : v) x = rng.Normal();
    float* dir = plan->directions.data() + static_cast<size_t>(i) * dim;
    for (int j = 0; j < std::min(i, dim - 1); ++j) {  // Gram-Schmidt against the earlier ones
      const float* earlier = plan->directions.data() + static_cast<size_t>(j) * dim;
      double dot = 0.0;
      for (int32_t d = 0; d < dim; ++d) dot += v[d] * earlier[d];
      for (int32_t d = 0; d < dim; ++d) v[d] -= dot / dim * earlier[d];
    }
    double norm2 = 0.0;
    for (double x : v) norm2 += x * x;
    const double scale = std::sqrt(dim / std::max(norm2, 1e-30));
    for (int32_t d = 0; d < dim; ++d) dir[d] = static_cast<float>(v[d] * scale);
  }
}

/// Documents of lognormal length tile positions [1, N) (0 is the sink); each has a topic, and
/// its sentences (8 to 48 tokens) an on-topic strength drawn by `sentence_strength`. Returns the
/// start of each document, with the topics in `doc_topics`.
template <typename Strength>
std::vector<int64_t> DrawDocuments(Rng& rng, int64_t n, float amplitude, Plan* plan,
                                   std::vector<int>* doc_topics, Strength sentence_strength) {
  std::vector<int64_t> starts;
  int64_t pos = 1;
  while (pos < n) {
    const double length = std::exp(std::log(1200.0) + 0.8 * rng.Normal());
    const int64_t end =
        std::min<int64_t>(n, pos + std::clamp<int64_t>(std::llround(length), 64, 8192));
    const int topic = kFirstTopicDirection + static_cast<int>(rng.Between(0, kNumTopics - 1));
    starts.push_back(pos);
    doc_topics->push_back(topic);
    while (pos < end) {
      const int64_t sentence_end = std::min(end, pos + rng.Between(8, 48));
      const float strength = amplitude * sentence_strength(rng);
      for (; pos < sentence_end; ++pos) plan->topic[pos] = {topic, strength};
    }
  }
  return starts;
}

Plan MakePlan(const WorkloadSpec& spec, const IndexerConfig& cfg) {
  Plan plan;
  DrawDirections(spec.seed, cfg.head_dim, &plan);
  const int64_t n = spec.context;
  plan.topic.resize(static_cast<size_t>(n));
  plan.signal.resize(static_cast<size_t>(n));
  Rng rng(spec.seed, Stream::kPlan, static_cast<uint64_t>(spec.regime));
  std::vector<int> doc_topics;
  // Relevant material lives before the queries (the last T positions) and away from the sink.
  const int64_t body_end = std::max<int64_t>(1, n - spec.num_queries);

  switch (spec.regime) {
    case Regime::kRandom:
      return plan;
    case Regime::kTopics: {
      // Strong and weak sentences: a query's top keys are the strong sentences of its documents.
      const std::vector<int64_t> starts = DrawDocuments(
          rng, n, 1.0f, &plan, &doc_topics,
          [](Rng& r) { return static_cast<float>(0.3 + 1.2 * std::pow(r.Uniform(), 2)); });
      // Ask about up to four topics of documents that end before the queries.
      std::vector<int> candidates;
      for (size_t i = 0; i < starts.size(); ++i) {
        const int64_t end = i + 1 < starts.size() ? starts[i + 1] : n;
        if (end <= body_end) candidates.push_back(doc_topics[i]);
      }
      if (candidates.empty()) {
        candidates.push_back(doc_topics.empty() ? kFirstTopicDirection : doc_topics.front());
      }
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
      for (size_t i = 0; i < candidates.size() && plan.asked.size() < 4; ++i) {
        std::swap(candidates[i],
                  candidates[i + rng.Between(0, static_cast<int64_t>(candidates.size() - 1 - i))]);
        plan.asked.push_back({candidates[i], 1.0f});
      }
      plan.asked_per_query = std::min<int>(3, static_cast<int>(plan.asked.size()));
      return plan;
    }
    default:
      DrawDocuments(rng, n, 0.5f, &plan, &doc_topics,
                    [](Rng& r) { return static_cast<float>(r.Uniform(0.5, 1.5)); });
      break;
  }

  switch (spec.regime) {
    case Regime::kSinksLocal: {
      // A few contiguous spans, each about its own direction, of random share in about
      // kRelevantPerSelected * k tokens (at most half the context).
      const int spans = static_cast<int>(rng.Between(4, kMaxSpans));
      const double total =
          std::min(0.5 * static_cast<double>(body_end), kRelevantPerSelected * cfg.top_k);
      std::vector<double> shares(static_cast<size_t>(spans));
      for (double& share : shares) share = rng.Uniform(0.5, 1.5);
      const double share_sum = std::accumulate(shares.begin(), shares.end(), 0.0);
      for (int i = 0; i < spans; ++i) {
        const int64_t length = std::max<int64_t>(8, std::llround(total * shares[i] / share_sum));
        const int64_t first = rng.Between(1, std::max<int64_t>(1, body_end - length));
        const int direction = kFirstSpanDirection + i;
        const float amplitude = static_cast<float>(rng.Uniform(1.2, 1.8));
        for (int64_t s = first; s < std::min(first + length, body_end); ++s) {
          plan.signal[s] = {direction, amplitude * static_cast<float>(rng.Uniform(0.7, 1.0))};
        }
        plan.asked.push_back({direction, 0.45f});
      }
      break;
    }
    case Regime::kNeedle: {
      // A handful of needles of 1 to 4 tokens in the middle 80% of the context.
      const int needles = static_cast<int>(rng.Between(3, 6));
      for (int i = 0; i < needles; ++i) {
        const int64_t length = rng.Between(1, 4);
        const int64_t lo = std::max<int64_t>(1, body_end / 10);
        const int64_t hi = std::max<int64_t>(lo, body_end * 9 / 10 - length);
        const int64_t first = rng.Between(lo, hi);
        for (int64_t s = first; s < std::min(first + length, body_end); ++s) {
          plan.signal[s] = {kNeedleDirection, static_cast<float>(rng.Uniform(1.5, 2.0))};
        }
      }
      plan.asked.push_back({kNeedleDirection, 1.0f});
      break;
    }
    case Regime::kDiffuse: {
      // Single relevant tokens scattered uniformly: a few per block, in every block.
      const double density =
          std::min(kDiffuseMaxDensity,
                   kRelevantPerSelected * cfg.top_k / static_cast<double>(std::max<int64_t>(n, 1)));
      for (int64_t s = 1; s < body_end; ++s) {
        if (rng.Uniform() < density) {
          plan.signal[s] = {kDiffuseDirection, static_cast<float>(rng.Uniform(0.8, 1.6))};
        }
      }
      plan.asked.push_back({kDiffuseDirection, 1.0f});
      break;
    }
    default:
      break;
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

void AddDirection(const Plan& plan, int32_t dim, Component c, float* x) {
  if (c.direction < 0 || c.amplitude == 0.0f) return;
  const float* dir = plan.directions.data() + static_cast<size_t>(c.direction) * dim;
  for (int32_t d = 0; d < dim; ++d) x[d] += c.amplitude * dir[d];
}

/// Stores a float row in the workload's format: FP8 codes with a per-row scale (returned), or
/// BF16 with scale 1.
float StoreRow(const float* x, int32_t dim, DType dtype, ScaleRule rule, uint8_t* out) {
  if (dtype == DType::kFp8E4M3) return QuantizeRowFp8(x, dim, rule, out);
  uint16_t* bf16 = reinterpret_cast<uint16_t*>(out);
  for (int32_t d = 0; d < dim; ++d) bf16[d] = FloatToBf16(x[d]);
  return 1.0f;
}

void GenerateKeys(const IndexerConfig& cfg, const WorkloadSpec& spec, const Plan& plan,
                  Workload* out) {
  const int32_t dim = cfg.head_dim;
  const int64_t n = spec.context;
  const int64_t row_bytes = int64_t{dim} * DTypeSize(cfg.k_dtype);
  const bool structured = spec.regime != Regime::kRandom;
#pragma omp parallel
  {
    std::vector<float> x(static_cast<size_t>(dim));
#pragma omp for schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      Rng rng(spec.seed, Stream::kKey, static_cast<uint64_t>(s));
      for (int32_t d = 0; d < dim; ++d) x[d] = rng.Normal();
      if (structured) {
        if (s == 0) AddDirection(plan, dim, {kSinkDirection, kSinkAmplitude}, x.data());
        const float recency =
            kLocalAmplitude *
            static_cast<float>(std::exp(-static_cast<double>(n - 1 - s) / kLocalWindow));
        AddDirection(plan, dim, {kLocalDirection, recency}, x.data());
        AddDirection(plan, dim, plan.topic[s], x.data());
        AddDirection(plan, dim, plan.signal[s], x.data());
      }
      out->kscale[s] = StoreRow(x.data(), dim, cfg.k_dtype, cfg.pooled_scale_rule,
                                out->k.data() + s * row_bytes);
    }
  }
}

/// The unit direction (scaled by sqrt(D)) a query asks about.
std::vector<float> QueryDirection(const Plan& plan, const WorkloadSpec& spec, int32_t dim,
                                  Rng& rng) {
  std::vector<float> u(static_cast<size_t>(dim), 0.0f);
  AddDirection(plan, dim, {kSinkDirection, 0.5f}, u.data());
  AddDirection(plan, dim, {kLocalDirection, 0.5f}, u.data());
  if (spec.regime == Regime::kTopics) {
    // A random subset of the asked topics, each with its own weight.
    std::vector<Component> topics = plan.asked;
    for (int i = 0; i < plan.asked_per_query; ++i) {
      std::swap(topics[i], topics[i + rng.Between(0, static_cast<int64_t>(topics.size()) - 1 - i)]);
      AddDirection(plan, dim, {topics[i].direction, static_cast<float>(rng.Uniform(0.5, 1.0))},
                   u.data());
    }
  } else {
    for (const Component& c : plan.asked) {
      AddDirection(plan, dim,
                   {c.direction, c.amplitude * static_cast<float>(rng.Uniform(0.7, 1.3))},
                   u.data());
    }
  }
  double own2 = 0.0;
  std::vector<float> own(static_cast<size_t>(dim));
  for (float& v : own) {
    v = rng.Normal();
    own2 += double{v} * v;
  }
  const float own_scale =
      kQueryOwnWeight * static_cast<float>(std::sqrt(dim / std::max(own2, 1e-30)));
  double norm2 = 0.0;
  for (int32_t d = 0; d < dim; ++d) {
    u[d] += own_scale * own[d];
    norm2 += double{u[d]} * u[d];
  }
  const float scale = static_cast<float>(std::sqrt(dim / std::max(norm2, 1e-30)));
  for (float& v : u) v *= scale;
  return u;
}

void GenerateQueries(const IndexerConfig& cfg, const WorkloadSpec& spec, const Plan& plan,
                     Workload* out) {
  const int32_t heads = cfg.num_heads, dim = cfg.head_dim;
  const int64_t row_bytes = int64_t{dim} * DTypeSize(cfg.q_dtype);
  const float gate_norm = 1.0f / std::sqrt(static_cast<float>(heads) * static_cast<float>(dim));
#pragma omp parallel
  {
    std::vector<float> x(static_cast<size_t>(dim));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < spec.num_queries; ++t) {
      Rng rng(spec.seed, Stream::kQuery, static_cast<uint64_t>(t));
      std::vector<float> u;
      if (spec.regime != Regime::kRandom) u = QueryDirection(plan, spec, dim, rng);
      for (int32_t h = 0; h < heads; ++h) {
        const int64_t row = t * heads + h;
        if (u.empty()) {
          for (int32_t d = 0; d < dim; ++d) x[d] = rng.Normal();
        } else {
          for (int32_t d = 0; d < dim; ++d) x[d] = u[d] + kHeadNoise * rng.Normal();
        }
        const float gate = static_cast<float>(kGateMean + kGateSpread * rng.Normal()) * gate_norm;
        // The q scale is positive, so folding it into the gate is exact: ReLU(c x) = c ReLU(x).
        const float q_scale = StoreRow(x.data(), dim, cfg.q_dtype, cfg.pooled_scale_rule,
                                       out->q.data() + row * row_bytes);
        out->w[row] = gate * q_scale;
      }
    }
  }
}

}  // namespace

const char* RegimeName(Regime r) {
  switch (r) {
    case Regime::kSinksLocal:
      return "sinks-local";
    case Regime::kNeedle:
      return "needle";
    case Regime::kTopics:
      return "topics";
    case Regime::kDiffuse:
      return "diffuse";
    case Regime::kRandom:
      return "random";
  }
  return "unknown regime";
}

bool ParseRegime(std::string_view name, Regime* out) {
  for (Regime r : AllRegimes()) {
    if (name == RegimeName(r)) {
      *out = r;
      return true;
    }
  }
  return false;
}

std::vector<Regime> AllRegimes() {
  return {Regime::kSinksLocal, Regime::kNeedle, Regime::kTopics, Regime::kDiffuse, Regime::kRandom};
}

PrefillInputs Workload::Inputs() const {
  PrefillInputs in;
  in.q = q.data();
  in.w = w.data();
  in.keys = Keys();
  in.ks = ks.data();
  in.ke = ke.data();
  in.num_queries = num_queries;
  return in;
}

KeyRows Workload::Keys() const {
  return {k.data(), kscale.data(), num_keys};
}

Workload GenerateWorkload(const IndexerConfig& cfg, const WorkloadSpec& spec_in) {
  WorkloadSpec spec = spec_in;
  spec.context = std::max<int64_t>(spec.context, 0);
  spec.num_queries = std::clamp<int64_t>(spec.num_queries, 0, spec.context);
  const int64_t n = spec.context, t_count = spec.num_queries;

  Workload out;
  out.cfg = cfg;
  out.name = RegimeName(spec.regime);
  out.num_keys = n;
  out.num_queries = t_count;
  out.q.resize(
      static_cast<size_t>(t_count * cfg.num_heads * cfg.head_dim * DTypeSize(cfg.q_dtype)));
  out.w.resize(static_cast<size_t>(t_count * cfg.num_heads));
  out.k.resize(static_cast<size_t>(n * cfg.head_dim * DTypeSize(cfg.k_dtype)));
  out.kscale.resize(static_cast<size_t>(n));
  out.ks.assign(static_cast<size_t>(t_count), 0);
  out.ke.resize(static_cast<size_t>(t_count));
  for (int64_t t = 0; t < t_count; ++t) out.ke[t] = static_cast<int32_t>(n - t_count + t + 1);
  out.seq_starts = {0};
  out.seq_lens = {static_cast<int32_t>(n)};

  const Plan plan = MakePlan(spec, cfg);
  GenerateKeys(cfg, spec, plan, &out);
  GenerateQueries(cfg, spec, plan, &out);
  return out;
}

}  // namespace hisa
