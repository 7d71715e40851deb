// The portable kernel (any CPU), and the float layout it shares with the AVX-512 and AVX2
// kernels.
#include <bit>
#include <cstdint>
#include <cstring>

#include "core/topk.h"
#include "cpu/kernels.h"

namespace hisa::cpu {
namespace {

int64_t RoundUp(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

float Bf16Value(uint16_t bits) {
  return std::bit_cast<float>(uint32_t{bits} << 16);
}

float DecodeAt(const void* data, DType dtype, int64_t i) {
  return dtype == DType::kFp8E4M3 ? Fp8ToFloatTable()[static_cast<const uint8_t*>(data)[i]]
                                  : Bf16Value(static_cast<const uint16_t*>(data)[i]);
}

bool AlwaysSupported() {
  return true;
}

KernelLayout ScalarLayout(const IndexerConfig& cfg) {
  return FloatLayout(cfg, 1);
}

void ScalarScoreTiles(const KernelLayout& layout, const void* query, const void* tiles,
                      int num_tiles, const float* kscale, float* scores) {
  const int32_t dim = layout.dim, stride = layout.padded_heads;
  const float* q = static_cast<const float*>(query);  // [D][padded_heads]
  const float* w = q + int64_t{dim} * stride;
  for (int t = 0; t < num_tiles; ++t) {
    const float* tile = static_cast<const float*>(tiles) + int64_t{t} * dim * kTileKeys;
    float sum[kTileKeys] = {};
    for (int32_t h = 0; h < layout.heads; ++h) {
      float acc[kTileKeys] = {};
      for (int32_t d = 0; d < dim; ++d) {
        const float qd = q[int64_t{d} * stride + h];
        for (int s = 0; s < kTileKeys; ++s) acc[s] = acc[s] + qd * tile[d * kTileKeys + s];
      }
      for (int s = 0; s < kTileKeys; ++s) {
        const float relu = acc[s] > 0.0f ? acc[s] : 0.0f;  // ReLU(NaN) = 0
        sum[s] = sum[s] + w[h] * relu;
      }
    }
    for (int s = 0; s < kTileKeys; ++s) {
      scores[t * kTileKeys + s] = sum[s] * kscale[t * kTileKeys + s] + 0.0f;
    }
  }
}

}  // namespace

KernelLayout FloatLayout(const IndexerConfig& cfg, int32_t head_block) {
  KernelLayout layout;
  layout.heads = cfg.num_heads;
  layout.padded_heads = static_cast<int32_t>(RoundUp(cfg.num_heads, head_block));
  layout.dim = cfg.head_dim;
  layout.padded_dim = cfg.head_dim;
  layout.query_bytes =
      RoundUp(int64_t{layout.dim + 1} * layout.padded_heads * int64_t{sizeof(float)}, 64);
  layout.tile_bytes = int64_t{layout.dim} * kTileKeys * int64_t{sizeof(float)};
  return layout;
}

void PrepareFloatQuery(const KernelLayout& layout, DType q_dtype, const void* q, const float* w,
                       void* out) {
  const int32_t stride = layout.padded_heads;
  float* q_out = static_cast<float*>(out);  // [D][padded_heads]
  float* w_out = q_out + int64_t{layout.dim} * stride;
  std::memset(out, 0, static_cast<size_t>(layout.query_bytes));
  for (int32_t h = 0; h < layout.heads; ++h) {
    for (int32_t d = 0; d < layout.dim; ++d) {
      q_out[int64_t{d} * stride + h] = DecodeAt(q, q_dtype, int64_t{h} * layout.dim + d);
    }
    w_out[h] = w[h];
  }
}

void PackFloatTile(const KernelLayout& layout, DType k_dtype, const void* const* rows, void* out) {
  float* tile = static_cast<float*>(out);  // [D][kTileKeys]
  const float* fp8_values = Fp8ToFloatTable();
  for (int s = 0; s < kTileKeys; ++s) {
    if (rows[s] == nullptr) {
      for (int32_t d = 0; d < layout.dim; ++d) tile[d * kTileKeys + s] = 0.0f;
    } else if (k_dtype == DType::kFp8E4M3) {
      const uint8_t* codes = static_cast<const uint8_t*>(rows[s]);
      for (int32_t d = 0; d < layout.dim; ++d) tile[d * kTileKeys + s] = fp8_values[codes[d]];
    } else {
      const uint16_t* bits = static_cast<const uint16_t*>(rows[s]);
      for (int32_t d = 0; d < layout.dim; ++d) tile[d * kTileKeys + s] = Bf16Value(bits[d]);
    }
  }
}

int ScalarAppendKeys(const float* scores, int count, int64_t first_pos, uint32_t floor,
                     uint64_t* out) {
  int written = 0;
  for (int i = 0; i < count; ++i) {
    if (core::ScoreBits(scores[i]) >= floor)
      out[written++] = core::OrderKey(scores[i], first_pos + i);
  }
  return written;
}

const Kernel kScalarKernel = {
    .name = "scalar",
    .supported = &AlwaysSupported,
    .layout = &ScalarLayout,
    .prepare_query = &PrepareFloatQuery,
    .pack_tile = &PackFloatTile,
    .score_tiles = &ScalarScoreTiles,
    .append_keys = &ScalarAppendKeys,
    .keep_in_range = &KeepInRange,
    .begin_scores = nullptr,
    .end_scores = nullptr,
};

}  // namespace hisa::cpu
