#!/usr/bin/env python3
"""Scaling table for docs/performance.md: descent vs PyTorch across batch sizes
and models, 1 and 2 threads, measured in the same run.

For each (model, batch, threads): descent's steady-state train step comes from
`descent bench --json` (which also measures the FMA peak on the spot); PyTorch's
from the same train step (forward, the model file's loss, backward, its
optimizer's step) timed on preloaded random tensors, best of
OPENBLAS_NUM_THREADS in {1, threads}. PyTorch builds the network, loss and
optimizer from the model file's own text (tests/reference/nnspec.py), so any
model file works: `--models lenet5,mnist_cnn --batches 16,64,256` gives the CNN
table. Epoch times are projected to 60,000 samples. Prints a Markdown table;
reports, never judges.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Timed steps at batch 64 (scaled by 64/batch): about half a second of steps
# per measurement on one core of the test machine.
STEPS_AT_64 = {"mnist_mlp": 2000, "wide_mlp": 100, "lenet5": 150, "lenet5_bn": 150, "mnist_cnn": 8}

# Models measured at batch 64 only unless --batches lists them explicitly.
ONLY_64 = {"wide_mlp"}


def torch_child(path, batch, threads, steps):
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import nnspec

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(path) as f:
        spec = nnspec.parse_model(f.read())
    model, crit = spec["model"], spec["loss"]
    opt = nnspec.make_optimizer(spec["optimizer"], model.parameters())
    x = torch.rand(batch, *spec["input"][3]) * 2 - 1
    y = torch.randint(0, spec["target"][2], (batch,))
    model.train()

    def step():
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    # Five chunks of about 0.2 s each (PyTorch is several times slower than
    # descent here, so descent's step count would make this take minutes).
    t0 = time.perf_counter()
    step()
    n = max(1, min(steps // 5, int(0.2 / (time.perf_counter() - t0))))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        times.append((time.perf_counter() - t0) / n)
    times.sort()
    print(json.dumps({"step_us": times[2] * 1e6}))


def run_torch(path, batch, threads, steps):
    best = None
    for blas in sorted({1, threads}):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, "--child",
                              json.dumps([path, batch, threads, steps])],
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
    ap.add_argument("--models", default="mnist_mlp,wide_mlp",
                    help="model names under models/ (comma-separated)")
    ap.add_argument("--batches", default="16,64,256,1024")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return torch_child(*json.loads(args.child))
    print("| model | batch | threads | descent epoch s | descent GFLOP/s | % of peak | in GEMMs/convs GFLOP/s "
          "| PyTorch epoch s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    batches = [int(b) for b in args.batches.split(",")]
    for name in args.models.split(","):
        path = os.path.join("models", name + ".nn")
        for batch in batches:
            if name in ONLY_64 and batch != 64 and len(args.models.split(",")) > 1:
                continue
            for threads in (1, 2):
                steps = max(5, int(STEPS_AT_64.get(name, 100) * 64 / batch * threads))
                d = run_descent(args.descent, path, batch, threads, steps)
                t = run_torch(path, batch, threads, steps)
                epochs = 60000 / batch
                print(f"| {name} | {batch} | {threads} | {d['epoch_seconds_60000']:.3f} | {d['gflops']:.1f} "
                      f"| {d['percent_of_peak']:.0f}% | {d['matmul_gflops']:.1f} | {t * 1e-6 * epochs:.3f} "
                      f"| {t * 1e-6 * epochs / d['epoch_seconds_60000']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
