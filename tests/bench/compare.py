#!/usr/bin/python3
"""Side-by-side benchmark: MinTorch and TorchSharp (tests/bench, C#) against PyTorch, same machine.

    /usr/bin/python3 tests/bench/compare.py [<bench>...] [--procs 3] [--reps 20] [--threads 2]
                                            [--warmup 5] [--budget 30] [--config S,M,L] [--json results.json]

Builds tests/bench twice in Release, once per engine (-p:Engine=MinTorch and the default TorchSharp, the
same source), then runs the three programs ALTERNATELY (the order rotates every round, so slow drift of
the machine hits all alike), --procs processes each, never two at once. Each process prints one JSON line
per workload with the median of its repetitions; the table shows, per workload, the median of those
per-process medians for each engine and the ratios MinTorch / PyTorch, TorchSharp / PyTorch and
MinTorch / TorchSharp (lower is better for the first engine named), followed by a JSON summary line. The machines are noisy (+-20-30% per repetition, more between processes):
read ratios within ~0.3 of 1.0 as "about the same".
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROJECT = os.path.join(HERE, "MinRL.Bench.csproj")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# Which PyTorch script times each bench (the C# side has them all, in Program.cs's Registry).
MICRO = ["matmul", "softmax", "layer_norm"]
TINYGPT = ["train", "generate", "logprobs"]
# The same workloads on a plain nanoGPT written with the public TorchSharp API (GenericBenches.cs); the PyTorch
# side is torch_tinygpt.py's model, already plain written-out code, with a torch.cat KV cache as on the C# side.
GENERIC = ["generic_train", "generic_generate", "generic_logprobs"]
TORCH_SCRIPT = {**{b: "torch_micro.py" for b in MICRO}, **{b: "torch_tinygpt.py" for b in TINYGPT + GENERIC}}
GROUPS = {"micro": MICRO, "tinygpt": TINYGPT, "generic": GENERIC, "all": MICRO + TINYGPT + GENERIC}


def expand(names):
    out = []
    for n in names:
        if n in GROUPS:
            out += GROUPS[n]
        elif n in TORCH_SCRIPT:
            out.append(n)
        else:
            sys.exit(f"compare.py: unknown bench '{n}'; choose from {', '.join(list(TORCH_SCRIPT) + list(GROUPS))}")
    return list(dict.fromkeys(out))


ENGINES = {"mintorch": "MinTorch", "torchsharp": "TorchSharp"}   # impl name -> -p:Engine value
IMPLS = ["mintorch", "torchsharp", "torch"]
NAMES = {"mintorch": "MinTorch", "torchsharp": "TorchSharp", "torch": "PyTorch"}


def build(engine):
    """dotnet build -c Release -p:Engine=..., once per engine, before any timing."""
    print(f"building {os.path.relpath(PROJECT, ROOT)} (Release, {engine})...", file=sys.stderr, flush=True)
    r = subprocess.run(["dotnet", "build", PROJECT, "-c", "Release", f"-p:Engine={engine}", "-nologo", "-v", "q"],
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(f"compare.py: the {engine} build failed")


def target_path(engine):
    """The built MinRL.Bench.dll of one engine, run directly with `dotnet <dll>` (no msbuild in the timed processes)."""
    r = subprocess.run(["dotnet", "msbuild", PROJECT, "-nologo", "-getProperty:TargetPath", "-p:Configuration=Release",
                        f"-p:Engine={engine}"], cwd=ROOT, capture_output=True, text=True)
    dll = r.stdout.strip()
    if r.returncode != 0 or not os.path.exists(dll):
        sys.exit(f"compare.py: cannot find the built {engine} bench ({r.stdout}{r.stderr})")
    return dll


_shown = set()


def run(cmd):
    """Runs one benchmark process; returns its JSON lines. Its stderr (versions, BLAS) is shown once per program."""
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(f"compare.py: {' '.join(cmd)} failed with status {r.returncode}")
    if cmd[1] not in _shown and r.stderr.strip():
        _shown.add(cmd[1])
        sys.stderr.write(r.stderr)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    print(f"  {lines[0]['impl'] if lines else '?':8s} {len(lines)} workloads in {time.time() - t0:.1f} s",
          file=sys.stderr, flush=True)
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benches", nargs="*", default=["all"], help="benches or groups (micro, tinygpt, generic, all); default all")
    p.add_argument("--procs", type=int, default=3, help="processes per implementation (default 3, at least 3 for a fair number)")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per workload per process (default 20)")
    p.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per workload (default 5: .NET needs ~300 calls of a small workload to reach its optimised, profile-guided code)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="each process stops timing a workload after this many seconds, 3 reps at least (default 30)")
    p.add_argument("--config", default="S,M,L",
                   help="TinyGpt and generic configs, S, M, L or a comma-separated list (default S,M,L); micro benches ignore it")
    p.add_argument("--json", metavar="PATH", help="also write every raw line and the summary to PATH")
    p.add_argument("--no-build", action="store_true", help="use the existing Release build")
    args = p.parse_args(argv)
    if args.procs < 1:
        p.error("--procs must be >= 1")

    configs = list(dict.fromkeys(c.strip().upper() for c in args.config.split(",") if c.strip()))
    if not configs or any(c not in ("S", "M", "L") for c in configs):
        p.error(f"--config must be one or more of S, M, L (comma-separated), got '{args.config}'")
    args.config = ",".join(configs)

    benches = expand(args.benches)
    common = ["--reps", str(args.reps), "--threads", str(args.threads), "--warmup", str(args.warmup),
              "--budget", str(args.budget)]
    cmds = {}
    for impl, engine in ENGINES.items():
        if not args.no_build:
            build(engine)
        cmds[impl] = [["dotnet", target_path(engine), *benches, *common, "--config", args.config]]
    torch_cmds = []
    for script in dict.fromkeys(TORCH_SCRIPT[b] for b in benches):
        mine = [b for b in benches if TORCH_SCRIPT[b] == script]
        config = ["--config", args.config] if script == "torch_tinygpt.py" else []
        torch_cmds.append([PYTHON, os.path.join(HERE, script), *mine, *common, *config])
    cmds["torch"] = torch_cmds

    load_before = os.getloadavg()
    started = time.time()
    raw = []  # every JSON line, tagged with its process number
    for proc in range(args.procs):
        order = IMPLS[proc % 3:] + IMPLS[:proc % 3]
        print(f"round {proc + 1}/{args.procs}: {' then '.join(order)}", file=sys.stderr, flush=True)
        for impl in order:
            for cmd in cmds[impl]:
                for line in run(cmd):
                    line["proc"] = proc
                    raw.append(line)

    # The machine's load (1, 5, 15-minute averages of runnable processes; this program keeps one busy
    # thread per --threads): with other work running, ratios mean less (see README, Fairness).
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()],
            "minutes": round((time.time() - started) / 60, 1), "cpus": os.cpu_count()}
    summary = summarize(raw)
    print_table(summary, args)
    print(f"machine load (1/5/15-min averages) before {load['before']}, after {load['after']}, "
          f"{load['cpus']} CPUs, {load['minutes']} minutes")
    print(json.dumps({"summary": summary, "procs": args.procs, "reps": args.reps, "threads": args.threads,
                      "config": args.config, "load": load}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "raw": raw, "args": vars(args), "load": load}, f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)


def summarize(raw):
    """Per (bench, workload, config): median of the per-process medians of each side, and their ratio.
    Rows come grouped by config (micro-benchmarks, then S, M, L), workloads in the order they ran."""
    keys = list(dict.fromkeys((l["bench"], l["workload"], l["config"]) for l in raw))
    config_order = {"-": 0, "S": 1, "M": 2, "L": 3}
    keys.sort(key=lambda k: config_order.get(k[2], 9))  # stable: keeps the run order within a config
    out = []
    for bench, workload, config in keys:
        row = {"bench": bench, "workload": workload, "config": config}
        for impl in IMPLS:
            lines = [l for l in raw if (l["bench"], l["workload"], l["config"], l["impl"]) == (bench, workload, config, impl)]
            meds = [l["median_ms"] for l in lines]
            row[impl] = {
                "median_of_medians_ms": round(statistics.median(meds), 4) if meds else None,
                "process_medians_ms": meds,
                "min_ms": min(l["min_ms"] for l in lines) if lines else None,
            }
            gfl = [l["gflops"] for l in lines if "gflops" in l]
            if gfl:
                row[impl]["gflops"] = round(statistics.median(gfl), 3)
        ms = {impl: row[impl]["median_of_medians_ms"] for impl in IMPLS}
        for a, b in (("mintorch", "torch"), ("torchsharp", "torch"), ("mintorch", "torchsharp")):
            row[f"{a}/{b}"] = round(ms[a] / ms[b], 3) if ms[a] and ms[b] else None
        out.append(row)
    return out


def print_table(summary, args):
    print(f"\nMinTorch, TorchSharp and PyTorch, {args.threads} threads, {args.procs} processes x up to {args.reps} reps "
          f"each (at most {args.budget:g} s of timed calls per workload, 3 at least); "
          f"median of per-process medians (spread = min..max of those medians)")
    head = (f"{'workload':<24} {'cfg':>3}  " + "  ".join(f"{NAMES[i] + ' ms':>14} {'spread':>17}" for i in IMPLS)
            + f"  {'MT/PT':>6} {'TS/PT':>6} {'MT/TS':>6}  note")
    print(head)
    print("-" * len(head))

    def fmt(ms):
        return f"{ms:.3f}" if ms is not None and ms < 100 else (f"{ms:.1f}" if ms is not None else "-")

    def ratio(r):
        return f"{r:.2f}" if r is not None else "-"

    for row in summary:
        cells = []
        for impl in IMPLS:
            r = row[impl]
            meds = r["process_medians_ms"]
            spread = f"{fmt(min(meds))}..{fmt(max(meds))}" if meds else "-"
            cells.append(f"{fmt(r['median_of_medians_ms']):>14} {spread:>17}")
        note = ""
        if any("gflops" in row[i] for i in IMPLS):
            note = "GFLOP/s " + " / ".join(str(row[i].get("gflops", "-")) for i in IMPLS)
        print(f"{row['workload']:<24} {row['config']:>3}  {'  '.join(cells)}  {ratio(row['mintorch/torch']):>6} "
              f"{ratio(row['torchsharp/torch']):>6} {ratio(row['mintorch/torchsharp']):>6}  {note}")
    print("MT = MinTorch, TS = TorchSharp (libtorch 2.10), PT = PyTorch; a ratio below 1.0 means the first engine "
          "named is faster. Noise is +-20-30%.\n")


if __name__ == "__main__":
    main()
