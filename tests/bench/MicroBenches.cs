using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Bench;

/// <summary>
/// Engine micro-benchmarks: single ops on fixed float32 shapes. torch_micro.py times the same
/// workloads in PyTorch; keep the shapes, names and inputs of the two files in step.
/// Forward workloads use inputs that do not require grad (no graph is recorded); forward+backward
/// workloads clear the leaves' gradients, run the op and back-propagate a fixed upstream gradient.
/// </summary>
public static class MicroBenches
{
    /// <summary>The softmax / layer_norm tensor: (batch 64, sequence 128, features 256), normalised over the last dim.</summary>
    static readonly long[] RowShape = [64, 128, 256];
    static string Str(long[] shape) => string.Join("x", shape);

    /// <summary>C = A·B for square float32 matrices, 2n³ floating-point operations.</summary>
    public static IEnumerable<Workload> Matmul(Options o)
    {
        foreach (long n in new long[] { 256, 1024 })
        {
            var a = randn(n, n);
            var b = randn(n, n);
            yield return new Workload("matmul", $"matmul_{n}", "-", () => a.matmul(b), $"{n}x{n}x{n}", 2.0 * n * n * n);
        }
    }

    /// <summary>softmax over the last dim; forward, then forward+backward.</summary>
    public static IEnumerable<Workload> Softmax(Options o)
    {
        var x = randn(RowShape);
        yield return new Workload("softmax", "softmax_fwd", "-", () => x.softmax(-1), Str(RowShape));

        var xg = randn(RowShape, requires_grad: true);
        var g = randn(RowShape);
        yield return new Workload("softmax", "softmax_fwd_bwd", "-", () =>
        {
            xg.grad = null;
            xg.softmax(-1).backward([g]);
        }, Str(RowShape));
    }

    /// <summary>layer_norm over the last dim (256) with weight and bias; forward, then forward+backward.</summary>
    public static IEnumerable<Workload> LayerNorm(Options o)
    {
        long d = RowShape[^1];
        var x = randn(RowShape);
        var w = 1 + 0.1 * randn(d);
        var b = 0.1 * randn(d);
        yield return new Workload("layer_norm", "layer_norm_fwd", "-",
            () => nn.functional.layer_norm(x, [d], w, b), Str(RowShape));

        var xg = x.clone().requires_grad_();
        var wg = w.clone().requires_grad_();
        var bg = b.clone().requires_grad_();
        var g = randn(RowShape);
        yield return new Workload("layer_norm", "layer_norm_fwd_bwd", "-", () =>
        {
            xg.grad = null; wg.grad = null; bg.grad = null;
            nn.functional.layer_norm(xg, [d], wg, bg).backward([g]);
        }, Str(RowShape));
    }
}
