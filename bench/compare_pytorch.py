#!/usr/bin/env python3
"""descent vs PyTorch on the notebook's model, measured in the same run.

Runs the notebook's training loop (784-128-64-10 MLP, ReLU, LogSoftmax,
NLLLoss, SGD lr=0.003, batch 64, shuffled, Normalize(0.5, 0.5)) in PyTorch with
the data preloaded as tensors (no DataLoader overhead), for every combination
of torch threads {1, 2} and OPENBLAS_NUM_THREADS {1, 2}, and `descent train`
with 1 and 2 threads, on Fashion-MNIST. Prints per-epoch times, the ratio to
PyTorch's best configuration, end-to-end wall time, peak RSS and test accuracy.
Use --repeat to run everything several times; medians are reported.

Needs Debian's python3-torch (and libopenblas0-pthread for a fair baseline).
It is a benchmark: it reports figures and never fails on them.
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time

DATA = "/usr/share/datasets/fashion-mnist"


def run_measured(cmd, env=None):
    """Runs cmd, returns (stdout, wall seconds). The PyTorch child reports its own peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{err}")
    return out, wall


def pytorch_child(args):
    """The measured PyTorch process: trains and prints one JSON line."""
    import torch
    from torch import nn, optim

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)

    def idx(name):
        with gzip.open(os.path.join(DATA, name), "rb") as f:
            data = f.read()
        magic, = struct.unpack(">I", data[:4])
        dims = magic & 0xFF
        shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
        return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)

    t_start = time.perf_counter()
    xtr = ((idx("train-images-idx3-ubyte.gz").float() / 255 - 0.5) / 0.5).reshape(-1, 784)
    ytr = idx("train-labels-idx1-ubyte.gz").long()
    xte = ((idx("t10k-images-idx3-ubyte.gz").float() / 255 - 0.5) / 0.5).reshape(-1, 784)
    yte = idx("t10k-labels-idx1-ubyte.gz").long()

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    criterion = nn.NLLLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.003)
    epoch_times, losses = [], []
    n = xtr.shape[0]
    for e in range(args.epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        running = 0.0
        for b in range(0, n, 64):
            i = perm[b:b + 64]
            images, labels = xtr[i], ytr[i]
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
        epoch_times.append(time.perf_counter() - t0)
        losses.append(running / ((n + 63) // 64))
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"epoch_times": epoch_times, "losses": losses, "accuracy": acc,
                      "rss_mib": rss, "total": time.perf_counter() - t_start}))


def run_pytorch(epochs, torch_threads, blas_threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(torch_threads))
    out, wall = run_measured([sys.executable, __file__, "--child", "--epochs", str(epochs),
                              "--torch-threads", str(torch_threads)], env)
    r = json.loads(out.strip().splitlines()[-1])
    r["wall"] = wall
    return r


def run_descent(binary, model, epochs, threads):
    with tempfile.TemporaryDirectory() as d:
        metrics = os.path.join(d, "m.jsonl")
        cmd = [binary, "train", model, "--epochs", str(epochs), "--threads", str(threads),
               "--metrics", metrics]
        # wait4 gives the child's own peak RSS (GNU time is not always installed).
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out = p.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"descent failed: {p.stderr.read()}\n{out}")
        rows = [json.loads(line) for line in open(metrics)]
    return {"epoch_times": [r["seconds"] for r in rows], "losses": [r["train_loss"] for r in rows],
            "accuracy": rows[-1].get("test_accuracy"), "rss_mib": usage.ru_maxrss / 1024, "wall": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--descent", default="build/descent")
    ap.add_argument("--model", default="models/mnist_mlp.nn")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        return pytorch_child(args)

    med = statistics.median
    results = {}
    for rep in range(args.repeat):
        for tt in (1, 2):
            for bt in (1, 2):
                results.setdefault(f"pytorch torch={tt} blas={bt}", []).append(run_pytorch(args.epochs, tt, bt))
        for th in (1, 2):
            results.setdefault(f"descent threads={th}", []).append(run_descent(args.descent, args.model, args.epochs, th))

    def epoch_time(runs):  # median over runs of the median epoch time
        return med([med(r["epoch_times"]) for r in runs])

    print(f"Fashion-MNIST, 60000 samples, batch 64, {args.epochs} epochs, {args.repeat} run(s); medians")
    print(f"{'configuration':28} {'epoch s':>8} {'wall s':>8} {'RSS MiB':>8} {'accuracy':>9} {'last loss':>10}")
    for name, runs in results.items():
        print(f"{name:28} {epoch_time(runs):8.3f} {med([r['wall'] for r in runs]):8.2f} "
              f"{med([r['rss_mib'] for r in runs]):8.0f} {100 * med([r['accuracy'] for r in runs]):8.2f}% "
              f"{med([r['losses'][-1] for r in runs]):10.4f}")
    best_pt = min((k for k in results if k.startswith("pytorch")), key=lambda k: epoch_time(results[k]))
    pt = epoch_time(results[best_pt])
    print(f"\nPyTorch's best configuration: {best_pt} ({pt:.3f} s/epoch)")
    for th in (1, 2):
        d = epoch_time(results[f"descent threads={th}"])
        print(f"descent {th} thread(s): {d:.3f} s/epoch = {pt / d:.2f}x faster than PyTorch")


if __name__ == "__main__":
    main()
