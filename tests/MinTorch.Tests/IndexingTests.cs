using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class IndexingTests
{
    static Tensor In(params long[] shape) => GradCheck.Input(shape, seed: shape.Sum() + 5 * shape.Length);
    static float[] F(Tensor t) => t.data<float>().ToArray();
    static Tensor Arange(long n, params long[] shape) => arange(n, dtype: ScalarType.Float32).reshape(shape);
    static Tensor L(long[] values, params long[] shape) => tensor(values, shape);
    static Tensor B(bool[] values, params long[] shape) => tensor(values, shape);

    // ------------------------------------------------------------------ gather / scatter

    static readonly Tensor Idx34 = L([2, 0, 1, 0, 1, 1, 2, 2, 0, 0, 0, 1], 3, 4); // values < 3, repeats included

    [Fact] public void Gather_grad_dim0() => GradCheck.Check(x => x[0].gather(0, L([2, 0, 1, 0, 1, 1, 2, 2], 2, 4)), In(3, 4));
    [Fact] public void Gather_grad_dim1() => GradCheck.Check(x => x[0].gather(1, Idx34.t().narrow(0, 0, 3)), In(3, 4));
    [Fact] public void Gather_grad_last_dim_with_repeats() => GradCheck.Check(x => x[0].gather(-1, L([0, 0, 2, 3, 3, 1], 2, 1, 3)).square(), In(2, 1, 4));
    [Fact] public void Gather_grad_smaller_index() => GradCheck.Check(x => x[0].gather(1, L([3, 0, 1, 1], 2, 2)), In(3, 4));
    [Fact] public void Gather_second_order() => GradCheck.CheckSecondOrder(x => x[0].gather(1, L([1, 1, 3, 0, 2, 2], 2, 3)).tanh() * x[0].narrow(1, 0, 3), In(2, 4));
    [Fact] public void Scatter_add_grad() => GradCheck.Check(x => x[0].scatter_add(0, Idx34, x[1]) * x[0], In(3, 4), GradCheck.Input([3, 4], 11));
    [Fact] public void Scatter_add_second_order() => GradCheck.CheckSecondOrder(x => x[0].scatter_add(1, L([0, 0, 1, 2, 2, 2], 2, 3), x[1]).sigmoid(), In(2, 3), GradCheck.Input([2, 3], 12));
    [Fact] public void Scatter_grad() => GradCheck.Check(x => x[0].scatter(1, L([2, 0, 1, 3], 2, 2), x[1]).square(), In(2, 4), GradCheck.Input([2, 3], 13));

    // ------------------------------------------------------------------ index_select / index_add

    [Fact] public void Index_select_grad_dim0_repeats() => GradCheck.Check(x => x[0].index_select(0, L([3, 0, 3, 1, 3], 5)), In(4, 3));
    [Fact] public void Index_select_grad_middle_dim() => GradCheck.Check(x => x[0].index_select(1, L([2, 2, 0], 3)).exp(), In(2, 3, 4));
    [Fact] public void Index_select_second_order() => GradCheck.CheckSecondOrder(x => x[0].index_select(-1, L([1, 0, 1], 3)).tanh() * x[0].narrow(1, 0, 3), In(2, 4));
    [Fact] public void Index_add_grad() => GradCheck.Check(x => x[0].index_add(1, L([2, 0, 2], 3), x[1], 0.5) * x[0], In(2, 3), GradCheck.Input([2, 3], 14));

    // ------------------------------------------------------------------ masked_fill / where

    static readonly Tensor Mask34 = B([true, false, false, true, false, true, true, false, false, false, true, true], 3, 4);

    [Fact] public void Masked_fill_grad() => GradCheck.Check(x => x[0].masked_fill(Mask34, 2.5) * x[0], In(3, 4));
    [Fact] public void Masked_fill_grad_broadcast_mask() => GradCheck.Check(x => x[0].masked_fill(Mask34.narrow(0, 0, 1), -1.0).square(), In(2, 3, 4));
    [Fact] public void Masked_fill_grad_mask_broadcasts_input() => GradCheck.Check(x => x[0].masked_fill(Mask34, 0.0).exp(), In(4));
    [Fact] public void Masked_fill_second_order() => GradCheck.CheckSecondOrder(x => x[0].masked_fill(Mask34.unsqueeze(0), 0.0).tanh() * x[0], In(2, 3, 4));
    [Fact] public void Where_grad_broadcast() => GradCheck.Check(x => where(Mask34, x[0], x[1]) * x[0].sum(), In(3, 1), GradCheck.Input([4], 15));
    [Fact] public void Where_grad_broadcast_condition() => GradCheck.Check(x => where(Mask34.narrow(1, 0, 1), x[0], x[1]).square(), In(3, 4), GradCheck.Input([3, 4], 16));
    [Fact] public void Where_second_order() => GradCheck.CheckSecondOrder(x => where(Mask34, x[0].sigmoid(), x[1] * x[0]), In(3, 4), GradCheck.Input([1, 4], 17));

    // ------------------------------------------------------------------ indexers

    [Fact] public void Index_grad_ints_and_slices() => GradCheck.Check(x => x[0][1, .., -1] * x[0][0, 1.., ..^1].sum(), In(2, 3, 4));
    [Fact] public void Index_grad_steps_none_ellipsis() => GradCheck.Check(x =>
        x[0][TensorIndex.Ellipsis, 1.., TensorIndex.Slice(1, null, 2)].square() + x[0][.., TensorIndex.Slice(-2), TensorIndex.None, TensorIndex.Slice(null, 2)].sum(2), In(2, 3, 4));
    [Fact] public void Index_grad_int_tensor_with_repeats() => GradCheck.Check(x => x[0][TensorIndex.Colon, TensorIndex.Tensor(L([2, 0, -1, 2], 2, 2))], In(2, 3, 4));
    [Fact] public void Index_grad_bool_mask() => GradCheck.Check(x => x[0][Mask34].exp() + x[0][TensorIndex.Tensor(Mask34.narrow(1, 1, 1).squeeze(1)), 1..].sum(), In(3, 4));
    [Fact] public void Index_second_order() => GradCheck.CheckSecondOrder(x => x[0][.., 1..].tanh() * x[0][.., ..^1], In(3, 4));

    [Fact]
    public void Indexing_matches_pytorch()
    {
        // Expected values computed with PyTorch 1.13 on x = torch.arange(24.).reshape(2, 3, 4).
        var x = Arange(24, 2, 3, 4);
        Assert.Equal(new float[] { 15, 19, 23 }, F(x[1, .., -1]));
        var i2 = x[TensorIndex.Ellipsis, TensorIndex.Slice(1, null, 2)];
        Assert.Equal(new long[] { 2, 3, 2 }, i2.shape);
        Assert.Equal(new float[] { 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23 }, F(i2));
        var i3 = x[.., 1.., TensorIndex.None, ..3];
        Assert.Equal(new long[] { 2, 2, 1, 3 }, i3.shape);
        Assert.Equal(new float[] { 4, 5, 6, 8, 9, 10, 16, 17, 18, 20, 21, 22 }, F(i3));
        Assert.Equal(new float[] { 13, 14, 21, 22 }, F(x[-1, TensorIndex.Slice(null, null, 2), 1..3]));
        Assert.Equal(new float[] { 13, 14, 21, 22 }, F(x[^1, TensorIndex.Slice(step: 2), 1..3]));
        var i5 = x[TensorIndex.Colon, TensorIndex.Tensor(L([2, 0, -1], 3))];
        Assert.Equal(new long[] { 2, 3, 4 }, i5.shape);
        Assert.Equal(new float[] { 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11, 20, 21, 22, 23, 12, 13, 14, 15, 20, 21, 22, 23 }, F(i5));
        Assert.Equal(new float[] { 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23 }, F(x[x > 10]));
        var i7 = x[0, TensorIndex.Tensor(B([true, false, true], 3))];
        Assert.Equal(new long[] { 2, 4 }, i7.shape);
        Assert.Equal(new float[] { 0, 1, 2, 3, 8, 9, 10, 11 }, F(i7));
        Assert.Equal(new long[] { 1, 2, 3, 4 }, x[TensorIndex.Bool(true)].shape);
        Assert.Equal(new long[] { 0, 2, 3, 4 }, x[TensorIndex.Bool(false)].shape);
        Assert.Equal(new long[] { 1, 2, 3, 4, 1 }, x[TensorIndex.None, TensorIndex.Ellipsis, TensorIndex.None].shape);
        Assert.Equal(new long[] { 2, 0, 4 }, x[.., 5..].shape); // slices clamp, as in Python
        Assert.Equal(12f, x[1, 0, 0].item<float>());
        Assert.Equal(new long[] { 3, 4 }, x[0].shape);
    }

    [Fact]
    public void Index_put_matches_pytorch()
    {
        // Expected values computed with PyTorch 1.13.
        var y = Arange(24, 2, 3, 4);
        y[.., 1] = tensor(new float[] { 7, 8, 9, 10 });
        Assert.Equal(new float[] { 0, 1, 2, 3, 7, 8, 9, 10, 8, 9, 10, 11, 12, 13, 14, 15, 7, 8, 9, 10, 20, 21, 22, 23 }, F(y));
        y = Arange(24, 2, 3, 4);
        y.index_put_(-1, TensorIndex.Ellipsis, -1);
        Assert.Equal(new float[] { 0, 1, 2, -1, 4, 5, 6, -1, 8, 9, 10, -1, 12, 13, 14, -1, 16, 17, 18, -1, 20, 21, 22, -1 }, F(y));
        y = Arange(24, 2, 3, 4);
        y[y > 20] = zeros(1);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0, 0, 0 }, F(y));
        y = Arange(24, 2, 3, 4);
        y[TensorIndex.Tensor(L([1, 0], 2)), 0] = tensor(new float[] { 100, 101, 102, 103, 200, 201, 202, 203 }, new long[] { 2, 4 });
        Assert.Equal(new float[] { 200, 201, 202, 203, 4, 5, 6, 7, 8, 9, 10, 11, 100, 101, 102, 103, 16, 17, 18, 19, 20, 21, 22, 23 }, F(y));
        // Overlapping source and destination: the value is read before anything is written.
        var z = Arange(5, 5);
        z[1..] = z[..^1];
        Assert.Equal(new float[] { 0, 0, 1, 2, 3 }, F(z));
    }

    [Fact]
    public void Index_put_is_refused_on_graph_tensors()
    {
        var p = ones(new long[] { 3 }, requires_grad: true);
        var ex = Assert.Throws<InvalidOperationException>(() => p[0] = zeros(1));
        Assert.Contains("index_put_", ex.Message);
        using (no_grad()) p[0] = zeros(1);
        Assert.Equal(new float[] { 0, 1, 1 }, F(p.detach()));
        Assert.Throws<InvalidOperationException>(() => (p * 2).masked_fill_(ones(3, dtype: ScalarType.Bool), 0));
    }

    [Fact]
    public void Gather_scatter_index_select_match_pytorch()
    {
        // Expected values computed with PyTorch 1.13.
        Assert.Equal(new float[] { 3, 0, 5, 5 }, F(Arange(8, 2, 4).gather(1, L([3, 0, 1, 1], 2, 2))));
        Assert.Equal(new float[] { 8, 1, 6, 3, 4, 5, 10, 11 }, F(Arange(12, 3, 4).gather(0, L([2, 0, 1, 0, 1, 1, 2, 2], 2, 4))));
        Assert.Equal(new float[] { 0, 2, 0, 4, 0, 6, 3, 0, 6, 0, 7, 8 },
            F(zeros(3, 4).scatter_add(0, L([2, 0, 1, 0, 2, 1, 2, 2], 2, 4), arange(1, 9, dtype: ScalarType.Float32).reshape(2, 4))));
        Assert.Equal(new float[] { 1, 1, 9, 13, 1, 1, 5, 7 },
            F(ones(4, 2).index_add(0, L([1, 3, 1], 3), Arange(6, 3, 2), 2)));
        Assert.Equal(new float[] { 6, 7, 8, 0, 1, 2, 6, 7, 8 }, F(Arange(9, 3, 3).index_select(0, L([2, 0, 2], 3))));
        Assert.Equal(new long[] { 1, 3 }, Arange(9, 3, 3).index_select(0, tensor(1L)).shape);
        Assert.Equal(new float[] { -1.5f, 1, -1.5f, -1.5f, 4, -1.5f }, F(Arange(6, 2, 3).masked_fill(B([true, false, true], 3), -1.5)));
        var w = where(B([true, false], 2, 1), arange(3, dtype: ScalarType.Float32), tensor(new float[] { 10, 20 }, new long[] { 2, 1 }));
        Assert.Equal(new long[] { 2, 3 }, w.shape);
        Assert.Equal(new float[] { 0, 1, 2, 20, 20, 20 }, F(w));
        Assert.Equal(ScalarType.Float64, where(B([true, false], 2), zeros(2), ones(2, dtype: ScalarType.Float64)).dtype);
        Assert.Equal(new long[] { 4, 0 }, arange(5).gather(0, L([4, 0], 2)).data<long>().ToArray());
    }

    [Fact]
    public void Embedding_lookup_and_its_gradient_are_correct_and_thread_count_independent()
    {
        // A (vocab, C) table looked up by (B·T) int64 ids, many repeated: the Embedding pattern.
        var gen = new Generator(5);
        var table = randn(new long[] { 50, 64 }, generator: gen).requires_grad_();
        var ids = randint(0, 50, [4096], generator: gen);
        var upstream = randn(new long[] { 4096, 64 }, generator: gen);
        (float[] y, float[] g) Run()
        {
            table.grad = null;
            var y = table.index_select(0, ids);
            (y * upstream).sum().backward();
            return (F(y.detach()), F(table.grad!));
        }
        int saved = get_num_threads();
        try
        {
            set_num_threads(1); var one = Run();
            set_num_threads(Math.Max(4, Environment.ProcessorCount)); var many = Run();
            Assert.Equal(one.y, many.y);
            Assert.Equal(one.g, many.g);
            // The gradient of row v is the sum, in id order, of the upstream rows whose id is v.
            var I = ids.data<long>().ToArray(); var U = F(upstream); var T = F(table.detach());
            var expect = new float[50 * 64];
            for (int j = 0; j < I.Length; j++) for (int c = 0; c < 64; c++) expect[I[j] * 64 + c] += U[j * 64 + c];
            Assert.Equal(expect, one.g);
            for (int j = 0; j < I.Length; j += 97) for (int c = 0; c < 64; c++) Assert.Equal(T[I[j] * 64 + c], one.y[j * 64 + c]);
        }
        finally { set_num_threads(saved); }
    }

    [Fact]
    public void Gather_scatter_add_masked_fill_and_where_are_bitwise_identical_for_any_thread_count()
    {
        // Sizes are chosen so that every kernel below is split into several chunks.
        var gen = new Generator(6);
        var logp = randn(new long[] { 8, 64, 100 }, generator: gen);
        var tok = randint(0, 100, [8, 64, 100], generator: gen);   // many outer rows: split by rows
        var cols = randint(0, 8, [8, 10000], generator: gen);      // dim-0 scatter onto few rows: split by columns
        var src = randn(new long[] { 8, 10000 }, generator: gen);
        var causal = ones(128, 128, dtype: ScalarType.Bool).triu(1);
        var scores = randn(new long[] { 4, 4, 128, 128 }, generator: gen);
        var cond = randn(new long[] { 300, 500 }, generator: gen) > 0;
        var a = randn(new long[] { 300, 500 }, generator: gen);
        float[][] Run() =>
        [
            F(logp.gather(-1, tok)), F(zeros(8, 64, 100).scatter_add(2, tok, logp)),
            F(zeros(8, 10000).scatter_add(0, cols, src)),
            F(scores.masked_fill(causal, float.NegativeInfinity)), F(where(cond, a, a.neg())),
        ];
        int saved = get_num_threads();
        try
        {
            set_num_threads(1); var one = Run();
            set_num_threads(Math.Max(4, Environment.ProcessorCount)); var many = Run();
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], many[i]);
            // Row-by-row reference for the dim-0 scatter_add (sums in row order).
            var C = cols.data<long>().ToArray(); var S = F(src); var expect = new float[8 * 10000];
            for (int r = 0; r < 8; r++) for (int c = 0; c < 10000; c++) expect[C[r * 10000 + c] * 10000 + c] += S[r * 10000 + c];
            Assert.Equal(expect, one[2]);
            // And for the last-dim scatter_add, in index order.
            var T = tok.data<long>().ToArray(); var P = F(logp); var expect2 = new float[8 * 64 * 100];
            for (int r = 0; r < 8 * 64; r++) for (int j = 0; j < 100; j++) expect2[r * 100 + T[r * 100 + j]] += P[r * 100 + j];
            Assert.Equal(expect2, one[1]);
        }
        finally { set_num_threads(saved); }
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Out_of_range_indices_name_the_op_value_and_size()
    {
        var x = ones(2, 3);
        var e1 = Assert.ThrowsAny<ArgumentException>(() => x.gather(1, L([5, 0], 2, 1)));
        Assert.Contains("gather: index 5 is out of bounds for dimension 1 with size 3", e1.Message);
        var e2 = Assert.ThrowsAny<ArgumentException>(() => x.index_select(0, L([0, 2], 2)));
        Assert.Contains("index_select: index 2 is out of bounds for dimension 0 with size 2", e2.Message);
        var e3 = Assert.ThrowsAny<ArgumentException>(() => x[5]);
        Assert.Contains("index: index 5 is out of bounds for dimension 0 with size 2", e3.Message);
        var e4 = Assert.ThrowsAny<ArgumentException>(() => x[.., -4]);
        Assert.Contains("index -4 is out of bounds for dimension 1 with size 3", e4.Message);
        var e5 = Assert.ThrowsAny<ArgumentException>(() => x[TensorIndex.Tensor(L([0, 3], 2))]);
        Assert.Contains("index 3 is out of bounds for dimension 0 with size 2", e5.Message);
        var e6 = Assert.ThrowsAny<ArgumentException>(() => x.scatter_add(0, L([-1], 1, 1), ones(1, 1)));
        Assert.Contains("scatter_add: index -1 is out of bounds for dimension 0 with size 2", e6.Message);
    }

    [Fact]
    public void Wrong_dtypes_and_shapes_are_explained()
    {
        var x = ones(2, 3);
        var e1 = Assert.Throws<ArgumentException>(() => x.gather(1, zeros(2, 1)));
        Assert.Contains("gather", e1.Message); Assert.Contains("int64", e1.Message); Assert.Contains("Float32", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => x.index_select(0, zeros(1)));
        Assert.Contains("index_select", e2.Message); Assert.Contains("int64", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => x.masked_fill(ones(2, 3), 0));
        Assert.Contains("masked_fill", e3.Message); Assert.Contains("bool", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => x.masked_fill(ones(4, dtype: ScalarType.Bool), 0));
        Assert.Contains("masked_fill", e4.Message); Assert.Contains("[2, 3]", e4.Message); Assert.Contains("[4]", e4.Message);
        var e5 = Assert.Throws<ArgumentException>(() => x.gather(0, L([0], 1)));
        Assert.Contains("gather", e5.Message); Assert.Contains("[1]", e5.Message); Assert.Contains("[2, 3]", e5.Message);
        var e6 = Assert.Throws<ArgumentException>(() => x[0, 0, 0]);
        Assert.Contains("too many indices", e6.Message); Assert.Contains("[2, 3]", e6.Message);
        var e7 = Assert.Throws<ArgumentException>(() => x[TensorIndex.Ellipsis, 0, TensorIndex.Ellipsis]);
        Assert.Contains("single ellipsis", e7.Message);
        var e8 = Assert.Throws<ArgumentException>(() => x[TensorIndex.Slice(step: 0)]);
        Assert.Contains("step must be positive", e8.Message);
        var e9 = Assert.Throws<ArgumentException>(() => x[ones(3, dtype: ScalarType.Bool)]);
        Assert.Contains("mask of shape [3]", e9.Message); Assert.Contains("[2]", e9.Message);
        var e10 = Assert.Throws<ArgumentException>(() => where(ones(2), x, x));
        Assert.Contains("where", e10.Message); Assert.Contains("bool", e10.Message);
        var e11 = Assert.Throws<ArgumentException>(() => x[.., 0] = ones(3));
        Assert.Contains("index_put_", e11.Message); Assert.Contains("[3]", e11.Message); Assert.Contains("[2]", e11.Message);
        var e12 = Assert.Throws<ArgumentException>(() => x.index_add(0, L([0], 1), ones(2, 3), 1));
        Assert.Contains("index_add", e12.Message); Assert.Contains("[1, 3]", e12.Message);
    }
}
