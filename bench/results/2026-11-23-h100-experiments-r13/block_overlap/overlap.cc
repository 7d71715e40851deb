#include <cstdio>
#include <set>
#include <vector>
#include "hisa/hisa.h"
#include "hisa/workload.h"
using namespace hisa;
int main(int argc, char** argv) {
  IndexerConfig cfg;
  int64_t ctx = argc > 1 ? atoll(argv[1]) : 65536;
  for (Regime r : AllRegimes()) {
    Workload w = GenerateWorkload(cfg, {r, ctx, 1024, 0});
    std::vector<int32_t> slots(PooledSlotsForRows(cfg, w.num_keys) * 128 + 64);
    std::vector<uint8_t> pk(PooledSlotsForRows(cfg, w.num_keys) * 128);
    std::vector<float> ps(PooledSlotsForRows(cfg, w.num_keys));
    PooledKeys pooled; pooled.k = pk.data(); pooled.kscale = ps.data(); pooled.num_slots = PooledSlotsForRows(cfg, w.num_keys);
    RunOptions o; o.backend = Backend::kCpu;
    Status st = BuildPooledKeysPrefill(cfg, w.Keys(), w.seq_starts.data(), w.seq_lens.data(), (int32_t)w.seq_starts.size(), pooled, o);
    if (!st.ok()) { printf("pool: %s\n", st.message().c_str()); return 1; }
    std::vector<int32_t> idx(1024 * cfg.top_k), blocks(1024 * cfg.block_budget);
    TopkOutputs out{idx.data(), blocks.data(), nullptr};
    st = HisaTopkPrefill(cfg, w.Inputs(), ConstPooledKeys{pk.data(), ps.data(), pooled.num_slots}, out, o);
    if (!st.ok()) { printf("hisa: %s\n", st.message().c_str()); return 1; }
    for (int g : {2, 4}) {
      double sum = 0; int mx = 0;
      for (int t = 0; t < 1024; t += g) {
        std::set<int> u;
        for (int i = 0; i < g; ++i) for (int j = 0; j < cfg.block_budget; ++j) { int b = blocks[(t + i) * cfg.block_budget + j]; if (b >= 0) u.insert(b); }
        sum += u.size(); mx = std::max<int>(mx, u.size());
      }
      printf("%-12s ctx %lld group %d: union blocks mean %.1f (of %d per query), max %d\n", RegimeName(r), (long long)ctx, g, sum / (1024 / g), cfg.block_budget, mx);
    }
  }
}
