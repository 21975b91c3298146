"""Shared helpers for the PyTorch reference scripts (make_fixtures.py,
interop_check.py): read a descent model file into PyTorch objects, and read /
write safetensors files without the `safetensors` package (struct + json).

The descent language uses PyTorch's names and argument names, so each
statement's right-hand side is evaluated as a Python expression in a namespace
that maps those names to torch constructors. That keeps the reference side an
independent reading of the same text the C++ frontend parses.
"""
import json
import re
import struct

import torch
from torch import nn, optim

# ---------------------------------------------------------------- model files

_DECL = re.compile(r"^(input|target)\s+(\w+)\s*:\s*(f32|class)\[(\d+(?:\s*,\s*\d+)*)\]$")


def _statements(text):
    """Yields (key, rhs) for `key = expr` statements (expr may span lines) and
    ('input'|'target', match) for declarations. Comments start with '#'."""
    buf, depth = "", 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if depth == 0:
            m = _DECL.match(line.strip())
            if m:
                yield m.group(1), m
                continue
        buf += line + "\n"
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        if depth == 0:
            key, rhs = buf.split("=", 1)
            yield key.strip(), rhs.strip()
            buf = ""
    if buf.strip():
        raise ValueError("unbalanced parentheses at end of model file")


def _namespace():
    def sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
            maximize=False):
        return ("SGD", dict(lr=lr, momentum=momentum, dampening=dampening,
                            weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def adam(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False):
        return ("Adam", dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             maximize=maximize))

    def adamw(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, *, maximize=False):
        return ("AdamW", dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                              maximize=maximize))

    def scheduler(kind):
        # torch.optim.lr_scheduler's constructors without the optimizer:
        # (kind, kwargs), built by make_scheduler once the optimizer exists.
        def make(*args, **kw):
            if args and args[0] == "optimizer":
                args = args[1:]
            return (kind, args, kw)
        return make

    def normalize(mean, std):
        first = lambda v: v[0] if isinstance(v, (tuple, list)) else v
        return ("Normalize", dict(mean=first(mean), std=first(std)))

    def with_tensors(cls, *names):
        """A loss constructor taking the language's lists (weight=[...]) for
        the tensors PyTorch wants."""
        def make(*args, **kw):
            for n in names:
                if isinstance(kw.get(n), (list, tuple)):
                    kw[n] = torch.tensor(kw[n], dtype=torch.float32)
            return cls(*args, **kw)
        return make

    return {
        "Sequential": nn.Sequential, "Linear": nn.Linear, "ReLU": nn.ReLU,
        "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "LeakyReLU": nn.LeakyReLU,
        "Softmax": nn.Softmax, "LogSoftmax": nn.LogSoftmax, "Dropout": nn.Dropout,
        "Flatten": nn.Flatten, "Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d,
        "AvgPool2d": nn.AvgPool2d, "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
        "GELU": nn.GELU, "SiLU": nn.SiLU, "ELU": nn.ELU, "Softplus": nn.Softplus,
        "NLLLoss": with_tensors(nn.NLLLoss, "weight"),
        "CrossEntropyLoss": with_tensors(nn.CrossEntropyLoss, "weight"),
        "MSELoss": nn.MSELoss, "BCELoss": nn.BCELoss,
        "BCEWithLogitsLoss": with_tensors(nn.BCEWithLogitsLoss, "pos_weight"),
        "L1Loss": nn.L1Loss,
        "SmoothL1Loss": nn.SmoothL1Loss, "HuberLoss": nn.HuberLoss, "KLDivLoss": nn.KLDivLoss,
        "SGD": sgd, "Adam": adam, "AdamW": adamw, "Normalize": normalize,
        **{k: scheduler(k) for k in ("StepLR", "MultiStepLR", "ExponentialLR",
                                     "CosineAnnealingLR", "LinearLR", "OneCycleLR",
                                     "ReduceLROnPlateau")},
        "optimizer": "optimizer",
        "true": True, "false": False, "True": True, "False": False,
    }


def parse_model(text):
    """Returns a dict: input and target (name, kind 'class'|'f32', elements
    per sample, shape per sample: (1, 28, 28) for f32[1, 28, 28]), model (nn.Sequential, freshly initialized by torch's RNG), loss
    (nn module), optimizer (kind, kwargs), transform, batch, epochs."""
    spec = {"optimizer": None, "scheduler": None, "transform": None, "batch": 64, "epochs": 1}
    ns = _namespace()
    for key, value in _statements(text):
        if key in ("input", "target"):
            name, kind = value.group(2), value.group(3)
            shape = tuple(int(d) for d in value.group(4).split(","))
            size = 1
            for d in shape:
                size *= d
            spec[key] = (name, kind, size, shape)
            continue
        # The namespace only holds constructors: no builtins, no imports.
        spec[key] = eval(value, {"__builtins__": {}}, ns)  # noqa: S307
    return spec


def make_optimizer(opt, params):
    kind, kw = opt
    if kind == "SGD":
        return optim.SGD(params, **kw)
    if kind == "AdamW":
        return optim.AdamW(params, **kw)
    return optim.Adam(params, **kw)


# ---------------------------------------------------------------- safetensors

_DTYPES = {"F32": ("<f4", torch.float32), "F64": ("<f8", torch.float64),
           "I64": ("<i8", torch.int64), "I32": ("<i4", torch.int32),
           "U8": ("<u1", torch.uint8)}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch tensor (float32 is written as F32). Header padded
    with spaces to a multiple of 8; data contiguous in name order."""
    header, blobs, offset = {}, [], 0
    names = {v[1]: k for k, v in _DTYPES.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().astype(_DTYPES[names[t.dtype]][0]).tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (name -> torch tensor, metadata). Checks sizes and offsets."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        np_dtype, _ = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if not (0 <= b <= end <= len(data)) or end - b != count * np.dtype(np_dtype).itemsize:
            raise ValueError(f"{path}: tensor '{name}': bad data_offsets {e['data_offsets']}")
        arr = np.frombuffer(data[b:end], dtype=np_dtype).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, metadata


# ---------------------------------------------------------------- data files

def read_csv(path, features):
    """Returns (x float32 [B, features], targets as a list of rows of floats)."""
    import numpy as np
    rows = []
    with open(path) as f:
        next(f)  # header
        for line in f:
            if line.strip():
                rows.append([np.float32(v) for v in line.split(",")])
    arr = np.array(rows, dtype=np.float32)
    return torch.from_numpy(arr[:, :features].copy()), arr[:, features:]


def make_scheduler(sched, opt, total_steps):
    """The scheduler of a parsed spec on `opt`; OneCycleLR without a total
    runs `total_steps`, or `epochs` of one batch (descent's default: the
    run's epochs and the data's batches per epoch)."""
    kind, args, kw = sched
    kw = dict(kw)
    if kind == "OneCycleLR" and "total_steps" not in kw:
        if "epochs" not in kw:
            kw["total_steps"] = total_steps
        else:
            kw.setdefault("steps_per_epoch", 1)  # the fixtures' one batch
    return getattr(optim.lr_scheduler, kind)(opt, *args, **kw)
