using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class ShapeTests
{
    static Tensor In(params long[] shape) => GradCheck.Input(shape, seed: shape.Sum() + 3 * shape.Length);
    static float[] F(Tensor t) => t.data<float>().ToArray();
    static Tensor Arange(long n, params long[] shape) => arange(n, dtype: ScalarType.Float32).reshape(shape);

    // ------------------------------------------------------------------ gradients

    [Fact] public void Transpose_grad() => GradCheck.Check(x => x[0].transpose(0, 2) * 1.5 + x[0].transpose(-1, 1).transpose(1, 2).transpose(0, 2), In(2, 3, 4));
    [Fact] public void Transpose_second_order() => GradCheck.CheckSecondOrder(x => (x[0].transpose(1, 2) * x[1]).tanh(), In(2, 3, 4), GradCheck.Input([2, 4, 3], 5));
    [Fact] public void Permute_grad() => GradCheck.Check(x => x[0].permute(2, 0, 3, 1) * x[1], In(2, 3, 4, 5), GradCheck.Input([4, 2, 5, 3], 6));
    [Fact] public void Permute_second_order() => GradCheck.CheckSecondOrder(x => x[0].permute(1, 0, 2).sigmoid() * x[0].permute(1, 0, 2), In(2, 3, 4));
    [Fact] public void T_and_mT_grad() => GradCheck.Check(x => x[0].t().matmulFree(x[1]) + x[1].mT.matmulFree(x[0]), In(3, 4), GradCheck.Input([3, 4], 7));
    [Fact] public void Cat_grad_dim0() => GradCheck.Check(x => cat([x[0], x[1], x[2]], 0).square(), In(2, 3), GradCheck.Input([1, 3], 2), GradCheck.Input([4, 3], 3));
    [Fact] public void Cat_grad_middle_dim() => GradCheck.Check(x => cat([x[0], x[1]], 1) * 2, In(2, 3, 4), GradCheck.Input([2, 1, 4], 2));
    [Fact] public void Cat_grad_last_dim() => GradCheck.Check(x => cat([x[0], x[1], x[0]], -1).exp(), In(2, 3), GradCheck.Input([2, 5], 4));
    [Fact] public void Cat_second_order() => GradCheck.CheckSecondOrder(x => cat([x[0], x[1]], -1).tanh() * cat([x[1], x[0]], -1), In(2, 3), GradCheck.Input([2, 3], 9));
    [Fact] public void Stack_grad() => GradCheck.Check(x => stack([x[0], x[1]], 0) + stack([x[0], x[1]], -1).sum(-1).unsqueeze(0) * stack([x[1], x[0]], 1).sum(1), In(3, 4), GradCheck.Input([3, 4], 8));
    [Fact] public void Narrow_grad() => GradCheck.Check(x => x[0].narrow(1, 1, 2).narrow(-1, -3, 2).square() + x[0].narrow(-1, 1, 2).narrow(1, 0, 2), In(2, 4, 5));
    [Fact] public void Narrow_second_order() => GradCheck.CheckSecondOrder(x => x[0].narrow(1, 1, 2).tanh() * x[0].narrow(1, 0, 2), In(3, 4));
    [Fact] public void Chunk_and_split_grad() => GradCheck.Check(x =>
    {
        var c = x[0].chunk(3, 1);                 // sizes 3, 3, 1
        var s = x[0].split(new long[] { 2, 5 }, 1);
        return c[0] * c[1] + s[0].sum(1, keepdim: true) * c[2] + s[1].narrow(1, 0, 3);
    }, In(2, 7));
    [Fact] public void Repeat_grad() => GradCheck.Check(x => x[0].repeat(2, 1, 3), In(2, 3));
    [Fact] public void Flip_grad() => GradCheck.Check(x => x[0].flip(0, 2) * x[1] + x[0].flip(-2), In(2, 3, 4), GradCheck.Input([2, 3, 4], 3));
    [Fact] public void Tril_triu_grad() => GradCheck.Check(x => x[0].tril() + x[0].triu(1) * 2 + x[0].tril(-1) * 3 + x[0].triu(-2).square(), In(2, 4, 5));
    [Fact] public void Tril_second_order() => GradCheck.CheckSecondOrder(x => x[0].tril(-1).exp() * x[0].triu(), In(4, 4));

    // ------------------------------------------------------------------ known values (from PyTorch 1.13, x = arange(24).reshape(2, 3, 4))

    [Fact]
    public void Transpose_permute_narrow_flip_match_pytorch()
    {
        var x = Arange(24, 2, 3, 4);
        var t = x.transpose(0, 2);
        Assert.Equal(new long[] { 4, 3, 2 }, t.shape);
        Assert.Equal(new float[] { 0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23 }, F(t));
        var p = x.permute(2, 0, 1);
        Assert.Equal(new long[] { 4, 2, 3 }, p.shape);
        Assert.Equal(new float[] { 0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23 }, F(p));
        Assert.Equal(new float[] { 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22 }, F(x.narrow(2, 1, 2)));
        Assert.Equal(new float[] { 15, 14, 13, 12, 19, 18, 17, 16, 23, 22, 21, 20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8 }, F(x.flip(0, 2)));
        Assert.Equal(new long[] { 3, 2 }, Arange(6, 2, 3).t().shape);
        Assert.Equal(new long[] { 2, 4, 3 }, x.mT.shape);
        Assert.Equal(F(x.transpose(1, 2)), F(x.mT));
    }

    [Fact]
    public void Tril_triu_repeat_cat_stack_chunk_match_pytorch()
    {
        var m = Arange(12, 3, 4);
        Assert.Equal(new float[] { 0, 1, 0, 0, 4, 5, 6, 0, 8, 9, 10, 11 }, F(m.tril(1)));
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11 }, F(m.triu(-1)));
        Assert.Equal(F(m.tril(1)), F(tril(m, 1)));
        var r = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 }).repeat(2, 1, 3);
        Assert.Equal(new long[] { 2, 2, 6 }, r.shape);
        Assert.Equal(new float[] { 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4 }, F(r));
        var c = cat([Arange(4, 2, 2), (Arange(6, 2, 3) + 10)], -1);
        Assert.Equal(new float[] { 0, 1, 10, 11, 12, 2, 3, 13, 14, 15 }, F(c));
        var s = stack([Arange(3, 3), Arange(3, 3) + 3], 1);
        Assert.Equal(new long[] { 3, 2 }, s.shape);
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, F(s));
        var ch = Arange(7, 7).chunk(3);
        Assert.Equal(3, ch.Length);
        Assert.Equal(new float[] { 6 }, F(ch[2]));
        Assert.Equal(3, Arange(6, 6).chunk(4).Length); // PyTorch: sizes 2, 2, 2
        var sp = Arange(7, 7).split(3);
        Assert.Equal(new[] { 3L, 3, 1 }, sp.Select(t => t.shape[0]).ToArray());
    }

    [Fact]
    public void Cat_promotes_dtypes_and_single_tensor_is_returned_as_is()
    {
        var a = ones(2); var b = ones(2, dtype: ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, cat([a, b]).dtype);
        Assert.Same(a, cat([a]));
    }

    [Fact]
    public void Int_and_bool_tensors_can_be_shuffled()
    {
        var l = arange(6).reshape(2, 3);
        Assert.Equal(new long[] { 0, 3, 1, 4, 2, 5 }, l.t().data<long>().ToArray());
        var bl = tensor(new[] { true, false, false, true, true, false }, new long[] { 2, 3 });
        Assert.Equal(new[] { true, true, false, true, false, false }, bl.t().data<bool>().ToArray());
    }

    [Fact]
    public void Transpose_of_attention_shapes_matches_element_formula()
    {
        // (B, T, H, D) -> (B, H, T, D), a row copy; and (B, T, C) -> (B, C, T), a tiled transpose with ragged tiles.
        var x = randn(new long[] { 2, 37, 3, 5 }, generator: new Generator(1));
        var y = x.transpose(1, 2);
        var X = F(x); var Y = F(y);
        for (int b = 0; b < 2; b++) for (int t = 0; t < 37; t++) for (int h = 0; h < 3; h++) for (int d = 0; d < 5; d++)
            Assert.Equal(X[((b * 37 + t) * 3 + h) * 5 + d], Y[((b * 3 + h) * 37 + t) * 5 + d]);
        var z = randn(new long[] { 3, 45, 70 }, generator: new Generator(2));
        var zt = z.transpose(1, 2); var Z = F(z); var ZT = F(zt);
        for (int b = 0; b < 3; b++) for (int i = 0; i < 45; i++) for (int j = 0; j < 70; j++)
            Assert.Equal(Z[(b * 45 + i) * 70 + j], ZT[(b * 70 + j) * 45 + i]);
        Assert.Equal(Z, F(zt.transpose(1, 2)));
    }

    [Fact]
    public void Large_shape_ops_are_bitwise_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 4, 64, 8, 32 }, generator: new Generator(3));
        var m = randn(new long[] { 300, 500 }, generator: new Generator(4));
        float[][] Run() =>
        [
            F(x.transpose(1, 2)), F(x.permute(3, 1, 0, 2)), F(m.t()), F(m.narrow(1, 7, 300)),
            F(cat([m, m.narrow(0, 0, 100)], 0)), F(cat([m, m], -1)), F(m.flip(0, 1)), F(m.tril(3)),
        ];
        int saved = get_num_threads();
        try
        {
            set_num_threads(1); var one = Run();
            set_num_threads(Math.Max(4, Environment.ProcessorCount)); var many = Run();
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], many[i]);
        }
        finally { set_num_threads(saved); }
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Errors_name_the_op_and_shapes()
    {
        var x = ones(2, 3);
        var e1 = Assert.Throws<ArgumentException>(() => cat([x, ones(3, 4)], 1));
        Assert.Contains("cat", e1.Message); Assert.Contains("[2, 3]", e1.Message); Assert.Contains("[3, 4]", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => stack([x, ones(2, 4)]));
        Assert.Contains("stack", e2.Message); Assert.Contains("[2, 4] at entry 1", e2.Message);
        var e3 = Assert.ThrowsAny<ArgumentException>(() => x.narrow(1, 2, 2));
        Assert.Contains("narrow", e3.Message); Assert.Contains("exceeds the size (3)", e3.Message);
        var e4 = Assert.ThrowsAny<ArgumentException>(() => x.transpose(0, 2));
        Assert.Contains("transpose", e4.Message); Assert.Contains("[-2, 1]", e4.Message);
        var e5 = Assert.Throws<ArgumentException>(() => x.permute(0, 0));
        Assert.Contains("permute", e5.Message);
        var e6 = Assert.Throws<ArgumentException>(() => ones(2, 3, 4).t());
        Assert.Contains("t:", e6.Message); Assert.Contains("[2, 3, 4]", e6.Message);
        var e7 = Assert.Throws<ArgumentException>(() => ones(3).tril());
        Assert.Contains("tril", e7.Message); Assert.Contains("[3]", e7.Message);
        var e8 = Assert.Throws<ArgumentException>(() => x.split(new long[] { 1, 1 }, 1));
        Assert.Contains("split", e8.Message); Assert.Contains("add up to 3", e8.Message);
        var e9 = Assert.Throws<ArgumentException>(() => x.repeat(2));
        Assert.Contains("repeat", e9.Message);
    }
}

internal static class ShapeTestExtensions
{
    /// <summary>a @ b for 2-D float64 tensors, written with broadcasting (so these tests do not depend on matmul).</summary>
    public static Tensor matmulFree(this Tensor a, Tensor b) => (a.unsqueeze(2) * b.unsqueeze(0)).sum(1);
}
