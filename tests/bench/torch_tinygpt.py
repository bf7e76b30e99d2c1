#!/usr/bin/python3
"""PyTorch side of the TinyGpt benchmarks (tests/bench/TinyGptBenches.cs is the C# side).

    /usr/bin/python3 tests/bench/torch_tinygpt.py <bench>... [--config S|M|L|S,M,L] [--reps N] [--threads N] [--warmup S] [--budget S]

<bench> is train, generate, logprobs, tinygpt, generic_train, generic_generate, generic_logprobs, generic
or all. Prints one JSON line per workload and config,
with the same keys, names and method as the C# program (float32, 2 threads, ~1 s warm-up, then the
median of N timed repetitions), and impl "torch". The model is the same nanoGPT as MinRL's TinyGpt
(same shapes, same parameter count, printed to stderr on both sides):

* token + learned position embeddings, pre-LN blocks (causal multi-head self-attention, 4x GELU MLP
  with exact erf GELU), final LayerNorm, untied LM head; every Linear has a bias; weights N(0, 0.02),
  biases 0, LayerNorms (1, 0); no dropout;
* attention is explicit (q k^T / sqrt(D), masked_fill with a precomputed causal mask, softmax, @ v):
  torch 1.13 has no F.scaled_dot_product_attention;
* the KV cache is preallocated per layer, (B, H, block, D) for keys and values; each step writes its
  positions in place and attends over a slice (a view, no copy) of what is filled.

Workloads (as in TinyGptBenches.cs; README.md, "TinyGpt workloads"):
  train             forward + mean cross-entropy + backward + AdamW(lr 3e-4, weight_decay 0.01) step on (batch, ctx)
  generate_cache    64 prompts of 8 tokens, 64 new tokens at temperature 1, with the KV cache
  generate_nocache  the same, recomputing the whole growing sequence every step
  logprobs          no-grad log-probs of the 64 completion tokens of 64 sequences of 72 tokens
For generate and logprobs the position table has max(ctx, 72) rows. Only the last position goes
through the LM head when generating (as in nanoGPT).

The generic family (generic_train, generic_generate_cache, generic_generate_nocache, generic_logprobs; C# side
GenericBenches.cs, a plain nanoGPT written with the public TorchSharp API) is the same workloads on the same
model, which already is plain written-out PyTorch; the one difference is generic_generate_cache's KV cache, grown
with torch.cat per layer (CatCache) as the C# side grows it, instead of preallocated and written in place.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_micro import Workload, measure, report_blas  # noqa: E402  (same harness as the micro-benchmarks)

# name: (vocab, d_model, layers, heads, ctx, batch) -- as BenchConfig in Program.cs and README.md's table
CONFIGS = {
    "S": (32, 64, 2, 4, 32, 32),
    "M": (64, 128, 4, 4, 64, 32),
    "L": (256, 256, 6, 8, 128, 16),
}
PROMPTS, PROMPT_LEN, NEW_TOKENS = 64, 8, 64
SEQ_LEN = PROMPT_LEN + NEW_TOKENS
TEMPERATURE = 1.0


# ---------------------------------------------------------------------------------------- the model

class CausalSelfAttention(nn.Module):
    def __init__(self, d, h, block):
        super().__init__()
        self.h = h
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(block, block, dtype=torch.bool)).view(1, 1, block, block))

    def forward(self, x, cache=None, start=0):
        B, T, C = x.shape
        H, D = self.h, C // self.h
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)                        # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        if cache is not None:
            k, v = cache.append(k, v, start)                          # (B, H, L, D): every position so far
        L = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))        # (B, H, T, L)
        if T > 1:                                                     # query i sits at position L - T + i
            att = att.masked_fill(~self.bias[:, :, L - T:L, :L], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v                                                   # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class PreallocCache:
    """One layer's keys and values, preallocated (B, H, block, D) and written in place (the tinygpt family)."""

    def __init__(self, batch, heads, block, d):
        self.k, self.v = torch.empty(batch, heads, block, d), torch.empty(batch, heads, block, d)

    def append(self, k, v, start):
        T = k.shape[2]
        self.k[:, :, start:start + T] = k
        self.v[:, :, start:start + T] = v
        return self.k[:, :, :start + T], self.v[:, :, :start + T]   # views of the filled part


class CatCache:
    """One layer's keys and values, grown with torch.cat (the generic family, as GenericBenches.cs does it)."""

    def __init__(self):
        self.k = self.v = None

    def append(self, k, v, start):
        if self.k is not None:
            k, v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)   # (B, H, start + T, D)
        self.k, self.v = k, v
        return k, v


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))                      # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, d, h, block):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, h, block)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = Mlp(d)

    def forward(self, x, cache=None, start=0):
        x = x + self.attn(self.ln_1(x), cache, start)
        return x + self.mlp(self.ln_2(x))


class TinyGpt(nn.Module):
    """nanoGPT with biases everywhere and an untied LM head; parameter names as in MinRL's TinyGpt."""

    def __init__(self, vocab, d, layers, heads, block):
        super().__init__()
        self.block, self.layers, self.heads, self.d = block, layers, heads, d
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, d),
            wpe=nn.Embedding(block, d),
            h=nn.ModuleList([Block(d, heads, block) for _ in range(layers)]),
            ln_f=nn.LayerNorm(d),
        ))
        self.lm_head = nn.Linear(d, vocab)
        for name, p in self.named_parameters():                       # the benchmark init (README.md)
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def hidden(self, idx, cache=None, start=0):
        """(B, T) ids -> (B, T, C) after ln_f; with a cache, idx are the positions start.. and are appended."""
        T = idx.shape[1]
        pos = torch.arange(start, start + T, dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for i, blk in enumerate(self.transformer.h):
            x = blk(x, None if cache is None else cache[i], start)
        return self.transformer.ln_f(x)

    def forward(self, idx):
        return self.lm_head(self.hidden(idx))

    def new_cache(self, batch, grow=False):
        """Per layer a PreallocCache, or with grow=True a CatCache (the generic family)."""
        if grow:
            return [CatCache() for _ in range(self.layers)]
        return [PreallocCache(batch, self.heads, self.block, self.d // self.heads) for _ in range(self.layers)]


def make_model(name, block):
    vocab, d, layers, heads, ctx, batch = CONFIGS[name]
    model = TinyGpt(vocab, d, layers, heads, block)
    n = sum(p.numel() for p in model.parameters())
    print(f"TinyGpt {name}: vocab {vocab}, d_model {d}, layers {layers}, heads {heads}, block {block}: {n} parameters",
          file=sys.stderr)
    return model


# ---------------------------------------------------------------------------------------- workloads

def bench_train(name, prefix=""):
    vocab, d, layers, heads, ctx, batch = CONFIGS[name]
    torch.manual_seed(0)
    model = make_model(name, ctx)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    x = torch.randint(0, vocab, (batch, ctx))
    y = torch.randint(0, vocab, (batch, ctx))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)                                             # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1))
        loss.backward()
        opt.step()
    yield Workload(prefix + "train", prefix + "train", step, shape=f"{batch}x{ctx}", config=name)


def sample(model, last_hidden):
    """(B, C) hidden state of the last position -> (B, 1) sampled ids."""
    logits = model.lm_head(last_hidden)                               # (B, V)
    return torch.multinomial(F.softmax(logits / TEMPERATURE, dim=-1), 1)


@torch.no_grad()
def generate_cached(model, prompts, grow=False):
    cache = model.new_cache(prompts.shape[0], grow)
    h = model.hidden(prompts, cache, 0)                               # (B, 8, C)
    t = prompts.shape[1]
    tokens = []
    for s in range(NEW_TOKENS):
        nxt = sample(model, h[:, -1])                                 # (B, 1)
        tokens.append(nxt)
        if s < NEW_TOKENS - 1:
            h = model.hidden(nxt, cache, t)                           # (B, 1, C)
            t += 1
    return torch.cat(tokens, 1)


@torch.no_grad()
def generate_uncached(model, prompts):
    seq = prompts
    for _ in range(NEW_TOKENS):
        h = model.hidden(seq)                                         # (B, t, C)
        seq = torch.cat([seq, sample(model, h[:, -1])], 1)            # (B, t + 1)
    return seq[:, PROMPT_LEN:]


def bench_generate(name, prefix=""):
    vocab, d, layers, heads, ctx, batch = CONFIGS[name]
    torch.manual_seed(0)
    model = make_model(name, max(ctx, SEQ_LEN))
    model.eval()
    prompts = torch.randint(0, vocab, (PROMPTS, PROMPT_LEN))
    shape = f"{PROMPTS}x{PROMPT_LEN}, {NEW_TOKENS} new"
    grow = prefix == "generic_"                                       # the generic family's cache: torch.cat
    yield Workload(prefix + "generate", prefix + "generate_cache", lambda: generate_cached(model, prompts, grow),
                   shape=shape, config=name)
    yield Workload(prefix + "generate", prefix + "generate_nocache", lambda: generate_uncached(model, prompts),
                   shape=shape, config=name)


@torch.no_grad()
def logprobs(model, seqs):
    logits = model(seqs)                                              # (B, 72, V)
    pred = logits[:, PROMPT_LEN - 1:PROMPT_LEN - 1 + NEW_TOKENS]      # (B, 64, V): positions 7..70
    targets = seqs[:, PROMPT_LEN:].unsqueeze(-1)                      # (B, 64, 1)
    return F.log_softmax(pred, dim=-1).gather(-1, targets).squeeze(-1)


def bench_logprobs(name, prefix=""):
    vocab, d, layers, heads, ctx, batch = CONFIGS[name]
    torch.manual_seed(0)
    model = make_model(name, max(ctx, SEQ_LEN))
    model.eval()
    seqs = torch.randint(0, vocab, (PROMPTS, SEQ_LEN))
    yield Workload(prefix + "logprobs", prefix + "logprobs", lambda: logprobs(model, seqs),
                   shape=f"{PROMPTS}x{SEQ_LEN}", config=name)


BENCHES = {"train": bench_train, "generate": bench_generate, "logprobs": bench_logprobs}
# The generic family: the same functions, workloads named generic_*, generate_cache with a torch.cat cache.
GENERIC = {f"generic_{b}": (lambda c, f=f: f(c, prefix="generic_")) for b, f in BENCHES.items()}
GROUPS = {"tinygpt": list(BENCHES), "generic": list(GENERIC), "all": list(BENCHES) + list(GENERIC)}


# ---------------------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benches", nargs="+",
                   help="train, generate, logprobs, tinygpt (all three), generic_train, generic_generate, "
                        "generic_logprobs, generic (those three) or all")
    p.add_argument("--config", default="S,M,L", help="S, M, L or a comma-separated list (default S,M,L)")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per workload (default 20)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per workload (default 5)")
    p.add_argument("--budget", type=float, default=30.0, help="stop timing a workload after this many seconds, 3 reps at least (default 30)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.threads < 1 or args.warmup < 0:
        p.error("--reps and --threads must be >= 1, --warmup >= 0")
    configs = list(dict.fromkeys(c.strip().upper() for c in args.config.split(",") if c.strip()))
    for c in configs:
        if c not in CONFIGS:
            p.error(f"--config must be one or more of {', '.join(CONFIGS)}, got '{c}'")

    names = []
    benches = {**BENCHES, **GENERIC}
    for b in args.benches:
        if b in GROUPS:
            names += GROUPS[b]
        elif b in benches:
            names.append(b)
        else:
            p.error(f"unknown bench '{b}'; choose from {', '.join(list(benches) + list(GROUPS))}")
    names = list(dict.fromkeys(names))

    torch.set_num_threads(args.threads)
    report_blas()
    for name in names:
        for c in configs:
            for w in benches[name](c):
                print(json.dumps(measure(w, args.reps, args.warmup, args.threads, args.budget)), flush=True)


if __name__ == "__main__":
    main()
