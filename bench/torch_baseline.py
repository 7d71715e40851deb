#!/usr/bin/env python3
"""Plain PyTorch flat indexer on the same GPU, against hisa's numbers from the same run.

usage: bench/torch_baseline.py HISA_BENCH_JSON [--contexts 8192,32768,131072] [--queries 1024]

What a user gets without a fused kernel: per chunk of queries, the FP8 inputs upcast to bf16,
einsum over heads, ReLU, weighted head sum, key scale, causal mask, torch.topk. Timed with CUDA
events after a warm-up, median of --repeats, and printed next to hisa's flat and HISA prefill
medians read from HISA_BENCH_JSON (the --json output of hisa_gpu_bench in the same run).
"""
import argparse
import json
import statistics

import torch


def flat_indexer(q, w, k, kscale, ke, top_k, chunk):
    """q [T,H,D] bf16, w [T,H] f32, k [N,D] bf16, kscale [N] f32, ke [T] -> indices [T, top_k]."""
    T, N = q.shape[0], k.shape[0]
    out = torch.empty(T, top_k, dtype=torch.int64, device=q.device)
    positions = torch.arange(N, device=q.device)
    for t0 in range(0, T, chunk):
        qc = q[t0:t0 + chunk]
        s = torch.einsum("thd,nd->thn", qc, k)                     # [c, H, N] bf16
        logits = (torch.relu(s).float() * w[t0:t0 + chunk, :, None]).sum(1) * kscale
        logits.masked_fill_(positions[None, :] >= ke[t0:t0 + chunk, None], float("-inf"))
        out[t0:t0 + chunk] = torch.topk(logits, top_k, dim=1).indices
    return out


def time_ms(fn, repeats):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hisa_json")
    parser.add_argument("--contexts", default="8192,32768,65536,131072")
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=64, help="queries per einsum")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    hisa = {}
    for line in open(args.hisa_json):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r["phase"] == "prefill":
                hisa[(r["method"], r["context"])] = r["ms_median"]

    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()} | torch {torch.__version__} | plain PyTorch flat "
          f"indexer (bf16 einsum, chunks of {args.chunk} queries, torch.topk), median of "
          f"{args.repeats}")
    print(f"{'context':>8} {'queries':>7} {'torch ms':>10} {'hisa flat ms':>13} {'ratio':>7} "
          f"{'hisa HISA ms':>13} {'ratio':>7}")
    for n in [int(c) for c in args.contexts.split(",")]:
        T, H, D = min(args.queries, n), args.heads, 128
        q = (torch.randn(T, H, D, device=dev) * 8).to(torch.float8_e4m3fn).to(torch.bfloat16)
        k = (torch.randn(n, D, device=dev) * 100).to(torch.float8_e4m3fn).to(torch.bfloat16)
        w = torch.rand(T, H, device=dev) * 0.01
        kscale = torch.rand(n, device=dev) * 0.01
        ke = torch.arange(n - T + 1, n + 1, device=dev)
        ms = time_ms(lambda: flat_indexer(q, w, k, kscale, ke, args.top_k, args.chunk),
                     args.repeats)
        flat, hisa_ms = hisa.get(("flat", n)), hisa.get(("hisa", n))
        fmt = lambda x: f"{x:13.3f}" if x else f"{'-':>13}"
        rat = lambda x: f"{ms / x:6.1f}x" if x else f"{'-':>7}"
        print(f"{n:8d} {T:7d} {ms:10.3f} {fmt(flat)} {rat(flat)} {fmt(hisa_ms)} {rat(hisa_ms)}")
        del q, k, w, kscale, ke
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
