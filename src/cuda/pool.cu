// Pooled keys on the GPU: one CTA of D = 128 threads per block, one thread per dimension summing
// the block's keys in order with float32 roundings (no fused multiply-add), exactly as the CPU
// does, so both backends produce the same bytes.
#include <cuda_fp8.h>

#include "cuda/common.h"
#include "cuda/divmod.cuh"
#include "cuda/pool.h"

namespace hisa::cuda {
namespace {

constexpr int kDim = 128;
constexpr int kSplit = 256;  // CTAs per sequence (grid y); each walks every kSplit-th block
constexpr int kUnroll = 8;   // rows loaded ahead of the in-order sum

struct PoolArgs {
  const uint8_t* k;
  const float* kscale;
  int64_t num_rows;
  uint8_t* pooled_k;
  float* pooled_scale;
  int64_t num_slots;
  int32_t block_size;
  bool ue8m0;
};

__device__ __forceinline__ float Fp8Value(uint8_t code) {
  __nv_fp8_e4m3 v;
  v.__x = code;
  return static_cast<float>(v);
}

__device__ float Fp8ScaleOf(float amax, bool ue8m0) {
  if (!(amax > 0.0f) || isinf(amax)) return 1.0f;
  const float scale = __fdiv_rn(amax, 448.0f);
  if (!ue8m0) return scale;
  int exponent = 0;
  const float fraction = frexpf(scale, &exponent);
  return fraction == 0.5f ? scale : ldexpf(1.0f, exponent);
}

// Pools the block whose key of position i is at row row_of(i); writes slot `slot`.
template <typename RowOf>
__device__ void PoolOne(const PoolArgs& a, RowOf row_of, int64_t slot) {
  __shared__ float amax_warp[kDim / 32];
  const int d = threadIdx.x;
  float sum = 0.0f;
  for (int i0 = 0; i0 < a.block_size; i0 += kUnroll) {
    // Loads first (independent, in flight together), then the sum in order.
    float value[kUnroll], scale[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t row = i0 + u < a.block_size ? row_of(i0 + u) : -1;
      const bool ok = row >= 0 && row < a.num_rows;
      scale[u] = ok ? (a.kscale ? a.kscale[row] : 1.0f) : 0.0f;
      value[u] = ok ? Fp8Value(a.k[row * kDim + d]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i0 + u < a.block_size) sum = __fadd_rn(sum, __fmul_rn(value[u], scale[u]));
    }
  }
  const float mean = __fdiv_rn(sum, static_cast<float>(a.block_size));
  float amax = fabsf(mean);
  for (int offset = 16; offset > 0; offset >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));  // NaN never wins
  }
  if (d % 32 == 0) amax_warp[d / 32] = amax;
  __syncthreads();
  amax = fmaxf(fmaxf(amax_warp[0], amax_warp[1]), fmaxf(amax_warp[2], amax_warp[3]));
  const float scale = Fp8ScaleOf(amax, a.ue8m0);
  if (slot >= 0 && slot < a.num_slots) {
    a.pooled_k[slot * kDim + d] = static_cast<uint8_t>(
        __nv_cvt_float_to_fp8(__fdiv_rn(mean, scale), __NV_SATFINITE, __NV_E4M3));
    if (d == 0) a.pooled_scale[slot] = scale;
  }
  __syncthreads();  // amax_warp is reused by the next block
}

__global__ void PoolRowsKernel(PoolArgs a, const int32_t* seq_starts, const int32_t* seq_lens) {
  const int seq = blockIdx.x;
  const int64_t start = seq_starts[seq];
  const int64_t blocks = max(seq_lens[seq], 0) / a.block_size;
  const int64_t first_slot = (start + a.block_size - 1) / a.block_size;
  for (int64_t j = blockIdx.y; j < blocks; j += gridDim.y) {
    const int64_t first_row = start + j * a.block_size;
    PoolOne(a, [&](int i) { return first_row + i; }, first_slot + j);
  }
}

__global__ void PoolPagedKernel(PoolArgs a, const int32_t* block_table, int32_t bt_stride,
                                const int32_t* context_lens, const int32_t* old_lens,
                                int32_t page_size, int64_t num_pages) {
  const int seq = blockIdx.x;
  const int32_t* pages = block_table + int64_t{seq} * bt_stride;
  const int64_t capacity = int64_t{bt_stride} * page_size;
  const int64_t len = min(int64_t{max(context_lens[seq], 0)}, capacity);
  const int64_t old = old_lens ? min(int64_t{max(old_lens[seq], 0)}, len) : 0;
  const int slots_per_page = max(1, page_size / a.block_size);
  const int pages_per_block = max(1, a.block_size / page_size);
  for (int64_t j = old / a.block_size + blockIdx.y; j < len / a.block_size; j += gridDim.y) {
    const int32_t first = static_cast<int32_t>(j) * a.block_size;
    // Every key of every block: DivMod divides by shifts (positions fit 32 bits).
    const auto row_of = [&](int i) -> int64_t {
      int offset;
      const int64_t page = pages[DivMod(first + i, page_size, &offset)];
      return page >= 0 && page < num_pages ? page * page_size + offset : -1;
    };
    const int64_t page = slots_per_page > 1 ? pages[j / slots_per_page] : pages[j * pages_per_block];
    const int64_t slot = page < 0 || page >= num_pages
                             ? -1
                             : (slots_per_page > 1 ? page * slots_per_page + j % slots_per_page
                                                   : page);
    PoolOne(a, row_of, slot);
  }
}

}  // namespace

Status LaunchPoolRows(const IndexerConfig& cfg, const KeyRows& keys, const int32_t* seq_starts,
                      const int32_t* seq_lens, int32_t num_seqs, const PooledKeys& pooled,
                      cudaStream_t stream) {
  if (num_seqs == 0) return {};
  PoolArgs a{static_cast<const uint8_t*>(keys.k), keys.kscale, keys.num_keys,
             static_cast<uint8_t*>(pooled.k), pooled.kscale, pooled.num_slots, cfg.block_size,
             cfg.pooled_scale_rule == ScaleRule::kUe8m0};
  PoolRowsKernel<<<dim3(num_seqs, kSplit), kDim, 0, stream>>>(a, seq_starts, seq_lens);
  HISA_CUDA_CHECK_LAUNCH("pooled-key kernel launch");
  return {};
}

Status LaunchPoolPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                       const PagedSequences& seqs, const int32_t* old_lens,
                       const PooledKeys& pooled, cudaStream_t stream) {
  if (seqs.num_seqs == 0) return {};
  PoolArgs a{static_cast<const uint8_t*>(cache.k), cache.kscale,
             cache.num_pages * cache.page_size, static_cast<uint8_t*>(pooled.k), pooled.kscale,
             pooled.num_slots, cfg.block_size, cfg.pooled_scale_rule == ScaleRule::kUe8m0};
  PoolPagedKernel<<<dim3(seqs.num_seqs, kSplit), kDim, 0, stream>>>(
      a, seqs.block_table, seqs.max_pages_per_seq, seqs.context_lens, old_lens, cache.page_size,
      cache.num_pages);
  HISA_CUDA_CHECK_LAUNCH("pooled-key kernel launch");
  return {};
}

}  // namespace hisa::cuda
