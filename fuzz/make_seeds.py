#!/usr/bin/env python3
"""Writes the binary seed corpora of the fuzz targets (fuzz/corpus/{safetensors,
checkpoint,idx,csv}): small valid files and near-valid variants (truncated,
wrong magic, bad offsets, ...). The text corpora (parser, ir) are copies of
models/ and printed graphs. Rerun after changing a target's input format:
    python3 fuzz/make_seeds.py
"""
import gzip
import json
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
SEPARATOR = b"\n--descent-fuzz-optimizer-file--\n"  # target_checkpoint.cpp


def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, trailing=b"", header_len=None):
    """tensors: name -> (dtype, shape, raw bytes); laid out in order."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data + trailing


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def raw_header(text, data=b""):
    return struct.pack("<Q", len(text)) + text + data


# --- safetensors ---------------------------------------------------------
S = "safetensors"
put(S, "valid_mixed", safetensors({
    "a": ("F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
    "b": ("F64", [1], struct.pack("<d", 0.5)),
    "c": ("I64", [], struct.pack("<q", 7)),
    "d": ("I32", [2], struct.pack("<2i", -1, 2)),
    "e": ("U8", [4], bytes([0, 1, 254, 255]))}, {"format": "pt"}))
put(S, "valid_empty_header", raw_header(b"{}      "))
put(S, "valid_metadata_only", safetensors({}, {"producer": "descent", "step": "3"}))
put(S, "valid_zero_dim", safetensors({"z": ("F32", [0, 3], b""), "w": ("F32", [1], f32(2))}))
put(S, "bad_header_length", safetensors({"a": ("F32", [1], f32(1))}, header_len=1 << 40))
put(S, "bad_truncated", safetensors({"a": ("F32", [4], f32(1, 2, 3, 4))})[:-3])
put(S, "bad_dtype", safetensors({"a": ("BF16", [2], b"\0\0\0\0")}))
put(S, "bad_offsets_overlap", raw_header(
    b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
    b'"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"abc"))
put(S, "bad_shape_negative", raw_header(
    b'{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', b"x"))
put(S, "bad_metadata_type", raw_header(b'{"__metadata__":{"a":1}}'))
put(S, "bad_json", raw_header(b'{"a":{"dtype":"F32",'))
put(S, "short", b"\x08\0\0")
put(S, "trailing_bytes", safetensors({"a": ("U8", [1], b"x")}, trailing=b"junk"))

# --- checkpoint: the tiny Adam model of target_checkpoint.cpp -------------
C = "checkpoint"
w = f32(0.1, -0.2, 0.3, 0.4, -0.5, 0.6)  # PyTorch layout [out=2, in=3]
b = f32(0.01, -0.02)
model = safetensors({"0.bias": ("F32", [2], b), "0.weight": ("F32", [2, 3], w)},
                    {"format": "pt", "producer": "descent", "model": "fuzz"})
states = {}
for p, shape, raw in (("0.bias", [2], b), ("0.weight", [2, 3], w)):
    states[p + ".exp_avg"] = ("F32", shape, raw)
    states[p + ".exp_avg_sq"] = ("F32", shape, f32(*[0.25] * (len(raw) // 4)))
optim = safetensors(states, {"optimizer": "Adam", "step": "12", "epoch": "2"})
put(C, "model_only", model)
put(C, "model_and_optimizer", model + SEPARATOR + optim)
put(C, "optimizer_sgd", model + SEPARATOR + safetensors(
    {}, {"optimizer": "SGD", "step": "1", "epoch": "1"}))
put(C, "optimizer_bad_step", model + SEPARATOR + safetensors(
    states, {"optimizer": "Adam", "step": "x", "epoch": "1"}))
put(C, "optimizer_missing_state", model + SEPARATOR + safetensors(
    {"0.bias.exp_avg": ("F32", [2], b)}, {"optimizer": "Adam", "step": "1", "epoch": "1"}))
put(C, "wrong_shape", safetensors({"0.bias": ("F32", [2], b), "0.weight": ("F32", [3, 2], w)}))
put(C, "unknown_tensor", safetensors({"0.bias": ("F32", [2], b), "0.weight": ("F32", [2, 3], w),
                                      "1.weight": ("F32", [1], f32(0))}))
put(C, "f64_weights", safetensors({"0.bias": ("F64", [2], struct.pack("<2d", 1, 2)),
                                   "0.weight": ("F64", [2, 3], struct.pack("<6d", *range(6)))}))
put(C, "int_weights", safetensors({"0.bias": ("I32", [2], struct.pack("<2i", 1, 2)),
                                   "0.weight": ("F32", [2, 3], w)}))

# --- idx: mode byte (target_idx.cpp) + payload ----------------------------
I = "idx"
images = struct.pack(">IIII", 0x803, 2, 3, 2) + bytes(range(12))
labels = struct.pack(">II", 0x801, 5) + bytes([0, 1, 9, 3, 255])
put(I, "raw_images", b"\x00" + images)
put(I, "raw_labels", b"\x01" + labels)
put(I, "gzip_images", b"\x02" + images)
put(I, "gzip_labels", b"\x03" + labels)
put(I, "gzip_two_members", b"\x06" + images)
put(I, "gzip_bytes_images", b"\x00" + gzip.compress(images, mtime=0))
put(I, "gzip_bytes_labels", b"\x01" + gzip.compress(labels, mtime=0))
put(I, "raw_truncated", b"\x00" + images[:-1])
put(I, "raw_trailing", b"\x01" + labels + b"\0")
put(I, "gzip_truncated", b"\x02" + images[:-2])
put(I, "gzip_stream_cut", b"\x00" + gzip.compress(images, mtime=0)[:-6])
put(I, "wrong_magic", b"\x00" + labels)
put(I, "zero_dimension", b"\x00" + struct.pack(">IIII", 0x803, 1, 0, 2))
put(I, "element_type_int", b"\x01" + struct.pack(">II", 0xC01, 1) + b"\0\0\0\0")

# --- csv: layout byte (target_csv.cpp) + text -----------------------------
V = "csv"
def layout(features, targets, classes=True):
    return bytes([(features - 1) | (0 if classes else 8) | ((targets - 1) << 4)])
put(V, "classes", layout(2, 3) + b"x1,x2,label\n0.5,1,0\n-2,3e2,2\n1.25,.5,1\n")
put(V, "regression", layout(3, 2, False) + b"a,b,c,y1,y2\n1,2,3,0.5,-0.5\n4,5,6,1e-3,+7\n")
put(V, "crlf_quotes_blank", layout(1, 2) + b'"x","label"\r\n\r\n1.5,1\r\n  2 ,\t0\r\n\n')
put(V, "bom", layout(1, 2) + b"\xef\xbb\xbfx,label\n1,0\n")
put(V, "no_trailing_newline", layout(1, 1, False) + b"x,y\n1,2")
put(V, "bad_columns", layout(2, 2) + b"x1,x2,label\n1,2\n")
put(V, "bad_number", layout(1, 2) + b"x,label\nabc,1\n")
put(V, "bad_label", layout(1, 2) + b"x,label\n1,1.5\n2,7\n")
put(V, "not_finite", layout(1, 1, False) + b"x,y\nnan,1\ninf,2\n1e999,3\n")
put(V, "header_only", layout(1, 2) + b"x,label\n")
put(V, "empty", layout(1, 2))
