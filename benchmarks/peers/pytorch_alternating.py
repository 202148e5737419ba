#!/usr/bin/env python3
"""PyTorch's batch normalization timed against a copy of the same bytes, in alternating rounds.

The PyTorch column of benchmarks/README.md: the same five shapes, modes and method as the C# alternating harness
(`dotnet run -c Release --project benchmarks/BatchNorm.Benchmarks -- --alternate`), for the peer the performance issue
quotes (PyTorch 1.13, Debian's python3-torch: `apt-get install python3-torch`, then run this with /usr/bin/python3).
Nothing else in the repository needs it.

Each round is a timed loop of copies and a timed loop of PyTorch calls, each at least 20 ms, in that order in even
rounds and the reverse in odd ones, after a 400 ms warm-up. It prints the fastest round of PyTorch over the fastest
round of the copy, and the ratio of the medians ([8,16]: nanoseconds per call).

The calls are the ATen kernels behind torch.nn.BatchNorm, float32, eps 1e-3 (Keras' default):
- inference: torch.nn.functional.batch_norm(training=False) under no_grad, with running statistics;
- training: torch.nn.functional.batch_norm(training=True) under no_grad (batch statistics, running ones updated);
- backward: torch.ops.aten.native_batch_norm_backward from one training call's saved mean and inverse deviation,
  writing dx, dgamma and dbeta (what autograd calls, without the graph).
Channels-last shapes are NCHW tensors in torch.channels_last memory format; [N, C] shapes are plain 2-D tensors.

usage: pytorch_alternating.py [--threads N] [--rounds N] [--shape TEXT]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    ("[32,56,56,64] axis -1", (32, 64, 56, 56), True),
    ("[32,64,56,56] axis 1", (32, 64, 56, 56), False),
    ("[256,1024] axis -1", (256, 1024), False),
    ("[64,7,7,2048] axis -1", (64, 2048, 7, 7), True),
    ("[8,16] axis -1", (8, 16), False),
]
MODES = ["inference", "training", "backward"]
EPS = 1e-3
ROUND_SECONDS = 0.020
WARM_UP_SECONDS = 0.4


def calls_per_round(action):
    """Calls the action for the warm-up time; returns how many calls fill a round."""
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < WARM_UP_SECONDS or calls < 50:
        action()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(3, int(ROUND_SECONDS / per_call + 0.999))


def timed(action, calls):
    start = time.perf_counter_ns()
    for _ in range(calls):
        action()
    return (time.perf_counter_ns() - start) / calls


def measure(dims, channels_last, mode, rounds):
    generator = torch.Generator().manual_seed(42)
    x = torch.rand(dims, generator=generator) * 4 - 1
    dy = torch.rand(dims, generator=generator) - 0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    y = torch.empty_like(x)
    channels = dims[1]
    weight, bias = torch.ones(channels), torch.zeros(channels)
    running_mean, running_var = torch.zeros(channels), torch.ones(channels)
    _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var, True, 0.01, EPS)

    def copy():
        y.copy_(x)

    if mode == "inference":
        def call():
            F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.01, EPS)
    elif mode == "training":
        def call():
            F.batch_norm(x, running_mean, running_var, weight, bias, True, 0.01, EPS)
    else:
        def call():
            torch.ops.aten.native_batch_norm_backward(
                dy, x, weight, running_mean, running_var, save_mean, save_invstd, True, EPS, [True, True, True])

    actions = [copy, call]
    with torch.no_grad():
        counts = [calls_per_round(a) for a in actions]
        times = [[], []]
        for r in range(rounds):
            for k in ([0, 1] if r % 2 == 0 else [1, 0]):
                times[k].append(timed(actions[k], counts[k]))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--shape", action="append", default=[], help="shapes whose name contains TEXT")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [s for s in SHAPES if not args.shape or any(f in s[0] for f in args.shape)]
    print(f"# PyTorch {torch.__version__}: {args.rounds} rounds, {torch.get_num_threads()} threads, float32")
    print("| shape | mode | copy, fastest | PyTorch, fastest | ratio of fastest | ratio of medians |")
    print("|---|---|---:|---:|---:|---:|")
    table = {}
    for name, dims, channels_last in cases:
        for mode in MODES:
            copy, call = measure(dims, channels_last, mode, args.rounds)
            fastest = min(call) / min(copy)
            medians = statistics.median(call) / statistics.median(copy)
            print(f"| {name} | {mode} | {min(copy) / 1e3:.2f} us | {min(call) / 1e3:.2f} us | {fastest:.2f}x | {medians:.2f}x |", flush=True)
            small = x_elements(dims) < 4096
            table[(name, mode)] = f"{min(call):.0f} ns" if small else f"{fastest:.2f}x"
    print()
    print(f"threads {torch.get_num_threads()}, against a copy:")
    print("| shape | float inference | float training | float backward |")
    print("|---|---:|---:|---:|")
    for name, _, _ in cases:
        print(f"| {name} | " + " | ".join(table[(name, m)] for m in MODES) + " |")


def x_elements(dims):
    n = 1
    for d in dims:
        n *= d
    return n


if __name__ == "__main__":
    main()
