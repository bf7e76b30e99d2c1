// Tests of the Lab: command-line parsing and its error messages, the run wrapper's exit codes, the
// metrics CSV, the SVG plot, summary.json, the plain-text progress lines and the NaN guards.
// They swap Console.Out/Error, so they run in one non-parallel collection.
using System.Globalization;
using System.Text.Json;
using System.Xml.Linq;
using TorchSharp;

namespace MinRL.Tests;

[CollectionDefinition("Lab console", DisableParallelization = true)]
public sealed class LabConsoleCollection;

public enum KlEstimator { K1, K2, K3 }
public enum LossMode { Grpo, DrGrpo }

/// <summary>An Args record like a chapter's: every supported option type, an overridden Steps.</summary>
public sealed record TestArgs : LabArgs
{
    [Help("policy-gradient steps", Min = 1)] public override int Steps { get; init; } = 400;
    [Help("learning rate of AdamW; CleanRL ppo.py uses 2.5e-4")] public double LearningRate { get; init; } = 3e-4;
    [Help("PPO clip range ε")] public float ClipEps { get; init; } = 0.2f;
    [Help("completions per step")] public long BatchSize { get; init; } = 128;
    [Help("normalise advantages")] public bool NormAdv { get; init; } = true;
    [Help("a name for the run")] public string RunName { get; init; } = "baseline";
    [Help("KL estimator (Schulman's k1, k2, k3)")] public KlEstimator Kl { get; init; } = KlEstimator.K3;
    [Help("loss normalisation")] public LossMode Mode { get; init; } = LossMode.Grpo;
    [Help("GAE λ values to compare")] public double[] Lambdas { get; init; } = [0, 0.95, 1];
    [Help("GAE λ", Min = 0, Max = 1)] public double GaeLambda { get; init; } = 0.95;
}

/// <summary>Overrides Steps with a [Help] that has no Min.</summary>
public sealed record NoMinArgs : LabArgs
{
    [Help("steps")] public override int Steps { get; init; } = 10;
}

[Collection("Lab console")]
public class LabTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "minrl-lab-" + Guid.NewGuid().ToString("N"));

    public LabTests() => Lab.Interactive = false;

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static TestArgs P(params string[] argv) => Lab.Parse<TestArgs>(argv, "00-test", "a test chapter");

    [Fact]
    public void A_string_value_may_start_with_dashes_when_it_has_a_space_as_compares_variants_do()
    {
        Assert.Equal("--loss dpo; --loss kto", P("--run-name", "--loss dpo; --loss kto").RunName);
        Assert.Equal("--x", P("--run-name=--x").RunName);                                 // with '=' anything goes
        var e = Assert.Throws<LabUsageException>(() => P("--run-name", "--steps"));       // a name, not a value
        Assert.Contains("needs a value", e.Message);
        Assert.Throws<LabUsageException>(() => P("--learning-rate", "-- 1"));             // only strings
    }

    private static string UsageError(params string[] argv)
    {
        var e = Assert.Throws<LabUsageException>(() => P(argv));
        Assert.Equal(2, e.ExitCode);
        return e.Message;
    }

    /// <summary>Runs <paramref name="action"/> with Console.Out and Console.Error captured.</summary>
    private static (string stdout, string stderr, T result) Capture<T>(Func<T> action)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { var r = action(); return (o.ToString(), e.ToString(), r); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    // ------------------------------------------------------------ parsing

    [Fact]
    public void No_arguments_gives_the_defaults()
    {
        var a = P();
        Assert.Equal(400, a.Steps);
        Assert.Equal(1, a.Seed);
        Assert.False(a.Quick);
        Assert.Equal(0, a.Threads);
        Assert.Equal(3e-4, a.LearningRate);
        Assert.Equal(0.2f, a.ClipEps);
        Assert.Equal(128, a.BatchSize);
        Assert.True(a.NormAdv);
        Assert.Equal("baseline", a.RunName);
        Assert.Equal(KlEstimator.K3, a.Kl);
        Assert.Equal([0, 0.95, 1], a.Lambdas);
        Assert.Equal(Path.Combine("runs", "00-test", "seed1"), a.Out);
        Assert.False(a.IsGiven(nameof(LabArgs.Steps)));
    }

    [Fact]
    public void Every_option_type_parses()
    {
        var a = P("--steps", "7", "--seed", "-3", "--learning-rate", "1e-4", "--clip-eps", "0.1", "--batch-size", "64",
                  "--norm-adv", "false", "--run-name", "my run", "--kl", "k1", "--mode", "dr-grpo", "--lambdas", "0, 0.5,1",
                  "--gae-lambda", "1", "--threads", "2", "--out", "somewhere");
        Assert.Equal(7, a.Steps);
        Assert.Equal(-3, a.Seed);
        Assert.Equal(1e-4, a.LearningRate);
        Assert.Equal(0.1f, a.ClipEps);
        Assert.Equal(64L, a.BatchSize);
        Assert.False(a.NormAdv);
        Assert.Equal("my run", a.RunName);
        Assert.Equal(KlEstimator.K1, a.Kl);
        Assert.Equal(LossMode.DrGrpo, a.Mode);
        Assert.Equal([0, 0.5, 1], a.Lambdas);
        Assert.Equal(1.0, a.GaeLambda);
        Assert.Equal(2, a.Threads);
        Assert.Equal("somewhere", a.Out);
        Assert.True(a.IsGiven(nameof(LabArgs.Steps)));
        Assert.False(a.IsGiven(nameof(LabArgs.Quick)));
    }

    [Fact]
    public void Equals_form_and_space_form_agree()
    {
        Assert.Equivalent(P("--learning-rate", "2.5e-4", "--steps", "10", "--kl", "K2"),
                     P("--learning-rate=2.5e-4", "--steps=10", "--kl=K2"));
        Assert.Equal("a=b", P("--run-name=a=b").RunName); // only the first '=' splits
    }

    [Fact]
    public void Bool_options_work_as_flags_and_with_values()
    {
        Assert.True(P("--quick").Quick);
        Assert.True(P("--quick", "--steps", "5").Quick);
        Assert.True(P("--quick", "true").Quick);
        Assert.True(P("--quick", "TRUE").Quick);
        Assert.False(P("--quick", "false").Quick);
        Assert.False(P("--quick=false").Quick);
        Assert.False(P("--norm-adv=false").NormAdv);
        Assert.Contains("bad value for --quick: 'maybe' is not a bool (true or false)", UsageError("--quick=maybe"));
    }

    [Fact]
    public void Enums_parse_by_name_ignoring_case_and_dashes_but_not_by_number()
    {
        Assert.Equal(LossMode.DrGrpo, P("--mode", "DRGRPO").Mode);
        Assert.Equal(LossMode.DrGrpo, P("--mode", "Dr-Grpo").Mode);
        Assert.Equal(LossMode.Grpo, P("--mode", "grpo").Mode);
        Assert.Contains("bad value for --kl: '1' is not one of: k1, k2, k3", UsageError("--kl", "1"));
    }

    [Fact]
    public void Numbers_use_the_invariant_culture()
    {
        var old = CultureInfo.CurrentCulture;
        try
        {
            // Even where the current culture writes decimals with a comma, '.' is the separator.
            var comma = (CultureInfo)CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            comma.NumberFormat.NumberGroupSeparator = ".";
            CultureInfo.CurrentCulture = comma;
            Assert.Equal(0.5, P("--learning-rate", "0.5").LearningRate);
            Assert.Contains("'0,5' is not a double", UsageError("--learning-rate", "0,5"));
            Assert.Contains("0.95", Lab.HelpText<TestArgs>("00-test"));
        }
        finally { CultureInfo.CurrentCulture = old; }
    }

    [Fact]
    public void Kebab_case_of_property_names()
    {
        Assert.Equal("learning-rate", Options.Kebab("LearningRate"));
        Assert.Equal("kl-coef", Options.Kebab("KlCoef"));
        Assert.Equal("gae-lambda", Options.Kebab("GaeLambda"));
        Assert.Equal("steps", Options.Kebab("Steps"));
        Assert.Equal("lr2", Options.Kebab("Lr2"));
        Assert.Equal("sft-steps2-count", Options.Kebab("SftSteps2Count"));
        Assert.Equal("kl-url-path", Options.Kebab("KlURLPath"));
    }

    [Fact]
    public void Default_output_folder_follows_seed_and_quick()
    {
        Assert.Equal(Path.Combine("runs", "00-test", "seed7"), P("--seed", "7").Out);
        Assert.Equal(Path.Combine("runs", "00-test", "seed7-quick"), P("--seed", "7", "--quick").Out);
        Assert.Equal("x", P("--out", "x", "--quick").Out);
    }

    [Fact]
    public void StepsOr_uses_the_quick_count_unless_steps_is_given()
    {
        Assert.Equal(400, P().StepsOr(20));
        Assert.Equal(20, P("--quick").StepsOr(20));
        Assert.Equal(50, P("--quick", "--steps", "50").StepsOr(20));
    }

    [Fact]
    public void Help_lists_every_option_with_type_default_and_meaning()
    {
        var e = Assert.Throws<LabUsageException>(() => P("--steps", "5", "--help"));
        Assert.True(e.IsHelp);
        Assert.Equal(0, e.ExitCode);
        Assert.Equal(e.Message, Assert.Throws<LabUsageException>(() => P("-h")).Message);
        Assert.Equal(e.Message, Assert.Throws<LabUsageException>(() => P("--stepz", "x", "-h")).Message); // help wins over errors
        string help = e.Message;
        Assert.StartsWith("00-test — a test chapter", help);
        Assert.Contains("usage: dotnet run --project 00-test -- [options]", help);
        string[] lines = help.Split('\n');
        void Row(string option, string @default, string meaning) =>
            Assert.Single(lines, l => l.TrimStart().StartsWith(option + " ") && l.Contains($"  {@default}  ") && l.TrimEnd().EndsWith(meaning));
        Row("--steps <int>", "400", "policy-gradient steps"); // the override's default and help line
        Row("--seed <long>", "1", "the same seed reproduces a run bit for bit");
        Row("--quick", "false", "(an explicit --steps still wins)");
        Row("--out <string>", "runs/00-test/seed<seed>", "(--quick runs go to seed<seed>-quick)");
        Row("--threads <int>", "0", "(TorchSharp 1, MinTorch all cores)");
        Row("--device <cpu|cuda>", "cpu", "(needs TorchSharp's CUDA package and an NVIDIA GPU)");
        Row("--learning-rate <double>", "0.0003", "learning rate of AdamW; CleanRL ppo.py uses 2.5e-4");
        Row("--clip-eps <float>", "0.2", "PPO clip range ε");
        Row("--batch-size <long>", "128", "completions per step");
        Row("--norm-adv", "true", "normalise advantages");
        Row("--run-name <string>", "baseline", "a name for the run");
        Row("--kl <k1|k2|k3>", "k3", "KL estimator (Schulman's k1, k2, k3)");
        Row("--mode <grpo|dr-grpo>", "grpo", "loss normalisation");
        Row("--lambdas <double,...>", "0,0.95,1", "GAE λ values to compare");
        Row("--gae-lambda <double>", "0.95", "GAE λ");
        Assert.Contains(lines, l => l.TrimStart().StartsWith("-h, --help") && l.TrimEnd().EndsWith("show this help and exit"));
        // Every option appears exactly once, common ones first in declaration order.
        var names = lines.Select(l => l.TrimStart()).Where(l => l.StartsWith("--")).Select(l => l.Split(' ')[0]).ToList();
        Assert.Equal(["--steps", "--seed", "--quick", "--out", "--threads", "--device", "--learning-rate", "--clip-eps", "--batch-size",
                      "--norm-adv", "--run-name", "--kl", "--mode", "--lambdas", "--gae-lambda"], names);
    }

    [Theory]
    [InlineData("--learning-rat", "--learning-rate")]
    [InlineData("--learning_rate", "--learning-rate")]
    [InlineData("--lerning-rate", "--learning-rate")]
    [InlineData("--sed", "--seed")]
    [InlineData("--stesp", "--steps")]
    [InlineData("--batch", "--batch-size")]
    [InlineData("--lambda", "--lambdas")]
    [InlineData("--gae", "--gae-lambda")]
    public void Unknown_option_names_it_and_suggests_the_closest(string typed, string suggested)
    {
        string msg = UsageError(typed, "1");
        Assert.Equal($"unknown option '{typed}'. Did you mean '{suggested}'? (see --help for every option)", msg);
    }

    [Fact]
    public void Unknown_option_far_from_all_gets_no_suggestion()
    {
        Assert.Equal("unknown option '--xyzzy' (see --help for every option)", UsageError("--xyzzy"));
        Assert.Equal("unexpected argument 'foo': every option is written --name value (see --help)", UsageError("foo"));
        Assert.Equal("unknown option '-s': options are written --name (see --help)", UsageError("-s", "3"));
    }

    [Fact]
    public void Bad_values_name_the_option_the_value_and_the_expected_type()
    {
        Assert.Equal("bad value for --steps: 'abc' is not an int (a whole number); e.g. --steps 400", UsageError("--steps", "abc"));
        Assert.Equal("bad value for --steps: '2.5' is not an int (a whole number); e.g. --steps 400", UsageError("--steps", "2.5"));
        Assert.Equal("bad value for --steps: '99999999999' is not an int (a whole number) (out of range); e.g. --steps 400", UsageError("--steps", "99999999999"));
        Assert.Equal("bad value for --learning-rate: 'fast' is not a double (a number like 0.5 or 1e-4); e.g. --learning-rate 0.0003", UsageError("--learning-rate=fast"));
        Assert.Equal("bad value for --clip-eps: 'x' is not a float (a number like 0.5 or 1e-4); e.g. --clip-eps 0.2", UsageError("--clip-eps", "x"));
        Assert.Equal("bad value for --seed: 'one' is not a long (a whole number); e.g. --seed 1", UsageError("--seed", "one"));
        Assert.Equal("bad value for --kl: 'k4' is not one of: k1, k2, k3; e.g. --kl k3", UsageError("--kl", "k4"));
        Assert.Equal("bad value for --lambdas: 'x' in '0,x' is not a double (a number like 0.5 or 1e-4); e.g. --lambdas 0,0.95,1", UsageError("--lambdas", "0,x"));
    }

    [Fact]
    public void Values_outside_the_declared_range_are_rejected()
    {
        Assert.Equal("bad value for --steps: 0 is below its minimum 1", Assert.Throws<LabUsageException>(
            () => Lab.Parse<NoMinArgs>(["--steps", "0"], "00-test")).Message); // even if an override drops Min
        Assert.Equal("bad value for --steps: 0 is below its minimum 1", UsageError("--steps", "0"));
        Assert.Equal("bad value for --gae-lambda: 1.5 is above its maximum 1", UsageError("--gae-lambda", "1.5"));
        Assert.Equal("bad value for --threads: -1 is below its minimum 0", UsageError("--threads", "-1"));
        Assert.Equal("bad value for --gae-lambda: NaN is below its minimum 0", UsageError("--gae-lambda", "NaN"));
    }

    [Fact]
    public void Missing_and_repeated_values_are_errors()
    {
        Assert.Equal("option --steps needs a value (an int (a whole number)), but none was given; e.g. --steps 400", UsageError("--steps"));
        Assert.Equal("option --learning-rate needs a value (a double (a number like 0.5 or 1e-4)), but none was given; e.g. --learning-rate 0.0003",
                     UsageError("--learning-rate", "--steps", "3"));
        Assert.Equal("option --seed is given twice; give it once", UsageError("--seed", "1", "--seed=2"));
    }

    // ------------------------------------------------------------ Lab.Run

    private (string stdout, string stderr, int code) RunChapter(string[] argv, Func<TestArgs, int> main) =>
        Capture(() => Lab.Run(argv, "00-test", "a test chapter", main));

    [Fact]
    public void A_device_that_is_not_there_is_one_clear_message_and_exit_code_1()
    {
        bool ran = false;
        var (_, stderr, code) = RunChapter(["--device", "cuda", "--out", Path.Combine(_dir, "cuda")], _ => { ran = true; return 0; });
        Assert.Equal(1, code);
        Assert.False(ran);                                          // stopped before the chapter's code
        Assert.Contains("--device cuda", stderr);
        Assert.Contains(Kit.Engine == "MinTorch" ? "MinTorch computes on the CPU only" : "no CUDA device is available", stderr);
        Assert.DoesNotContain("   at ", stderr);                    // no stack trace
    }

    [Fact]
    public void Run_prepares_the_run_and_returns_mains_exit_code()
    {
        string outDir = Path.Combine(_dir, "run");
        float[]? drawn = null;
        var (stdout, stderr, code) = RunChapter(["--seed", "42", "--out", outDir, "--learning-rate", "1e-3"], a =>
        {
            drawn = torch.rand(3).data<float>().ToArray();
            return 7;
        });
        Assert.Equal(7, code);
        Assert.Equal("", stderr);
        Assert.True(Directory.Exists(outDir));
        Assert.Equal(torch.manual_seed(42) is var _ ? torch.rand(3).data<float>().ToArray() : null, drawn); // seeded with --seed
        Assert.Contains($"00-test  seed 42  {Kit.Engine} on cpu, {torch.get_num_threads()} thread(s)  → {outDir}  " +
                        "[--learning-rate 0.001]", stdout);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "args.json")));
        Assert.Equal("00-test", json.RootElement.GetProperty("chapter").GetString());
        Assert.Equal(0.001, json.RootElement.GetProperty("learning-rate").GetDouble());
        Assert.Equal(42, json.RootElement.GetProperty("seed").GetInt64());
        Assert.Equal("k3", json.RootElement.GetProperty("kl").GetString());
        Assert.Equal(outDir, Lab.OutDir);
        Assert.Equal(42, Lab.Seed);
        Assert.Equal("00-test", Lab.Chapter);
    }

    [Fact]
    public void Run_prints_help_and_exits_0_without_running()
    {
        bool ran = false;
        var (stdout, stderr, code) = RunChapter(["--help"], _ => { ran = true; return 0; });
        Assert.Equal(0, code);
        Assert.False(ran);
        Assert.Contains("--learning-rate <double>", stdout);
        Assert.Equal("", stderr);
    }

    [Fact]
    public void Run_reports_a_usage_error_in_one_line_and_exits_2()
    {
        bool ran = false;
        var (stdout, stderr, code) = RunChapter(["--learning-rat", "1"], _ => { ran = true; return 0; });
        Assert.Equal(2, code);
        Assert.False(ran);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: unknown option '--learning-rat'. Did you mean '--learning-rate'?", stderr);
        Assert.DoesNotContain(" at ", stderr);
        Assert.DoesNotContain("\x1b", stderr);
    }

    [Fact]
    public void Run_reports_user_errors_without_a_stack_trace_and_exits_1()
    {
        string outDir = Path.Combine(_dir, "err");
        var (_, stderr, code) = RunChapter(["--out", outDir], _ => { Lab.CheckFinite(double.NaN, "loss", 37); return 0; });
        Assert.Equal(1, code);
        Assert.Equal("error: loss became NaN at step 37 — try a smaller --learning-rate", stderr.Trim());

        (_, stderr, code) = RunChapter(["--out", outDir], _ => throw new ArgumentException("matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 vs 4)"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 vs 4)", stderr);
        Assert.DoesNotContain(" at ", stderr);

        (_, stderr, code) = RunChapter(["--out", outDir], _ => throw new InvalidDataException("checkpoint base.safetensors is corrupt: header length 99999 exceeds the file size 120"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: checkpoint base.safetensors is corrupt", stderr);
        Assert.DoesNotContain(" at ", stderr);

        // A check the chapter itself makes on a combination of options is a usage error (exit 2).
        (_, stderr, code) = RunChapter(["--out", outDir], _ => throw new LabUsageException("--batch-size must be a multiple of --group-size"));
        Assert.Equal(2, code);
        Assert.Equal("error: --batch-size must be a multiple of --group-size", stderr.Trim());
    }

    [Fact]
    public void Run_shows_the_stack_trace_of_a_bug()
    {
        var (_, stderr, code) = RunChapter(["--out", Path.Combine(_dir, "bug")], _ => { object? o = null; return o!.GetHashCode(); });
        Assert.Equal(1, code);
        Assert.StartsWith("error: NullReferenceException: ", stderr);
        Assert.Contains("This looks like a bug", stderr);
        Assert.Contains(" at ", stderr);
    }

    // ------------------------------------------------------------ guards

    [Fact]
    public void CheckFinite_names_the_value_the_step_and_a_hint()
    {
        Lab.CheckFinite(1.5, "loss", 1); // finite: no exception
        Assert.Equal("loss became NaN at step 37 — try a smaller --learning-rate",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(double.NaN, "loss", 37)).Message);
        Assert.Equal("reward became +inf at step 2 — try a smaller --learning-rate",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(double.PositiveInfinity, "reward", 2)).Message);
        Assert.Equal("kl became -inf at step 3 — check the reference model",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(double.NegativeInfinity, "kl", 3, "check the reference model")).Message);
        Assert.Equal("kl became NaN at step 3",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(double.NaN, "kl", 3, "")).Message);
    }

    [Fact]
    public void CheckFinite_on_tensors_counts_the_bad_elements()
    {
        Lab.CheckFinite(torch.tensor(new float[] { 1, 2, 3 }, [3]), "logits", 1);
        Lab.CheckFinite(torch.tensor(new long[] { 1, 2 }, [2]), "ids", 1);
        Assert.Equal("loss became NaN at step 9 — try a smaller --learning-rate",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(torch.tensor(new float[] { float.NaN }, [1]), "loss", 9)).Message);
        Assert.Equal("logits has 2 NaN and 1 infinite of its 5 values at step 4 — try a smaller --learning-rate",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(
                         torch.tensor(new float[] { 1, float.NaN, float.NegativeInfinity, float.NaN, 0 }, [5]), "logits", 4)).Message);
        Assert.Equal("values has 1 infinite of its 2 values at step 4 — try a smaller --learning-rate",
                     Assert.Throws<LabException>(() => Lab.CheckFinite(
                         torch.tensor(new double[] { 1, double.PositiveInfinity }, [2]), "values", 4)).Message);
    }

    // ------------------------------------------------------------ formatting and tables

    [Theory]
    [InlineData(0.41234, "0.4123")]
    [InlineData(0.5, "0.5")]
    [InlineData(1234.56, "1235")]
    [InlineData(12.0, "12")]
    [InlineData(-0.0123456, "-0.01235")]
    [InlineData(3e-5, "3e-05")]
    [InlineData(123456.0, "1.235e+05")]
    [InlineData(0.0, "0")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.NegativeInfinity, "-inf")]
    public void Fmt_gives_four_significant_digits(double v, string expected) => Assert.Equal(expected, Lab.Fmt(v));

    [Fact]
    public void Table_prints_markdown_when_redirected()
    {
        var (stdout, _, _) = Capture(() =>
        {
            Lab.Table("GAE λ sweep", ["λ", "final reward", "note"],
                [[0.0, 0.41234, "biased"], [0.95, 0.7, "best"], [1, 0.5, null]]);
            return 0;
        });
        string expected = """

            GAE λ sweep

            |    λ | final reward | note   |
            |-----:|-------------:|--------|
            |    0 |       0.4123 | biased |
            | 0.95 |          0.7 | best   |
            |    1 |          0.5 |        |

            """.Replace("\r\n", "\n");
        Assert.Equal(expected, stdout.Replace("\r\n", "\n"));
        Assert.Throws<ArgumentException>(() => Lab.Table("t", ["a", "b"], [[1.0]]));
    }

    // ------------------------------------------------------------ metrics CSV

    private static string ReadShared(string path)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(s).ReadToEnd();
    }

    [Fact]
    public void MetricsLog_writes_header_and_rows_and_flushes_each_row()
    {
        string path = Path.Combine(_dir, "a", "metrics.csv");
        using var log = new MetricsLog(path);
        log.Add(1, ("loss", 0.5), ("reward", 0.1f));      // a float metric prints as the float: 0.1
        Assert.Equal("step,loss,reward\n1,0.5,0.1\n", ReadShared(path)); // on disk while the log is open
        log.Add(2, ("reward", 1.0 / 3), ("loss", -2.5e-7)); // any order, full precision
        log.Add(3, ("loss", double.NaN));                  // a missing metric is a blank cell
        Assert.Equal("step,loss,reward\n1,0.5,0.1\n2,-2.5E-07,0.3333333333333333\n3,NaN,\n", ReadShared(path));
        Assert.Equal([1L, 2, 3], log.Steps);
        Assert.Equal([0.5, -2.5e-7, double.NaN], log.Column("loss"));
        Assert.Equal(1.0 / 3, log.Last("reward"));
        Assert.Equal([1.0, 2, 3], log.Column("step"));
        Assert.Contains("no metric named 'kl'", Assert.Throws<ArgumentException>(() => log.Column("kl")).Message);
    }

    [Fact]
    public void MetricsLog_adds_a_column_for_a_late_metric_and_honours_declared_order()
    {
        string path = Path.Combine(_dir, "b.csv");
        using (var log = new MetricsLog(path, "reward", "loss"))
        {
            Assert.Equal("step,reward,loss\n", ReadShared(path));
            log.Add(1, ("loss", 1.0));
            log.Add(2, ("loss", 2.0), ("eval_acc", 0.25));
            log.Add(3, ("reward", 3.0));
        }
        Assert.Equal("step,reward,loss,eval_acc\n1,,1,\n2,,2,0.25\n3,3,,\n", File.ReadAllText(path));
        // Invariant culture even when the current culture uses a decimal comma.
        var old = CultureInfo.CurrentCulture;
        try
        {
            var comma = (CultureInfo)CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            CultureInfo.CurrentCulture = comma;
            var mem = new MetricsLog(null);
            mem.Add(1, ("x", 1.5), ("y", double.PositiveInfinity));
            Assert.Equal("step,x,y\n1,1.5,inf\n", mem.ToCsv().Replace("\r\n", "\n"));
        }
        finally { CultureInfo.CurrentCulture = old; }
    }

    [Fact]
    public void MetricsLog_rejects_the_reserved_name()
    {
        var log = new MetricsLog(null);
        Assert.Throws<ArgumentException>(() => log.Add(1, ("step", 1.0)));
    }

    // ------------------------------------------------------------ SVG

    private static MetricsLog SampleLog()
    {
        var log = new MetricsLog(null);
        for (int s = 1; s <= 200; s++)
            log.Add(s, ("reward", s == 150 ? double.PositiveInfinity : 0.2 + 0.6 * (1 - Math.Exp(-s / 50.0)) + 0.05 * Math.Sin(s)),
                       ("gold", s == 60 ? double.NaN : 0.2 + 0.3 * (1 - Math.Exp(-s / 40.0)) - 0.001 * s),
                       ("kl", 0.01 * s), ("const", 2.0), ("bad", s == 100 ? 0.5 : double.NaN));
        return log;
    }

    private static List<XElement> Paths(XDocument doc, string? cls = null) =>
        doc.Descendants().Where(e => e.Name.LocalName == "path" && (cls is null || (string?)e.Attribute("class") == cls)).ToList();

    [Fact]
    public void SvgPlot_is_well_formed_xml_with_one_path_per_series()
    {
        var log = SampleLog();
        var plot = new SvgPlot("00-test — seed 1 <&>");
        plot.Add("reward", log.Series("reward")).HLine(0.2, "base");
        plot.Add("proxy vs gold", log.Series("reward", label: "proxy"), log.Series("gold"));
        plot.Add("gold vs KL", log.Series("gold", x: "kl"));
        plot.Add("constant", log.Series("const"));
        plot.Add("all bad", log.Series("bad"));
        plot.Add("scatter", log.Series("gold", x: "kl") with { Points = true });

        var doc = XDocument.Parse(plot.Render());
        Assert.Equal("svg", doc.Root!.Name.LocalName);
        Assert.Equal(6, doc.Descendants().Count(e => (string?)e.Attribute("class") == "panel"));
        var paths = Paths(doc);
        Assert.Equal(7, paths.Count); // 1 + 2 + 1 + 1 + 1 (empty) + 1
        Assert.Equal(["reward", "proxy", "gold", "gold", "const", "bad", "gold"],
                     paths.Select(p => p.Descendants().First(e => e.Name.LocalName == "title").Value));
        string text = doc.ToString();
        Assert.DoesNotContain("NaN", text);
        Assert.DoesNotContain("Infinity", text);
        Assert.Contains("00-test — seed 1 <&>", doc.Descendants().First(e => e.Name.LocalName == "text").Value);
        // NaN in gold and +inf in reward break their lines in two; the all-but-one-NaN series is one lone ring.
        Assert.Equal(2, ((string)paths[0].Attribute("d")!).Count(c => c == 'M'));
        Assert.Equal(2, ((string)paths[2].Attribute("d")!).Count(c => c == 'M'));
        Assert.Matches(@"^M[\d.]+,[\d.]+a1\.5,1\.5 0 1,0 3,0a1\.5,1\.5 0 1,0 -3,0$", (string)paths[5].Attribute("d")!);
        // The KL panel is labelled by its x metric; a legend appears where there is more than one entry.
        Assert.Contains(doc.Descendants(), e => e.Name.LocalName == "text" && e.Value == "kl");
        Assert.Equal(2, doc.Descendants().Count(e => (string?)e.Attribute("class") == "legend"));
    }

    [Fact]
    public void SvgPlot_handles_a_constant_series_and_an_empty_panel()
    {
        var plot = new SvgPlot();
        plot.Add("constant", Series.Of("c", [3, 3, 3]));
        plot.Add("empty", Series.Of("e", [double.NaN, double.NaN]));
        plot.Add("one point", Series.Of("p", [5]));
        var doc = XDocument.Parse(plot.Render());
        var texts = doc.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value).ToList();
        Assert.Contains("3.0", texts);               // a tick at the constant value
        Assert.Contains("no finite values", texts);
        Assert.DoesNotContain("0.5", texts);         // x = 0, 1, 2: whole-number ticks only
        var d = Paths(doc).Select(p => (string)p.Attribute("d")!).ToList();
        Assert.Equal(2, d[0].Count(c => c == 'L'));  // a flat line through 3 points
        // The constant line sits mid-panel: all three y coordinates are equal.
        Assert.Single(d[0].Split('M', 'L', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split(',')[1]).Distinct());
        Assert.Equal("", d[1]);
        Assert.EndsWith("a1.5,1.5 0 1,0 -3,0", d[2]);
    }

    [Fact]
    public void SvgPlot_band_is_one_polygon_inside_the_axes_and_XMin_extends_the_x_axis()
    {
        var plot = new SvgPlot();
        var panel = plot.Add("band", new Series("mean", [10, 20, 30], [0.5, 0.6, 0.7])
            { Low = [0.4, double.NaN, 0.6], High = [0.6, 0.7, 0.9] });
        panel.XMin = 0;
        var doc = XDocument.Parse(plot.Render());
        var band = doc.Descendants().Single(e => (string?)e.Attribute("class") == "band");
        // The NaN edge drops x = 20: high at 10, 30, then low back at 30, 10.
        var pts = ((string)band.Attribute("points")!).Split(' ')
            .Select(p => p.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList();
        Assert.Equal(4, pts.Count);
        Assert.Equal(pts[0][0], pts[3][0]);
        Assert.Equal(pts[1][0], pts[2][0]);
        Assert.True(pts[0][1] > pts[1][1]);     // SVG y grows downwards: high 0.6 below high 0.9
        Assert.True(pts[3][1] > pts[0][1]);     // low 0.4 below high 0.6
        var texts = doc.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value).ToList();
        Assert.Contains("0.9", texts);          // the band's top is in the y range, above the line's 0.7
        Assert.Contains("0", texts);            // XMin = 0: the x axis starts at 0, not at the first point
    }

    [Fact]
    public void SvgPlot_smoothing_draws_raw_and_smoothed_paths()
    {
        var log = SampleLog();
        var plot = SvgPlot.Curves(log, "curves", "reward", "gold", "kl");
        plot.Smoothing = 0.9;
        string path = plot.Write(Path.Combine(_dir, "plot", "curves.svg"));
        var doc = XDocument.Load(path);
        Assert.Equal(3, Paths(doc, "series").Count);
        Assert.Equal(3, Paths(doc, "raw").Count);
        Assert.Equal([1.0, 2.0, double.NaN, 4.0], SvgPlot.Ema([1, 2, double.NaN, 4], 0.0)); // weight 0: the raw values
        var ema = SvgPlot.Ema([1, 2, double.NaN, 4], 0.5);
        Assert.Equal(1.0, ema[0], 12);                       // debiased: starts at the first value
        Assert.Equal((0.25 * 1 + 0.5 * 2) / 0.75, ema[1], 12);
        Assert.True(double.IsNaN(ema[2]));
        Assert.Equal((0.125 * 1 + 0.25 * 2 + 0.5 * 4) / 0.875, ema[3], 12);
    }

    [Theory]
    [InlineData(0, 200, 6, 50, "0,50,100,150,200")]
    [InlineData(0.19, 0.81, 5, 0.1, "0.2,0.3,0.4,0.5,0.6,0.7,0.8")]
    [InlineData(-1, 1, 5, 0.5, "-1.0,-0.5,0.0,0.5,1.0")]
    [InlineData(0.0101, 0.0149, 5, 0.001, "0.011,0.012,0.013,0.014")]
    public void Ticks_are_nice_numbers(double min, double max, int target, double step, string expected)
    {
        var (ticks, s) = SvgPlot.Ticks(min, max, target);
        Assert.Equal(step, s, 12);
        Assert.Equal(expected, string.Join(",", ticks.Select(t => SvgPlot.Tick(t, s))));
        Assert.Equal("0.25", SvgPlot.Tick(0.25, 0.05));
        Assert.Equal("300", SvgPlot.Tick(300, 100));
        Assert.Equal("1.5E-5", SvgPlot.Tick(1.5e-5, 5e-6));
    }

    // ------------------------------------------------------------ summary

    private static RunSummary Sample() => new()
    {
        Chapter = "00-test", Seed = 3, Metric = "accuracy (T = 1)", Base = 0.25, Final = 0.75, Kl = 0.5, WallS = 12.5, PeakMb = 300,
    };

    [Fact]
    public void Summary_json_has_exactly_the_required_keys_and_values()
    {
        using var doc = JsonDocument.Parse(Sample().ToJson());
        var props = doc.RootElement.EnumerateObject().ToList();
        Assert.Equal(["chapter", "seed", "metric", "base", "final", "kl", "wall_s", "peak_mb"], props.Select(p => p.Name));
        Assert.Equal(RunSummary.RequiredKeys, props.Select(p => p.Name));
        var r = doc.RootElement;
        Assert.Equal("00-test", r.GetProperty("chapter").GetString());
        Assert.Equal(3, r.GetProperty("seed").GetInt64());
        Assert.Equal("accuracy (T = 1)", r.GetProperty("metric").GetString());
        Assert.Equal(0.25, r.GetProperty("base").GetDouble());
        Assert.Equal(0.75, r.GetProperty("final").GetDouble());
        Assert.Equal(0.5, r.GetProperty("kl").GetDouble());
        Assert.Equal(12.5, r.GetProperty("wall_s").GetDouble());
        Assert.Equal(300, r.GetProperty("peak_mb").GetDouble());
    }

    [Fact]
    public void Summary_writes_nan_as_null_and_extras_after_the_required_keys()
    {
        var s = Sample() with { Kl = double.NaN, Extra = new() { ["greedy_final"] = 0.8, ["style_share"] = new[] { 0.5, 0.9 }, ["note"] = "ok", ["steps"] = 400 } };
        using var doc = JsonDocument.Parse(s.ToJson());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("kl").ValueKind);
        Assert.Equal(["chapter", "seed", "metric", "base", "final", "kl", "wall_s", "peak_mb", "greedy_final", "style_share", "note", "steps"],
                     doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal([0.5, 0.9], doc.RootElement.GetProperty("style_share").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal("400", doc.RootElement.GetProperty("steps").GetRawText());
        var bad = Sample() with { Extra = new() { ["kl"] = 1.0 } };
        Assert.Contains("extra field 'kl'", Assert.Throws<ArgumentException>(() => bad.ToJson()).Message);
    }

    [Fact]
    public void Summary_defaults_come_from_the_current_run()
    {
        Lab.Parse<TestArgs>(["--seed", "9"], "00-defaults");
        var s = new RunSummary { Metric = "m", Base = 0, Final = 1, Kl = 0 };
        Assert.Equal("00-defaults", s.Chapter);
        Assert.Equal(9, s.Seed);
        Assert.InRange(s.WallS, 0, 60);
        Assert.InRange(s.PeakMb, 1, 1e6); // this process certainly used more than 1 MiB
    }

    [Fact]
    public void Finish_writes_summary_json_and_prints_a_table()
    {
        string dir = Path.Combine(_dir, "finish");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "metrics.csv"), "step\n");
        var summary = Sample() with { Extra = new() { ["greedy_final"] = 0.8, ["mode"] = LossMode.DrGrpo } };
        var (stdout, _, path) = Capture(() => Lab.Finish(summary, dir));
        Assert.Equal(Path.Combine(dir, "summary.json"), path);
        var back = RunSummary.Read(path);
        Assert.Equal(summary with { Extra = back.Extra }, back);
        Assert.Equal(0.8, back.Extra["greedy_final"]);
        Assert.Equal("dr-grpo", back.Extra["mode"]);
        Assert.Contains("00-test, seed 3", stdout);
        Assert.Contains("| gold metric     | accuracy (T = 1) |", stdout);
        Assert.Contains("| after training  | 0.75 (+0.5)      |", stdout);
        Assert.Contains("| KL to reference | 0.5 nats         |", stdout);
        Assert.Contains("| greedy_final    | 0.8              |", stdout);
        Assert.Contains("| mode            | dr-grpo          |", stdout);   // an enum as typed on the command line, not its number
        Assert.Contains($"results in {dir}{Path.DirectorySeparatorChar}: metrics.csv, summary.json", stdout);
        Assert.DoesNotContain("\x1b", stdout);
    }

    [Fact]
    public void Read_rejects_a_summary_without_the_required_keys()
    {
        string path = Path.Combine(_dir, "bad.json");
        Directory.CreateDirectory(_dir);
        File.WriteAllText(path, """{"chapter":"x"}""");
        Assert.Contains("has no \"seed\"", Assert.Throws<InvalidDataException>(() => RunSummary.Read(path)).Message);
        File.WriteAllText(path, "{not json");
        Assert.Contains("is not valid JSON", Assert.Throws<InvalidDataException>(() => RunSummary.Read(path)).Message);
    }

    // ------------------------------------------------------------ progress

    [Fact]
    public void Progress_prints_plain_lines_every_ten_percent_when_redirected()
    {
        var (stdout, _, _) = Capture(() =>
        {
            using var p = Lab.Progress(100, "REINFORCE");
            for (int s = 1; s <= 100; s++) p.Update(s, ("reward", s / 100.0), ("kl", 0.001 * s), ("loss", 1.0), ("entropy", 2.0), ("hidden", 5.0));
            return 0;
        });
        var lines = stdout.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
        Assert.Equal("REINFORCE: 100 steps", lines[0]);
        Assert.Equal(12, lines.Length); // the header, step 1, then 10%, 20%, ..., 100%
        Assert.StartsWith("[  1%] step 1/100  reward 0.01  kl 0.001  loss 1  entropy 2  (", lines[1]);
        Assert.StartsWith("[ 50%] step 50/100  reward 0.5  kl 0.05  loss 1  entropy 2  (", lines[6]);
        Assert.Matches(@"^\[100%\] step 100/100  reward 1  kl 0\.1  loss 1  entropy 2  \(\d+\.\d s\)$", lines[11]);
        Assert.Matches(@"\(\d+\.\d s, ~\d+\.\d s left\)$", lines[6]);
        Assert.DoesNotContain("hidden", stdout); // four metrics at most by default
        Assert.DoesNotContain("\x1b", stdout);
    }

    [Fact]
    public void Progress_shows_the_chosen_metrics_and_the_last_step_when_stopped_early()
    {
        var w = new StringWriter();
        using (var p = new LabProgress(1000, "PPO", w, ["kl"]))
            for (int s = 1; s <= 137; s++) p.Update(s, ("reward", 0.5), ("kl", 0.25));
        var lines = w.ToString().Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
        Assert.Equal(["PPO: 1000 steps", "[  0%] step 1/1000  kl 0.25", "[ 10%] step 100/1000  kl 0.25", "[ 13%] step 137/1000  kl 0.25"],
                     lines.Select(l => l.StartsWith('[') ? l[..l.IndexOf("  (", StringComparison.Ordinal)] : l));
    }

    [Fact]
    public void Progress_updates_are_cheap_when_redirected()
    {
        var w = new StringWriter();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using (var p = new LabProgress(200_000, "fast", w, null))
            for (int s = 1; s <= 200_000; s++) p.Update(s, ("reward", 0.5), ("kl", 0.25), ("loss", 1.0));
        sw.Stop();
        Assert.True(w.ToString().Split('\n').Length <= 14, "at most a header and 11 lines (plus time-based ones)");
        Assert.True(sw.Elapsed.TotalSeconds < 2, $"200k updates took {sw.Elapsed.TotalSeconds:F2} s");
    }

    [Fact]
    public void Progress_live_mode_renders_a_bar_with_the_metrics()
    {
        var w = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.Yes,
            Interactive = Spectre.Console.InteractionSupport.Yes,
            ColorSystem = Spectre.Console.ColorSystemSupport.TrueColor,
            Out = new Spectre.Console.AnsiConsoleOutput(w),
        });
        console.Profile.Width = 160;
        using (var p = new LabProgress(10, "GRPO [x]", plain: null, show: null, console: console))
            for (int s = 1; s <= 10; s++) { p.Update(s, ("reward", 0.75), ("kl", 0.0125)); Thread.Sleep(5); }
        string output = w.ToString();
        Assert.Contains("GRPO [x]", output);               // markup in the description is escaped, not eaten
        Assert.Contains("reward 0.75  kl 0.0125", output);
        Assert.Contains("100%", output);
    }

    [Fact]
    public void Progress_rejects_an_empty_total() =>
        Assert.Contains("at least 1 step", Assert.Throws<ArgumentException>(() => Lab.Progress(0, "x")).Message);
}
