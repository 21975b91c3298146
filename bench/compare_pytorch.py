#!/usr/bin/env python3
"""descent vs PyTorch on a model file, measured in the same run.

Runs PyTorch's usual training loop for the model file (`--model`, default the
notebook's models/mnist_mlp.nn; the network, loss, optimizer, per-epoch
scheduler, batch and Normalize are read from the file by
tests/reference/nnspec.py, which builds them with PyTorch's own constructors)
with the data preloaded as tensors (no DataLoader overhead), shuffled, for
every combination of torch threads {1, 2} and OPENBLAS_NUM_THREADS {1, 2}, and
`descent train` with 1 and 2 threads, on Fashion-MNIST. Prints per-epoch
times, the ratio to PyTorch's best configuration, end-to-end wall time, peak
RSS and test accuracy. `--train-samples N` trains both on the first N training
images (an IDX slice written to a temporary directory), so that a CNN run
takes minutes: `--model models/lenet5.nn --train-samples 10000`. Use --repeat
to run everything several times; medians are reported.

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


def idx(data_dir, name):
    """An IDX file of `data_dir` (raw or .gz) as a uint8 tensor."""
    import torch
    path = os.path.join(data_dir, name)
    opener = gzip.open if not os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def write_slice(out_dir, n):
    """The first n training images (and every test image) as raw IDX files."""
    for prefix, count in (("train", n), ("t10k", None)):
        for kind, header in (("images-idx3-ubyte", 16), ("labels-idx1-ubyte", 8)):
            with gzip.open(os.path.join(DATA, f"{prefix}-{kind}.gz"), "rb") as f:
                data = f.read()
            total, = struct.unpack(">I", data[4:8])
            m = total if count is None else min(count, total)
            per = (len(data) - header) // total
            head = data[:4] + struct.pack(">I", m) + data[8:header]
            with open(os.path.join(out_dir, f"{prefix}-{kind}"), "wb") as f:
                f.write(head + data[header:header + m * per])


def pytorch_child(args):
    """The measured PyTorch process: trains and prints one JSON line."""
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "reference"))
    import nnspec

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    with open(args.model) as f:
        spec = nnspec.parse_model(f.read())
    shape = spec["input"][3]

    def images(prefix):
        x = idx(args.data, f"{prefix}-images-idx3-ubyte").float() / 255  # ToTensor
        x = x.reshape(-1, *shape)
        if spec["transform"]:  # torchvision's Normalize: per channel for [C, H, W]
            _, kw = spec["transform"]
            view = (1, -1) + (1,) * (len(shape) - 1) if len(shape) > 1 else (-1,)
            x = (x - torch.tensor(kw["mean"]).view(view)) / torch.tensor(kw["std"]).view(view)
        return x, idx(args.data, f"{prefix}-labels-idx1-ubyte").long()

    t_start = time.perf_counter()
    xtr, ytr = images("train")
    xte, yte = images("t10k")
    model, criterion, batch = spec["model"], spec["loss"], spec["batch"]
    optimizer = nnspec.make_optimizer(spec["optimizer"], model.parameters())
    n = xtr.shape[0]
    sched = nnspec.make_scheduler(spec["scheduler"], optimizer, args.epochs * ((n + batch - 1) // batch)) \
        if spec["scheduler"] else None
    per_batch = sched is not None and type(sched).__name__ == "OneCycleLR"
    epoch_times, losses = [], []
    for e in range(args.epochs):
        model.train()
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        running = 0.0
        for b in range(0, n, batch):
            i = perm[b:b + batch]
            images_b, labels = xtr[i], ytr[i]
            optimizer.zero_grad()
            loss = criterion(model(images_b), labels)
            loss.backward()
            optimizer.step()
            if per_batch:
                sched.step()
            running += loss.item()
        if sched is not None and not per_batch:
            sched.step()
        epoch_times.append(time.perf_counter() - t0)
        losses.append(running / ((n + batch - 1) // batch))
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"epoch_times": epoch_times, "losses": losses, "accuracy": acc,
                      "rss_mib": rss, "total": time.perf_counter() - t_start}))


def run_pytorch(model, data, epochs, torch_threads, blas_threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(torch_threads))
    out, wall = run_measured([sys.executable, __file__, "--child", "--model", model, "--data", data,
                              "--epochs", str(epochs), "--torch-threads", str(torch_threads)], env)
    r = json.loads(out.strip().splitlines()[-1])
    r["wall"] = wall
    return r


def run_descent(binary, model, data, epochs, threads):
    with tempfile.TemporaryDirectory() as d:
        metrics = os.path.join(d, "m.jsonl")
        cmd = [binary, "train", model, "--data", data, "--epochs", str(epochs), "--threads",
               str(threads), "--metrics", metrics]
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
    ap.add_argument("--train-samples", type=int, default=0,
                    help="train on the first N training images (default: all 60000)")
    ap.add_argument("--data", default=DATA, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        return pytorch_child(args)

    with tempfile.TemporaryDirectory() as tmp:
        data = DATA
        if args.train_samples:
            write_slice(tmp, args.train_samples)
            data = tmp
        compare(args, data)


def compare(args, data):
    med = statistics.median
    results = {}
    for rep in range(args.repeat):
        for tt in (1, 2):
            for bt in (1, 2):
                results.setdefault(f"pytorch torch={tt} blas={bt}", []).append(
                    run_pytorch(args.model, data, args.epochs, tt, bt))
        for th in (1, 2):
            results.setdefault(f"descent threads={th}", []).append(
                run_descent(args.descent, args.model, data, args.epochs, th))

    def epoch_time(runs):  # median over runs of the median epoch time
        return med([med(r["epoch_times"]) for r in runs])

    n = args.train_samples or 60000
    print(f"{args.model}: Fashion-MNIST, {n} training samples, {args.epochs} epochs, "
          f"{args.repeat} run(s); medians")
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
