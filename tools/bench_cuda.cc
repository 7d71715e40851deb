#include "bench_cuda.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "hisa/hisa.h"

#if HISA_TOOLS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace hisa::tools {

#if HISA_TOOLS_WITH_CUDA
namespace {

Status Cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return {};
  return {err == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kDeviceError,
          fmt::format("{}: {}", what, cudaGetErrorString(err))};
}
#define BENCH_TRY(expr)         \
  do {                          \
    ::hisa::Status _s = (expr); \
    if (!_s.ok()) return _s;    \
  } while (0)
#define BENCH_CUDA(call) BENCH_TRY(Cuda((call), #call))

// Owned device memory.
class Device {
 public:
  Device() = default;
  ~Device() {
    if (ptr_) cudaFree(ptr_);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  Device(Device&& o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
  Status Alloc(size_t bytes) {
    BENCH_CUDA(cudaMalloc(&ptr_, std::max<size_t>(bytes, 16)));
    return {};
  }
  template <typename T>
  Status Upload(const std::vector<T>& host) {
    BENCH_TRY(Alloc(host.size() * sizeof(T)));
    BENCH_CUDA(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return {};
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// The stream every timed call runs on (graph capture needs a stream of its own).
cudaStream_t BenchStream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    return s;
  }();
  return stream;
}

// Times `call(copy)` `repeats` times after `warmup` runs, the input copy rotating. Each copy's
// call is captured once into a CUDA graph and the graphs are replayed, as serving engines run
// the indexer: the times are the GPU's, without the host's launch gaps (eager_ms, if not null,
// receives the median of plain launches for comparison).
template <typename Call>
Status TimeIt(int warmup, int repeats, int copies, Call call, std::vector<float>* ms,
              float* eager_ms = nullptr) {
  cudaStream_t stream = BenchStream();
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  std::vector<float> eager;
  for (int i = 0; i < warmup + repeats; ++i) {  // plain launches (also the warm-up)
    BENCH_CUDA(cudaEventRecord(start, stream));
    BENCH_TRY(call(i % copies));
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float elapsed = 0;
    BENCH_CUDA(cudaEventElapsedTime(&elapsed, start, stop));
    if (i >= warmup) eager.push_back(elapsed);
  }
  std::sort(eager.begin(), eager.end());
  if (eager_ms) *eager_ms = eager[eager.size() / 2];
  std::vector<cudaGraphExec_t> graphs(copies);
  for (int c = 0; c < copies; ++c) {
    cudaGraph_t graph;
    BENCH_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    const Status captured = call(c);
    BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
    BENCH_TRY(captured);
    BENCH_CUDA(cudaGraphInstantiate(&graphs[c], graph, 0));
    cudaGraphDestroy(graph);
  }
  ms->clear();
  for (int i = 0; i < warmup + repeats; ++i) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    BENCH_CUDA(cudaGraphLaunch(graphs[i % copies], stream));
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float elapsed = 0;
    BENCH_CUDA(cudaEventElapsedTime(&elapsed, start, stop));
    if (i >= warmup) ms->push_back(elapsed);
  }
  for (cudaGraphExec_t g : graphs) cudaGraphExecDestroy(g);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return {};
}

// Options of a timed call: the bench stream, index checks off (the kernels alone; they clamp
// their inputs), the sweep's workspace limit.
RunOptions TimedRun(const CudaBenchOptions& o) {
  RunOptions run;
  run.backend = Backend::kCuda;
  run.stream = BenchStream();
  run.check_indices = false;
  run.workspace_limit_bytes = o.workspace_limit_bytes;
  return run;
}

// The median and spread of the graph replays, and the plain-launch time.
void Fill(CudaBenchRow* row, std::vector<float> ms, float eager) {
  row->ms_eager = eager;
  std::sort(ms.begin(), ms.end());
  row->ms_median = ms[ms.size() / 2];
  row->ms_min = ms.front();
  row->ms_max = ms.back();
}

size_t L2Bytes() {
  int device = 0, l2 = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device);
  return static_cast<size_t>(l2);
}

// Copies of the inputs needed so that consecutive runs read more than twice the L2 cache.
int CopiesFor(size_t bytes_per_copy) {
  const size_t want = 2 * L2Bytes();
  return static_cast<int>(std::clamp<size_t>((want + bytes_per_copy - 1) / bytes_per_copy, 1, 16));
}

// Scored pairs of a HISA selection: complete blocks scored in stage 1 plus candidate keys.
double HisaPairs(const IndexerConfig& cfg, const std::vector<int32_t>& blocks,
                 const std::vector<int64_t>& lengths) {
  double pairs = 0;
  for (size_t t = 0; t < lengths.size(); ++t) {
    const int64_t length = lengths[t];
    if (length <= 0) continue;
    const int64_t own = (length - 1) / cfg.block_size;
    pairs += std::max<int64_t>(own - 1, 0);  // stage 1 (scored even when o + 1 <= m)
    for (int i = 0; i < cfg.block_budget; ++i) {
      const int32_t j = blocks[t * cfg.block_budget + i];
      if (j < 0) continue;
      pairs += std::min<int64_t>(cfg.block_size, length - int64_t{j} * cfg.block_size);
    }
  }
  return pairs;
}

void Rates(const IndexerConfig& cfg, CudaBenchRow* row) {
  const double seconds = row->ms_median * 1e-3;
  row->tflops = 2.0 * cfg.num_heads * cfg.head_dim * row->pairs / seconds / 1e12;
  row->key_gbytes_s = row->pairs * (cfg.head_dim + 4) / seconds / 1e9;
}

Status BenchPrefill(const CudaBenchOptions& o, int64_t context,
                    const std::function<void(const std::string&)>& progress,
                    std::vector<CudaBenchRow>* rows) {
  const IndexerConfig& cfg = o.cfg;
  const int64_t T = std::min(o.prefill_queries, context);
  progress(fmt::format("prefill: {} queries at the end of {} keys", T, context));
  const Workload w = GenerateWorkload(cfg, {o.regime, context, T, o.seed});
  const size_t q_bytes = w.q.size(), k_bytes = w.k.size();
  const int copies = CopiesFor(q_bytes + k_bytes + w.w.size() * 4 + w.kscale.size() * 4);
  const int64_t slots = PooledSlotsForRows(cfg, context);
  std::vector<Device> q(copies), wt(copies), k(copies), ks(copies), pk(copies), ps(copies);
  for (int c = 0; c < copies; ++c) {
    BENCH_TRY(q[c].Upload(w.q));
    BENCH_TRY(wt[c].Upload(w.w));
    BENCH_TRY(k[c].Upload(w.k));
    BENCH_TRY(ks[c].Upload(w.kscale));
    BENCH_TRY(pk[c].Alloc(slots * cfg.head_dim));
    BENCH_TRY(ps[c].Alloc(slots * 4));
  }
  Device d_ks, d_ke, d_starts, d_lens, indices, blocks;
  BENCH_TRY(d_ks.Upload(w.ks));
  BENCH_TRY(d_ke.Upload(w.ke));
  BENCH_TRY(d_starts.Upload(w.seq_starts));
  BENCH_TRY(d_lens.Upload(w.seq_lens));
  BENCH_TRY(indices.Alloc(T * cfg.top_k * 4));
  BENCH_TRY(blocks.Alloc(T * cfg.block_budget * 4));
  const auto inputs = [&](int c) {
    PrefillInputs in;
    in.q = q[c].as<void>();
    in.w = wt[c].as<float>();
    in.keys = {k[c].as<void>(), ks[c].as<float>(), context};
    in.ks = d_ks.as<int32_t>();
    in.ke = d_ke.as<int32_t>();
    in.num_queries = T;
    return in;
  };
  RunOptions run = TimedRun(o);
  std::vector<int64_t> lengths(T);
  double flat_pairs = 0;
  for (int64_t t = 0; t < T; ++t) {
    lengths[t] = w.ke[t] - w.ks[t];
    flat_pairs += static_cast<double>(lengths[t]);
  }
  const auto base_row = [&](const std::string& method) {
    CudaBenchRow row;
    row.phase = "prefill";
    row.method = method;
    row.context = context;
    row.queries = T;
    return row;
  };
  std::vector<float> ms;
  float eager = 0;
  size_t workspace = 0;
  double flat_ms = 0;
  if (o.scoring) {
    // The scoring kernel alone: logits for every (query, key), like DeepGEMM's fp8_mqa_logits.
    const int64_t stride = (context + 3) / 4 * 4;
    Device logits;
    BENCH_TRY(logits.Alloc(T * stride * 4));
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) { return FlatLogitsPrefill(cfg, inputs(c), logits.as<float>(), stride, run); },
        &ms, &eager));
    CudaBenchRow row = base_row("score");
    Fill(&row, ms, eager);
    row.pairs = flat_pairs;
    Rates(cfg, &row);
    rows->push_back(row);
  }
  if (o.flat) {
    run.workspace_bytes = &workspace;
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) { return FlatTopkPrefill(cfg, inputs(c), {indices.as<int32_t>()}, run); }, &ms, &eager));
    CudaBenchRow row = base_row("flat");
    Fill(&row, ms, eager);
    row.pairs = flat_pairs;
    row.workspace_bytes = static_cast<double>(workspace);
    Rates(cfg, &row);
    flat_ms = row.ms_median;
    rows->push_back(row);
  }
  if (o.hisa) {
    run.workspace_bytes = nullptr;
    const auto pooled = [&](int c) {
      return PooledKeys{pk[c].as<void>(), ps[c].as<float>(), slots};
    };
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) {
          return BuildPooledKeysPrefill(cfg, inputs(c).keys, d_starts.as<int32_t>(),
                                        d_lens.as<int32_t>(), 1, pooled(c), run);
        },
        &ms, &eager));
    CudaBenchRow pool = base_row("pool");
    Fill(&pool, ms, eager);
    pool.key_gbytes_s = context * (cfg.head_dim + 4.0) / (pool.ms_median * 1e-3) / 1e9;
    rows->push_back(pool);
    run.workspace_bytes = &workspace;
    TopkOutputs out;
    out.indices = indices.as<int32_t>();
    out.blocks = blocks.as<int32_t>();
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) { return HisaTopkPrefill(cfg, inputs(c), pooled(c), out, run); }, &ms, &eager));
    CudaBenchRow row = base_row("hisa");
    Fill(&row, ms, eager);
    std::vector<int32_t> host_blocks(T * cfg.block_budget);
    BENCH_CUDA(cudaMemcpy(host_blocks.data(), blocks.as<int32_t>(), host_blocks.size() * 4,
                          cudaMemcpyDeviceToHost));
    row.pairs = HisaPairs(cfg, host_blocks, lengths);
    row.workspace_bytes = static_cast<double>(workspace);
    Rates(cfg, &row);
    if (flat_ms > 0) row.speedup = flat_ms / row.ms_median;
    rows->push_back(row);
  }
  return {};
}

Status BenchDecode(const CudaBenchOptions& o, int64_t context, int32_t batch, int32_t next_n,
                   const std::function<void(const std::string&)>& progress,
                   std::vector<CudaBenchRow>* rows) {
  const IndexerConfig& cfg = o.cfg;
  constexpr int32_t kPage = 64;
  progress(fmt::format("decode: batch {} x {} keys, next_n {}", batch, context, next_n));
  const int64_t T = int64_t{batch} * next_n;
  // One sequence's keys, laid into every batch element's own (shuffled) pages.
  const Workload w =
      GenerateWorkload(cfg, {o.regime, context, std::min<int64_t>(T, context), o.seed + 1});
  std::vector<uint8_t> q(T * cfg.num_heads * cfg.head_dim);
  std::vector<float> wt(T * cfg.num_heads);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t src = t % w.num_queries;
    std::copy_n(w.q.begin() + src * cfg.num_heads * cfg.head_dim, cfg.num_heads * cfg.head_dim,
                q.begin() + t * cfg.num_heads * cfg.head_dim);
    std::copy_n(w.w.begin() + src * cfg.num_heads, cfg.num_heads, wt.begin() + t * cfg.num_heads);
  }
  const int32_t pages_per_seq = static_cast<int32_t>((context + kPage - 1) / kPage);
  const int64_t num_pages = int64_t{pages_per_seq} * batch;
  std::vector<int32_t> order(num_pages);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed));
  std::vector<int32_t> table(num_pages), lens(batch, static_cast<int32_t>(context));
  for (int64_t i = 0; i < num_pages; ++i) table[i] = order[i];
  const size_t cache_bytes = num_pages * kPage * (cfg.head_dim + 4);
  const int copies = CopiesFor(cache_bytes);
  std::vector<Device> k(copies), ks(copies), pk(copies), ps(copies);
  const int64_t slots = PooledSlotsForPages(cfg, num_pages, kPage);
  {
    std::vector<uint8_t> paged(num_pages * kPage * cfg.head_dim, 0);
    std::vector<float> paged_scale(num_pages * kPage, 0.0f);
    for (int32_t b = 0; b < batch; ++b) {
      for (int64_t pos = 0; pos < context; ++pos) {
        const int64_t row = int64_t{table[b * pages_per_seq + pos / kPage]} * kPage + pos % kPage;
        std::copy_n(w.k.begin() + pos * cfg.head_dim, cfg.head_dim,
                    paged.begin() + row * cfg.head_dim);
        paged_scale[row] = w.kscale[pos];
      }
    }
    for (int c = 0; c < copies; ++c) {
      BENCH_TRY(k[c].Upload(paged));
      BENCH_TRY(ks[c].Upload(paged_scale));
      BENCH_TRY(pk[c].Alloc(slots * cfg.head_dim));
      BENCH_TRY(ps[c].Alloc(slots * 4));
    }
  }
  Device d_q, d_w, d_table, d_lens, indices, blocks;
  BENCH_TRY(d_q.Upload(q));
  BENCH_TRY(d_w.Upload(wt));
  BENCH_TRY(d_table.Upload(table));
  BENCH_TRY(d_lens.Upload(lens));
  BENCH_TRY(indices.Alloc(T * cfg.top_k * 4));
  BENCH_TRY(blocks.Alloc(T * cfg.block_budget * 4));
  const auto inputs = [&](int c) {
    DecodeInputs in;
    in.q = d_q.as<void>();
    in.w = d_w.as<float>();
    in.cache = {k[c].as<void>(), ks[c].as<float>(), num_pages, kPage};
    in.seqs = {d_table.as<int32_t>(), pages_per_seq, d_lens.as<int32_t>(), batch};
    in.next_n = next_n;
    return in;
  };
  RunOptions run = TimedRun(o);
  std::vector<int64_t> lengths(T);
  double flat_pairs = 0;
  for (int64_t t = 0; t < T; ++t) {
    lengths[t] = context - next_n + (t % next_n) + 1;
    flat_pairs += static_cast<double>(lengths[t]);
  }
  const auto base_row = [&](const std::string& method) {
    CudaBenchRow row;
    row.phase = "decode";
    row.method = method;
    row.context = context;
    row.queries = batch;
    row.next_n = next_n;
    return row;
  };
  std::vector<float> ms;
  float eager = 0;
  size_t workspace = 0;
  double flat_ms = 0;
  if (o.flat) {
    run.workspace_bytes = &workspace;
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) { return FlatTopkDecode(cfg, inputs(c), {indices.as<int32_t>()}, run); }, &ms, &eager));
    CudaBenchRow row = base_row("flat");
    Fill(&row, ms, eager);
    row.pairs = flat_pairs;
    row.workspace_bytes = static_cast<double>(workspace);
    Rates(cfg, &row);
    flat_ms = row.ms_median;
    rows->push_back(row);
  }
  if (o.hisa) {
    for (int c = 0; c < copies; ++c) {
      BENCH_TRY(BuildPooledKeysPaged(cfg, inputs(c).cache, inputs(c).seqs,
                                     {pk[c].as<void>(), ps[c].as<float>(), slots}, run));
    }
    TopkOutputs out;
    out.indices = indices.as<int32_t>();
    out.blocks = blocks.as<int32_t>();
    BENCH_TRY(TimeIt(
        o.warmup, o.repeats, copies,
        [&](int c) {
          return HisaTopkDecode(cfg, inputs(c), {pk[c].as<void>(), ps[c].as<float>(), slots}, out,
                                run);
        },
        &ms, &eager));
    CudaBenchRow row = base_row("hisa");
    Fill(&row, ms, eager);
    std::vector<int32_t> host_blocks(T * cfg.block_budget);
    BENCH_CUDA(cudaMemcpy(host_blocks.data(), blocks.as<int32_t>(), host_blocks.size() * 4,
                          cudaMemcpyDeviceToHost));
    row.pairs = HisaPairs(cfg, host_blocks, lengths);
    row.workspace_bytes = static_cast<double>(workspace);
    Rates(cfg, &row);
    if (flat_ms > 0) row.speedup = flat_ms / row.ms_median;
    rows->push_back(row);
  }
  return {};
}

}  // namespace

Status RunCudaBench(const CudaBenchOptions& options,
                    const std::function<void(const std::string&)>& progress,
                    std::vector<CudaBenchRow>* rows) {
  std::string why;
  if (!BackendAvailable(Backend::kCuda, &why)) {
    return {StatusCode::kUnsupported, "backend = cuda: " + why};
  }
  // The decode inputs divide by both (a batch or next_n of 0 would stop the sweep with SIGFPE).
  for (int32_t batch : options.decode_batches) {
    if (batch < 1) return {StatusCode::kInvalidArgument, fmt::format("decode batch {}", batch)};
  }
  for (int32_t next_n : options.next_ns) {
    if (next_n < 1) return {StatusCode::kInvalidArgument, fmt::format("next_n {}", next_n)};
  }
  for (int64_t context : options.prefill_contexts) {
    BENCH_TRY(BenchPrefill(options, context, progress, rows));
  }
  for (int64_t context : options.decode_contexts) {
    for (int32_t next_n : options.next_ns) {
      for (int32_t batch : options.decode_batches) {
        BENCH_TRY(BenchDecode(options, context, batch, next_n, progress, rows));
      }
    }
  }
  return {};
}

std::string CudaDeviceSummary() {
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    return "no CUDA device";
  }
  return fmt::format("{}, {} SMs, {:.0f} GiB, L2 {} MiB", prop.name, prop.multiProcessorCount,
                     prop.totalGlobalMem / 1073741824.0, prop.l2CacheSize >> 20);
}

#else  // built without CUDA

Status RunCudaBench(const CudaBenchOptions&, const std::function<void(const std::string&)>&,
                    std::vector<CudaBenchRow>*) {
  return {StatusCode::kUnsupported, "backend = cuda: the hisa command line was built without CUDA"};
}

std::string CudaDeviceSummary() {
  return "built without CUDA";
}

#endif

}  // namespace hisa::tools
