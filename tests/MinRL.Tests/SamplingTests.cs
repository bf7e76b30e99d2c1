using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

/// <summary>The shared samplers: Epochs (reward model, RLHF's reward model, DPO) and Sampling.Minibatches (PPO's
/// epochs in chapters 4 and 6).</summary>
public class SamplingTests
{
    [Fact]
    public void Epochs_visit_every_row_once_per_pass_in_a_seeded_order()
    {
        var epochs = new Epochs(10, new SplitMix64(3));
        var first = epochs.Next(4).data<long>().Concat(epochs.Next(6).data<long>()).ToArray();
        Assert.Equal(1, epochs.Pass);
        var second = epochs.Next(10).data<long>().ToArray();
        Assert.Equal(2, epochs.Pass);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), first.Order());
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), second.Order());
        Assert.NotEqual(first, second);                                                   // reshuffled each pass
        var again = new Epochs(10, new SplitMix64(3));
        Assert.Equal(first, again.Next(10).data<long>().ToArray());
    }

    [Fact]
    public void Epochs_let_a_batch_straddle_two_passes_so_no_row_is_skipped()
    {
        var epochs = new Epochs(5, new SplitMix64(1));
        var rows = epochs.Next(3).data<long>().Concat(epochs.Next(3).data<long>()).Concat(epochs.Next(4).data<long>())
            .ToArray();                                                                   // 10 rows = two whole passes
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (long)i), rows[..5].Order());
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (long)i), rows[5..].Order());
        Assert.Throws<InvalidOperationException>(() => new Epochs(0, new SplitMix64(1)).Next(1));
    }

    [Fact]
    public void Minibatches_partition_a_fresh_permutation_each_epoch()
    {
        var rng = new SplitMix64(3);
        var first = Sampling.Minibatches(10, 3, rng);
        Assert.Equal(3, first.Count);
        Assert.All(first, mb => Assert.Equal(3, mb.Length));                               // 10 / 3 = 3 rows each; 1 left out
        var rows = first.SelectMany(mb => mb).ToArray();
        Assert.Equal(rows.Length, rows.Distinct().Count());
        Assert.All(rows, r => Assert.InRange(r, 0, 9));
        var second = Sampling.Minibatches(10, 3, rng);
        Assert.NotEqual(rows, second.SelectMany(mb => mb).ToArray());                     // reshuffled each epoch
        Assert.Equal(rows, Sampling.Minibatches(10, 3, new SplitMix64(3)).SelectMany(mb => mb).ToArray());
        Assert.Equal(Enumerable.Range(0, 128).Select(i => (long)i),
            Sampling.Minibatches(128, 4, rng).SelectMany(mb => mb).Order());               // all rows, each once
        Assert.Throws<ArgumentException>(() => Sampling.Minibatches(3, 4, rng));
    }
}
