// Internal: pooled keys (SPEC.md section 2, step 2), bit-exact on every backend.
//
// kbar[d] = (sum over the block's B tokens, in order, of float(k[s][d]) * kscale[s]) / B, every
// product and sum rounded to float32 (no fused multiply-add), then re-quantized to the key format:
// FP8 with scale Fp8Scale(amax(kbar)), or BF16 with scale 1.
#pragma once

#include <cstdint>

#include "core/query.h"
#include "hisa/types.h"

namespace hisa::core {

/// Pools the B keys of `keys` at positions [first_pos, first_pos + B) into one slot.
void PoolBlock(const IndexerConfig& cfg, const SequenceKeys& keys, int64_t first_pos,
               void* out_k, float* out_scale, float* scratch /* [D] */);

}  // namespace hisa::core
