using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

/// <summary>
/// The backward pass sums the gradients a tensor receives from each of its uses; from the third use on it
/// adds them in place into the sum it made for the second. These check that the in-place sums give the
/// same numbers, and that they never write into a gradient tensor some other tensor also holds (add's
/// backward hands the same tensor to both of its inputs).
/// </summary>
public class AccumulationTests
{
    [Fact]
    public void A_tensor_used_four_times_gets_the_sum_of_its_four_gradients()
    {
        var x = randn(new long[] { 5, 7 }, dtype: ScalarType.Float64, requires_grad: true);
        var a = randn(new long[] { 5, 7 }, dtype: ScalarType.Float64);
        var b = randn(new long[] { 5, 7 }, dtype: ScalarType.Float64);
        var c = randn(new long[] { 5, 7 }, dtype: ScalarType.Float64);
        ((x * a).sum() + (x * b).sum() + (x * c).sum() + x.sum()).backward();
        var expected = (a + b + c + 1).data<double>().ToArray();
        var got = x.grad!.data<double>().ToArray();
        for (int i = 0; i < got.Length; i++) Assert.Equal(expected[i], got[i], 12);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Sums_are_never_made_in_a_gradient_that_another_tensor_shares(int order)
    {
        // s = p + q hands one gradient tensor G to both p and q; p and q are each used twice more. If G
        // were summed in place for p, q would see p's other gradients too. (The order of the terms changes
        // the order in which the contributions arrive.)
        var x = ones(new long[] { 3 }, dtype: ScalarType.Float64, requires_grad: true);
        var p = x * 2;
        var q = x * 3;
        var s = (p + q).sum();
        var others = new[] { (p * 5).sum(), (p * 11).sum(), (q * 7).sum(), (q * 13).sum() };
        var y = order switch
        {
            0 => s + others[0] + others[1] + others[2] + others[3],
            1 => others[0] + others[1] + others[2] + others[3] + s,
            _ => others[0] + others[2] + s + others[1] + others[3],
        };
        y.backward();
        // dy/dp = 1 + 5 + 11 = 17, dy/dq = 1 + 7 + 13 = 21; dy/dx = 2·17 + 3·21 = 97.
        Assert.Equal(new[] { 97.0, 97.0, 97.0 }, x.grad!.data<double>().ToArray());
    }

    [Fact]
    public void The_same_tensor_added_to_itself_three_times()
    {
        var x = full(new long[] { 4 }, 2.0, ScalarType.Float64).requires_grad_();
        var w = x + x;                       // add's backward returns g itself for both inputs
        var y = (w + w + w + w).sum();       // dy/dw = 4
        y.backward();
        Assert.Equal(new[] { 8.0, 8.0, 8.0, 8.0 }, x.grad!.data<double>().ToArray());
    }

    [Fact]
    public void In_place_sums_leave_second_order_gradients_unchanged()
    {
        // With create_graph every sum is recorded (no in-place sums): d²/dx² of x·x·x used three times.
        var x = tensor(new[] { 1.5, -0.5 }, dtype: ScalarType.Float64).requires_grad_();
        var y = (x * x).sum() + (x * x * 2).sum() + (x * 3).sum();
        var g = autograd.grad([y], [x], create_graph: true)[0];            // 2x + 4x + 3 = 6x + 3
        Assert.Equal(new[] { 12.0, 0.0 }, g.data<double>().ToArray());
        var gg = autograd.grad([g.sum()], [x])[0];                         // 6
        Assert.Equal(new[] { 6.0, 6.0 }, gg.data<double>().ToArray());
    }
}
