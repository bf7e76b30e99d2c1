#!/usr/bin/python3
"""PyTorch reference for MinRL's TinyGpt (shared/MinRL/TinyGpt.cs).

Run from the repository root with Debian's PyTorch (torch 1.13; no `safetensors` package needed):

    /usr/bin/python3 tests/reference/tinygpt_reference.py

The weights come from C#: tests/MinRL.Tests/TinyGptReferenceTests.cs builds two seeded TinyGpt
models and saves them with Checkpoint.Save as

    tests/MinRL.Tests/fixtures/tinygpt/model.safetensors          (LM head only)
    tests/MinRL.Tests/fixtures/tinygpt/model_scalar.safetensors   (LM head + scalar head)

(rewrite them with `MINRL_WRITE_FIXTURES=1 dotnet test tests/MinRL.Tests --filter
TinyGptReferenceTests`). This script loads them, strictly, into `GPT` below -- a nanoGPT-shaped
module with exactly TinyGpt's structure and parameter names -- so a MinRL checkpoint is shown to
open in PyTorch. It then runs one fixed batch in float32 and in float64 (the float32 weights widened
exactly) and writes, as safetensors files next to the checkpoints:

    lm_f32.safetensors, lm_f64.safetensors          model.safetensors:
        idx (B, T) int64, targets (B, T) int64 (some -100 = ignored), logits (B, T, V),
        loss = cross_entropy(logits, targets) (mean over the counted positions),
        grad.<name> = d loss / d <name> for every parameter
    scalar_f32.safetensors, scalar_f64.safetensors  model_scalar.safetensors:
        idx, targets, logits, values = scalar_head(h) (B, T), ce = cross_entropy(logits, targets),
        loss = ce + 0.5 * mean(values ** 2), grad.<name> = d loss / d <name> for every parameter
        (both heads and the trunk get gradient from both terms)

The C# tests (TinyGptReferenceTests.Matches_pytorch) recompute all of it and compare. The output
is deterministic (one thread, fixed seed): running the script twice gives identical files.

TinyGpt, in PyTorch terms (it differs from nanoGPT in two ways: the LM head is NOT tied to wte, and
every Linear -- the LM head included -- has a bias):

    x = wte(idx) + wpe(arange(T))                                         (B, T, C)
    for each block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))       pre-LN residual blocks
        attn: q, k, v = c_attn(x).split(C); H heads of D = C / H; softmax(q k^T / sqrt(D) + causal) v;
              heads side by side; c_proj
        mlp:  c_proj(gelu(c_fc(x))), exact (erf) GELU, 4C hidden units
    h = ln_f(x)                                                           (B, T, C)
    logits = lm_head(h)  (B, T, V);   values = scalar_head(h).squeeze(-1)  (B, T)
LayerNorm eps 1e-5, no dropout.
"""

import copy
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_check import read as read_safetensors  # noqa: E402  (the no-dependency reader)

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "MinRL.Tests", "fixtures", "tinygpt"))

# The fixture models' config: TinyGptReferenceTests.LmConfig (checked against the checkpoints' metadata).
CONFIG = dict(vocab_size=16, block_size=12, n_layer=2, n_head=4, n_embd=64)
B, T = 3, 12
SEED = 2024


# ------------------------------------------------------------------------- the model
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        Bx, Tx, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(Bx, Tx, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(Bx, Tx, H, D).transpose(1, 2)
        v = v.view(Bx, Tx, H, D).transpose(1, 2)
        # torch 1.13 has no F.scaled_dot_product_attention: the explicit form, as nanoGPT's fallback.
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        causal = torch.ones(Tx, Tx, dtype=torch.bool).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(Bx, Tx, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, scalar_head=False):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size)  # untied, with a bias
        self.scalar_head = nn.Linear(n_embd, 1) if scalar_head else None

    def hidden(self, idx):
        _, Tx = idx.shape
        pos = torch.arange(0, Tx, dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx):
        return self.lm_head(self.hidden(idx))


# ------------------------------------------------------------------------- safetensors
DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """The format as Checkpoint.Save lays it out: header in the given order, data 8-byte types first,
    the data section starting at a multiple of 16 bytes."""
    order = sorted(range(len(tensors)), key=lambda i: (-list(tensors.values())[i].element_size(), i))
    names = list(tensors)
    entries, chunks, offset = {}, [], 0
    for i in order:
        name, t = names[i], tensors[names[i]].detach().contiguous()
        b = t.numpy().tobytes()
        entries[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    header = {"__metadata__": metadata}
    header.update({n: entries[n] for n in names})
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((16 - (8 + len(text)) % 16) % 16)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in chunks:
            f.write(b)
    os.replace(path + ".tmp", path)
    size = os.path.getsize(path)
    print(f"wrote {os.path.relpath(path)} ({size // 1024} KB, {len(tensors)} tensors)")


def load_model(file, scalar_head):
    """A GPT with the C#-written checkpoint loaded strictly: same names, same shapes, same order."""
    _, metadata, tensors = read_safetensors(os.path.join(FIXTURES, file))
    expected_key = "v{vocab_size}-t{block_size}-l{n_layer}-h{n_head}-d{n_embd}".format(**CONFIG) + f"-s{int(scalar_head)}"
    if metadata.get("config") != expected_key:
        raise SystemExit(f"{file}: config {metadata.get('config')!r}, this script expects {expected_key!r}")
    model = GPT(**CONFIG, scalar_head=scalar_head)
    names = list(model.state_dict())
    if sorted(names) != sorted(tensors):
        raise SystemExit(f"{file}: the checkpoint's names differ from the PyTorch model's:\n"
                         f"  only in the file:  {sorted(set(tensors) - set(names))}\n"
                         f"  only in the model: {sorted(set(names) - set(tensors))}")
    if names != list(tensors):
        # Loading is by name, so this does not matter here; noted because a flat parameter vector
        # (parameters_to_vector) or an optimizer's per-parameter state would be ordered differently.
        first = next(i for i, (a, b) in enumerate(zip(names, tensors)) if a != b)
        print(f"note: {file} lists its tensors in another order than PyTorch's state_dict "
              f"(first difference at #{first}: file {list(tensors)[first]!r}, PyTorch {names[first]!r})")
    state = {}
    for name, (dtype, t, _) in tensors.items():
        if dtype != "F32":
            raise SystemExit(f"{file}: {name} is {dtype}, expected F32")
        state[name] = t
    model.load_state_dict(state, strict=True)
    return model, metadata


def make_batch():
    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(0, CONFIG["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    targets = torch.randint(0, CONFIG["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    # ignore_index: the first positions of row 0 (a left-padded prompt), two in the middle of row 1,
    # the last of row 2
    targets[0, :3] = -100
    targets[1, 5] = targets[1, 6] = -100
    targets[2, T - 1] = -100
    return idx, targets


def run(model, dtype, idx, targets, scalar_head):
    model = model.to(dtype)
    model.zero_grad(set_to_none=True)
    h = model.hidden(idx)
    logits = model.lm_head(h)
    ce = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)
    out = {"idx": idx, "targets": targets, "logits": logits}
    if scalar_head:
        values = model.scalar_head(h).squeeze(-1)
        loss = ce + 0.5 * values.pow(2).mean()
        out["values"] = values
        out["ce"] = ce
    else:
        loss = ce
    loss.backward()
    out["loss"] = loss
    for name, p in model.named_parameters():
        if p.grad is None:
            raise SystemExit(f"{name} got no gradient")
        out["grad." + name] = p.grad
    return {k: v.detach().clone() for k, v in out.items()}


RTOL32, ATOL32_FRACTION = 1e-5, 1e-6  # the C# float32 criterion


def check_f32_against_f64(f32, f64, what):
    """PyTorch's float32 run must agree with its float64 run within HALF of the C# float32 tolerance
    (|a - b| <= 1e-5 |b| + 1e-6 max|b|, per tensor), or the fixture would ask MinTorch for more
    accuracy than float32 has."""
    worst = (0.0, "")
    for k, a in f32.items():
        if not a.is_floating_point():
            continue
        b = f64[k]
        tol = RTOL32 * b.abs() + ATOL32_FRACTION * b.abs().max()
        ratio = ((a.double() - b).abs() / tol.clamp(min=1e-300)).max().item()
        worst = max(worst, (ratio, k))
    print(f"{what}: torch float32 vs float64 uses {worst[0]:.2f} of the float32 tolerance (worst: {worst[1]})")
    if worst[0] > 0.5:
        raise SystemExit(f"{what}: float32 results are not accurate enough for the C# tolerance")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    idx, targets = make_batch()
    for stem, file, scalar_head in [("lm", "model.safetensors", False), ("scalar", "model_scalar.safetensors", True)]:
        results = {}
        model32, ckpt_meta = load_model(file, scalar_head)
        for dtype, suffix in [(torch.float32, "f32"), (torch.float64, "f64")]:
            model = copy.deepcopy(model32)  # the float64 run widens the float32 weights exactly
            results[suffix] = run(model, dtype, idx, targets, scalar_head)
            what = ("cross_entropy(logits, targets)" if not scalar_head
                    else "ce + 0.5 * mean(values ** 2), ce = cross_entropy(logits, targets), values = scalar_head(h).squeeze(-1)")
            meta = {
                "generator": "tests/reference/tinygpt_reference.py",
                "torch_version": torch.__version__,
                "checkpoint": file,
                "checkpoint_config": ckpt_meta.get("config", ""),
                "dtype": str(dtype),
                "loss": what,
                "description": "idx, targets (-100 = ignored), logits, loss and grad.<name> for every parameter"
                               + (", values and ce" if scalar_head else ""),
            }
            write_safetensors(os.path.join(FIXTURES, f"{stem}_{suffix}.safetensors"), results[suffix], meta)
        check_f32_against_f64(results["f32"], results["f64"], stem)
        print(f"  {stem}: loss f32 {results['f32']['loss'].item():.7g}, f64 {results['f64']['loss'].item():.15g}")


if __name__ == "__main__":
    main()
