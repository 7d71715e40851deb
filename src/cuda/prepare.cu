#include <algorithm>

#include "cuda/common.h"
#include "cuda/launch.cuh"
#include "cuda/prepare.h"

namespace hisa::cuda {
namespace {

constexpr int kThreads = 256;
int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

// HISA's own block and stage-1 block range of query t (prefill: pooled slots from the base row).
__device__ __forceinline__ void Stage1Ranges(const QueryRanges& r, int t, int32_t length,
                                             int32_t base, bool paged) {
  if (r.lo1 == nullptr) return;
  const int32_t B = r.block_size;
  const int32_t own = length > 0 ? (length - 1) / B : -1;
  r.own[t] = own;
  const int32_t first = paged ? 0 : (base + B - 1) / B;
  r.lo1[t] = first + 1;
  r.hi1[t] = first + max(own, 1);  // blocks 1 .. own - 1; empty when own <= 1
}

__global__ void FlatPrefillKernel(const int32_t* ks, const int32_t* ke, int32_t n, int64_t keys,
                                  int32_t max_len, QueryRanges r) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const int64_t lo = min(int64_t{max(ks[t], 0)}, keys);
  const int64_t hi = min(min(max(int64_t{ke[t]}, lo), keys), lo + max_len);
  r.lo[t] = static_cast<int32_t>(lo);
  r.hi[t] = static_cast<int32_t>(hi);
  r.base[t] = static_cast<int32_t>(lo);
  r.length[t] = static_cast<int32_t>(hi - lo);
  Stage1Ranges(r, t, static_cast<int32_t>(hi - lo), static_cast<int32_t>(lo), false);
}

__global__ void FlatDecodeKernel(const int32_t* lens, int32_t num_seqs, int32_t next_n,
                                 int64_t capacity, QueryRanges r) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= num_seqs * next_n) return;
  const int b = t / next_n, i = t % next_n;
  const int64_t len = min(int64_t{max(lens[b], 0)}, capacity);
  const int64_t visible = max(len - next_n + i + 1, int64_t{0});
  r.lo[t] = 0;
  r.hi[t] = static_cast<int32_t>(visible);
  r.base[t] = 0;
  r.length[t] = static_cast<int32_t>(visible);
  Stage1Ranges(r, t, static_cast<int32_t>(visible), 0, true);
}

__global__ void AllBlocksKernel(int32_t n, int32_t m, const int32_t* own, int32_t* blocks) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= int64_t{n} * m) return;
  const int32_t t = static_cast<int32_t>(i / m), j = static_cast<int32_t>(i % m);
  blocks[i] = j <= own[t] ? j : -1;
}

__global__ void FillOutsideKernel(float* logits, const int32_t* lo, const int32_t* hi,
                                  int64_t cols, int64_t stride) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  float* row = logits + blockIdx.y * stride;
  const int64_t l = lo[blockIdx.y], h = hi[blockIdx.y];
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < cols;
       c += int64_t{gridDim.x} * blockDim.x) {
    if (c < l || c >= h) row[c] = -INFINITY;
  }
}

}  // namespace

Status PrepareAllBlocks(int32_t num_queries, int32_t block_budget, const QueryRanges& r,
                        int32_t* blocks, cudaStream_t stream) {
  const int64_t n = int64_t{num_queries} * block_budget;
  if (n == 0) return {};
  return LaunchKernel("prepare kernel launch", AllBlocksKernel, {dim3(Blocks(n)), dim3(kThreads)},
                      stream, num_queries, block_budget, r.own, blocks);
}

Status FillOutside(float* logits, const int32_t* lo, const int32_t* hi, int32_t rows, int64_t cols,
                   int64_t stride, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return {};
  const int x = static_cast<int>(std::min<int64_t>(Blocks(cols), 64));
  return LaunchKernel("fill kernel launch", FillOutsideKernel, {dim3(x, rows), dim3(kThreads)},
                      stream, logits, lo, hi, cols, stride);
}

Status PrepareFlatPrefill(const int32_t* ks, const int32_t* ke, int32_t num_queries,
                          int64_t num_keys, int32_t max_len, const QueryRanges& r,
                          cudaStream_t stream) {
  if (num_queries == 0) return {};
  return LaunchKernel("prepare kernel launch", FlatPrefillKernel,
                      {dim3(Blocks(num_queries)), dim3(kThreads)}, stream, ks, ke, num_queries,
                      num_keys, max_len, r);
}

Status PrepareFlatDecode(const int32_t* context_lens, int32_t num_seqs, int32_t next_n,
                         int64_t capacity, const QueryRanges& r, cudaStream_t stream) {
  if (num_seqs == 0) return {};
  return LaunchKernel("prepare kernel launch", FlatDecodeKernel,
                      {dim3(Blocks(int64_t{num_seqs} * next_n)), dim3(kThreads)}, stream,
                      context_lens, num_seqs, next_n, capacity, r);
}

}  // namespace hisa::cuda
