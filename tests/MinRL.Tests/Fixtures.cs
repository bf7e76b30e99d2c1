using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

/// <summary>
/// The TinyGpt reference fixtures: safetensors files in <c>tests/MinRL.Tests/fixtures/tinygpt/</c>, the
/// model checkpoints written by C# (<see cref="TinyGptReferenceTests"/>, with MINRL_WRITE_FIXTURES=1) and
/// the expected outputs written by PyTorch (<c>tests/reference/tinygpt_reference.py</c>). Read with
/// <see cref="Checkpoint.Load"/>, so the tensors hold exactly the bits that were written.
/// </summary>
public static class Fixtures
{
    /// <summary>The fixture directory as copied next to the test assembly (see the csproj).</summary>
    public static string Dir(string sub) => Path.Combine(AppContext.BaseDirectory, "fixtures", sub);

    /// <summary>The path of <paramref name="file"/> in <see cref="Dir"/>, with an actionable error if it is missing.</summary>
    public static string PathOf(string file, string sub)
    {
        var path = Path.Combine(Dir(sub), file);
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"fixture {file} not found at {path}; see tests/reference/README.md for how to regenerate it, " +
                "and check that the test csproj copies fixtures/** to the output directory", path);
        return path;
    }

    /// <summary>Every tensor of a safetensors fixture, by name.</summary>
    public static IReadOnlyDictionary<string, Tensor> Load(string file, string sub) => Checkpoint.Load(PathOf(file, sub)).Tensors;

    /// <summary>The fixture directory in the source tree (found by walking up to MinRL.sln), for writing fixtures.</summary>
    public static string SourceDir(string sub)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MinRL.sln")))
                return Path.Combine(dir.FullName, "tests", "MinRL.Tests", "fixtures", sub);
        throw new DirectoryNotFoundException($"no MinRL.sln above {AppContext.BaseDirectory}: cannot find the source tree to write fixtures into");
    }
}

