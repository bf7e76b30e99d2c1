namespace MinRL;

/// <summary>
/// The small random number generator the tasks draw from: SplitMix64 (Steele, Lea and Flood, 2014).
/// </summary>
/// <remarks>
/// <para>The tasks need their own generator because the problem set, the held-out split, the SFT
/// style coin flips and the preference labels must be the same on every machine and every .NET
/// version: a cached base model is only valid for the data it was trained on. <c>System.Random</c>
/// with a seed makes no such promise across runtime versions, and MinTorch's generator is the
/// model's (drawing task data from it would shift every later weight initialisation). SplitMix64 is
/// ten lines, passes BigCrush, and its output for a seed is fixed by the arithmetic below.</para>
/// <para>The state is a 64-bit counter advanced by the golden-ratio constant; each output is that
/// counter passed through a bijective mixing function.</para>
/// </remarks>
public sealed class SplitMix64
{
    private ulong _state;

    public SplitMix64(long seed) { _state = (ulong)seed; }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1), from the top 53 bits (every double of the form k·2⁻⁵³).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="n"/>), without modulo bias (Lemire's method).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "NextInt: n must be positive");
        ulong range = (ulong)n;
        ulong threshold = (0 - range) % range; // the low values of the 2⁶⁴·range grid that would wrap unevenly
        while (true)
        {
            UInt128 m = (UInt128)NextUInt64() * range;
            if ((ulong)m >= threshold) return (int)(ulong)(m >> 64);
        }
    }

    /// <summary>True with probability <paramref name="p"/>.</summary>
    public bool NextBool(double p = 0.5) => NextDouble() < p;

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher–Yates, from the last element down).</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
