#!/usr/bin/env python3
"""Scaling table for docs/performance.md: descent vs PyTorch across batch sizes
and a wide model, 1 and 2 threads, measured in the same run.

For each (model, batch, threads): descent's steady-state train step comes from
`descent bench --json` (which also measures the FMA peak on the spot); PyTorch's
from the same train step (forward, NLLLoss, backward, SGD step) timed on
preloaded random tensors, best of OPENBLAS_NUM_THREADS in {1, threads}. Epoch
times are projected to 60,000 samples. Prints a Markdown table; reports, never judges.
"""
import argparse
import json
import os
import subprocess
import sys
import time

MODELS = {"mnist_mlp": ("models/mnist_mlp.nn", [784, 128, 64, 10]),
          "wide_mlp": ("models/wide_mlp.nn", [784, 1024, 1024, 10])}


def torch_child(sizes, batch, threads, steps):
    import torch
    from torch import nn, optim
    torch.set_num_threads(threads)
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    layers[-1] = nn.LogSoftmax(dim=1)
    model = nn.Sequential(*layers)
    opt = optim.SGD(model.parameters(), lr=0.003)
    crit = nn.NLLLoss()
    x = torch.rand(batch, sizes[0]) * 2 - 1
    y = torch.randint(0, sizes[-1], (batch,))

    def step():
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(max(10, steps // 10)):
        step()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(steps // 5):
            step()
        times.append((time.perf_counter() - t0) / (steps // 5))
    times.sort()
    print(json.dumps({"step_us": times[2] * 1e6}))


def run_torch(sizes, batch, threads, steps):
    best = None
    for blas in sorted({1, threads}):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps([sizes, batch, threads, steps])],
                             env=env, check=True, capture_output=True, text=True).stdout
        us = json.loads(out.strip().splitlines()[-1])["step_us"]
        best = us if best is None else min(best, us)
    return best


def run_descent(binary, model, batch, threads, steps):
    out = subprocess.run([binary, "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--steps", str(steps), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--descent", default="build/descent")
    ap.add_argument("--batches", default="16,64,256,1024")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return torch_child(*json.loads(args.child))
    print("| model | batch | threads | descent epoch s | descent GFLOP/s | % of peak | in GEMMs GFLOP/s "
          "| PyTorch epoch s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (path, sizes) in MODELS.items():
        for batch in [int(b) for b in args.batches.split(",")]:
            if name == "wide_mlp" and batch != 64:
                continue
            for threads in (1, 2):
                # Aim for ~0.5 s of timed steps per measurement.
                flops = 6 * batch * sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
                steps = max(50, min(4000, int(0.5 * 60e9 * threads / flops)))
                d = run_descent(args.descent, path, batch, threads, steps)
                t = run_torch(sizes, batch, threads, steps)
                epochs = 60000 / batch
                print(f"| {name} | {batch} | {threads} | {d['epoch_seconds_60000']:.3f} | {d['gflops']:.1f} "
                      f"| {d['percent_of_peak']:.0f}% | {d['matmul_gflops']:.1f} | {t * 1e-6 * epochs:.3f} "
                      f"| {t * 1e-6 * epochs / d['epoch_seconds_60000']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
