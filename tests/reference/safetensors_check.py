#!/usr/bin/python3
"""A safetensors reader and writer with no dependency beyond PyTorch, to check MinRL's checkpoints.

MinRL writes its checkpoints in the safetensors format (shared/MinRL/Checkpoint.cs). This script
proves the two sides agree without the `safetensors` package (Debian has no package for it):

    /usr/bin/python3 tests/reference/safetensors_check.py read FILE
        parses FILE with struct + json + torch.frombuffer, checks it as the reference Rust reader
        does (header length, JSON, dtypes, byte ranges that tile the data section exactly, sizes),
        and prints the metadata and, per tensor, its dtype, shape, sum and the SHA-256 of its bytes.

    /usr/bin/python3 tests/reference/safetensors_check.py write FILE
        writes the fixture tests/MinRL.Tests/fixtures/python_written.safetensors, laid out as the
        `safetensors` library lays a file out (tensors in data order by alignment then name, header
        padded to 8 bytes), with JSON keys in another order (alphabetical) so a reader cannot assume
        that header order is data order. CheckpointTests.Python_written_fixture_loads checks its values.

Format: 8 bytes (u64 little-endian) N, N bytes of JSON header
{"__metadata__": {str: str}, name: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}},
then the data section; offsets are relative to its start.

`read` also views every tensor in place in the file's bytes (no copy), as memory-mapping loaders
do; PyTorch refuses such a view unless the tensor starts at a multiple of its element size, so
"zero-copy views: ok" means the file is aligned for them.

Run by hand on the file CheckpointTests.Writer_output_is_byte_stable writes (whose SHA-256 that
test pins, so the output below stays true), it printed what is recorded at the bottom of this file.
"""
import hashlib
import json
import math
import struct
import sys

import torch

DTYPES = {
    "F32": (torch.float32, 4),
    "F64": (torch.float64, 8),
    "I64": (torch.int64, 8),
    "BOOL": (torch.bool, 1),
}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header of {n} bytes but only {len(raw) - 8} follow")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()), "metadata must map str to str"
    tensors = {}
    spans = []
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        shape = info["shape"]
        begin, end = info["data_offsets"]
        numel = math.prod(shape)
        if end - begin != numel * size:
            raise ValueError(f"{path}: tensor {name}: shape {shape} of {info['dtype']} needs {numel * size} bytes, offsets give {end - begin}")
        if end > len(data):
            raise ValueError(f"{path}: tensor {name} ends at {end}, data section has {len(data)} bytes")
        spans.append((begin, end, name))
        buf = data[begin:end]
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(buf), dtype=dtype).reshape(shape)
        tensors[name] = (info["dtype"], t, hashlib.sha256(buf).hexdigest())
    # As the reference reader: the ranges, sorted, must tile the data section with no gap or overlap.
    expected = 0
    for begin, end, name in sorted(spans):
        if begin != expected:
            raise ValueError(f"{path}: tensor {name} starts at {begin}, expected {expected} (gap or overlap)")
        expected = end
    if expected != len(data):
        raise ValueError(f"{path}: tensors cover {expected} of {len(data)} data bytes")
    return n, metadata, tensors


def cmd_read(path):
    n, metadata, tensors = read(path)
    start = 8 + n
    print(f"header: 8 + {n} bytes, data starts at {start} ({start} % 16 = {start % 16}, {start} % 8 = {start % 8})")
    print(f"metadata: {json.dumps(metadata, sort_keys=True)}")
    for name, (dt, t, sha) in tensors.items():
        s = t.to(torch.float64).sum().item() if t.numel() else 0.0
        vals = t.flatten().tolist()
        shown = vals if len(vals) <= 8 else vals[:8] + ["..."]
        print(f"{name}: {dt} shape={list(t.shape)} sum={s!r} sha256={sha[:16]} values={shown}")
    print(f"zero-copy views: {zero_copy_views(path)}")


def zero_copy_views(path):
    """Views each tensor inside the file's bytes without copying; torch requires alignment for that."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    whole = torch.frombuffer(raw, dtype=torch.uint8)
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if begin == end:
            continue
        try:
            whole[8 + n + begin : 8 + n + end].view(DTYPES[info["dtype"]][0])
        except RuntimeError as e:
            return f"tensor {name} is misaligned ({e})"
    return "ok"


def cmd_write(path):
    tensors = {
        "weight": torch.tensor([[-1.5, 0.0, 0.1], [3.0, 1e-8, -2.75]], dtype=torch.float32),
        "bias": torch.tensor([0.5, -0.25, 100.0], dtype=torch.float32),
        "pi": torch.tensor(math.pi, dtype=torch.float64),
        "ids": torch.tensor([-3, 0, 7, 2**40 + 1], dtype=torch.int64),
        "mask": torch.tensor([[True, False], [False, True]]),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
    }
    metadata = {"format": "pt", "writer": "tests/reference/safetensors_check.py"}
    inverse = {v[0]: k for k, v in DTYPES.items()}
    # Data order as the safetensors library writes it: larger alignment first, then by name.
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    entries, chunks, offset = {}, [], 0
    for name in order:
        t = tensors[name].contiguous()
        b = t.numpy().tobytes() if t.numel() else b""
        entries[name] = {"dtype": inverse[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    header = {"__metadata__": metadata}
    header.update({k: entries[k] for k in sorted(entries)})  # header order differs from data order
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)  # the format's 8-byte alignment
    if (8 + len(text)) % 16 == 0:
        text += b" " * 8  # make sure the fixture is 8- but not 16-aligned: readers must not demand 16
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in chunks:
            f.write(b)
    print(f"wrote {path}")
    cmd_read(path)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        sys.exit(__doc__)
    {"read": cmd_read, "write": cmd_write}[sys.argv[1]](sys.argv[2])

# Output recorded by hand:
# $ /usr/bin/python3 tests/reference/safetensors_check.py read .../interop/csharp_written.safetensors
#   header: 8 + 456 bytes, data starts at 464 (464 % 16 = 0, 464 % 8 = 0)
#   metadata: {"format": "pt", "kit": "MinRL"}
#   transformer.wte.weight: F32 shape=[4, 3] sum=4.5 sha256=e66ae184985daa78 values=[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, '...']
#   transformer.ln_f.bias: F32 shape=[3] sum=0.20000001043081284 sha256=c558551342e73de3 values=[0.10000000149011612, -0.20000000298023224, 0.30000001192092896]
#   gold: F64 shape=[3] sum=1.6 sha256=d7a2294e091be4e0 values=[1.3, 0.3, 0.0]
#   prompt_ids: I64 shape=[1, 8] sum=57.0 sha256=73dc6493be2feaf7 values=[0, 0, 1, 7, 10, 13, 12, 14]
#   loss_mask: BOOL shape=[4] sum=2.0 sha256=d5e2d2ac07b741be values=[False, True, True, False]
#   step: I64 shape=[] sum=500.0 sha256=cf5cb2f4d37db6ef values=[500]
#   zero-copy views: ok
