using TorchSharp;

namespace MinRL.Testing;

/// <summary>
/// A test of something only the MinTorch engine promises: bit-identical numbers on any thread count, or random
/// numbers that committed fixtures were made with (libtorch's generator draws other numbers for the same seed).
/// Built against TorchSharp, it is reported as skipped, with the reason, rather than passing without checking.
/// </summary>
public sealed class MinTorchFactAttribute : FactAttribute
{
    public MinTorchFactAttribute(string reason)
    {
        if (typeof(torch).Assembly.GetName().Name != "MinTorch") Skip = $"MinTorch only: {reason}";
    }
}
