#!/usr/bin/python3
"""PyTorch reference fixtures for MinTorch's engine tests.

Run from the repository root with Debian's PyTorch (torch 1.13):

    apt-get install -y python3-torch
    /usr/bin/python3 tests/reference/engine_fixtures.py

It writes JSON files into tests/MinTorch.Tests/fixtures/engine/. The C# tests in
tests/MinTorch.Tests/PyTorchFixtureTests.cs rebuild the same computations with MinTorch and
compare. The fixtures are committed, so CI needs no Python.

The model is one nanoGPT-style pre-LayerNorm transformer block on a fixed batch, written with
plain torch ops (no nn.Module, no nn.MultiheadAttention) so that every op maps one-to-one onto a
MinTorch call:

    x      = wte[idx] + wpe[arange(T)]                              (B, T, C)
    h      = x + c_proj(causal_softmax_attention(c_attn(ln_1(x))))
    h      = h + mlp.c_proj(gelu(mlp.c_fc(ln_2(h))))
    logits = lm_head(ln_f(h))                                       (B, T, V)
    loss   = cross_entropy(logits.view(-1, V), targets.view(-1))    (targets = -100 are ignored)

Parameter names are nanoGPT's (transformer.h.0.attn.c_attn.weight, ...). As in nanoGPT,
lm_head has no bias (so F.linear is also exercised with bias = None); unlike nanoGPT, its weight
is NOT tied to wte, so each gradient belongs to one parameter.

Fixture format: one JSON object per file, name -> {"shape": [...], "dtype": "float32" |
"float64" | "int64", "data": [flat row-major values]}, plus a "_meta" entry (not a tensor:
description, torch version, hyper-parameters). float32 values are written as the shortest
decimal string that round-trips to the same float32 (numpy's repr), float64 values as Python's
repr (also shortest round-trip), so parsing gives back the exact bits PyTorch produced.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "MinTorch.Tests", "fixtures", "engine"))

# ------------------------------------------------------------------------- configuration
B, T, V, C, N_HEAD, BLOCK_SIZE = 2, 5, 11, 8, 2, 8  # wpe has 8 rows, only 5 are used
LR, WEIGHT_DECAY, BETAS, EPS = 1e-2, 0.1, (0.9, 0.999), 1e-8
STEPS = 3
SEED = 1234

# nanoGPT parameter names, shapes and how they are initialised here (larger than nanoGPT's
# N(0, 0.02) so that softmax, GELU and layer norm work well away from their linear regimes).
PARAM_SPECS = [
    # name, shape, kind
    ("transformer.wte.weight", (V, C), "embed"),
    ("transformer.wpe.weight", (BLOCK_SIZE, C), "embed"),
    ("transformer.h.0.ln_1.weight", (C,), "ln_weight"),
    ("transformer.h.0.ln_1.bias", (C,), "bias"),
    ("transformer.h.0.attn.c_attn.weight", (3 * C, C), "weight"),
    ("transformer.h.0.attn.c_attn.bias", (3 * C,), "bias"),
    ("transformer.h.0.attn.c_proj.weight", (C, C), "weight"),
    ("transformer.h.0.attn.c_proj.bias", (C,), "bias"),
    ("transformer.h.0.ln_2.weight", (C,), "ln_weight"),
    ("transformer.h.0.ln_2.bias", (C,), "bias"),
    ("transformer.h.0.mlp.c_fc.weight", (4 * C, C), "weight"),
    ("transformer.h.0.mlp.c_fc.bias", (4 * C,), "bias"),
    ("transformer.h.0.mlp.c_proj.weight", (C, 4 * C), "weight"),
    ("transformer.h.0.mlp.c_proj.bias", (C,), "bias"),
    ("transformer.ln_f.weight", (C,), "ln_weight"),
    ("transformer.ln_f.bias", (C,), "bias"),
    ("lm_head.weight", (V, C), "weight"),
]
PARAM_NAMES = [n for n, _, _ in PARAM_SPECS]


def make_params():
    """Deterministic float32 parameters (the float64 variant uses the same values, widened exactly)."""
    g = torch.Generator().manual_seed(SEED)
    params = {}
    for name, shape, kind in PARAM_SPECS:
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        if kind == "embed":
            p = z
        elif kind == "weight":
            p = z / math.sqrt(shape[1])  # fan-in scaling: pre-activations of order 1
        elif kind == "ln_weight":
            p = 1.0 + 0.2 * z
        else:  # bias
            p = 0.1 * z
        params[name] = p.contiguous()
    return params


def make_batch():
    g = torch.Generator().manual_seed(SEED + 1)
    idx = torch.randint(0, V, (B, T), generator=g, dtype=torch.int64)
    targets = torch.randint(0, V, (B, T), generator=g, dtype=torch.int64)
    targets[0, 1] = -100  # ignore_index: these positions do not count in the mean
    targets[1, 3] = -100
    return idx, targets


# ------------------------------------------------------------------------- the model
def forward(p, idx, targets, keep=None):
    """The block, with plain ops. `keep` (a dict) collects intermediates for debugging."""
    hs = C // N_HEAD
    pos = torch.arange(0, T, dtype=torch.int64)
    tok_emb = p["transformer.wte.weight"].index_select(0, idx.view(-1)).view(B, T, C)
    pos_emb = p["transformer.wpe.weight"].index_select(0, pos)  # (T, C), broadcast over B
    x = tok_emb + pos_emb

    # --- attention (pre-LN, causal, n_head heads)
    a_in = F.layer_norm(x, (C,), p["transformer.h.0.ln_1.weight"], p["transformer.h.0.ln_1.bias"], 1e-5)
    qkv = F.linear(a_in, p["transformer.h.0.attn.c_attn.weight"], p["transformer.h.0.attn.c_attn.bias"])
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, N_HEAD, hs).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, N_HEAD, hs).transpose(1, 2)
    v = v.view(B, T, N_HEAD, hs).transpose(1, 2)
    att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
    mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    att = att.masked_fill(mask == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    y = torch.matmul(att, v)  # (B, nh, T, hs)
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    attn_out = F.linear(y, p["transformer.h.0.attn.c_proj.weight"], p["transformer.h.0.attn.c_proj.bias"])
    h = x + attn_out

    # --- MLP
    m_in = F.layer_norm(h, (C,), p["transformer.h.0.ln_2.weight"], p["transformer.h.0.ln_2.bias"], 1e-5)
    fc = F.linear(m_in, p["transformer.h.0.mlp.c_fc.weight"], p["transformer.h.0.mlp.c_fc.bias"])
    act = F.gelu(fc)  # exact (erf) GELU
    mlp_out = F.linear(act, p["transformer.h.0.mlp.c_proj.weight"], p["transformer.h.0.mlp.c_proj.bias"])
    h2 = h + mlp_out

    # --- head and loss
    hf = F.layer_norm(h2, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], 1e-5)
    logits = F.linear(hf, p["lm_head.weight"])
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)

    if keep is not None:
        for name, t in [("x", x), ("ln_1", a_in), ("qkv", qkv), ("att", att), ("attn_y", y),
                        ("h_attn", h), ("ln_2", m_in), ("mlp_fc", fc), ("mlp_gelu", act),
                        ("h_block", h2), ("ln_f", hf)]:
            t.retain_grad()
            keep[name] = t
    return logits, loss


# ------------------------------------------------------------------------- writing fixtures
def encode(t):
    t = t.detach().contiguous()
    flat = t.reshape(-1)
    if t.dtype == torch.float32:
        # str(np.float32) is the shortest decimal that round-trips to the same float32; keep it as
        # text so json does not widen it to a 17-digit float64 repr.
        data = [Raw(str(np.float32(v))) for v in flat.numpy()]
        assert all(np.float32(r.text) == v for r, v in zip(data, flat.numpy())), "float32 repr must round-trip"
        dtype = "float32"
    elif t.dtype == torch.float64:
        data = [Raw(repr(float(v))) for v in flat.tolist()]
        dtype = "float64"
    elif t.dtype == torch.int64:
        data = [Raw(str(int(v))) for v in flat.tolist()]
        dtype = "int64"
    else:
        raise TypeError(f"unsupported dtype {t.dtype}")
    for r in data:
        if not math.isfinite(float(r.text)):
            raise ValueError("non-finite value in a fixture (JSON cannot hold it)")
    return {"shape": list(t.shape), "dtype": dtype, "data": data}


class Raw:
    """A number already formatted as text (written verbatim)."""

    def __init__(self, text):
        self.text = text


def dumps(obj, indent=0):
    """A compact, stable JSON writer: one line per tensor, numbers verbatim."""
    pad = " " * indent
    if isinstance(obj, Raw):
        return obj.text
    if isinstance(obj, dict):
        if "data" in obj:  # a tensor: keep it on one line
            return ("{\"shape\": " + json.dumps(obj["shape"]) + ", \"dtype\": " + json.dumps(obj["dtype"])
                    + ", \"data\": [" + ", ".join(dumps(v) for v in obj["data"]) + "]}")
        items = [pad + "  " + json.dumps(k) + ": " + dumps(v, indent + 2) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return json.dumps(obj)


def write(name, meta, tensors):
    doc = {"_meta": meta}
    for k, t in tensors.items():
        doc[k] = encode(t)
    text = dumps(doc) + "\n"
    json.loads(text)  # it must be valid JSON
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path)} ({len(text) // 1024} KB, {len(tensors)} tensors)")


def base_meta(description):
    return {
        "description": description,
        "generator": "tests/reference/engine_fixtures.py",
        "torch_version": torch.__version__,
        "config": {"B": B, "T": T, "vocab_size": V, "n_embd": C, "n_head": N_HEAD, "block_size": BLOCK_SIZE,
                   "layer_norm_eps": 1e-5, "gelu": "exact (erf)", "ignore_index": -100, "lm_head_bias": False,
                   "weight_tying": False, "seed": SEED},
    }


# ------------------------------------------------------------------------- scenarios
def attention_block(dtype, params32, idx, targets, intermediates):
    p = {n: params32[n].to(dtype).clone().requires_grad_(True) for n in PARAM_NAMES}
    keep = {}
    logits, loss = forward(p, idx, targets, keep)
    loss.backward()
    out = {"idx": idx, "targets": targets}
    for n in PARAM_NAMES:
        out[n] = p[n]
    out["logits"] = logits
    out["loss"] = loss
    for n in PARAM_NAMES:
        out["grad." + n] = p[n].grad
    if intermediates:
        for n, t in keep.items():
            out["intermediate." + n] = t
        for n in ["att", "x", "h_attn", "ln_f"]:
            out["intermediate_grad." + n] = keep[n].grad
    return out


def optimizer_steps(opt_name, dtype, params32, idx, targets):
    p = {n: params32[n].to(dtype).clone().requires_grad_(True) for n in PARAM_NAMES}
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt_name]
    opt = cls([p[n] for n in PARAM_NAMES], lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    out = {}
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        _, loss = forward(p, idx, targets)
        loss.backward()
        opt.step()
        out[f"step{step}.loss"] = loss.detach().clone()  # the loss at the parameters before this step
        for n in PARAM_NAMES:
            out[f"step{step}.{n}"] = p[n].detach().clone()
    return out


RTOL32, ATOL32_FRACTION = 1e-5, 1e-6  # the C# tests' float32 criterion, see check_f32_against_f64


def check_f32_against_f64(f32, f64, what, skip=()):
    """PyTorch's own float32 run must agree with its float64 run, within HALF of what the C# tests
    demand of MinTorch's float32 run (|a - b| <= 1e-5 |b| + 1e-6 max|b|, per tensor). Otherwise the
    float32 fixture would be asking MinTorch for more accuracy than float32 arithmetic has."""
    worst = (0.0, "")
    for k, a in f32.items():
        if not a.is_floating_point() or k in skip or k not in f64:
            continue
        b = f64[k].double()
        tol = RTOL32 * b.abs() + ATOL32_FRACTION * b.abs().max()
        ratio = ((a.double() - b).abs() / tol.clamp(min=1e-300)).max().item()
        worst = max(worst, (ratio, k))
    print(f"{what}: torch float32 vs float64 uses {worst[0]:.2f} of the float32 tolerance (worst: {worst[1]})")
    if worst[0] > 0.5:
        raise SystemExit(f"{what}: float32 results are not accurate enough for the C# tolerance")


# The key part of c_attn's bias, c_attn.bias[C:2C], has a gradient that is exactly zero in exact
# arithmetic: adding a constant vector b to every key adds q.b to every score of a query row, and
# softmax is invariant to a constant shift of its row. Computed in float32 it is rounding noise of
# order 1e-8 -- as large as Adam's eps -- so an AdamW step on it (no weight decay in the gradient)
# moves it by a noise-driven amount of order lr. PyTorch's and MinTorch's noise differ, so the
# float32 AdamW test cannot compare that slice; the float64 AdamW test (noise ~1e-17, far below
# eps) compares it within 2*lr*noise/eps per step. Adam's coupled L2 (grad += 0.1 * param) swamps the
# noise, so Adam needs no special case.
KEY_BIAS = "transformer.h.0.attn.c_attn.bias"


def main():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    params32 = make_params()
    idx, targets = make_batch()

    results = {}
    for dtype, suffix in [(torch.float32, "f32"), (torch.float64, "f64")]:
        # intermediates only in float32 (enough to locate a bug; keeps the float64 file small)
        out = attention_block(dtype, params32, idx, targets, intermediates=(suffix == "f32"))
        results[suffix] = out
        meta = base_meta(
            f"One nanoGPT pre-LN block + ln_f + lm_head + cross_entropy in {dtype}: inputs (idx, targets), "
            "every parameter (nanoGPT names), logits, loss, and grad.<param> for every parameter"
            + (", plus intermediate.<name> and intermediate_grad.<name> (retain_grad) for debugging."
               if suffix == "f32" else "."))
        write(f"attention_block_{suffix}.json", meta, out)
    check_f32_against_f64(results["f32"], results["f64"], "attention block")

    for opt_name in ["adam", "adamw"]:
        runs = {}
        for dtype, suffix in [(torch.float32, "f32"), (torch.float64, "f64")]:
            out = optimizer_steps(opt_name, dtype, params32, idx, targets)
            runs[suffix] = out
            cls = "Adam" if opt_name == "adam" else "AdamW"
            wd = ("coupled L2 (grad += weight_decay * param)" if opt_name == "adam"
                  else "decoupled (param *= 1 - lr * weight_decay)")
            meta = base_meta(
                f"{STEPS} steps of torch.optim.{cls} in {dtype} on the attention-block model, starting from "
                f"the parameters of attention_block_{suffix}.json with its idx and targets, recomputing the "
                f"loss and gradients each step. For each step k: stepk.loss (the loss before the step) and "
                f"stepk.<param> (the parameter after the step). Weight decay: {wd}.")
            meta["optimizer"] = {"name": cls, "lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS,
                                 "weight_decay": WEIGHT_DECAY, "amsgrad": False, "steps": STEPS}
            write(f"{opt_name}_3_steps_{suffix}.json", meta, out)
        skip = {f"step{k}.{KEY_BIAS}" for k in range(1, STEPS + 1)} if opt_name == "adamw" else set()
        check_f32_against_f64(runs["f32"], runs["f64"], opt_name, skip)
        if opt_name == "adamw":
            kb = runs["f32"][f"step1.{KEY_BIAS}"][C:2 * C].double() - runs["f64"][f"step1.{KEY_BIAS}"][C:2 * C]
            print(f"  (adamw float32 vs float64 on the key bias after step 1, skipped above: max |diff| "
                  f"{kb.abs().max().item():.1e}, i.e. noise-driven)")


if __name__ == "__main__":
    main()
