#include "core/pool.h"

#include <cmath>

#include "hisa/numeric.h"

namespace hisa::core {

void PoolBlock(const IndexerConfig& cfg, const SequenceKeys& keys, int64_t first_pos,
               void* out_k, float* out_scale, float* scratch) {
  const int32_t dim = cfg.head_dim;
  for (int32_t d = 0; d < dim; ++d) scratch[d] = 0.0f;
  for (int64_t i = 0; i < cfg.block_size; ++i) {
    const int64_t row = keys.Row(first_pos + i);
    const float scale = keys.Scale(row);
    for (int32_t d = 0; d < dim; ++d) {
      const float product = DecodeElement(keys.k, cfg.k_dtype, row * dim + d) * scale;
      scratch[d] = scratch[d] + product;  // built with -ffp-contract=off: two roundings
    }
  }
  for (int32_t d = 0; d < dim; ++d) scratch[d] = scratch[d] / static_cast<float>(cfg.block_size);
  if (cfg.k_dtype == DType::kFp8E4M3) {
    *out_scale = QuantizeRowFp8(scratch, dim, cfg.pooled_scale_rule, static_cast<uint8_t*>(out_k));
  } else {
    uint16_t* out = static_cast<uint16_t*>(out_k);
    for (int32_t d = 0; d < dim; ++d) out[d] = FloatToBf16(scratch[d]);
    *out_scale = 1.0f;
  }
}

}  // namespace hisa::core
