using TorchSharp;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>
/// Shuffled passes over a dataset of <paramref name="count"/> rows, a batch at a time: each pass visits every row
/// once, in an order drawn from <paramref name="rng"/>, and a batch may straddle two passes, so no row is ever
/// skipped (PyTorch's DataLoader with shuffle=True and drop_last=False, without the short last batch).
/// </summary>
public sealed class Epochs(int count, SplitMix64 rng)
{
    private readonly List<long> _order = [];
    private int _next;

    /// <summary>Passes started so far.</summary>
    public int Pass { get; private set; }

    /// <summary>The next <paramref name="n"/> row indices, int64 (n).</summary>
    public Tensor Next(int n)
    {
        if (count < 1) throw new InvalidOperationException("Epochs: there are no rows to sample");
        var rows = new long[n];
        for (int i = 0; i < n; i++)
        {
            if (_next == _order.Count)
            {
                _order.Clear();
                for (long r = 0; r < count; r++) _order.Add(r);
                rng.Shuffle(_order);
                _next = 0;
                Pass++;
            }
            rows[i] = _order[_next++];
        }
        return tensor(rows, [n]);
    }
}

/// <summary>Minibatches for the epochs of PPO-style updates.</summary>
public static class Sampling
{
    /// <summary>
    /// A shuffled split of rows 0..n−1 into <paramref name="count"/> minibatches of n / count rows each (CleanRL: one
    /// permutation per epoch, then consecutive slices; when count does not divide n, the n mod count rows left over
    /// sit this epoch out).
    /// </summary>
    public static List<long[]> Minibatches(int n, int count, SplitMix64 rng)
    {
        if (count < 1 || count > n)
            throw new ArgumentException($"Minibatches: cannot split {n} rows into {count} minibatches");
        var order = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        rng.Shuffle(order);
        int size = n / count;
        return Enumerable.Range(0, count).Select(k => order[(k * size)..((k + 1) * size)]).ToList();
    }
}
