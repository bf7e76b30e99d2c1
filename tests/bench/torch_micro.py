#!/usr/bin/python3
"""PyTorch side of the MinTorch micro-benchmarks (tests/bench/Program.cs is the C# side).

    /usr/bin/python3 tests/bench/torch_micro.py <bench>... [--reps N] [--threads N] [--warmup S]

<bench> is matmul, softmax, layer_norm, micro or all. Prints one JSON line per workload, with the
same keys, shapes and method as the C# program (float32, 2 threads, ~1 s warm-up, then the median
of N timed repetitions), and impl "torch". Which BLAS torch really loaded goes to stderr: Debian's
python3-torch is linked against the generic libblas.so.3, which resolves to the netlib reference
BLAS unless libopenblas0-openmp is installed, and a ratio against that means nothing.
"""
import argparse
import gc
import json
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------- harness


class Workload:
    """One thing to time. step() runs one repetition; flops (if known) gives a GFLOP/s figure."""

    def __init__(self, bench, name, step, shape=None, flops=None, config="-"):
        self.bench, self.name, self.step = bench, name, step
        self.shape, self.flops, self.config = shape, flops, config


MIN_WARMUP_CALLS = 2  # untimed calls at least, however long they take (as Harness.cs)
MIN_REPS = 3          # timed calls at least, whatever the budget


def measure(w, reps, warmup_s, threads, budget_s=30.0):
    """Warm up for about warmup_s seconds (at least 2 calls), then time reps calls -- fewer (but at least 3)
    once the timed calls have taken budget_s seconds; median and min. The same method as Harness.cs."""
    start = time.perf_counter()
    calls = 0
    while calls < MIN_WARMUP_CALLS or time.perf_counter() - start < warmup_s:
        w.step()
        calls += 1
    gc.collect()
    times = []
    spent = 0.0
    while len(times) < reps and (len(times) < MIN_REPS or spent < budget_s * 1000):
        t0 = time.perf_counter_ns()
        w.step()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        spent += times[-1]
    median = statistics.median(times)
    line = {
        "bench": w.bench, "workload": w.name, "config": w.config, "impl": "torch",
        "threads": threads, "reps": len(times),
        "median_ms": round(median, 4), "min_ms": round(min(times), 4),
        "warmup_calls": calls,
    }
    if w.shape is not None:
        line["shape"] = w.shape
    if w.flops:
        line["gflops"] = round(w.flops / median / 1e6, 3)
    return line


# ---------------------------------------------------------------------------------------- workloads
# Shapes must match tests/bench/MicroBenches.cs.

SOFTMAX_SHAPE = (64, 128, 256)  # normalised over the last dim (256), for softmax and layer_norm


def bench_matmul():
    for n in (256, 1024):
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        yield Workload("matmul", f"matmul_{n}", lambda a=a, b=b: a.matmul(b),
                       shape=f"{n}x{n}x{n}", flops=2.0 * n * n * n)


def shape_str(s):
    return "x".join(str(d) for d in s)


def bench_softmax():
    x = torch.randn(*SOFTMAX_SHAPE)
    yield Workload("softmax", "softmax_fwd", lambda: x.softmax(-1), shape=shape_str(SOFTMAX_SHAPE))

    xg = torch.randn(*SOFTMAX_SHAPE, requires_grad=True)
    g = torch.randn(*SOFTMAX_SHAPE)

    def fwd_bwd():
        xg.grad = None
        xg.softmax(-1).backward(g)
    yield Workload("softmax", "softmax_fwd_bwd", fwd_bwd, shape=shape_str(SOFTMAX_SHAPE))


def bench_layer_norm():
    d = SOFTMAX_SHAPE[-1]
    x = torch.randn(*SOFTMAX_SHAPE)
    w = 1 + 0.1 * torch.randn(d)
    b = 0.1 * torch.randn(d)
    yield Workload("layer_norm", "layer_norm_fwd", lambda: F.layer_norm(x, (d,), w, b),
                   shape=shape_str(SOFTMAX_SHAPE))

    xg = x.clone().requires_grad_()
    wg = w.clone().requires_grad_()
    bg = b.clone().requires_grad_()
    g = torch.randn(*SOFTMAX_SHAPE)

    def fwd_bwd():
        xg.grad = wg.grad = bg.grad = None
        F.layer_norm(xg, (d,), wg, bg).backward(g)
    yield Workload("layer_norm", "layer_norm_fwd_bwd", fwd_bwd, shape=shape_str(SOFTMAX_SHAPE))


MICRO = {"matmul": bench_matmul, "softmax": bench_softmax, "layer_norm": bench_layer_norm}


# ---------------------------------------------------------------------------------------- BLAS check

def report_blas():
    """Prints to stderr the BLAS torch was built against and the one it actually calls; warns if bad.

    Debian's torch says only BLAS_INFO=generic: it calls sgemm_ in the generic libblas.so.3, which
    the alternatives system (or LD_LIBRARY_PATH) resolves to OpenBLAS, BLIS or the netlib reference
    BLAS. So we look up which libblas.so.3 is mapped into this process after a matmul (OpenBLAS's own
    libopenblas may be mapped too, through liblapack, while sgemm_ still comes from netlib)."""
    torch.randn(64, 64).matmul(torch.randn(64, 64))  # make sure the BLAS is loaded
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    blas_info = m.group(1) if m else "?"
    mapped = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("/") and path not in mapped:
                    mapped.append(path)
    except OSError:
        pass
    libblas = [p for p in mapped if os.path.basename(p).startswith("libblas.so")]
    others = [p for p in mapped if re.search(r"(openblas|blis|mkl)[^/]*\.so", os.path.basename(p))]
    print(f"torch {torch.__version__}, BLAS_INFO={blas_info}; libblas.so.3 in use: "
          f"{', '.join(os.path.realpath(p) for p in libblas) or '(none: BLAS linked directly)'}; "
          f"other BLAS libraries mapped: {', '.join(others) or '(none)'}", file=sys.stderr)
    reference = [p for p in libblas if os.path.basename(os.path.dirname(os.path.realpath(p))) == "blas"]
    if reference or (not libblas and blas_info == "generic"):
        print("WARNING: torch is using the REFERENCE (netlib) BLAS, 3-27x slower than OpenBLAS; a ratio against it\n"
              "         means nothing. Fix: apt-get install -y libopenblas0-openmp (and no LD_LIBRARY_PATH override).",
              file=sys.stderr)
    elif any("openblas-pthread" in os.path.realpath(p) for p in libblas):
        print("WARNING: libblas.so.3 is OpenBLAS's pthread build, whose threads ignore torch.set_num_threads;\n"
              "         install libopenblas0-openmp (or set OPENBLAS_NUM_THREADS) for a fair 2-thread comparison.",
              file=sys.stderr)
    return libblas


# ---------------------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benches", nargs="+", help="matmul, softmax, layer_norm, micro (all three) or all")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per workload (default 20)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per workload (default 5: .NET needs ~300 calls of a small workload to reach its optimised, profile-guided code)")
    p.add_argument("--budget", type=float, default=30.0, help="stop timing a workload after this many seconds, 3 reps at least (default 30)")
    p.add_argument("--config", choices=["S", "M", "L"], default="S",
                   help="TinyGpt config; accepted for symmetry with the C# program, unused by micro benches")
    args = p.parse_args(argv)
    if args.reps < 1 or args.threads < 1 or args.warmup < 0:
        p.error("--reps and --threads must be >= 1, --warmup >= 0")

    names = []
    for b in args.benches:
        if b in ("all", "micro"):
            names += list(MICRO)
        elif b in MICRO:
            names.append(b)
        else:
            p.error(f"unknown bench '{b}'; choose from {', '.join(list(MICRO) + ['micro', 'all'])}")
    names = list(dict.fromkeys(names))  # de-duplicate, keep order

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report_blas()
    for name in names:
        for w in MICRO[name]():
            print(json.dumps(measure(w, args.reps, args.warmup, args.threads, args.budget)), flush=True)


if __name__ == "__main__":
    main()
