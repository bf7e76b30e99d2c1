using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>
/// A chapter reads alone and shares only shared/, so some functions are restated on purpose in several chapters
/// (CleanRL keeps its GAE byte-identical across files the same way). Their code — from the signature line to the
/// closing brace; the doc comments above may differ — must be the same text in every copy: these tests fail when a
/// copy drifts.
/// </summary>
public class RestatedCopiesTests
{
    /// <summary>Each restated function and the files that hold a copy.</summary>
    public static TheoryData<string, string[]> Copies => new()
    {
        { "TokenRewards", ["02-actor-critic-gae/Program.cs", "04-ppo/Program.cs"] },
        { "Gae", ["04-ppo/Program.cs", "06-rlhf/Program.cs"] },
        { "NormalizeAdvantages", ["02-actor-critic-gae/Program.cs", "04-ppo/Program.cs", "06-rlhf/Program.cs"] },
        { "ClippedSurrogate", ["04-ppo/Program.cs", "06-rlhf/Program.cs"] },   // 08: DAPO's decoupled ε_low, ε_high
        { "ExplainedVariance", ["02-actor-critic-gae/Program.cs", "04-ppo/Program.cs", "06-rlhf/Program.cs"] },
        { "ClipFraction", ["06-rlhf/Program.cs", "08-grpo/Program.cs"] },
        { "K3", ["shared/MinRL/Rollouts.cs", "08-grpo/Program.cs"] },
        { "RlooBaseline", ["01-policy-gradient/Program.cs", "08-grpo/Program.cs"] },
        { "ZeroStdFraction", ["08-grpo/Program.cs", "01-policy-gradient/Program.cs"] },
    };

    [Theory]
    [MemberData(nameof(Copies))]
    public void Restated_copies_are_the_same_text(string method, string[] files)
    {
        var first = Code(Read(files[0]), method);
        foreach (var file in files.Skip(1))
        {
            var other = Code(Read(file), method);
            Assert.True(first == other,
                $"{method} in {file} differs from the copy in {files[0]}:\n{FirstDifference(first, other)}");
        }
    }

    [Fact]
    public void A_one_character_drift_is_caught_and_doc_comments_are_not_compared()
    {
        const string a = """
            /// <summary>One wording.</summary>
            public static double F(double x)
            {
                if (x > 0) { return x; }
                return -x;
            }
            """;
        var b = a.Replace("One wording", "Another wording");
        var c = a.Replace("-x", "+x");
        Assert.Equal(Code(a, "F"), Code(b, "F"));
        Assert.NotEqual(Code(a, "F"), Code(c, "F"));
        Assert.EndsWith("return -x;\n}", Code(a, "F"));                                  // nested braces balanced
    }

    [Fact]
    public void Chapter_2s_matrix_gae_agrees_with_the_restated_loop()
    {
        // Chapter 2 derives GAE twice (a scalar loop and a discount matrix); chapters 4 and 6 restate the column loop.
        manual_seed(5);
        var rewards = randn(4, 5, dtype: ScalarType.Float64);
        var values = randn(4, 5, dtype: ScalarType.Float64);
        var mask = tensor(new[] { 1.0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0 }, [4, 5]);
        var last = tensor(new[] { 0.5, 0, 0, 0 });                     // row 0 runs to the end: cut off
        var (a2, g2) = ActorCritic.A2C.Gae(rewards * mask, values, mask, 0.9, 0.8, last);
        var (a4, g4) = Ppo.PPO.Gae(rewards * mask, values, mask, 0.9, 0.8, last);
        Assert.InRange((a2 - a4).abs().max().item<double>(), 0, 1e-12);                 // advantages
        Assert.InRange((g2 - g4).abs().max().item<double>(), 0, 1e-12);                 // returns
    }

    /// <summary>The code of the static method <paramref name="name"/>: its signature line through its closing
    /// brace, each line's indentation and trailing spaces removed.</summary>
    internal static string Code(string source, string name)
    {
        var m = Regex.Match(source, $@"^[ \t]*public static [^\n]*?\b{Regex.Escape(name)}\(", RegexOptions.Multiline);
        Assert.True(m.Success, $"no public static method {name}");
        int open = source.IndexOf('{', m.Index), depth = 0, i = open;
        for (; i < source.Length; i++)
        {
            if (source[i] == '{') depth++;
            else if (source[i] == '}' && --depth == 0) break;
        }
        var lines = source[m.Index..(i + 1)].Split('\n').Select(l => l.Trim());
        return string.Join("\n", lines);
    }

    static string FirstDifference(string a, string b)
    {
        var x = a.Split('\n');
        var y = b.Split('\n');
        for (int i = 0; i < Math.Max(x.Length, y.Length); i++)
        {
            var p = i < x.Length ? x[i] : "(end)";
            var q = i < y.Length ? y[i] : "(end)";
            if (p != q) return $"line {i + 1}:\n  {p}\n  {q}";
        }
        return "(none)";
    }

    static string Read(string relative, [CallerFilePath] string here = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(here)!, "..", "..", relative)).Replace("\r\n", "\n");
}
