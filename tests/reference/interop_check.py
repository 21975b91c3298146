#!/usr/bin/python3
"""Checks that a descent-written safetensors checkpoint loads into PyTorch and
computes what it should.

It parses the model file (the descent language, via nnspec.py), builds the
nn.Sequential, loads the checkpoint with load_state_dict(strict=True) (names,
shapes and layouts must all match PyTorch's), runs the model in eval mode on the
CSV batch and compares against an expected JSON file.

Usage:
  interop_check.py --checkpoint CKPT --fixture NAME [--checkpoint CKPT --fixture NAME ...] [--key KEY]
  interop_check.py --checkpoint CKPT --model M.nn --data D.csv --expected E.json [--key KEY]

KEY selects what to compare with:
  output (default)           expected["output"]: the model's output on the batch
  after_one_step | final     expected[KEY]: a name -> flat list map of parameters;
                             compares every tensor, and also the outputs of the
                             checkpoint and of those parameters on the batch.
Tolerances: --rtol (default 1e-4) and --atol (default 1e-5), see README.md.
Exit status 0 when everything matches, 1 on a mismatch, 2 on a usage error.

Example, after `descent train F/model.nn --data F/data.csv --init F/init.safetensors
--no-shuffle --epochs 1 --save /tmp/ck.safetensors`:
  interop_check.py --checkpoint /tmp/ck.safetensors --fixture nll_mean_sgd --key after_one_step
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nnspec  # noqa: E402


def compare(what, got, want, rtol, atol):
    got = got.detach().double().reshape(-1)
    want = torch.as_tensor(want, dtype=torch.float64).reshape(-1)
    if got.numel() != want.numel():
        print(f"FAIL {what}: {got.numel()} values, expected {want.numel()}")
        return False
    err = (got - want).abs()
    bad = err > atol + rtol * want.abs()
    worst = float(err.max()) if err.numel() else 0.0
    status = "FAIL" if bool(bad.any()) else "ok  "
    print(f"{status} {what}: max abs error {worst:.3g} over {got.numel()} values")
    return not bool(bad.any())


def run(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def check(checkpoint, model_path, data, expected_path, key, rtol, atol):
    """One checkpoint against one expected file; True when everything matches."""
    with open(model_path) as f:
        model_text = f.read()
    spec = nnspec.parse_model(model_text)
    model = spec["model"]
    tensors, meta = nnspec.read_safetensors(checkpoint)
    ok = True
    for name, t in tensors.items():  # BatchNorm's counter is int64, as PyTorch saves it
        if name.endswith(".num_batches_tracked") and t.dtype != torch.int64:
            print(f"FAIL {name}: dtype {t.dtype}, expected torch.int64")
            ok = False
    model.load_state_dict(tensors, strict=True)  # raises on any name or shape mismatch
    state = {k: v.to(torch.float32) for k, v in tensors.items()}
    x, _ = nnspec.read_csv(data, spec["input"][2])
    x = x.reshape(-1, *spec["input"][3])  # an N-D input: the CSV row is the sample, row-major
    with open(expected_path) as f:
        expected = json.load(f)
    if key not in expected:
        print(f"{expected_path}: no key '{key}' (has: {', '.join(expected)})")
        return False

    out = run(model, x)
    if key == "output":
        ok = compare("output", out, expected["output"], rtol, atol)
    else:
        params = expected[key]
        for name, want in params.items():
            ok &= compare(name, state[name], want, rtol, atol)
        ref = nnspec.parse_model(model_text)["model"]  # an independent copy of the network
        ref.load_state_dict({k: torch.tensor(v, dtype=torch.float32).reshape(state[k].shape)
                             for k, v in params.items()})
        ok &= compare("output", out, run(ref, x), rtol, atol)
    print(("PASS " if ok else "MISMATCH ") + checkpoint)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", required=True, action="append",
                    help="repeatable with --fixture: one python start for many checks")
    ap.add_argument("--fixture", action="append",
                    help="name of a directory under tests/reference/fixtures")
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--expected")
    ap.add_argument("--key", default="output")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-5)
    a = ap.parse_args()
    jobs = []
    if a.fixture:
        if len(a.fixture) != len(a.checkpoint):
            ap.error("give one --fixture per --checkpoint")
        for ck, name in zip(a.checkpoint, a.fixture):
            d = os.path.join(HERE, "fixtures", name)
            jobs.append((ck, a.model or os.path.join(d, "model.nn"),
                         a.data or os.path.join(d, "data.csv"),
                         a.expected or os.path.join(d, "expected.json")))
    elif a.model and a.data and a.expected and len(a.checkpoint) == 1:
        jobs.append((a.checkpoint[0], a.model, a.data, a.expected))
    else:
        ap.error("give --fixture, or all of --model, --data and --expected")

    torch.set_num_threads(1)
    ok = True
    for ck, model_path, data, expected_path in jobs:
        ok &= check(ck, model_path, data, expected_path, a.key, a.rtol, a.atol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
