#!/usr/bin/env python3
"""Plots flat vs HISA latency and speedup against context length from a GPU sweep table.

usage: bench/plot_gpu.py bench/results/<run>/bench.txt OUT.png

Reads the fixed-width table printed by hisa_gpu_bench (graph-replay medians) and draws, for
prefill (1024 queries) and decode (next_n = 1, one line per batch), the latency of flat and HISA
and the speedup HISA / flat.
"""
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    rows = []
    for line in open(path):
        parts = line.split()
        if len(parts) >= 6 and parts[0] in ("prefill", "decode"):
            rows.append({"phase": parts[0], "method": parts[1], "context": int(parts[2]),
                         "batch": int(parts[3]), "next_n": int(parts[4]), "ms": float(parts[5])})
    return rows


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    # Prefill.
    pre = defaultdict(dict)
    for r in rows:
        if r["phase"] == "prefill" and r["method"] in ("flat", "hisa"):
            pre[r["method"]][r["context"]] = r["ms"]
    ctx = sorted(set(pre["flat"]) & set(pre["hisa"]))
    ax = axes[0][0]
    ax.plot(ctx, [pre["flat"][c] for c in ctx], "o-", label="flat (score + top-k)")
    ax.plot(ctx, [pre["hisa"][c] for c in ctx], "s-", label="HISA (B=128, m=64)")
    ax.set(xscale="log", yscale="log", xlabel="context (keys)", ylabel="ms",
           title="prefill, 1024 queries: latency")
    ax.legend()
    ax = axes[0][1]
    ax.plot(ctx, [pre["flat"][c] / pre["hisa"][c] for c in ctx], "o-", color="C2")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set(xscale="log", xlabel="context (keys)", ylabel="flat / HISA",
           title="prefill: HISA speedup")
    # Decode, next_n = 1.
    dec = defaultdict(dict)
    for r in rows:
        if r["phase"] == "decode" and r["next_n"] == 1 and r["method"] in ("flat", "hisa"):
            dec[(r["method"], r["batch"])][r["context"]] = r["ms"] * 1000.0
    batches = sorted({b for (_, b) in dec})
    ax = axes[1][0]
    for i, b in enumerate(batches):
        cs = sorted(dec[("flat", b)])
        ax.plot(cs, [dec[("flat", b)][c] for c in cs], "o-", color=f"C{i}", label=f"flat, batch {b}")
        ax.plot(cs, [dec[("hisa", b)][c] for c in cs], "s--", color=f"C{i}", label=f"HISA, batch {b}")
    ax.set(xscale="log", yscale="log", xlabel="context (keys)", ylabel="us",
           title="decode, next_n = 1: latency")
    ax.legend(fontsize=7)
    ax = axes[1][1]
    for i, b in enumerate(batches):
        cs = sorted(dec[("flat", b)])
        ax.plot(cs, [dec[("flat", b)][c] / dec[("hisa", b)][c] for c in cs], "o-", color=f"C{i}",
                label=f"batch {b}")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set(xscale="log", xlabel="context (keys)", ylabel="flat / HISA", title="decode: HISA speedup")
    ax.legend(fontsize=7)
    fig.suptitle("hisa on " + open(sys.argv[1]).readline().lstrip("# ").strip())
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
