// Block overlap of neighbouring queries: for 1024 queries at the end of a context, the CPU HISA
// selection per query, then the mean union of the block sets of G consecutive queries, in units
// of m = 64 blocks. Built against the release libraries:
//   g++ -O2 -std=c++20 -fopenmp -Iinclude block_overlap.cc build/release/libhisa_eval.a \
//       build/release/libhisa.a -lcudart -lcuda -o block_overlap && ./block_overlap 131072
#include <hisa/hisa.h>
#include <hisa/workload.h>
#include <cstdio>
#include <set>
#include <vector>
using namespace hisa;
int main(int argc, char** argv) {
  IndexerConfig cfg;  // defaults
  int64_t ctx = argc > 1 ? atoll(argv[1]) : 131072;
  for (Regime r : AllRegimes()) {
    Workload w = GenerateWorkload(cfg, {r, ctx, 1024, 0});
    int64_t slots = PooledSlotsForRows(cfg, w.num_keys);
    std::vector<uint8_t> pk(slots * cfg.head_dim); std::vector<float> ps(slots);
    RunOptions run;
    PooledKeys pooled{pk.data(), ps.data(), slots};
    Status s = BuildPooledKeysPrefill(cfg, w.Keys(), w.seq_starts.data(), w.seq_lens.data(), (int)w.seq_starts.size(), pooled, run);
    if (!s.ok()) { printf("%s\n", s.ToString().c_str()); return 1; }
    std::vector<int32_t> idx(1024 * cfg.top_k), blocks(1024 * cfg.block_budget);
    TopkOutputs out; out.indices = idx.data(); out.blocks = blocks.data();
    s = HisaTopkPrefill(cfg, w.Inputs(), ConstPooledKeys{pk.data(), ps.data(), slots}, out, run);
    if (!s.ok()) { printf("%s\n", s.ToString().c_str()); return 1; }
    printf("%-12s", RegimeName(r));
    for (int G : {2, 4, 8, 16}) {
      double tot = 0; int n = 0;
      for (int g0 = 0; g0 < 1024; g0 += G) {
        std::set<int> u;
        for (int t = g0; t < g0 + G; ++t) for (int i = 0; i < cfg.block_budget; ++i) { int b = blocks[t*cfg.block_budget+i]; if (b >= 0) u.insert(b); }
        tot += u.size(); ++n;
      }
      printf("  G=%d union/64=%.2f", G, tot / n / 64.0);
    }
    printf("\n");
  }
}
