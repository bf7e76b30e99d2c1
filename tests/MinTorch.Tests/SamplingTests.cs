using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class SamplingTests
{
    static Tensor W(params float[] w) => tensor(w);

    static double[] Frequencies(long[] samples, int n)
    {
        var f = new double[n];
        foreach (var s in samples) f[s]++;
        return f.Select(c => c / samples.Length).ToArray();
    }

    [Fact]
    public void Same_seed_same_samples()
    {
        var w = W(1, 2, 7, 0, 3);
        var a = w.multinomial(50, replacement: true, generator: new Generator(42)).data<long>().ToArray();
        var b = multinomial(w, 50, true, new Generator(42)).data<long>().ToArray();
        var c = w.multinomial(50, replacement: true, generator: new Generator(43)).data<long>().ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        manual_seed(7); var d = w.multinomial(3).data<long>().ToArray();
        manual_seed(7); var e = w.multinomial(3).data<long>().ToArray();
        Assert.Equal(d, e);
    }

    [Fact]
    public void With_replacement_frequencies_match_the_weights()
    {
        // Unnormalised weights 1 : 2 : 7 are probabilities 0.1, 0.2, 0.7.
        var s = W(1, 2, 7).multinomial(20000, replacement: true, generator: new Generator(1));
        Assert.Equal(new long[] { 20000 }, s.shape);
        Assert.Equal(ScalarType.Int64, s.dtype);
        var f = Frequencies(s.data<long>().ToArray(), 3);
        Assert.InRange(f[0], 0.1 - 0.015, 0.1 + 0.015);
        Assert.InRange(f[1], 0.2 - 0.015, 0.2 + 0.015);
        Assert.InRange(f[2], 0.7 - 0.015, 0.7 + 0.015);
    }

    [Fact]
    public void Rows_are_sampled_from_their_own_weights_and_zero_weights_never_come_up()
    {
        var w = tensor(new double[] { 1, 2, 7, 0, 0, 5, 0, 5 }, new long[] { 2, 4 });
        var s = w.multinomial(10000, replacement: true, generator: new Generator(2));
        Assert.Equal(new long[] { 2, 10000 }, s.shape);
        var all = s.data<long>().ToArray();
        var row0 = Frequencies(all[..10000], 4); var row1 = Frequencies(all[10000..], 4);
        Assert.InRange(row0[2], 0.7 - 0.02, 0.7 + 0.02);
        Assert.Equal(0.0, row0[3]);
        Assert.Equal(0.0, row1[0]); Assert.Equal(0.0, row1[2]);
        Assert.InRange(row1[1], 0.5 - 0.02, 0.5 + 0.02);
    }

    [Fact]
    public void Without_replacement_never_repeats_and_follows_sequential_probabilities()
    {
        // A permutation: every category exactly once per row.
        var perm = W(5, 1, 0.5f, 3, 2, 8).multinomial(6, generator: new Generator(3)).data<long>().ToArray();
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5 }, perm.Order().ToArray());

        // Two draws without replacement from 0.1, 0.2, 0.7, in 20000 independent rows. Sequential sampling
        // gives P(a, b) = p_a · p_b / (1 − p_a); e.g. P(2, 1) = 0.7 · 0.2 / 0.3 = 0.4667.
        var rows = ones(20000, 3) * W(1, 2, 7);
        var s = rows.multinomial(2, generator: new Generator(4)).data<long>().ToArray();
        var p = new[] { 0.1, 0.2, 0.7 };
        var count = new double[3, 3];
        for (int r = 0; r < 20000; r++)
        {
            Assert.NotEqual(s[2 * r], s[2 * r + 1]);
            count[s[2 * r], s[2 * r + 1]] += 1.0 / 20000;
        }
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
            {
                double expected = a == b ? 0 : p[a] * p[b] / (1 - p[a]);
                Assert.InRange(count[a, b], expected - 0.015, expected + 0.015);
            }
    }

    [Fact]
    public void Invalid_weights_are_refused_with_the_row_named()
    {
        var e1 = Assert.Throws<ArgumentException>(() => tensor(new float[] { 1, 2, 0, -1 }, new long[] { 2, 2 }).multinomial(1));
        Assert.Contains("multinomial", e1.Message); Assert.Contains("row 1", e1.Message); Assert.Contains("negative", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => W(1, float.NaN).multinomial(1));
        Assert.Contains("NaN", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => tensor(new float[] { 1, float.PositiveInfinity, 1, 1 }, new long[] { 2, 2 }).multinomial(1));
        Assert.Contains("row 0", e3.Message); Assert.Contains("finite", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => tensor(new float[] { 1, 1, 0, 0, 2, 2 }, new long[] { 3, 2 }).multinomial(1));
        Assert.Contains("row 1", e4.Message); Assert.Contains("zero", e4.Message);
        var e5 = Assert.Throws<ArgumentException>(() => W(1, 2).multinomial(3));
        Assert.Contains("without replacement", e5.Message);
        var e6 = Assert.Throws<ArgumentException>(() => W(1, 0, 2).multinomial(3));
        Assert.Contains("only 2 categories", e6.Message);
        var e7 = Assert.Throws<ArgumentException>(() => tensor(new long[] { 1, 2 }).multinomial(1));
        Assert.Contains("floating-point", e7.Message);
        var e8 = Assert.Throws<ArgumentException>(() => ones(2, 2, 2).multinomial(1));
        Assert.Contains("[2, 2, 2]", e8.Message);
        var e9 = Assert.Throws<ArgumentException>(() => W(1, 2).multinomial(0));
        Assert.Contains("num_samples", e9.Message);
    }

    [Fact]
    public void Bernoulli_frequencies_and_validation()
    {
        var p = ones(20000, 2) * W(0.2f, 0.9f);
        var s = bernoulli(p, new Generator(5));
        Assert.Equal(ScalarType.Float32, s.dtype);
        var v = s.data<float>().ToArray();
        Assert.All(v, x => Assert.True(x == 0 || x == 1));
        double m0 = 0, m1 = 0;
        for (int i = 0; i < 20000; i++) { m0 += v[2 * i]; m1 += v[2 * i + 1]; }
        Assert.InRange(m0 / 20000, 0.2 - 0.015, 0.2 + 0.015);
        Assert.InRange(m1 / 20000, 0.9 - 0.015, 0.9 + 0.015);
        Assert.Equal(v, p.bernoulli(new Generator(5)).data<float>().ToArray());
        var e = Assert.Throws<ArgumentException>(() => W(0.5f, 1.5f).bernoulli());
        Assert.Contains("bernoulli", e.Message); Assert.Contains("1.5", e.Message);
    }
}
