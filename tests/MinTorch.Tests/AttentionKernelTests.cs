using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

/// <summary>
/// The fused attention kernel behind scaled_dot_product_attention against its composite reference
/// (<see cref="Attention.Composite"/>: matmul, mask, softmax, matmul with the engine's differentiable ops):
/// both of its row paths (a few queries: dot products; more: the GEMM kernel), every mask kind, the
/// skipped tail of keys that no query may see (the KV cache's unfilled buffer), and determinism.
/// </summary>
public class AttentionKernelTests
{
    static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask = null, bool causal = false) =>
        F.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: causal);

    static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).data<double>().ToArray();

    /// <summary>The fused result and its gradients (for Σ y·w) equal the composite's to float64 rounding.</summary>
    static void FusedEqualsComposite(long[] qShape, long[] kShape, long[] vShape, Tensor? mask, bool causal, int seed)
    {
        Tensor Leaf(long[] s, int i) => GradCheck.Input(s, seed + i);
        var (q1, k1, v1) = (Leaf(qShape, 0), Leaf(kShape, 1), Leaf(vShape, 2));
        var (q2, k2, v2) = (Leaf(qShape, 0), Leaf(kShape, 1), Leaf(vShape, 2));
        Assert.True(Attention.CanFuse(q1, k1, v1, mask));
        var fused = Sdpa(q1, k1, v1, mask, causal);
        var reference = Attention.Composite(q2, k2, v2, mask, causal);
        NnAssert.Close(Values(reference), fused, 1e-12, 1e-13, "forward");
        var w = GradCheck.Input(fused.shape, seed + 3).detach();
        (fused * w).sum().backward();
        (reference * w).sum().backward();
        NnAssert.Close(Values(q2.grad!), q1.grad!, 1e-11, 1e-13, "d/dq");
        NnAssert.Close(Values(k2.grad!), k1.grad!, 1e-11, 1e-13, "d/dk");
        NnAssert.Close(Values(v2.grad!), v1.grad!, 1e-11, 1e-13, "d/dv");
    }

    [Fact]
    public void Causal_on_the_gemm_path_and_the_dot_product_path()
    {
        FusedEqualsComposite([2, 3, 9, 5], [2, 3, 9, 5], [2, 3, 9, 4], null, causal: true, seed: 1);    // 9 queries: GEMM
        FusedEqualsComposite([2, 3, 2, 5], [2, 3, 6, 5], [2, 3, 6, 7], null, causal: true, seed: 5);    // 2 queries: dots
        FusedEqualsComposite([4, 6, 8], [4, 11, 8], [4, 11, 3], null, causal: false, seed: 9);           // no mask
    }

    [Fact]
    public void Bool_and_float_masks_shared_and_per_item()
    {
        var shared = (rand(7, 10) > 0.3).logical_or(ones(7, 10, dtype: ScalarType.Bool).tril(-3)); // every row sees a key
        FusedEqualsComposite([2, 2, 7, 4], [2, 2, 10, 4], [2, 2, 10, 3], shared, false, 11);
        var perItem = (rand(new long[] { 2, 2, 3, 10 }) > 0.4).logical_or(ones(3, 10, dtype: ScalarType.Bool).triu(8));
        FusedEqualsComposite([2, 2, 3, 4], [2, 2, 10, 4], [2, 2, 10, 3], perItem, false, 15);
        var perBatch = (rand(new long[] { 2, 1, 7, 10 }) > 0.4).logical_or(ones(7, 10, dtype: ScalarType.Bool).triu(8));
        FusedEqualsComposite([2, 2, 7, 4], [2, 2, 10, 4], [2, 2, 10, 3], perBatch, false, 19);
        var additive = randn(new long[] { 7, 10 }, dtype: ScalarType.Float64).masked_fill(rand(7, 10) > 0.7, double.NegativeInfinity)
            .masked_fill(ones(7, 10, dtype: ScalarType.Bool).tril(-7), 0.0);
        FusedEqualsComposite([2, 2, 7, 4], [2, 2, 10, 4], [2, 2, 10, 3], additive, false, 23);
    }

    [Fact]
    public void Keys_no_query_may_see_are_skipped_with_the_same_result_and_zero_gradient()
    {
        // A KV cache: 3 new queries after 4 cached positions in a buffer of 12; keys 7..11 are empty.
        const long T = 3, Lmax = 12, start = 4;
        var mask = ones(T, Lmax, dtype: ScalarType.Bool).tril(start);
        foreach (var t in new long[] { 1, T })   // the dot-product path and (after more queries) the GEMM path
        {
            var m = mask.narrow(0, 0, t);
            var q = GradCheck.Input([2, 2, t, 4], 30);
            var k = GradCheck.Input([2, 2, Lmax, 4], 31);
            var v = GradCheck.Input([2, 2, Lmax, 3], 32);
            long seen = start + t;
            var narrowed = Sdpa(q.detach(), k.detach().narrow(2, 0, seen), v.detach().narrow(2, 0, seen), m.narrow(1, 0, seen));
            using (no_grad())
            {
                var junk = v.detach().clone();
                junk.index_put_(full(new long[] { 2, 2, Lmax - seen, 3 }, 1e30, ScalarType.Float64),
                    TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(seen, Lmax));
                Assert.Equal(Values(narrowed), Values(Sdpa(q.detach(), k.detach(), junk, m)));
            }
            var y = Sdpa(q, k, v, m);
            Assert.Equal(Values(narrowed), Values(y));
            y.pow(2).sum().backward();
            Assert.All(Values(k.grad!.narrow(2, seen, Lmax - seen)), g => Assert.Equal(0.0, g));
            Assert.All(Values(v.grad!.narrow(2, seen, Lmax - seen)), g => Assert.Equal(0.0, g));
            GradCheck.Check(xs => Sdpa(xs[0], xs[1], xs[2], m), q, k, v);
        }
    }

    [Fact]
    public void A_row_that_sees_no_key_is_NaN_as_softmax_of_minus_infinity_gives()
    {
        var mask = tensor(new[] { true, false, false, false, false, false }, [2, 3]);
        var y = Sdpa(randn(1, 2, 4), randn(1, 3, 4), randn(1, 3, 2), mask);
        var r = y.data<float>().ToArray();
        Assert.False(float.IsNaN(r[0]) || float.IsNaN(r[1]));
        Assert.True(float.IsNaN(r[2]) && float.IsNaN(r[3]));
    }

    [Fact]
    public void Float32_forward_and_backward_are_bit_identical_for_any_thread_count()
    {
        manual_seed(3);
        var q = randn(new long[] { 4, 4, 24, 16 }, requires_grad: true);
        var k = randn(new long[] { 4, 4, 24, 16 }, requires_grad: true);
        var v = randn(new long[] { 4, 4, 24, 16 }, requires_grad: true);
        var g = randn(4, 4, 24, 16);
        var qc = randn(4, 4, 1, 16);
        var mask = ones(1, 24, dtype: ScalarType.Bool).tril(9);
        NnAssert.SameBitsForAnyThreadCount(() =>
        {
            q.grad = k.grad = v.grad = null;
            var y = Sdpa(q, k, v, causal: true);
            y.backward([g]);
            using var _ = no_grad();
            return [y, q.grad!, k.grad!, v.grad!, Sdpa(qc, k, v, mask)];
        });
    }

    [Fact]
    public void Float32_agrees_with_float64()
    {
        manual_seed(4);
        var q = randn(2, 3, 20, 8); var k = randn(2, 3, 20, 8); var v = randn(2, 3, 20, 8);
        var y32 = Sdpa(q, k, v, causal: true);
        var y64 = Sdpa(q.to_type(ScalarType.Float64), k.to_type(ScalarType.Float64), v.to_type(ScalarType.Float64), causal: true);
        NnAssert.Close(Values(y64), y32, 1e-5, 1e-6, "float32 vs float64");
    }
}
