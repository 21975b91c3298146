"""End-to-end PyTorch references for the CNN models (issue #12, "Numbers"):
each model of models/ named below is built by PyTorch from its own file text,
started from torch's initial weights (saved as init.safetensors), and trained
for the file's epochs on a slice of Fashion-MNIST (the first TRAIN training
and TEST test images), in file order (no shuffle), as PyTorch's examples loop
does: ToTensor's x/255, the file's Normalize, zero_grad / forward / loss /
backward / step per batch. Recorded per epoch: the mean of the batch losses
(descent's "train loss"), the test loss (sum of per-sample losses / count)
and the test accuracy in eval mode (BatchNorm's running statistics).

tests/cli/end_to_end_test.cpp trains the same files with `descent train
--init init.safetensors --no-shuffle` and compares. The numbers are not
bitwise PyTorch's (oneDNN's convolution sums in another order), so the test
uses the issue's tolerances: losses within 2e-3 relative after 2 epochs,
accuracy within 0.5 points. For scale, expected.json also holds PyTorch's own
run with oneDNN off (`reordered`: the same arithmetic, convolutions summed in
another order): it differs from the oneDNN run by about as much as descent
does. LeNet-5 (SGD, lr 0.01, momentum 0.9) is still in its steep descent after
2 epochs of 2048 images, and on a 4096-image slice the two PyTorch runs
already differ by 0.8 accuracy points: the slice is chosen where a reordering
moves the numbers less than the tolerance.

Run from the repository root with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_end_to_end.py
It rewrites tests/reference/end_to_end/<model>/{init.safetensors,expected.json}.
"""
import gzip
import json
import os
import struct
import sys

import torch

import nnspec

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "end_to_end")
DATA = "/usr/share/datasets/fashion-mnist"
MODELS = ["lenet5", "lenet5_bn"]
TRAIN, TEST = 2048, 512
SEED = 20240607


def idx(name, count):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    (magic,) = struct.unpack(">I", raw[:4])
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4:4 + 4 * (magic & 0xFF)])
    body = raw[4 + 4 * len(dims):]
    per = 1
    for d in dims[1:]:
        per *= d
    return torch.frombuffer(bytearray(body[:count * per]), dtype=torch.uint8).view(count, *dims[1:])


def images(prefix, count, spec):
    x = idx(prefix + "-images-idx3-ubyte.gz", count).float().div(255).unsqueeze(1)  # ToTensor
    if spec["transform"]:
        _, kw = spec["transform"]  # torchvision's Normalize: sub_ then div_, per channel
        shape = (1, -1, 1, 1)
        x = (x - torch.tensor(kw["mean"]).view(shape)) / torch.tensor(kw["std"]).view(shape)
    y = idx(prefix + "-labels-idx1-ubyte.gz", count).long()
    return x, y


def run(name, spec, model, criterion):
    """Trains `model` (initialized) as the docstring says; returns the epochs' rows."""
    xt, yt = images("train", TRAIN, spec)
    xe, ye = images("t10k", TEST, spec)
    opt = nnspec.make_optimizer(spec["optimizer"], model.parameters())
    batch, epochs = spec["batch"], spec["epochs"]
    rows = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for b in range(0, TRAIN, batch):
            opt.zero_grad()
            loss = criterion(model(xt[b:b + batch]), yt[b:b + batch])
            loss.backward()
            opt.step()
            losses.append(float(loss))
        model.eval()
        with torch.no_grad():
            out = model(xe)
            test_loss = float(torch.nn.functional.cross_entropy(out, ye, reduction="sum")) / TEST
            correct = int((out.argmax(1) == ye).sum())
        rows.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                     "test_loss": test_loss, "test_accuracy": correct / TEST})
        print(name, rows[-1], file=sys.stderr)
    return rows


def generate(name):
    with open(os.path.join(ROOT, "..", "..", "models", name + ".nn")) as f:
        text = f.read()
    torch.manual_seed(SEED)
    spec = nnspec.parse_model(text)
    model, criterion = spec["model"], spec["loss"]
    assert isinstance(criterion, torch.nn.CrossEntropyLoss)  # the test loss below
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    nnspec.write_safetensors(os.path.join(d, "init.safetensors"), init,
                             {"format": "pt", "fixture": name})
    rows = run(name, spec, model, criterion)
    model.load_state_dict(init)
    torch.backends.mkldnn.enabled = False
    reordered = run(name + " (oneDNN off)", spec, model, criterion)
    torch.backends.mkldnn.enabled = True
    expected = {"model": f"models/{name}.nn", "torch_version": torch.__version__, "seed": SEED,
                "train_samples": TRAIN, "test_samples": TEST, "batch": spec["batch"], "epochs": rows, "reordered": reordered}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for m in sys.argv[1:] or MODELS:
        generate(m)
