// MinRL.Bench: times MinTorch on fixed workloads, one JSON line per workload, so that
// tests/bench/compare.py can put the numbers beside PyTorch's (torch_micro.py) from the same machine.
//
//   dotnet run -c Release --project tests/bench -- <bench>... [--config S|M|L|S,M,L] [--reps N] [--threads N] [--warmup S] [--budget S]
//
// <bench> is a name from the registry below, `micro` (every micro-benchmark), `tinygpt` (train,
// generate, logprobs on each --config; all three configs by default), `generic` (the same workloads on a
// plain nanoGPT written with the public TorchSharp API, GenericBenches.cs) or `all`.

using System.Globalization;
using TorchSharp;
using MinRL.Bench;

return Cli.Run(args);

namespace MinRL.Bench
{
    /// <summary>Command-line settings shared by every workload.</summary>
    /// <param name="Configs">TinyGpt sizes to run (the table in <see cref="BenchConfig"/>), S, M and L unless
    /// <c>--config</c> names some; micro-benchmarks ignore them.</param>
    /// <param name="Reps">Timed repetitions per workload; the median is reported.</param>
    /// <param name="Threads">torch.set_num_threads; 2 matches the PyTorch side.</param>
    /// <param name="WarmupSeconds">Untimed calls before timing, so the JIT has tiered up.</param>
    /// <param name="BudgetSeconds">Timed calls stop after this many seconds (but not before 3): the slow workloads
    /// (generate_nocache at L takes seconds a call) get fewer repetitions.</param>
    public sealed record Options(string[] Configs, int Reps = 20, int Threads = 2, double WarmupSeconds = 5.0, double BudgetSeconds = 30)
    {
        public Options() : this(["S", "M", "L"]) { }
    }

    /// <summary>The benchmark configs for the TinyGpt workloads (README.md tables them too).</summary>
    public sealed record BenchConfig(string Name, int Vocab, int DModel, int Layers, int Heads, int Ctx, int Batch)
    {
        public static readonly IReadOnlyDictionary<string, BenchConfig> All = new Dictionary<string, BenchConfig>
        {
            ["S"] = new("S", Vocab: 32, DModel: 64, Layers: 2, Heads: 4, Ctx: 32, Batch: 32),
            ["M"] = new("M", Vocab: 64, DModel: 128, Layers: 4, Heads: 4, Ctx: 64, Batch: 32),
            ["L"] = new("L", Vocab: 256, DModel: 256, Layers: 6, Heads: 8, Ctx: 128, Batch: 16),
        };
    }

    /// <summary>A named benchmark: a factory that yields its workloads (lazily, so inputs are built just before they are timed).</summary>
    public sealed record Bench(string Name, string Group, string Description, Func<Options, IEnumerable<Workload>> Create);

    public static class Cli
    {
        /// <summary>
        /// Every benchmark: the engine micro-benchmarks (MicroBenches.cs, PyTorch twin torch_micro.py),
        /// the TinyGpt workloads (TinyGptBenches.cs, one set per config in <c>--config</c>; PyTorch twin
        /// torch_tinygpt.py) and the generic ones (GenericBenches.cs: the same workloads on a plain nanoGPT written
        /// with the public TorchSharp API; PyTorch twin torch_tinygpt.py too). `all` runs every registered bench;
        /// compare.py maps each name to its PyTorch script.
        /// </summary>
        public static readonly Bench[] Registry =
        [
            new("matmul", "micro", "float32 matmul 256x256x256 and 1024x1024x1024 (with GFLOP/s)", MicroBenches.Matmul),
            new("softmax", "micro", "float32 softmax over the last dim of (64, 128, 256): forward, forward+backward", MicroBenches.Softmax),
            new("layer_norm", "micro", "float32 layer_norm over 256 with weight and bias, (64, 128, 256): forward, forward+backward", MicroBenches.LayerNorm),
            new("train", "tinygpt", "TinyGpt: forward + cross-entropy + backward + AdamW step on (batch, ctx)", TinyGptBenches.Train),
            new("generate", "tinygpt", "TinyGpt: 64 prompts x 8 tokens, 64 new tokens at T=1, with (generate_cache) and without (generate_nocache) the KV cache", TinyGptBenches.Generate),
            new("logprobs", "tinygpt", "TinyGpt: no-grad log-probs of the 64 completion tokens of 64 sequences of 72 tokens", TinyGptBenches.Logprobs),
            new("generic_train", "generic", "plain nanoGPT (public TorchSharp API, attention written out): train as above", GenericBenches.Train),
            new("generic_generate", "generic", "plain nanoGPT: generate as above, KV cache grown with torch.cat (generic_generate_cache) and without (generic_generate_nocache)", GenericBenches.Generate),
            new("generic_logprobs", "generic", "plain nanoGPT: logprobs as above", GenericBenches.Logprobs),
        ];

        public static int Run(string[] args)
        {
            List<Bench> benches;
            Options options;
            try
            {
                (benches, options) = Parse(args);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                Console.Error.WriteLine(Usage());
                return 2;
            }
            if (benches.Count == 0) { Console.WriteLine(Usage()); return 0; }

            torch.set_num_threads(options.Threads);
            torch.manual_seed(0);
            Console.Error.WriteLine($"{Kit.Engine} bench: .NET {Environment.Version}, {Environment.ProcessorCount} processors, " +
                                    $"{options.Threads} threads, {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "AVX-512" : "no AVX-512")}");
            foreach (var bench in benches)
                foreach (var workload in bench.Create(options))
                    Console.WriteLine(Harness.Measure(workload, options).ToJsonString());
            return 0;
        }

        static (List<Bench>, Options) Parse(string[] args)
        {
            var o = new Options();
            var names = new List<string>();
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int Positive(string v, string flag) =>
                    int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n
                        : throw new ArgumentException($"{flag} must be a positive integer, got '{v}'");
                switch (args[i])
                {
                    case "--config":
                        var cs = Value().ToUpperInvariant().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                        foreach (var c in cs)
                            if (!BenchConfig.All.ContainsKey(c))
                                throw new ArgumentException($"--config must be one or more of {string.Join(", ", BenchConfig.All.Keys)} (comma-separated), got '{c}'");
                        o = o with { Configs = cs.Length > 0 ? cs.Distinct().ToArray() : throw new ArgumentException("--config needs a value") };
                        break;
                    case "--reps": o = o with { Reps = Positive(Value(), "--reps") }; break;
                    case "--threads": o = o with { Threads = Positive(Value(), "--threads") }; break;
                    case "--warmup":
                        string v = Value();
                        o = double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s >= 0
                            ? o with { WarmupSeconds = s } : throw new ArgumentException($"--warmup must be seconds >= 0, got '{v}'");
                        break;
                    case "--budget":
                        string bv = Value();
                        o = double.TryParse(bv, NumberStyles.Float, CultureInfo.InvariantCulture, out double bs) && bs > 0
                            ? o with { BudgetSeconds = bs } : throw new ArgumentException($"--budget must be seconds > 0, got '{bv}'");
                        break;
                    case "-h": case "--help": case "--list": return ([], o);
                    default:
                        if (args[i].StartsWith('-')) throw new ArgumentException($"unknown option '{args[i]}'");
                        names.Add(args[i]);
                        break;
                }
            }
            var selected = new List<Bench>();
            foreach (var name in names)
            {
                var matches = name == "all" ? Registry
                    : Registry.Where(b => b.Name == name || b.Group == name).ToArray();
                if (matches.Length == 0)
                    throw new ArgumentException($"unknown bench '{name}'; choose from {string.Join(", ", Registry.Select(b => b.Name))}, micro, tinygpt, generic, all");
                foreach (var b in matches) if (!selected.Contains(b)) selected.Add(b);
            }
            return (selected, o);
        }

        static string Usage() =>
            "usage: dotnet run -c Release --project tests/bench -- <bench>... [--config S|M|L|S,M,...] [--reps N] [--threads N] [--warmup SECONDS] [--budget SECONDS]\n" +
            "  defaults: --config S,M,L --reps 20 --threads 2 --warmup 5 --budget 30 (timed calls stop after 30 s, at least 3)\n" +
            "benches:\n" +
            string.Concat(Registry.Select(b => $"  {b.Name,-16} [{b.Group}] {b.Description}\n")) +
            "  micro            every micro-benchmark\n" +
            "  tinygpt          train, generate and logprobs (on every --config)\n" +
            "  generic          generic_train, generic_generate and generic_logprobs (on every --config)\n" +
            "  all              every bench above";
    }
}
